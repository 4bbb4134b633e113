//! Activation statistics and activation predictors for powerinfer-rs.
//!
//! Why: a sparse FFN is only fast if we know *before* computing it which neurons will
//! fire. This crate holds the offline profile ([`ActivationStats`]), the per-layer
//! predictor networks (`x → fc1 → ReLU → fc2 → logits`, as in PowerInfer and Deja Vu),
//! their training in Rust ([`train()`], [`fit()`]), threshold calibration for a target
//! recall ([`calibrate()`]) and versioned, checksummed files for both. It takes plain
//! data (inputs and activations per layer) and depends on no powerinfer crate but the
//! kernels; `powerinfer-core` feeds it from the forward pass. See `docs/DESIGN.md` §4.
//!
//! ```
//! use powerinfer_predictor::{ActiveRule, Samples, TrainOptions, train};
//! // A toy layer: neuron i fires when x_i > 0.
//! let (dim, n_ff) = (8, 8);
//! let mut s = Samples::new(dim, n_ff, ActiveRule::NonZero, false).unwrap();
//! for t in 0..512 {
//!     let x: Vec<f32> = (0..dim).map(|i| ((t * 7 + i * 3) % 11) as f32 - 5.0).collect();
//!     let a: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
//!     s.push(&x, &a).unwrap();
//! }
//! let opts = TrainOptions { rank: 16, epochs: 30, batch: 64, ..Default::default() };
//! let net = train(&s, &opts, &mut |_| {}).unwrap();
//! assert_eq!(net.rank, 16);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
// Library code returns typed errors on input-derived data: no unwrap, expect or panic
// outside tests (each remaining site is an `allow` with the invariant that makes it safe).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod calibrate;
#[deny(clippy::indexing_slicing)]
mod container;
mod error;
mod fit;
mod matmul;
mod model_id;
mod net;
mod rule;
mod samples;
mod set;
mod stats;
mod train;

pub use calibrate::{Calibration, RecallKind, calibrate, evaluate};
pub use error::{FileProblem, PredictorError};
pub use fit::{FitOptions, FitProgress, FitReport, RankTrial, choose, fit};
pub use model_id::ModelId;
pub use net::{LayerPredictor, PredictScratch, PredictorInput, compact_type, select};
pub use rule::ActiveRule;
pub use samples::Samples;
pub use set::{OperatingPoint, PredictorSet};
pub use stats::{ActivationStats, LayerSummary, TOP_SHARES};
pub use train::{Net, TrainOptions, TrainProgress, train};

/// The crate README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
