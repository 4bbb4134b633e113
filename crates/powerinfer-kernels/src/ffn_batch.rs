//! The sparse FFN for several tokens at once (prefill), each with its own candidates.

use crate::context::{check_idx, check_len};
use crate::{FfnScratch, FfnWeights, KernelError, Kernels, Skip};

/// What [`Kernels::ffn_sparse_batch`] computed, per token, and its reusable buffers.
///
/// Why public: the engine reads each token's active neurons to count density and to
/// feed predictors' training data, and a hybrid executor reads them to report how much
/// work each device did.
#[derive(Default, Debug)]
pub struct FfnBatchScratch {
    single: FfnScratch,
    active: Vec<Vec<u32>>,
    values: Vec<Vec<f32>>,
}

impl FfnBatchScratch {
    /// Tokens of the last call.
    pub fn tokens(&self) -> usize {
        self.active.len()
    }

    /// Token `b`'s neurons whose output was added, ascending.
    pub fn active(&self, b: usize) -> &[u32] {
        &self.active[b]
    }

    /// Their activations, parallel to [`FfnBatchScratch::active`].
    pub fn values(&self, b: usize) -> &[f32] {
        &self.values[b]
    }

    fn reset(&mut self, n: usize) {
        self.active.resize_with(n, Vec::new);
        self.values.resize_with(n, Vec::new);
        self.active.iter_mut().for_each(Vec::clear);
        self.values.iter_mut().for_each(Vec::clear);
    }
}

impl Kernels {
    /// [`Kernels::ffn_sparse`] for `n` tokens: `xs` and `ys` are `n × dim`, and token
    /// `b`'s candidates are `sets[b]` when given, else `idx` (else every neuron).
    ///
    /// One token goes through the fused kernel. Several compute the gates of the union
    /// of their candidates for every token (one batched GEMM), then up and down over the
    /// union of the neurons any token keeps; a token's output holds exactly the neurons
    /// it would keep alone (`Skip::None` keeps every candidate, as the fused kernel
    /// does). Results do not depend on the thread count.
    #[allow(clippy::too_many_arguments)]
    pub fn ffn_sparse_batch(
        &self,
        w: &FfnWeights,
        xs: &[f32],
        n: usize,
        idx: Option<&[u32]>,
        sets: Option<&[Vec<u32>]>,
        skip: Skip,
        ys: &mut [f32],
        scratch: &mut FfnBatchScratch,
    ) -> Result<(), KernelError> {
        w.validate()?;
        let d = w.dim();
        let len = n.checked_mul(d).ok_or(KernelError::SizeOverflow)?;
        check_len("ffn_sparse_batch: xs", len, xs.len())?;
        check_len("ffn_sparse_batch: ys", len, ys.len())?;
        if let Some(s) = sets {
            check_len("ffn_sparse_batch: sets", n, s.len())?;
            s.iter().try_for_each(|s| check_idx(s, w.neurons()))?;
        }
        if let Some(i) = idx {
            check_idx(i, w.neurons())?;
        }
        scratch.reset(n);
        if n == 1 {
            let cand = sets.map(|s| s[0].as_slice()).or(idx);
            self.ffn_sparse(w, xs, cand, skip, ys, &mut scratch.single)?;
            scratch.active[0].extend_from_slice(scratch.single.active());
            scratch.values[0].extend_from_slice(scratch.single.active_values());
            return Ok(());
        }
        let all: Vec<u32>;
        let union_sets: Vec<u32>;
        let cand: &[u32] = match (sets, idx) {
            (Some(s), _) => {
                union_sets = union(s);
                &union_sets
            }
            (None, Some(i)) => i,
            (None, None) => {
                all = (0..w.neurons() as u32).collect();
                &all
            }
        };
        let m = cand.len();
        // Per token, which of `cand` it may use (all of them without per-token sets).
        let member: Option<Vec<bool>> = sets.map(|s| {
            let mut mask = vec![false; n * m];
            for (b, set) in s.iter().enumerate() {
                let mut k = 0;
                for &i in set {
                    while cand[k] < i {
                        k += 1;
                    }
                    mask[b * m + k] = true;
                }
            }
            mask
        });
        let mut g = vec![0f32; n * m];
        self.gemm_rows(&w.gate, xs, n, cand, &mut g)?;
        let threshold = skip.threshold();
        for gb in g.chunks_exact_mut(m.max(1)) {
            for (v, &i) in gb.iter_mut().zip(cand) {
                *v = w.activated_gate(i as usize, *v);
            }
        }
        let keep = |b: usize, k: usize| {
            member.as_ref().is_none_or(|mask| mask[b * m + k]) && g[b * m + k].abs() > threshold
        };
        // Positions (in `cand`) of the neurons any token keeps, and those neurons.
        let kept: Vec<usize> = (0..m).filter(|&k| (0..n).any(|b| keep(b, k))).collect();
        let neurons: Vec<u32> = kept.iter().map(|&k| cand[k]).collect();
        let u_n = neurons.len();
        let mut hs = vec![0f32; n * u_n];
        if let Some(up) = &w.up {
            self.gemm_rows(up, xs, n, &neurons, &mut hs)?;
        }
        for b in 0..n {
            for (j, &k) in kept.iter().enumerate() {
                let mine = keep(b, k);
                let v = if mine {
                    w.act.combine(g[b * m + k], hs[b * u_n + j])
                } else {
                    0.0
                };
                hs[b * u_n + j] = v;
                if mine && (skip == Skip::None || v != 0.0) {
                    scratch.active[b].push(neurons[j]);
                    scratch.values[b].push(v);
                }
            }
        }
        self.axpy_down_batch(&w.down_t, &hs, n, &neurons, ys)
    }
}

/// The sorted union of sorted index lists.
fn union(sets: &[Vec<u32>]) -> Vec<u32> {
    let mut all: Vec<u32> = sets.iter().flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}
