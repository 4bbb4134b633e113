//! Calibration on sample text: per-layer magnitude thresholds that reach a target FFN
//! density (CATS/TEAL-style sparsity for SwiGLU models, which have no exact zeros), and
//! static hot-neuron sets.

use powerinfer_kernels::Kernels;

use crate::error::KernelContext;
use crate::policy::check_density;
use crate::{FfnObservation, FfnPolicy, Model, ModelError, Session};

/// Runs the dense model over `tokens` and returns, per layer, the cut `t` such that a
/// fraction `density` of the activated gates `|act(gate·x)|` seen lie above it.
///
/// Why per layer: layers differ a lot in how peaked their activations are; one global
/// threshold would leave some layers dense and starve others.
pub fn thresholds_for_density(
    model: &Model,
    kernels: &Kernels,
    tokens: &[u32],
    density: f64,
) -> Result<Vec<f32>, ModelError> {
    GateMagnitudes::collect(model, kernels, &[tokens])?.thresholds(density)
}

/// Per layer, the `density` share of neurons with the largest mean `|act(gate·x)|`
/// over `tokens`, sorted by index: a [`FfnPolicy::StaticHot`] set.
///
/// Why: PowerInfer's offline profile in its simplest form — neurons that matter on
/// sample text are kept, the cold rest is never computed.
pub fn hot_neurons_for_density(
    model: &Model,
    kernels: &Kernels,
    tokens: &[u32],
    density: f64,
) -> Result<Vec<Vec<u32>>, ModelError> {
    GateMagnitudes::collect(model, kernels, &[tokens])?.hot_neurons(density)
}

/// Per layer, `|act(gate·x)|` of every neuron for every calibration token: one dense
/// pass, from which cuts and hot sets for any number of densities follow.
pub struct GateMagnitudes {
    n_ff: usize,
    /// Per layer, `tokens × n_ff` magnitudes.
    per_layer: Vec<Vec<f32>>,
}

impl GateMagnitudes {
    /// Runs the dense model over `chunks` (each a fresh sequence) and records the
    /// magnitudes.
    pub fn collect(
        model: &Model,
        kernels: &Kernels,
        chunks: &[&[u32]],
    ) -> Result<GateMagnitudes, ModelError> {
        Ok(GateMagnitudes {
            n_ff: model.config().n_ff,
            per_layer: gate_magnitudes(model, kernels, chunks)?,
        })
    }

    /// Per layer, the cut above which the `density` share of the magnitudes lies
    /// (a [`FfnPolicy::Threshold`]).
    pub fn thresholds(&self, density: f64) -> Result<Vec<f32>, ModelError> {
        check_density(density)?;
        let mut m = Vec::new();
        Ok(self
            .per_layer
            .iter()
            .map(|layer| {
                // Keep the top `density` share: the cut is the value just below them.
                let keep = ((layer.len() as f64) * density).round() as usize;
                if keep >= layer.len() {
                    return 0.0;
                }
                m.clear();
                m.extend_from_slice(layer);
                let (_, t, _) = m.select_nth_unstable_by(layer.len() - keep - 1, f32::total_cmp);
                *t
            })
            .collect())
    }

    /// Per layer, the `density` share of neurons with the largest mean magnitude,
    /// sorted by index (a [`FfnPolicy::StaticHot`] set).
    pub fn hot_neurons(&self, density: f64) -> Result<Vec<Vec<u32>>, ModelError> {
        check_density(density)?;
        let n_ff = self.n_ff;
        Ok(self
            .per_layer
            .iter()
            .map(|m| {
                let mut mean = vec![0f64; n_ff];
                for row in m.chunks_exact(n_ff) {
                    mean.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
                }
                let mut order: Vec<u32> = (0..n_ff as u32).collect();
                order.sort_by(|&a, &b| {
                    mean[b as usize]
                        .total_cmp(&mean[a as usize])
                        .then(a.cmp(&b))
                });
                order.truncate(((n_ff as f64) * density).round().max(1.0) as usize);
                order.sort_unstable();
                order
            })
            .collect())
    }
}

/// Per layer, `|act(gate·x)|` of every neuron for every token (`tokens × n_ff`), from
/// one dense pass over each chunk.
fn gate_magnitudes(
    model: &Model,
    kernels: &Kernels,
    chunks: &[&[u32]],
) -> Result<Vec<Vec<f32>>, ModelError> {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let longest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    if total == 0 {
        return Err(ModelError::Policy(
            "calibration needs at least one token".into(),
        ));
    }
    let cfg = model.config();
    // Every layer keeps `total × n_ff` magnitudes: reserve them checked, up front.
    let per_layer = total.checked_mul(cfg.n_ff);
    let bytes = per_layer.and_then(|n| n.checked_mul(cfg.n_layers * size_of::<f32>()));
    let mut mags: Vec<Vec<f32>> = Vec::with_capacity(cfg.n_layers);
    for _ in 0..cfg.n_layers {
        let mut layer = Vec::new();
        if bytes.is_none() || layer.try_reserve_exact(per_layer.unwrap_or(0)).is_err() {
            return Err(ModelError::Alloc {
                what: format!("calibration magnitudes of {total} tokens (calibrate on fewer)"),
                bytes,
            });
        }
        mags.push(layer);
    }
    let mut gate_out = vec![0f32; cfg.n_ff];
    let mut err = None;
    let mut session = Session::new(model, kernels.clone(), longest)?;
    let mut observe = |o: &FfnObservation| {
        let (layer, x) = (o.layer, o.input);
        if err.is_some() {
            return;
        }
        let w = match model.ffn_weights(&model.layers[layer]) {
            Ok(w) => w,
            Err(e) => {
                err = Some(e);
                return;
            }
        };
        match kernels
            .gemv(&w.gate, x, &mut gate_out)
            .ctx(|| format!("blk.{layer}: calibration gate"))
        {
            Ok(()) => mags[layer].extend(
                gate_out
                    .iter()
                    .enumerate()
                    .map(|(i, &g)| w.activated_gate(i, g).abs()),
            ),
            Err(e) => err = Some(e),
        }
    };
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        session.reset();
        session.observe(chunk, &FfnPolicy::Dense, &mut observe)?;
    }
    match err {
        Some(e) => Err(e),
        None => Ok(mags),
    }
}
