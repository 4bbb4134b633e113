//! powerinfer-rs: fast LLM inference on one PC by exploiting activation sparsity.
//!
//! This facade re-exports the workspace crates so an application can depend on one
//! crate; the examples (`generate`, `bench`, `place`) and criterion benches live here.
//! Depend on a single crate (say `powerinfer-kernels`) directly if that is all you need.

pub use powerinfer_core as core;
pub use powerinfer_kernels as kernels;
pub use powerinfer_placement as placement;
pub use powerinfer_predictor as predictor;
