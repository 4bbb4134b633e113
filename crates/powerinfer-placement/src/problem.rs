//! The placement problem: plain input data, validated once into a [`PlacementProblem`].
//!
//! Why two types: [`PlacementInput`] is what a caller fills in from whatever it has (a profile
//! file, a model config); [`PlacementProblem`] is the checked form the solvers trust, so no
//! solver has to re-validate or can be handed a NaN frequency or a budget that cannot even hold
//! its own reservations.

use crate::error::PlacementError;

/// How often each neuron of each layer fired during profiling.
///
/// Why both forms: profilers count firings over N tokens (exact integers), while tests and
/// other tools naturally produce fractions; both end up as frequencies in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    /// Per layer, per neuron firing frequency in `[0, 1]`.
    Frequencies(Vec<Vec<f64>>),
    /// Per layer, per neuron firing counts over `tokens` profiled tokens.
    Counts {
        /// Per layer, per neuron number of tokens on which the neuron was active.
        counts: Vec<Vec<u64>>,
        /// Number of profiled tokens (the denominator of every frequency).
        tokens: u64,
    },
}

/// A tensor that is not split by neuron (attention, norms, embeddings, output head).
///
/// Why it is here: it competes with neurons for the same accelerator bytes, and every one of
/// them must live somewhere; if not on the accelerator it stays on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseItem {
    /// Human-readable name, used in reports and error messages (e.g. `blk.3.attn`).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Expected accesses per token: `1.0` means the whole tensor is read for every token.
    pub access: f64,
}

/// A fixed slice of the accelerator budget that is not available for weights.
///
/// Why named: when the budget is too small the error says which reservations ate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// What the bytes are for (e.g. `kv cache (4096 ctx)`, `scratch`).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Everything a caller supplies, as plain data; see [`PlacementProblem::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementInput {
    /// Firing statistics per layer and neuron.
    pub activity: Activity,
    /// Bytes one neuron occupies in each layer (gate+up+down rows, or fc1 row + fc2 column,
    /// in that layer's weight type). One entry per layer.
    pub bytes_per_neuron: Vec<u64>,
    /// Dense tensors that may go on the accelerator.
    pub dense: Vec<DenseItem>,
    /// Total accelerator memory the plan may use, in bytes.
    pub accelerator_bytes: u64,
    /// Fixed reservations inside `accelerator_bytes` (KV cache, scratch).
    pub reservations: Vec<Reservation>,
    /// A layer gets either 0 or at least this many neurons on the accelerator (PowerInfer's
    /// communication constraint); 0 switches the constraint off. Capped at the layer size.
    pub min_neurons_per_layer: usize,
    /// Neurons move in groups of this many (hottest first); a layer's accelerator count is a
    /// multiple of it, or the whole layer. 1 means single neurons.
    pub group_size: usize,
}

/// One layer of a validated problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub(crate) bytes_per_neuron: u64,
    pub(crate) frequencies: Vec<f64>,
}

impl Layer {
    /// Bytes one neuron of this layer occupies.
    pub fn bytes_per_neuron(&self) -> u64 {
        self.bytes_per_neuron
    }

    /// Per neuron firing frequency in `[0, 1]`.
    pub fn frequencies(&self) -> &[f64] {
        &self.frequencies
    }
}

/// A validated placement problem, ready for [`crate::solve_greedy`] or [`crate::solve_exact`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementProblem {
    pub(crate) layers: Vec<Layer>,
    pub(crate) dense: Vec<DenseItem>,
    pub(crate) accelerator_bytes: u64,
    pub(crate) reserved_bytes: u64,
    pub(crate) min_neurons_per_layer: usize,
    pub(crate) group_size: usize,
}

impl PlacementProblem {
    /// Checks `input` and turns it into a problem the solvers accept.
    ///
    /// Errors name the layer, neuron or item at fault: frequencies outside `[0, 1]` or NaN,
    /// counts above the token total, a `bytes_per_neuron` list of the wrong length, zero-sized
    /// items, a zero group size, byte totals overflowing `u64`, or reservations larger than the
    /// budget.
    pub fn new(input: PlacementInput) -> Result<Self, PlacementError> {
        let PlacementInput {
            activity,
            bytes_per_neuron,
            dense,
            accelerator_bytes,
            reservations,
            min_neurons_per_layer,
            group_size,
        } = input;
        if group_size == 0 {
            return Err(PlacementError::ZeroGroupSize);
        }
        let frequencies = frequencies_of(activity)?;
        if bytes_per_neuron.len() != frequencies.len() {
            return Err(PlacementError::LengthMismatch {
                what: "bytes_per_neuron (one entry per layer)".into(),
                expected: frequencies.len(),
                found: bytes_per_neuron.len(),
            });
        }
        let mut total: u64 = 0;
        let mut layers = Vec::with_capacity(frequencies.len());
        for (l, (freqs, bytes)) in frequencies.into_iter().zip(bytes_per_neuron).enumerate() {
            if bytes == 0 {
                return Err(PlacementError::ZeroBytes {
                    what: format!("a neuron of layer {l}"),
                });
            }
            if u32::try_from(freqs.len()).is_err() {
                return Err(PlacementError::SizeOverflow {
                    what: format!("layer {l} has more than 2^32 - 1 neurons"),
                });
            }
            let layer_bytes = u64::try_from(freqs.len())
                .ok()
                .and_then(|n| n.checked_mul(bytes));
            total = layer_bytes
                .and_then(|b| total.checked_add(b))
                .ok_or_else(|| PlacementError::SizeOverflow {
                    what: format!("neuron bytes up to layer {l}"),
                })?;
            layers.push(Layer {
                bytes_per_neuron: bytes,
                frequencies: freqs,
            });
        }
        for item in &dense {
            if item.bytes == 0 {
                return Err(PlacementError::ZeroBytes {
                    what: format!("dense item `{}`", item.name),
                });
            }
            if !item.access.is_finite() || item.access < 0.0 {
                return Err(PlacementError::InvalidAccess {
                    item: item.name.clone(),
                    value: item.access,
                });
            }
            total = total
                .checked_add(item.bytes)
                .ok_or_else(|| PlacementError::SizeOverflow {
                    what: format!("total bytes up to dense item `{}`", item.name),
                })?;
        }
        let reserved_bytes = reservations
            .iter()
            .try_fold(0u64, |acc, r| acc.checked_add(r.bytes))
            .ok_or_else(|| PlacementError::SizeOverflow {
                what: "sum of reservations".into(),
            })?;
        if reserved_bytes > accelerator_bytes {
            let detail = reservations
                .iter()
                .map(|r| format!("{} = {}", r.name, r.bytes))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(PlacementError::BudgetBelowReservations {
                budget: accelerator_bytes,
                reserved: reserved_bytes,
                detail,
            });
        }
        Ok(Self {
            layers,
            dense,
            accelerator_bytes,
            reserved_bytes,
            min_neurons_per_layer,
            group_size,
        })
    }

    /// The layers, in model order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The dense items, in input order.
    pub fn dense(&self) -> &[DenseItem] {
        &self.dense
    }

    /// Total accelerator budget in bytes, reservations included.
    pub fn accelerator_bytes(&self) -> u64 {
        self.accelerator_bytes
    }

    /// Sum of the reservations in bytes.
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
    }

    /// Bytes left for weights once the reservations are taken out.
    pub fn available_bytes(&self) -> u64 {
        self.accelerator_bytes - self.reserved_bytes
    }

    /// The per-layer minimum as given (0 = off); each layer caps it at its own size.
    pub fn min_neurons_per_layer(&self) -> usize {
        self.min_neurons_per_layer
    }

    /// Neuron group granularity (at least 1).
    pub fn group_size(&self) -> usize {
        self.group_size
    }
}

/// Converts and checks the activity into per-layer frequencies.
fn frequencies_of(activity: Activity) -> Result<Vec<Vec<f64>>, PlacementError> {
    match activity {
        Activity::Frequencies(layers) => {
            for (l, freqs) in layers.iter().enumerate() {
                for (i, &f) in freqs.iter().enumerate() {
                    if !(0.0..=1.0).contains(&f) {
                        return Err(PlacementError::InvalidFrequency {
                            layer: l,
                            neuron: i,
                            value: f,
                        });
                    }
                }
            }
            Ok(layers)
        }
        Activity::Counts { counts, tokens } => {
            if tokens == 0 {
                return Err(PlacementError::ZeroTokens);
            }
            let denom = tokens as f64;
            counts
                .iter()
                .enumerate()
                .map(|(l, layer)| {
                    layer
                        .iter()
                        .enumerate()
                        .map(|(i, &count)| {
                            if count > tokens {
                                Err(PlacementError::CountExceedsTokens {
                                    layer: l,
                                    neuron: i,
                                    count,
                                    tokens,
                                })
                            } else {
                                Ok(count as f64 / denom)
                            }
                        })
                        .collect()
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlacementInput {
        PlacementInput {
            activity: Activity::Frequencies(vec![vec![0.5, 0.25], vec![1.0]]),
            bytes_per_neuron: vec![10, 20],
            dense: vec![DenseItem {
                name: "attn".into(),
                bytes: 100,
                access: 1.0,
            }],
            accelerator_bytes: 1000,
            reservations: vec![Reservation {
                name: "kv".into(),
                bytes: 300,
            }],
            min_neurons_per_layer: 0,
            group_size: 1,
        }
    }

    #[test]
    fn valid_input_gives_available_bytes() {
        let p = PlacementProblem::new(input()).expect("valid");
        assert_eq!(p.available_bytes(), 700);
        assert_eq!(p.layers().len(), 2);
    }

    #[test]
    fn budget_below_reservations_names_them() {
        let mut i = input();
        i.reservations.push(Reservation {
            name: "scratch".into(),
            bytes: 800,
        });
        let err = PlacementProblem::new(i).expect_err("too small");
        assert!(matches!(
            err,
            PlacementError::BudgetBelowReservations {
                budget: 1000,
                reserved: 1100,
                ..
            }
        ));
        assert!(err.to_string().contains("scratch = 800"), "{err}");
    }

    #[test]
    fn nan_and_negative_frequencies_are_rejected_with_position() {
        for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
            let mut i = input();
            i.activity = Activity::Frequencies(vec![vec![0.5, 0.25], vec![bad]]);
            match PlacementProblem::new(i) {
                Err(PlacementError::InvalidFrequency { layer, neuron, .. }) => {
                    assert_eq!((layer, neuron), (1, 0));
                }
                other => panic!("expected InvalidFrequency for {bad}, got {other:?}"),
            }
        }
    }

    #[test]
    fn mismatched_bytes_per_neuron_length_is_rejected() {
        let mut i = input();
        i.bytes_per_neuron = vec![10];
        let err = PlacementProblem::new(i).expect_err("mismatch");
        assert!(matches!(
            err,
            PlacementError::LengthMismatch {
                expected: 2,
                found: 1,
                ..
            }
        ));
    }

    #[test]
    fn counts_become_frequencies_and_are_checked() {
        let mut i = input();
        i.activity = Activity::Counts {
            counts: vec![vec![2, 1], vec![4]],
            tokens: 4,
        };
        let p = PlacementProblem::new(i.clone()).expect("valid");
        assert_eq!(p.layers()[0].frequencies(), &[0.5, 0.25]);
        i.activity = Activity::Counts {
            counts: vec![vec![2, 5], vec![4]],
            tokens: 4,
        };
        assert!(matches!(
            PlacementProblem::new(i.clone()),
            Err(PlacementError::CountExceedsTokens {
                layer: 0,
                neuron: 1,
                count: 5,
                tokens: 4
            })
        ));
        i.activity = Activity::Counts {
            counts: vec![vec![0, 0], vec![0]],
            tokens: 0,
        };
        assert_eq!(PlacementProblem::new(i), Err(PlacementError::ZeroTokens));
    }

    #[test]
    fn bad_dense_items_and_group_size_are_rejected() {
        let mut i = input();
        i.dense[0].access = f64::NAN;
        assert!(matches!(
            PlacementProblem::new(i),
            Err(PlacementError::InvalidAccess { .. })
        ));
        let mut i = input();
        i.dense[0].bytes = 0;
        assert!(matches!(
            PlacementProblem::new(i),
            Err(PlacementError::ZeroBytes { .. })
        ));
        let mut i = input();
        i.group_size = 0;
        assert_eq!(PlacementProblem::new(i), Err(PlacementError::ZeroGroupSize));
    }

    #[test]
    fn byte_overflow_is_an_error_not_a_wrap() {
        let mut i = input();
        i.bytes_per_neuron = vec![u64::MAX, 1];
        assert!(matches!(
            PlacementProblem::new(i),
            Err(PlacementError::SizeOverflow { .. })
        ));
    }
}
