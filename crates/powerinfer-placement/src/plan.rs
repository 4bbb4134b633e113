//! The solver's output: which neurons and dense items live on the accelerator.
//!
//! Why a type of its own: the core crate's hybrid executor needs, per layer, the sorted index
//! list (to gather hot rows) and a mask (to split the predictor's active set), and the user
//! needs to see what the plan costs and buys (bytes per device, expected hit ratio). The plan
//! is self-contained (it carries sizes and activation sums), so a saved plan can be reported
//! on without the profile it came from.

use crate::problem::PlacementProblem;
use crate::ranked::RankedLayer;

/// One layer's split between accelerator and host.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlacement {
    pub(crate) bytes_per_neuron: u64,
    pub(crate) accelerator: Vec<u32>,
    pub(crate) mask: Vec<bool>,
    pub(crate) accelerator_activation: f64,
    pub(crate) total_activation: f64,
}

impl LayerPlacement {
    /// Builds a layer placement; `accelerator` must be sorted, unique and below `neurons`.
    pub(crate) fn new(
        neurons: usize,
        bytes_per_neuron: u64,
        accelerator: Vec<u32>,
        accelerator_activation: f64,
        total_activation: f64,
    ) -> Self {
        let mut mask = vec![false; neurons];
        for &i in &accelerator {
            mask[i as usize] = true;
        }
        Self {
            bytes_per_neuron,
            accelerator,
            mask,
            accelerator_activation,
            total_activation,
        }
    }

    /// Number of neurons in the layer.
    pub fn neuron_count(&self) -> usize {
        self.mask.len()
    }

    /// Bytes of one neuron in this layer.
    pub fn bytes_per_neuron(&self) -> u64 {
        self.bytes_per_neuron
    }

    /// Indices of the neurons on the accelerator, ascending.
    pub fn accelerator_neurons(&self) -> &[u32] {
        &self.accelerator
    }

    /// `mask[i]` is true when neuron `i` lives on the accelerator.
    pub fn mask(&self) -> &[bool] {
        &self.mask
    }

    /// Bytes of this layer's neurons on the accelerator.
    pub fn accelerator_bytes(&self) -> u64 {
        self.accelerator.len() as u64 * self.bytes_per_neuron
    }

    /// Bytes of this layer's neurons left on the host.
    pub fn host_bytes(&self) -> u64 {
        (self.mask.len() - self.accelerator.len()) as u64 * self.bytes_per_neuron
    }

    /// Expected activations per token served by the accelerator (sum of their frequencies).
    pub fn accelerator_activations(&self) -> f64 {
        self.accelerator_activation
    }

    /// Expected activations per token in the whole layer (sum of all frequencies).
    pub fn total_activations(&self) -> f64 {
        self.total_activation
    }

    /// Expected fraction of this layer's activations served by the accelerator (0 when the
    /// layer never fires).
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.accelerator_activation, self.total_activation)
    }
}

/// Where one dense item was put.
#[derive(Debug, Clone, PartialEq)]
pub struct DensePlacement {
    /// The item's name, as given in the input.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Expected accesses per token.
    pub access: f64,
    /// Whether it lives on the accelerator (otherwise on the host).
    pub on_accelerator: bool,
}

/// A complete placement: per layer the hot neurons, and which dense items are on the
/// accelerator, with the budget it was made for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementPlan {
    pub(crate) layers: Vec<LayerPlacement>,
    pub(crate) dense: Vec<DensePlacement>,
    pub(crate) accelerator_budget: u64,
    pub(crate) reserved_bytes: u64,
}

impl PlacementPlan {
    /// Materialises a choice of per-layer counts (hottest first) and dense flags.
    pub(crate) fn from_counts(
        problem: &PlacementProblem,
        ranked: &[RankedLayer],
        counts: &[usize],
        dense_on: &[bool],
    ) -> Self {
        let layers = problem
            .layers
            .iter()
            .zip(ranked)
            .zip(counts)
            .map(|((layer, r), &k)| {
                let freqs = &layer.frequencies;
                let mut mask = vec![false; freqs.len()];
                for &i in &r.order[..k] {
                    mask[i as usize] = true;
                }
                let (mut on, mut total) = (0.0, 0.0);
                let mut hot = Vec::with_capacity(k);
                for (i, (&f, &m)) in freqs.iter().zip(&mask).enumerate() {
                    total += f;
                    if m {
                        on += f;
                        // Layer sizes are validated to fit in u32.
                        hot.push(i as u32);
                    }
                }
                LayerPlacement {
                    bytes_per_neuron: layer.bytes_per_neuron,
                    accelerator: hot,
                    mask,
                    accelerator_activation: on,
                    total_activation: total,
                }
            })
            .collect();
        let dense = problem
            .dense
            .iter()
            .zip(dense_on)
            .map(|(d, &on)| DensePlacement {
                name: d.name.clone(),
                bytes: d.bytes,
                access: d.access,
                on_accelerator: on,
            })
            .collect();
        Self {
            layers,
            dense,
            accelerator_budget: problem.accelerator_bytes,
            reserved_bytes: problem.reserved_bytes,
        }
    }

    /// Per layer placements, in model order.
    pub fn layers(&self) -> &[LayerPlacement] {
        &self.layers
    }

    /// Dense item placements, in input order.
    pub fn dense(&self) -> &[DensePlacement] {
        &self.dense
    }

    /// The accelerator budget the plan was made for, reservations included.
    pub fn accelerator_budget(&self) -> u64 {
        self.accelerator_budget
    }

    /// Bytes reserved inside the budget for KV cache, scratch and the like.
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
    }

    /// Weight bytes (neurons and dense items) on the accelerator.
    pub fn accelerator_weight_bytes(&self) -> u64 {
        let neurons: u64 = self
            .layers
            .iter()
            .map(LayerPlacement::accelerator_bytes)
            .sum();
        let dense: u64 = self
            .dense
            .iter()
            .filter(|d| d.on_accelerator)
            .map(|d| d.bytes)
            .sum();
        neurons + dense
    }

    /// Total accelerator bytes the plan uses: weights plus reservations (never above the
    /// budget).
    pub fn accelerator_bytes(&self) -> u64 {
        self.accelerator_weight_bytes() + self.reserved_bytes
    }

    /// Weight bytes left on the host.
    pub fn host_bytes(&self) -> u64 {
        let neurons: u64 = self.layers.iter().map(LayerPlacement::host_bytes).sum();
        let dense: u64 = self
            .dense
            .iter()
            .filter(|d| !d.on_accelerator)
            .map(|d| d.bytes)
            .sum();
        neurons + dense
    }

    /// Expected fraction of all neuron activations (over all layers) served by the
    /// accelerator: PowerInfer's hit ratio.
    pub fn overall_hit_ratio(&self) -> f64 {
        let on: f64 = self.layers.iter().map(|l| l.accelerator_activation).sum();
        let total: f64 = self.layers.iter().map(|l| l.total_activation).sum();
        ratio(on, total)
    }

    /// The objective the solvers maximise: expected bytes read per token from accelerator
    /// memory (see the crate documentation).
    pub fn objective(&self) -> f64 {
        self.value_where(|_| true, |d| d.on_accelerator)
    }

    /// The objective if everything fit on the accelerator: expected bytes read per token.
    pub fn max_objective(&self) -> f64 {
        self.value_where(|_| false, |_| true)
    }

    /// Sums neuron value (accelerator part, or all when `on_only` says no) and dense value.
    fn value_where(
        &self,
        on_only: impl Fn(&LayerPlacement) -> bool,
        dense: impl Fn(&DensePlacement) -> bool,
    ) -> f64 {
        let neurons: f64 = self
            .layers
            .iter()
            .map(|l| {
                let act = if on_only(l) {
                    l.accelerator_activation
                } else {
                    l.total_activation
                };
                l.bytes_per_neuron as f64 * act
            })
            .sum();
        let dense: f64 = self
            .dense
            .iter()
            .filter(|d| dense(d))
            .map(|d| d.access * d.bytes as f64)
            .sum();
        neurons + dense
    }
}

/// `num / den`, or 0 when nothing is expected at all.
fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}
