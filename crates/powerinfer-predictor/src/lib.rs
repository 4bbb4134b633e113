//! Activation predictors for powerinfer-rs.
//!
//! Why: a sparse FFN is only fast if we know *before* computing it which neurons will
//! fire. This crate will hold per-layer activation statistics, the small predictor
//! networks (`x → fc1 → ReLU → fc2 → logits`) that guess the active set, their training
//! and per-layer threshold calibration, and a versioned file format. See
//! `docs/DESIGN.md` §4. It depends on no other powerinfer crate except the kernels.
//!
//! Nothing is implemented yet: the predictor issue builds it on the `FfnPolicy` seam
//! that `powerinfer-core` leaves for it.
