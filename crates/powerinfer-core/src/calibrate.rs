//! Calibration on sample text: per-layer magnitude thresholds that reach a target FFN
//! density (CATS/TEAL-style sparsity for SwiGLU models, which have no exact zeros), and
//! static hot-neuron sets.

use powerinfer_kernels::Kernels;

use crate::error::KernelContext;
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
    check_density(density)?;
    Ok(gate_magnitudes(model, kernels, tokens)?
        .into_iter()
        .map(|mut m| {
            // Keep the top `density` share: the cut is the value just below them.
            let keep = ((m.len() as f64) * density).round() as usize;
            if keep >= m.len() {
                return 0.0;
            }
            let k = m.len() - keep - 1;
            let (_, t, _) = m.select_nth_unstable_by(k, f32::total_cmp);
            *t
        })
        .collect())
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
    check_density(density)?;
    let n_ff = model.config().n_ff;
    Ok(gate_magnitudes(model, kernels, tokens)?
        .into_iter()
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

fn check_density(density: f64) -> Result<(), ModelError> {
    if density > 0.0 && density <= 1.0 {
        Ok(())
    } else {
        Err(ModelError::Policy(format!(
            "target density {density} must be in (0, 1]"
        )))
    }
}

/// Per layer, `|act(gate·x)|` of every neuron for every token (`tokens × n_ff`), from
/// one dense pass.
fn gate_magnitudes(
    model: &Model,
    kernels: &Kernels,
    tokens: &[u32],
) -> Result<Vec<Vec<f32>>, ModelError> {
    if tokens.is_empty() {
        return Err(ModelError::Policy(
            "calibration needs at least one token".into(),
        ));
    }
    let cfg = model.config();
    let mut mags: Vec<Vec<f32>> = vec![Vec::with_capacity(tokens.len() * cfg.n_ff); cfg.n_layers];
    let mut gate_out = vec![0f32; cfg.n_ff];
    let mut err = None;
    let mut session = Session::new(model, kernels.clone(), tokens.len());
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
                    .map(|(i, &g)| w.act.gate(g + w.gate_bias.map_or(0.0, |b| b[i])).abs()),
            ),
            Err(e) => err = Some(e),
        }
    };
    session.observe(tokens, &FfnPolicy::Dense, &mut observe)?;
    match err {
        Some(e) => Err(e),
        None => Ok(mags),
    }
}
