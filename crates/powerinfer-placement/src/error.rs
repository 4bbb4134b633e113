//! Typed errors for placement inputs and the exact solver.
//!
//! Why a dedicated enum: callers (the core crate, the `place` example) must be able to tell a
//! budget that cannot hold its own reservations from a corrupt profile, and each message names
//! the layer, neuron or item at fault so the user can fix the input instead of guessing.

use thiserror::Error;

/// Everything that can be wrong with a placement problem, or too big for the exact solver.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlacementError {
    /// The fixed reservations (KV cache, scratch, ...) do not fit in the accelerator budget.
    #[error(
        "accelerator budget of {budget} bytes is smaller than the reservations ({reserved} bytes: {detail})"
    )]
    BudgetBelowReservations {
        /// The accelerator budget in bytes.
        budget: u64,
        /// Sum of all reservations in bytes.
        reserved: u64,
        /// The reservations by name, for the message.
        detail: String,
    },
    /// A neuron frequency is NaN, infinite, negative or above 1.
    #[error("layer {layer}, neuron {neuron}: frequency {value} is not a number in [0, 1]")]
    InvalidFrequency {
        /// Layer index.
        layer: usize,
        /// Neuron index within the layer.
        neuron: usize,
        /// The offending value.
        value: f64,
    },
    /// A firing count is larger than the number of profiled tokens.
    #[error("layer {layer}, neuron {neuron}: count {count} exceeds the {tokens} profiled tokens")]
    CountExceedsTokens {
        /// Layer index.
        layer: usize,
        /// Neuron index within the layer.
        neuron: usize,
        /// The offending count.
        count: u64,
        /// Number of profiled tokens.
        tokens: u64,
    },
    /// Counts were given over zero tokens, so no frequency can be derived.
    #[error("activation counts were given over zero profiled tokens")]
    ZeroTokens,
    /// Two inputs that must have the same length do not.
    #[error("{what}: expected {expected} entries, found {found}")]
    LengthMismatch {
        /// Which input is the wrong length.
        what: String,
        /// The length implied by the other inputs.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A neuron or dense item occupies zero bytes, which makes it meaningless to place.
    #[error("{what} has a size of zero bytes")]
    ZeroBytes {
        /// Which item.
        what: String,
    },
    /// A dense item's per-token access count is NaN, infinite or negative.
    #[error("dense item `{item}`: access count {value} is not a finite non-negative number")]
    InvalidAccess {
        /// Name of the dense item.
        item: String,
        /// The offending value.
        value: f64,
    },
    /// The neuron group size is zero.
    #[error("neuron group size must be at least 1")]
    ZeroGroupSize,
    /// A byte total does not fit in 64 bits.
    #[error("byte sizes overflow 64 bits ({what})")]
    SizeOverflow {
        /// Which total overflowed.
        what: String,
    },
    /// The exact solver's table would be too large for this instance.
    #[error("instance too large for the exact solver: {cells} table cells, limit {limit}")]
    ExactTooLarge {
        /// Cells the dynamic programme would need.
        cells: u128,
        /// The limit that was passed.
        limit: u128,
    },
}
