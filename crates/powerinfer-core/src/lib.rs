//! The model side of powerinfer-rs: model files, tokenizer, architectures, KV cache,
//! sampling, the sparse FFN policy and the engine.
//!
//! Why one crate: these pieces share one model config and one set of tensors; the
//! numeric work lives below in `powerinfer-kernels`. See `docs/DESIGN.md` §6.
#![deny(unsafe_op_in_unsafe_fn)]
// Library code returns typed errors on input-derived data: no unwrap, expect or panic
// outside tests (each remaining site is an `allow` with the invariant that makes it safe).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
pub mod backend;
pub mod calibrate;
pub mod config;
pub mod corpus;
pub mod engine;
mod error;
pub mod eval;
pub mod gguf;
pub mod hybrid;
pub mod input_sparsity;
mod kv_cache;
mod model;
mod ops;
mod policy;
pub mod powerinfer_predictors;
pub mod sampler;
mod session;
pub mod tokenizer;
pub mod trace;

pub use config::{Arch, ModelConfig};
pub use engine::{
    Engine, EngineError, EngineOptions, GenerateParams, Generation, GenerationStats, Token,
};
pub use error::ModelError;
pub use hybrid::{Hybrid, HybridOptions, HybridSpec, PlanSource};
pub use kv_cache::KvCache;
pub use model::{LoadOptions, Model};
pub use policy::{ColdChoice, FfnPolicy};
pub use sampler::SamplerParams;
pub use session::{FfnObservation, FfnObserver, FfnStats, HybridStats, Session};
