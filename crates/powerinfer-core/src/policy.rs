//! Which FFN neurons each layer computes: the one switch that sparsity experiments turn.

use std::sync::Arc;

use powerinfer_kernels::Skip;
use powerinfer_predictor::PredictorSet;

use crate::ModelError;
use crate::trace::ActivationTrace;

/// How the FFN of every layer chooses its neurons.
///
/// Why one enum: the sweep tool, the engine and the benchmarks compare these side by
/// side on the same model, through one seam (a per-layer candidate list and a skip rule).
///
/// # Which policy for which model
///
/// | model family | exact zeros? | policy for speed | notes |
/// |---|---|---|---|
/// | ReLU family (OPT, ReLU-LLaMA, Bamboo/dReLU) | yes | [`FfnPolicy::Predictor`] (PowerInfer), or [`FfnPolicy::Oracle`] with `threshold: 0.0` | `Oracle{0}` is exact: it skips only neurons that output 0 |
/// | SwiGLU (LLaMA, SmolLM2, Mistral) | no | [`FfnPolicy::Threshold`] calibrated to a density ([`Engine::calibrated_policy`](crate::Engine::calibrated_policy)) | a magnitude cut (CATS/TEAL): accuracy falls with density, see FIDELITY.md |
/// | any, with a placement plan | — | [`FfnPolicy::HotCold`] / the hybrid split | hot neurons always, cold ones per token |
///
/// `Dense` is the baseline; `TopK` and `Oracle` compute every gate exactly, so they
/// measure quality ceilings rather than save work. In particular **`Oracle { threshold:
/// 0.0 }` on a SwiGLU model computes every neuron** (SiLU is never exactly 0) through the
/// sparse path, which is slower than `Dense`.
///
/// # Example: calibrate, then decode sparsely
///
/// ```
/// use powerinfer_core::{FfnPolicy, Model, Session, calibrate::thresholds_for_density};
/// use powerinfer_kernels::Kernels;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A small LLaMA-shaped (SwiGLU) model from the test data; any GGUF model works.
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ref_llama_f32.gguf");
/// let model = Model::open(path)?;
/// let kernels = Kernels::new();
/// let calibration: Vec<u32> = (0..24).map(|i| (i * 7 % 96) as u32).collect();
/// // Per-layer cuts that keep about 30% of the neurons on text like the calibration.
/// let per_layer = thresholds_for_density(&model, &kernels, &calibration, 0.3)?;
/// let policy = FfnPolicy::Threshold { per_layer };
/// let mut session = Session::new(&model, kernels, 16)?;
/// let logits = session.forward(&[1, 17, 42], &policy)?;
/// assert_eq!(logits.len(), model.config().vocab);
/// let density = session.stats().density_per_layer();
/// assert!(density.iter().all(|&d| d > 0.1 && d < 0.6), "{density:?}");
/// # Ok(())
/// # }
/// ```
///
/// With an [`Engine`](crate::Engine) the same is one call:
/// `engine.calibrated_policy(text, 0.3)?`, then pass the policy in
/// [`GenerateParams`](crate::GenerateParams).
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
    /// The quality ceiling of dynamic sparsity, not a speed policy: per token and layer
    /// every neuron's `a = act(gate·x)·(up·x)` is computed exactly and only the
    /// `density` share of largest `|a|` is kept (the predictors' training target).
    TopK {
        /// Share of neurons kept per token, in (0, 1].
        density: f32,
    },
    /// PowerInfer's dynamic sparsity: per token and layer a trained predictor picks the
    /// neurons before any FFN weight is read, and only their gate, up and down rows are
    /// computed. With `gate_check` (one cut per layer on `|act(gate·x)|`), predicted
    /// neurons whose activated gate falls below the cut are dropped before up/down.
    Predictor {
        /// One predictor per layer, for this model.
        set: Arc<PredictorSet>,
        /// Optional per-layer gate cuts (0 for the ReLU family: drop predicted
        /// neurons that do not fire).
        gate_check: Option<Vec<f32>>,
    },
    /// Speed runs on models with random weights: per layer and position exactly the
    /// neurons a sampled [`ActivationTrace`] fires are computed (their gate, up and
    /// down rows), whatever the activations are. Figures from it are speed only.
    Trace {
        /// The trace, for this model's layer and neuron counts.
        trace: Arc<ActivationTrace>,
    },
    /// PowerInfer's split: per layer the hottest neurons of the offline profile (what
    /// placement puts on the accelerator) are always computed; among the cold rest only
    /// `cold`'s choice is.
    HotCold {
        /// One sorted list of always-computed neurons per layer.
        hot: Vec<Vec<u32>>,
        /// Which cold neurons each token adds.
        cold: ColdChoice,
    },
}

/// How [`FfnPolicy::HotCold`] picks the cold neurons of a token.
#[derive(Clone, Debug, PartialEq)]
pub enum ColdChoice {
    /// The cold neurons of largest exact `|a|`, filling the layer up to `density` of
    /// its neurons in all (hot included): the ceiling of any cold-side predictor.
    TopK {
        /// Total share of neurons per token, in (0, 1].
        density: f32,
    },
    /// The cold neurons a trained predictor picks (realizable: only predicted rows are
    /// read).
    Predictor {
        /// One predictor per layer, for this model.
        set: Arc<PredictorSet>,
    },
}

impl FfnPolicy {
    /// Checks the policy against a model of `n_layers` layers with `n_ff` neurons each.
    pub fn validate(&self, n_layers: usize, n_ff: usize) -> Result<(), ModelError> {
        let layers = |got: usize| layer_count(got, n_layers);
        match self {
            FfnPolicy::Dense => Ok(()),
            FfnPolicy::Oracle { threshold } => finite(*threshold),
            FfnPolicy::Threshold { per_layer } => {
                layers(per_layer.len())?;
                per_layer.iter().try_for_each(|t| finite(*t))
            }
            FfnPolicy::StaticHot { per_layer } => hot_sets(per_layer, n_layers, n_ff),
            FfnPolicy::TopK { density } => unit_density(*density),
            FfnPolicy::Predictor { set, gate_check } => {
                if let Some(cuts) = gate_check {
                    layers(cuts.len())?;
                    cuts.iter().try_for_each(|t| finite(*t))?;
                }
                predictors(set, n_layers, n_ff)
            }
            FfnPolicy::Trace { trace } => {
                layers(trace.layers())?;
                if trace.neurons() == n_ff {
                    Ok(())
                } else {
                    Err(ModelError::Policy(format!(
                        "trace of {} neurons per layer, the model has {n_ff}",
                        trace.neurons()
                    )))
                }
            }
            FfnPolicy::HotCold { hot, cold } => {
                hot_sets(hot, n_layers, n_ff)?;
                match cold {
                    ColdChoice::TopK { density } => unit_density(*density),
                    ColdChoice::Predictor { set } => predictors(set, n_layers, n_ff),
                }
            }
        }
    }

    /// The candidate neurons (None = all) and the skip rule of `layer` (for
    /// `Predictor`, the rule applied to the predicted candidates).
    pub(crate) fn layer(&self, layer: usize) -> (Option<&[u32]>, Skip) {
        match self {
            FfnPolicy::TopK { .. } | FfnPolicy::HotCold { .. } | FfnPolicy::Trace { .. } => {
                (None, Skip::None)
            }
            FfnPolicy::Predictor { gate_check, .. } => (
                None,
                gate_check
                    .as_ref()
                    .map_or(Skip::None, |c| Skip::Below(c[layer])),
            ),
            FfnPolicy::Dense => (None, Skip::None),
            FfnPolicy::Oracle { threshold } => (None, Skip::Below(*threshold)),
            FfnPolicy::Threshold { per_layer } => (None, Skip::Below(per_layer[layer])),
            FfnPolicy::StaticHot { per_layer } => (Some(&per_layer[layer]), Skip::None),
        }
    }
}

fn layer_count(got: usize, n_layers: usize) -> Result<(), ModelError> {
    if got == n_layers {
        Ok(())
    } else {
        Err(ModelError::Policy(format!(
            "{got} per-layer entries for a model of {n_layers} layers"
        )))
    }
}

/// Per-layer neuron lists: one per layer, strictly increasing, below `n_ff`.
fn hot_sets(sets: &[Vec<u32>], n_layers: usize, n_ff: usize) -> Result<(), ModelError> {
    layer_count(sets.len(), n_layers)?;
    match sets.iter().position(|set| {
        set.windows(2).any(|w| w[0] >= w[1]) || set.last().is_some_and(|&i| i as usize >= n_ff)
    }) {
        Some(l) => Err(ModelError::Policy(format!(
            "layer {l}: neuron set must be strictly increasing and below {n_ff}"
        ))),
        None => Ok(()),
    }
}

fn predictors(set: &PredictorSet, n_layers: usize, n_ff: usize) -> Result<(), ModelError> {
    layer_count(set.layers.len(), n_layers)?;
    match set.layers.iter().position(|p| p.n_ff() != n_ff) {
        Some(l) => Err(ModelError::Policy(format!(
            "layer {l}: predictor for {} neurons, the model has {n_ff}",
            set.layers[l].n_ff()
        ))),
        None => Ok(()),
    }
}

fn unit_density(density: f32) -> Result<(), ModelError> {
    check_density(f64::from(density))
}

/// A density (share of neurons) in (0, 1].
pub(crate) fn check_density(density: f64) -> Result<(), ModelError> {
    if density > 0.0 && density <= 1.0 {
        Ok(())
    } else {
        Err(ModelError::Policy(format!(
            "density {density} must be in (0, 1]"
        )))
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
