//! The hybrid executor's side of the forward pass: an FFN layer split between the
//! accelerator and the host, run at once and merged; dense tensors on the device.

use std::time::{Duration, Instant};

use super::{FfnIo, Keep, Session, oracle_mask};
use crate::backend::{Done, FfnSelect, Op};
use crate::error::KernelContext;
use crate::gguf::TensorInfo;
use crate::model::Layer;
use crate::{FfnPolicy, ModelError};

/// What each side of a hybrid split did since the last reset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HybridStats {
    /// Host time in the split FFN layers' host halves.
    pub host_time: Duration,
    /// Device time (its own clock: compute plus modelled link), FFN halves and dense
    /// tensors.
    pub device_time: Duration,
    /// Time the host waited for the device after finishing its own half (or for a
    /// dense tensor's result): what the split did not hide.
    pub wait_time: Duration,
    /// Bytes moved across the link (hidden states in, outputs out).
    pub link_bytes: u64,
    /// Neurons computed on the host in split layers, summed over tokens.
    pub host_neurons: u64,
    /// Neurons computed on the device, summed over tokens.
    pub device_neurons: u64,
    /// Operations sent to the device.
    pub device_ops: u64,
}

impl HybridStats {
    fn add_device(&mut self, done: &Done, waited: Duration) {
        self.device_time += done.device_time;
        self.wait_time += waited;
        self.link_bytes += done.link_bytes;
        self.device_ops += 1;
    }
}

impl Session<'_> {
    /// `xs · Wᵀ` on the accelerator when the hybrid plan put `t` there (`None`: it
    /// stays on the host).
    pub(super) fn on_device(
        &mut self,
        t: &TensorInfo,
        xs: &[f32],
        n: usize,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        let Some(hybrid) = self.hybrid.clone() else {
            return Ok(None);
        };
        let Some(&id) = hybrid.dense.get(&t.name) else {
            return Ok(None);
        };
        let start = Instant::now();
        let op = Op::MatMul {
            w: id,
            xs: xs.to_vec(),
            n,
        };
        let done = hybrid.backend().submit(op)?.wait()?;
        self.stats.hybrid.add_device(&done, start.elapsed());
        Ok(Some(done.ys))
    }

    /// One FFN layer split by the plan: the accelerator's half is queued first, the
    /// host computes its half meanwhile, then the device's output is added to the
    /// host's. Per-token candidates (a predictor's, or an exact oracle's) are split
    /// between the sides; threshold rules apply on both. Returns the predictor time.
    pub(super) fn ffn_hybrid(
        &mut self,
        layer: &Layer,
        policy: &FfnPolicy,
        io: FfnIo,
        y: &mut [f32],
    ) -> Result<Duration, ModelError> {
        let Some(hybrid) = self.hybrid.clone() else {
            return Err(ModelError::Policy("no hybrid split is set".into()));
        };
        let (li, h) = (io.li, io.h);
        let split = &hybrid.layers[li];
        let Some(id) = split.id else {
            return Err(ModelError::Policy(format!(
                "blk.{li}: no neurons on the device"
            )));
        };
        let model = self.model.clone();
        let w = model.ffn_weights(layer)?;
        let (d, n_ff) = (w.dim(), w.neurons());
        let n = h.len() / d;
        let (candidates, skip) = policy.layer(li);
        // Per-token candidates, where the policy has them: an exact oracle's keep sets
        // (every activation computed on the host), a predictor's or a trace's.
        let (sets, predicting) = match Keep::of(policy, li) {
            Some(keep) => {
                let mut all = self.activations(li, (&w, &layer.ffn.packed), h, n)?;
                (Some(oracle_mask(n_ff, keep, &mut all)), Duration::ZERO)
            }
            None => match self.token_sets(li, policy, io)? {
                Some((sets, took)) => (Some(sets), took),
                None => (None, Duration::ZERO),
            },
        };
        let select = match (&sets, candidates) {
            (Some(s), _) => FfnSelect::PerToken(s.iter().map(|s| split.hot_part(s)).collect()),
            (None, Some(c)) => FfnSelect::Shared(split.hot_part(c)),
            (None, None) => FfnSelect::All,
        };
        let ticket = hybrid.backend().submit(Op::Ffn {
            w: id,
            xs: h.to_vec(),
            n,
            select,
            skip,
        })?;
        // The host's half, while the device works.
        let host_start = Instant::now();
        let host_sets: Option<Vec<Vec<u32>>> = sets
            .as_ref()
            .map(|s| s.iter().map(|s| split.cold_part(s)).collect());
        let host_idx = match (&host_sets, candidates) {
            (Some(_), _) => None,
            (None, Some(c)) => Some(split.cold_part(c)),
            (None, None) => Some(split.cold.clone()),
        };
        self.kernels
            .ffn_sparse_batch(
                &w,
                h,
                n,
                host_idx.as_deref(),
                host_sets.as_deref(),
                skip,
                y,
                &mut self.scratch,
            )
            .ctx(|| format!("blk.{li}: ffn (host half)"))?;
        self.stats.hybrid.host_time += host_start.elapsed();
        let waiting = Instant::now();
        let done = ticket.wait()?;
        self.stats.hybrid.add_device(&done, waiting.elapsed());
        if done.ys.len() != y.len() || done.active.len() != n {
            return Err(ModelError::Policy(format!(
                "blk.{li}: the device returned {} outputs for {} tokens",
                done.ys.len(),
                n
            )));
        }
        y.iter_mut().zip(&done.ys).for_each(|(a, b)| *a += b);
        for b in 0..n {
            let host = self.scratch.active(b).len();
            let gates = match (&sets, candidates) {
                (Some(s), _) => s[b].len(),
                (None, Some(c)) => c.len(),
                (None, None) => n_ff,
            };
            Self::count(&mut self.stats, li, &w, gates, host + done.active[b]);
            self.stats.hybrid.host_neurons += host as u64;
            self.stats.hybrid.device_neurons += done.active[b] as u64;
        }
        Ok(predicting)
    }
}
