#![doc = include_str!("../README.md")]
//!
//! ## This crate
//!
//! This facade re-exports the workspace crates so an application can depend on one
//! crate; the examples (`generate`, `bench`, `place`) and criterion benches live here.
//! Depend on a single crate (say `powerinfer-kernels`) directly if that is all you need.
#![forbid(unsafe_code)]

pub use powerinfer_core as core;
pub use powerinfer_kernels as kernels;
pub use powerinfer_placement as placement;
pub use powerinfer_predictor as predictor;
