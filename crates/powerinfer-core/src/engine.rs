//! The top-level API: load a model file, then stream generated text.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use powerinfer_kernels::{Isa, KernelError, Kernels, WType};

use crate::hybrid::{Hybrid, HybridSpec};
use crate::sampler::{Sampler, SamplerParams};
use crate::tokenizer::{TokenDecoder, Tokenizer, TokenizerError};
use crate::{FfnPolicy, HybridStats, LoadOptions, Model, ModelError, Session};

/// Anything that can stop loading or generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Model file or forward pass.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Kernel context (ISA or thread pool).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A prompt that does not fit the context.
    #[error("prompt of {prompt} tokens does not fit a context of {ctx_len}")]
    PromptTooLong {
        /// Prompt tokens.
        prompt: usize,
        /// Context length.
        ctx_len: usize,
    },
    /// An empty prompt (nothing to condition on).
    #[error("the prompt is empty")]
    EmptyPrompt,
}

/// How to run a model.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Force an instruction set (None = the best this CPU has).
    pub isa: Option<Isa>,
    /// Context length (0 = 2048, capped at the model's).
    pub ctx_len: usize,
    /// Weight type of the sparse path's transposed down projection (see
    /// [`LoadOptions::down_t`]; `None` = Q8_0 for quantized models).
    pub down_t: Option<WType>,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateParams {
    /// Most tokens to produce.
    pub max_tokens: usize,
    /// Sampling settings.
    pub sampler: SamplerParams,
    /// Which FFN neurons to compute.
    pub policy: FfnPolicy,
    /// Wrap the prompt in the model's chat template (instruct models).
    pub chat: bool,
    /// System message for chat mode (None = the template's default).
    pub system: Option<String>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 128,
            sampler: SamplerParams::default(),
            policy: FfnPolicy::Dense,
            chat: false,
            system: None,
        }
    }
}

/// A loaded model with its tokenizer and kernels: the thing an application holds.
pub struct Engine {
    model: Model,
    tokenizer: Tokenizer,
    kernels: Kernels,
    ctx_len: usize,
    stop_ids: Vec<u32>,
    hybrid: Option<Arc<Hybrid>>,
}

impl Engine {
    /// Loads a GGUF model (with its tokenizer) from `path`.
    pub fn load(path: impl AsRef<Path>, opts: &EngineOptions) -> Result<Engine, EngineError> {
        let model = Model::open_with(
            path,
            &LoadOptions {
                down_t: opts.down_t,
            },
        )?;
        let tokenizer = Tokenizer::from_gguf(model.gguf())?;
        let mut kernels = Kernels::new();
        if let Some(isa) = opts.isa {
            kernels = kernels.with_isa(isa)?;
        }
        if opts.threads > 0 {
            kernels = kernels.with_threads(opts.threads)?;
        }
        let ctx_len = if opts.ctx_len == 0 {
            2048
        } else {
            opts.ctx_len
        }
        .min(model.config().ctx_len);
        // End of turn and end of text both end a generation.
        let mut stop_ids: Vec<u32> = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"]
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .chain(tokenizer.eos_id())
            .collect();
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(Engine {
            model,
            tokenizer,
            kernels,
            ctx_len,
            stop_ids,
            hybrid: None,
        })
    }

    /// Splits the model between the host and `spec`'s accelerator: the plan is read or
    /// computed, exactly its bytes are uploaded, and every later session runs the split
    /// (see [`crate::hybrid`]). Replaces any earlier split.
    pub fn enable_hybrid(&mut self, spec: &HybridSpec) -> Result<&Hybrid, EngineError> {
        self.hybrid = None;
        let hybrid = Hybrid::build(&self.model, &self.kernels, spec)?;
        Ok(self.hybrid.insert(Arc::new(hybrid)))
    }

    /// Runs everything on the host again.
    pub fn disable_hybrid(&mut self) {
        self.hybrid = None;
    }

    /// The hybrid split in use, if any.
    pub fn hybrid(&self) -> Option<&Arc<Hybrid>> {
        self.hybrid.as_ref()
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The kernels in use.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// A fresh session (KV cache) on this engine's model and kernels.
    pub fn session(&self) -> Session<'_> {
        let mut s = Session::new(&self.model, self.kernels.clone(), self.ctx_len);
        // Cannot fail: the split was loaded for this very model.
        let _ = s.set_hybrid(self.hybrid.clone());
        s
    }

    /// The token ids a prompt becomes (chat template applied if asked).
    pub fn prompt_tokens(
        &self,
        prompt: &str,
        params: &GenerateParams,
    ) -> Result<Vec<u32>, EngineError> {
        let text = if params.chat {
            self.tokenizer.chat_prompt(params.system.as_deref(), prompt)
        } else {
            prompt.to_string()
        };
        Ok(self.tokenizer.encode(&text, self.tokenizer.adds_bos())?)
    }

    /// Prefills the prompt and returns a streaming iterator over generated tokens.
    pub fn generate(
        &self,
        prompt: &str,
        params: &GenerateParams,
    ) -> Result<Generation<'_>, EngineError> {
        let tokens = self.prompt_tokens(prompt, params)?;
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let mut session = self.session();
        if tokens.len() >= session.ctx_len() {
            return Err(EngineError::PromptTooLong {
                prompt: tokens.len(),
                ctx_len: session.ctx_len(),
            });
        }
        let start = Instant::now();
        let logits = session.forward(&tokens, &params.policy)?;
        let prefill = start.elapsed();
        session.reset_stats();
        Ok(Generation {
            engine: self,
            session,
            sampler: Sampler::new(params.sampler.clone()),
            decoder: TokenDecoder::new(),
            policy: params.policy.clone(),
            remaining: params.max_tokens,
            logits,
            history: tokens.clone(),
            stats: GenerationStats {
                prompt_tokens: tokens.len(),
                generated: 0,
                prefill,
                decode: Duration::ZERO,
                ffn_density: Vec::new(),
                hybrid: HybridStats::default(),
            },
            done: false,
        })
    }
}

/// One generated token and the text it completes (may be empty while a multi-byte
/// character is still incomplete).
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// Token id.
    pub id: u32,
    /// Text newly completed by this token.
    pub text: String,
}

/// Timing and sparsity of one generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Decode steps run (forward passes of one token), which the decode rate counts.
    pub generated: usize,
    /// Time spent on the prompt.
    pub prefill: Duration,
    /// Time spent on decode steps.
    pub decode: Duration,
    /// Mean FFN density per layer during decode.
    pub ffn_density: Vec<f64>,
    /// With a hybrid split: each side's work during decode.
    pub hybrid: HybridStats,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    /// Decode steps per second.
    pub fn decode_tok_s(&self) -> f64 {
        self.generated as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// A generation in progress: an iterator of tokens.
pub struct Generation<'e> {
    engine: &'e Engine,
    session: Session<'e>,
    sampler: Sampler,
    decoder: TokenDecoder,
    policy: FfnPolicy,
    remaining: usize,
    logits: Vec<f32>,
    history: Vec<u32>,
    stats: GenerationStats,
    done: bool,
}

impl Generation<'_> {
    /// Statistics so far (complete once the iterator is exhausted).
    pub fn stats(&self) -> GenerationStats {
        let mut s = self.stats.clone();
        s.ffn_density = self.session.stats().density_per_layer();
        s.hybrid = self.session.stats().hybrid.clone();
        s
    }

    fn step(&mut self) -> Result<Option<Token>, EngineError> {
        if self.done || self.remaining == 0 {
            return Ok(None);
        }
        let id = self.sampler.sample(&self.logits, &self.history);
        if self.engine.stop_ids.contains(&id) {
            self.done = true;
            return Ok(None);
        }
        self.remaining -= 1;
        self.history.push(id);
        let text = self.decoder.push(&self.engine.tokenizer, id)?;
        if self.remaining > 0 {
            if self.session.pos() + 1 >= self.session.ctx_len() {
                self.done = true;
            } else {
                let start = Instant::now();
                self.logits = self.session.forward(&[id], &self.policy)?;
                self.stats.decode += start.elapsed();
                self.stats.generated += 1;
            }
        }
        Ok(Some(Token { id, text }))
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<Token, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
