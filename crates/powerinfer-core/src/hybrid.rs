//! PowerInfer's hybrid split: a placement plan's hot neurons (and dense tensors) on an
//! accelerator [`Backend`], the rest on the host, both halves of every FFN layer at once.
//!
//! ```text
//! per layer:  h ─┬─► accelerator: hot neurons ∩ this token's candidates ─► y_acc ─┐
//!                └─► host:        cold neurons ∩ this token's candidates ─► y_cpu ─┴► y_cpu + y_acc
//! ```
//!
//! Why a separate value: uploading is done once per model (the plan's bytes go to the
//! device), and any number of sessions then share it ([`crate::Session::set_hybrid`]).
//! The merge adds the accelerator's output to the host's in that fixed order, so runs
//! are deterministic; the split itself changes only the order of the float sums (the
//! result equals the CPU-only one within rounding).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use powerinfer_kernels::{Activation, Kernels, WType};
use powerinfer_placement::{
    Activity, DenseItem, PlacementInput, PlacementPlan, PlacementProblem, solve_greedy,
};
use powerinfer_predictor::{ActivationStats, ActiveRule};

use crate::backend::{Backend, WeightId, ffn_neuron_bytes};
use crate::{FfnObservation, Model, ModelError};

/// How a model is laid out on the accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HybridOptions {
    /// Type of the accelerator's down rows when the host's down projection is an exactly
    /// transposed 4-bit layout (which cannot be split by neuron). F16 (the default) holds
    /// Q4_0/Q4_1 values to 11 bits; Q8_0 halves the bytes at 8.
    pub down_type: WType,
    /// Placement: a layer gets 0 or at least this many accelerator neurons.
    pub min_neurons_per_layer: usize,
    /// Placement: neurons move in groups of this many, hottest first.
    pub group_size: usize,
    /// Placement: offer the attention projections and the output head to the
    /// accelerator too (they compete with neurons for its bytes).
    pub dense: bool,
}

impl Default for HybridOptions {
    fn default() -> Self {
        HybridOptions {
            down_type: WType::F16,
            min_neurons_per_layer: 0,
            group_size: 1,
            dense: true,
        }
    }
}

/// Where a hybrid split's placement comes from.
#[derive(Clone, Debug)]
pub enum PlanSource {
    /// A plan file written by the `place` example or [`PlacementPlan::write_to`].
    File(PathBuf),
    /// An activation-stats file (the `profile` example's), solved for the budget.
    Stats(PathBuf),
    /// A quick profile on these tokens, solved for the budget.
    Profile(Vec<u32>),
}

/// How to split a model between the host and an accelerator.
#[derive(Clone)]
pub struct HybridSpec {
    /// The accelerator (its own budget applies to every upload).
    pub backend: Arc<dyn Backend>,
    /// Where the placement comes from.
    pub source: PlanSource,
    /// Bytes the placement may put on the accelerator (for computed plans).
    pub budget: u64,
    /// Layout and placement options.
    pub options: HybridOptions,
}

/// Name of layer `li`'s attention item in plans (its q, k, v and o projections).
fn attn_item(li: usize) -> String {
    format!("blk.{li}.attn")
}

/// Name of the output head's item in plans.
const OUTPUT_ITEM: &str = "output";

/// One layer's split (its accelerator neurons are the plan's).
#[derive(Debug)]
pub(crate) struct LayerSplit {
    /// The host's neurons, ascending.
    pub cold: Vec<u32>,
    /// Global neuron → its index among `hot`, or `u32::MAX` on the host.
    local: Vec<u32>,
    /// The uploaded neurons (None when the layer is all on the host).
    pub id: Option<WeightId>,
}

impl LayerSplit {
    /// The accelerator's share of a sorted candidate list, in upload numbering.
    pub fn hot_part(&self, set: &[u32]) -> Vec<u32> {
        set.iter()
            .map(|&i| self.local[i as usize])
            .filter(|&k| k != u32::MAX)
            .collect()
    }

    /// The host's share of a sorted candidate list.
    pub fn cold_part(&self, set: &[u32]) -> Vec<u32> {
        set.iter()
            .copied()
            .filter(|&i| self.local[i as usize] == u32::MAX)
            .collect()
    }
}

/// A model's weights placed on an accelerator by a plan, ready for sessions to use.
///
/// A `Hybrid` owns what its backend holds: a failed load and a drop both release
/// everything on the device, so give each `Hybrid` a backend of its own.
pub struct Hybrid {
    backend: Arc<dyn Backend>,
    pub(crate) layers: Vec<LayerSplit>,
    /// Tensor name → uploaded matrix.
    pub(crate) dense: HashMap<String, WeightId>,
    plan: PlacementPlan,
}

impl std::fmt::Debug for Hybrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hybrid")
            .field("backend", &self.backend.name())
            .field("held", &self.backend.bytes_held())
            .field("accelerator_neurons", &self.accelerator_neurons())
            .finish()
    }
}

impl Hybrid {
    /// A quick activation profile of `model` on `tokens` (dense passes of `chunk`
    /// tokens): firing counts for placement. A neuron fires when `a ≠ 0` in the ReLU
    /// family, and when it is in its token's top half by `|a|` for SwiGLU (as the
    /// profile example's default).
    pub fn profile(
        model: &Model,
        kernels: &Kernels,
        tokens: &[u32],
        chunk: usize,
    ) -> Result<ActivationStats, ModelError> {
        let rule = match model.config().activation {
            Activation::SwiGlu | Activation::GeGlu | Activation::Gelu => {
                ActiveRule::TopDensity(0.5)
            }
            _ => ActiveRule::NonZero,
        };
        let mut stats = ActivationStats::new(model.predictor_id().clone(), rule)?;
        let mut err = None;
        let mut record = |o: &FfnObservation| {
            if err.is_none() {
                err = stats.record(o.layer, o.values).err();
            }
        };
        crate::eval::observe_dense(model, kernels, tokens, chunk, &mut record, &mut |_| {})?;
        match err {
            Some(e) => Err(e.into()),
            None => Ok(stats),
        }
    }

    /// The placement problem of `model` on a device of `budget` bytes: per layer every
    /// neuron's firing frequency from `stats` and its size on the device, plus the
    /// attention projections and output head as dense items (with `opts.dense`).
    pub fn problem(
        model: &Model,
        stats: &ActivationStats,
        budget: u64,
        opts: &HybridOptions,
    ) -> Result<PlacementProblem, ModelError> {
        // A matching model id has this model's layer and neuron counts.
        stats.check_model(model.predictor_id(), "activation stats")?;
        let freqs = (0..stats.layers()).map(|l| stats.frequencies(l)).collect();
        Hybrid::problem_from(model, freqs, budget, opts)
    }

    /// [`Hybrid::problem`] from per-layer, per-neuron firing frequencies in `[0, 1]`
    /// (a trace's, say: [`crate::trace::ActivationTrace::frequencies`]).
    pub fn problem_from(
        model: &Model,
        frequencies: Vec<Vec<f64>>,
        budget: u64,
        opts: &HybridOptions,
    ) -> Result<PlacementProblem, ModelError> {
        let cfg = model.config();
        if frequencies.len() != cfg.n_layers || frequencies.iter().any(|f| f.len() != cfg.n_ff) {
            return Err(ModelError::Plan {
                plan: "frequencies".into(),
                problem: format!(
                    "{} layers of {:?} neurons, the model has {} of {}",
                    frequencies.len(),
                    frequencies.first().map(Vec::len),
                    cfg.n_layers,
                    cfg.n_ff
                ),
            });
        }
        let mut bytes_per_neuron = Vec::with_capacity(cfg.n_layers);
        let mut dense = Vec::new();
        for (li, layer) in model.layers.iter().enumerate() {
            let w = model.ffn_weights(layer)?;
            bytes_per_neuron.push(ffn_neuron_bytes(&w, opts.down_type)?);
            if opts.dense {
                let attn = [&layer.q, &layer.k, &layer.v, &layer.o];
                dense.push(DenseItem {
                    name: attn_item(li),
                    bytes: attn.iter().map(|l| l.t.n_bytes).sum(),
                    access: 1.0,
                });
            }
        }
        if opts.dense {
            dense.push(DenseItem {
                name: OUTPUT_ITEM.into(),
                bytes: model.output.n_bytes,
                access: 1.0,
            });
        }
        let input = PlacementInput {
            activity: Activity::Frequencies(frequencies),
            bytes_per_neuron,
            dense,
            accelerator_bytes: budget,
            reservations: Vec::new(),
            min_neurons_per_layer: opts.min_neurons_per_layer,
            group_size: opts.group_size,
        };
        Ok(PlacementProblem::new(input)?)
    }

    /// [`Hybrid::problem`] solved with the greedy solver.
    pub fn solve(
        model: &Model,
        stats: &ActivationStats,
        budget: u64,
        opts: &HybridOptions,
    ) -> Result<PlacementPlan, ModelError> {
        Ok(solve_greedy(&Hybrid::problem(model, stats, budget, opts)?))
    }

    /// [`Hybrid::problem_from`] solved with the greedy solver.
    pub fn solve_from(
        model: &Model,
        frequencies: Vec<Vec<f64>>,
        budget: u64,
        opts: &HybridOptions,
    ) -> Result<PlacementPlan, ModelError> {
        Ok(solve_greedy(&Hybrid::problem_from(
            model,
            frequencies,
            budget,
            opts,
        )?))
    }

    /// Uploads exactly what `plan` puts on the accelerator to `backend`: each layer's
    /// hot neurons and the dense tensors it names. `source` names the plan in errors
    /// (its file, or `computed`). A plan for another model shape, or one that does not
    /// fit the device's budget, is refused, and then nothing stays uploaded.
    pub fn load(
        model: &Model,
        plan: PlacementPlan,
        source: &str,
        backend: Arc<dyn Backend>,
        opts: &HybridOptions,
    ) -> Result<Hybrid, ModelError> {
        let bad = |problem: String| ModelError::Plan {
            plan: source.to_string(),
            problem,
        };
        let cfg = model.config();
        if plan.layers().len() != cfg.n_layers {
            return Err(bad(format!(
                "{} layers, the model has {}",
                plan.layers().len(),
                cfg.n_layers
            )));
        }
        let need = plan.accelerator_weight_bytes();
        if let Some(budget) = backend.budget().filter(|&b| need > b) {
            return Err(bad(format!(
                "puts {need} bytes on the accelerator, its budget is {budget} bytes"
            )));
        }
        let result = Hybrid::upload(model, &plan, &backend, opts, &bad);
        match result {
            Ok((layers, dense)) => Ok(Hybrid {
                backend,
                layers,
                dense,
                plan,
            }),
            Err(e) => {
                backend.release_all();
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn upload(
        model: &Model,
        plan: &PlacementPlan,
        backend: &Arc<dyn Backend>,
        opts: &HybridOptions,
        bad: &dyn Fn(String) -> ModelError,
    ) -> Result<(Vec<LayerSplit>, HashMap<String, WeightId>), ModelError> {
        let n_ff = model.config().n_ff;
        let mut layers = Vec::with_capacity(plan.layers().len());
        for (li, (layer, lp)) in model.layers.iter().zip(plan.layers()).enumerate() {
            let w = model.ffn_weights(layer)?;
            if lp.neuron_count() != n_ff {
                return Err(bad(format!(
                    "layer {li} has {} neurons, the model {n_ff}",
                    lp.neuron_count()
                )));
            }
            let per = ffn_neuron_bytes(&w, opts.down_type)?;
            if lp.bytes_per_neuron() != per {
                return Err(bad(format!(
                    "layer {li}: {} bytes per neuron, this model takes {per} on the device \
                     (a plan for another model or down type?)",
                    lp.bytes_per_neuron()
                )));
            }
            let hot = lp.accelerator_neurons();
            let mut local = vec![u32::MAX; n_ff];
            for (k, &i) in hot.iter().enumerate() {
                local[i as usize] = k as u32;
            }
            let cold = (0..n_ff as u32)
                .filter(|&i| local[i as usize] == u32::MAX)
                .collect();
            let id = if hot.is_empty() {
                None
            } else {
                Some(backend.upload_ffn(&format!("blk.{li}.ffn"), &w, hot, opts.down_type)?)
            };
            layers.push(LayerSplit { cold, local, id });
        }
        let mut dense = HashMap::new();
        for item in plan.dense().iter().filter(|d| d.on_accelerator) {
            let tensors: Vec<&crate::gguf::TensorInfo> = if item.name == OUTPUT_ITEM {
                vec![&model.output]
            } else {
                let li = item
                    .name
                    .strip_prefix("blk.")
                    .and_then(|s| s.strip_suffix(".attn"))
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|&li| li < model.layers.len())
                    .ok_or_else(|| bad(format!("unknown dense item {:?}", item.name)))?;
                let l = &model.layers[li];
                vec![&l.q.t, &l.k.t, &l.v.t, &l.o.t]
            };
            for t in tensors {
                let id = backend.upload_matrix(&t.name, &model.matrix(t)?)?;
                dense.insert(t.name.clone(), id);
            }
        }
        Ok((layers, dense))
    }

    /// Reads or computes `spec`'s plan and loads it onto its backend (see
    /// [`Hybrid::load`]); quick profiles run on `kernels`.
    pub fn build(
        model: &Model,
        kernels: &Kernels,
        spec: &HybridSpec,
    ) -> Result<Hybrid, ModelError> {
        let (plan, name) = match &spec.source {
            PlanSource::File(p) => (PlacementPlan::read_from(p)?, p.display().to_string()),
            PlanSource::Stats(p) => {
                let stats = ActivationStats::load(p)?;
                let plan = Hybrid::solve(model, &stats, spec.budget, &spec.options)?;
                (plan, format!("computed from {}", p.display()))
            }
            PlanSource::Profile(tokens) => {
                let stats = Hybrid::profile(model, kernels, tokens, 256)?;
                let plan = Hybrid::solve(model, &stats, spec.budget, &spec.options)?;
                (
                    plan,
                    format!("computed from a {}-token profile", tokens.len()),
                )
            }
        };
        Hybrid::load(model, plan, &name, Arc::clone(&spec.backend), &spec.options)
    }

    /// The device.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The plan in use.
    pub fn plan(&self) -> &PlacementPlan {
        &self.plan
    }

    /// Neurons on the accelerator, all layers.
    pub fn accelerator_neurons(&self) -> usize {
        let layers = self.plan.layers().iter();
        layers.map(|l| l.accelerator_neurons().len()).sum()
    }

    /// Neurons on the host, all layers.
    pub fn host_neurons(&self) -> usize {
        self.layers.iter().map(|l| l.cold.len()).sum()
    }

    /// Names of the dense tensors on the accelerator.
    pub fn accelerator_tensors(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.dense.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl Drop for Hybrid {
    fn drop(&mut self) {
        self.backend.release_all();
    }
}
