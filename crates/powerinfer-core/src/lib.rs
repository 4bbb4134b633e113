//! The model side of powerinfer-rs: model files, tokenizer, architectures, KV cache,
//! sampling, the sparse FFN policy and the engine.
//!
//! Why one crate: these pieces share one model config and one set of tensors; the
//! numeric work lives below in `powerinfer-kernels`. See `docs/DESIGN.md` §6.
#![deny(unsafe_op_in_unsafe_fn)]
pub mod assets;
pub mod gguf;
pub mod tokenizer;
