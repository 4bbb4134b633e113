//! The model side of powerinfer-rs: model files, tokenizer, architectures, KV cache,
//! sampling, the sparse FFN policy and the engine.
//!
//! Why one crate: these pieces share one model config and one set of tensors; the
//! numeric work lives below in `powerinfer-kernels`. See `docs/DESIGN.md` §6.
//!
//! # Generating text
//!
//! [`Engine`] is the top-level API: it loads a GGUF model file (weights memory-mapped,
//! tokenizer from the file's metadata) and streams generated tokens. Which FFN neurons
//! each token computes is [`GenerateParams::policy`] ([`FfnPolicy::Dense`] by default);
//! [`Engine::enable_hybrid`] splits the model between the host and an accelerator
//! ([`hybrid`]).
//!
//! ```no_run
//! use powerinfer_core::{Engine, EngineOptions, GenerateParams};
//!
//! // A GGUF model with its tokenizer (LLaMA, ReLU-LLaMA, Bamboo or OPT architecture).
//! let path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
//! let engine = Engine::load(path, &EngineOptions::default())?;
//! let params = GenerateParams {
//!     chat: true, // wrap the prompt in the model's chat template
//!     max_tokens: 64,
//!     ..GenerateParams::default()
//! };
//! let mut generation = engine.generate("What is the capital of France?", &params)?;
//! for token in &mut generation {
//!     print!("{}", token?.text);
//! }
//! println!("\n{:.1} tokens/s", generation.stats().decode_tok_s());
//! # Ok::<(), powerinfer_core::EngineError>(())
//! ```
//!
//! # Model files and tokenizers
//!
//! [`gguf`] reads and writes GGUF files; [`tokenizer::Tokenizer`] is built from a file's
//! `tokenizer.ggml.*` metadata. A byte-level BPE vocabulary of three tokens, written and
//! read back in memory:
//!
//! ```
//! use powerinfer_core::gguf::{GgufFile, GgufWriter, Value};
//! use powerinfer_core::tokenizer::Tokenizer;
//!
//! let mut w = GgufWriter::new();
//! w.add("tokenizer.ggml.model", "gpt2");
//! w.add("tokenizer.ggml.tokens", Value::string_array(["a", "b", "ab"]));
//! w.add("tokenizer.ggml.merges", Value::string_array(["a b"]));
//! let file = GgufFile::from_bytes(&w.to_bytes()?)?;
//! assert_eq!(file.get_str("tokenizer.ggml.model")?, "gpt2");
//!
//! let tokenizer = Tokenizer::from_gguf(&file)?;
//! assert_eq!(tokenizer.vocab_size(), 3);
//! assert_eq!(tokenizer.encode("ab", false)?, [2]); // the merge "a b" gives token 2
//! assert_eq!(tokenizer.encode("ba", false)?, [1, 0]);
//! assert_eq!(tokenizer.decode(&[2, 0])?, "aba");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
mod handle;
pub mod hf;
pub mod hybrid;
pub mod input_sparsity;
mod kv_cache;
mod model;
mod ops;
mod policy;
pub mod policy_spec;
pub mod powerinfer_predictors;
pub mod sampler;
mod session;
pub mod tokenizer;
pub mod trace;

pub use config::{Arch, ModelConfig, RopeStyle, SlidingWindow};
pub use engine::{
    Engine, EngineError, EngineOptions, GenerateParams, Generation, GenerationStats, Token,
};
pub use error::ModelError;
pub use hybrid::{Hybrid, HybridOptions, HybridSpec, PlanSource};
pub use kv_cache::KvCache;
pub use model::{LoadOptions, Model, Packing};
pub use policy::{ColdChoice, FfnPolicy};
pub use policy_spec::{POLICY_SPECS, PolicySpec};
pub use sampler::SamplerParams;
pub use session::{FfnObservation, FfnObserver, FfnStats, HybridStats, Prefill, Session};

/// The crate README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
