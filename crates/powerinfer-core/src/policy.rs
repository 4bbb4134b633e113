//! Which FFN neurons each layer computes: the one switch that sparsity experiments turn.

use powerinfer_kernels::Skip;

use crate::ModelError;

/// How the FFN of every layer chooses its neurons.
///
/// Why one enum: the sweep tool, the engine and the benchmarks compare these side by
/// side on the same model; a predictor-driven variant is added by the predictor crate's
/// integration on the same seam (a per-layer candidate list, like [`FfnPolicy::StaticHot`]).
#[derive(Clone, Debug, PartialEq)]
pub enum FfnPolicy {
    /// Every neuron, always (the baseline).
    Dense,
    /// Compute every gate exactly, then skip the up/down work of neurons whose
    /// activated gate has `|a| ≤ threshold`: the zeros of the ReLU family at 0; a
    /// magnitude cut for SwiGLU (CATS/TEAL). Same threshold in every layer.
    Oracle {
        /// The cut (0 for exact ReLU sparsity).
        threshold: f32,
    },
    /// Like `Oracle` with one threshold per layer, usually calibrated to a target
    /// density (see `calibrate::thresholds_for_density`).
    Threshold {
        /// One cut per layer.
        per_layer: Vec<f32>,
    },
    /// Only these neurons exist ("pruning cold neurons"): per layer a sorted list; the
    /// rest are never computed.
    StaticHot {
        /// One sorted list per layer.
        per_layer: Vec<Vec<u32>>,
    },
}

impl FfnPolicy {
    /// Checks the policy against a model of `n_layers` layers with `n_ff` neurons each.
    pub fn validate(&self, n_layers: usize, n_ff: usize) -> Result<(), ModelError> {
        let layers = |got: usize| {
            if got == n_layers {
                Ok(())
            } else {
                Err(ModelError::Policy(format!(
                    "{got} per-layer entries for a model of {n_layers} layers"
                )))
            }
        };
        match self {
            FfnPolicy::Dense => Ok(()),
            FfnPolicy::Oracle { threshold } => finite(*threshold),
            FfnPolicy::Threshold { per_layer } => {
                layers(per_layer.len())?;
                per_layer.iter().try_for_each(|t| finite(*t))
            }
            FfnPolicy::StaticHot { per_layer } => {
                layers(per_layer.len())?;
                for (l, set) in per_layer.iter().enumerate() {
                    if set.windows(2).any(|w| w[0] >= w[1])
                        || set.last().is_some_and(|&i| i as usize >= n_ff)
                    {
                        return Err(ModelError::Policy(format!(
                            "layer {l}: hot set must be strictly increasing and below {n_ff}"
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// The candidate neurons (None = all) and the skip rule of `layer`.
    pub(crate) fn layer(&self, layer: usize) -> (Option<&[u32]>, Skip) {
        match self {
            FfnPolicy::Dense => (None, Skip::None),
            FfnPolicy::Oracle { threshold } => (None, Skip::Below(*threshold)),
            FfnPolicy::Threshold { per_layer } => (None, Skip::Below(per_layer[layer])),
            FfnPolicy::StaticHot { per_layer } => (Some(&per_layer[layer]), Skip::None),
        }
    }
}

fn finite(t: f32) -> Result<(), ModelError> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(ModelError::Policy(format!(
            "threshold {t} must be finite and ≥ 0"
        )))
    }
}
