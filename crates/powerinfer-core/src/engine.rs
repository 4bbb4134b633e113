//! The top-level API: load a model file, then stream generated text.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use powerinfer_kernels::{Isa, KernelError, Kernels, WType};

use crate::handle::Handle;
use crate::hf::{ConvertOptions, HfCheckpoint};
use crate::hybrid::{Hybrid, HybridSpec};
use crate::sampler::{Logprobs, Sampler, SamplerParams};
use crate::tokenizer::{TokenDecoder, Tokenizer, TokenizerError};
use crate::{FfnPolicy, HybridStats, LoadOptions, Model, ModelError, Packing, Prefill, Session};

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
    /// A context length of zero positions.
    #[error("a context of 0 positions holds no prompt")]
    ZeroContext,
    /// A tokenizer with more tokens than the model has embedding rows: ids the model
    /// could be asked to embed but cannot.
    #[error(
        "{file}: the tokenizer has {tokenizer} tokens, more than the model's vocabulary of {model}"
    )]
    VocabMismatch {
        /// The model file.
        file: String,
        /// Tokens in `tokenizer.ggml.tokens`.
        tokenizer: usize,
        /// Rows of the token embedding (and the output).
        model: usize,
    },
}

/// How to run a model.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Worker threads (`None` = one per core; see [`Kernels::with_threads`] for the
    /// accepted range).
    pub threads: Option<usize>,
    /// Force an instruction set (`None` = the best this CPU has).
    pub isa: Option<Isa>,
    /// Context length in positions, capped at the model's. Each session allocates its
    /// KV cache for this many positions ([`Session::kv_cache_bytes`] says how much),
    /// so keep it to what prompts and answers need. Default 2048.
    pub ctx_len: usize,
    /// Weight type of the sparse path's transposed down projection (see
    /// [`LoadOptions::down_t`]; `None` = Q8_0 for quantized models).
    pub down_t: Option<WType>,
    /// Which matrices get a packed copy for the dense kernels (see [`Packing`];
    /// default: all).
    pub packing: Packing,
    /// Prompt prefill arithmetic (see [`Prefill`]; default: exact).
    pub prefill: Prefill,
    /// Quantize a Hugging Face checkpoint's weights while loading it (see
    /// [`LoadOptions::quantize`]; GGUF files keep their types).
    pub quantize: Option<WType>,
}

impl EngineOptions {
    /// The model layout these options ask for.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            down_t: self.down_t,
            packing: self.packing,
            quantize: self.quantize,
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: None,
            isa: None,
            ctx_len: 2048,
            down_t: None,
            packing: Packing::All,
            prefill: Prefill::Exact,
            quantize: None,
        }
    }
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
    /// Report each [`Token`]'s log-probability, with this many most likely alternatives
    /// (`None`: none, and no log-softmax per token: it costs ~10% of decode on a 49k
    /// vocabulary).
    pub logprobs: Option<usize>,
    /// Score the prompt too, with this many alternatives per token: the prefill then
    /// computes every position's logits ([`Generation::prompt_logprobs`]), in the same
    /// pass that yields the first token.
    pub prompt_logprobs: Option<usize>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 128,
            sampler: SamplerParams::default(),
            policy: FfnPolicy::Dense,
            chat: false,
            system: None,
            logprobs: None,
            prompt_logprobs: None,
        }
    }
}

/// A loaded model with its tokenizer and kernels: the thing an application holds.
///
/// An `Engine` is `Send + Sync`: share one (in an `Arc`) across threads and start a
/// [`Generation`] per request; they read the same mapped weights and share one
/// thread pool, so concurrent generations split the cores rather than multiply them.
pub struct Engine {
    model: Arc<Model>,
    tokenizer: Tokenizer,
    kernels: Kernels,
    ctx_len: usize,
    stop_ids: Vec<u32>,
    hybrid: Option<Arc<Hybrid>>,
    prefill: Prefill,
    /// Logits sampled from: the tokenizer's ids (a padded embedding has more rows).
    sample_vocab: usize,
}

impl Engine {
    /// Loads a model (with its tokenizer) from `path`: a GGUF file, or a Hugging Face
    /// checkpoint directory with a `tokenizer.json`.
    pub fn load(path: impl AsRef<Path>, opts: &EngineOptions) -> Result<Engine, EngineError> {
        let path = path.as_ref();
        if path.is_dir() {
            // A refused tokenizer.json is the error, not the missing tokenizer keys of
            // the converted model.
            let mut ck = HfCheckpoint::open(path).map_err(ModelError::from)?;
            if let Some(e) = ck.take_tokenizer_error() {
                return Err(e.into());
            }
            let convert = ConvertOptions {
                quantize: opts.quantize,
                progress: None,
            };
            let model = Model::from_hf(&ck, &convert, &opts.load_options())?;
            return Engine::from_model(model, opts);
        }
        let model = Model::open_with(path, &opts.load_options())?;
        Engine::from_model(model, opts)
    }

    /// An engine over a model already loaded (e.g. converted from a checkpoint with a
    /// progress bar: [`Model::from_hf`]); `opts`' load options are not used.
    pub fn from_model(model: Model, opts: &EngineOptions) -> Result<Engine, EngineError> {
        let tokenizer = Tokenizer::from_gguf(model.gguf())?;
        // A tokenizer larger than the embedding is a wrong file pairing, caught here, not
        // mid-answer. A smaller one is a padded embedding (rounded up to a multiple of 64,
        // say): sampling is then limited to the tokenizer's ids, which it can print.
        let vocab = model.config().vocab;
        if tokenizer.vocab_size() > vocab {
            return Err(EngineError::VocabMismatch {
                file: model.gguf().name().to_string(),
                tokenizer: tokenizer.vocab_size(),
                model: vocab,
            });
        }
        let mut kernels = Kernels::new();
        if let Some(isa) = opts.isa {
            kernels = kernels.with_isa(isa)?;
        }
        if let Some(threads) = opts.threads {
            kernels = kernels.with_threads(threads)?;
        }
        if opts.ctx_len == 0 {
            return Err(EngineError::ZeroContext);
        }
        let ctx_len = opts.ctx_len.min(model.config().ctx_len);
        // End of turn and end of text both end a generation.
        let mut stop_ids: Vec<u32> = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"]
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .chain(tokenizer.eos_id())
            .collect();
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let tokenizer_vocab = tokenizer.vocab_size();
        Ok(Engine {
            model: Arc::new(model),
            tokenizer,
            kernels,
            ctx_len,
            stop_ids,
            hybrid: None,
            prefill: opts.prefill,
            sample_vocab: tokenizer_vocab,
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

    /// A [`FfnPolicy::Threshold`] that computes about `density` of the FFN neurons: one
    /// dense pass over `text` (calibration text, a few hundred tokens of the kind of input
    /// the model will see) picks each layer's magnitude cut. The usual way to run a SwiGLU
    /// model sparsely (see [`FfnPolicy`] for which policy suits which model).
    pub fn calibrated_policy(&self, text: &str, density: f64) -> Result<FfnPolicy, EngineError> {
        let tokens = self.tokenizer.encode(text, self.tokenizer.adds_bos())?;
        let tokens = &tokens[..tokens.len().min(self.ctx_len)];
        let per_layer =
            crate::calibrate::thresholds_for_density(&self.model, &self.kernels, tokens, density)?;
        Ok(FfnPolicy::Threshold { per_layer })
    }

    /// The logits sampling may choose from: the tokenizer's ids only.
    fn sampled<'l>(&self, logits: &'l [f32]) -> &'l [f32] {
        logits.get(..self.sample_vocab).unwrap_or(logits)
    }

    /// The log-probability of every prompt token after the first under the model (and
    /// `top` alternatives each), from one batched pass with `policy`: what log-likelihood
    /// evaluation and OpenAI's `echo` + `logprobs` report. Entry `p` is for `tokens[p + 1]`.
    pub fn prompt_logprobs(
        &self,
        tokens: &[u32],
        policy: &FfnPolicy,
        top: usize,
    ) -> Result<Vec<Logprobs>, EngineError> {
        self.check_prompt(tokens)?;
        let mut session = self.session()?;
        let logits = session.forward_all(tokens, policy)?;
        self.score(tokens, &logits, top)
    }

    /// The log-probability of each of `tokens[1..]` under the logit row before it
    /// (`logits` holds one row per token), with `top` alternatives.
    fn score(
        &self,
        tokens: &[u32],
        logits: &[f32],
        top: usize,
    ) -> Result<Vec<Logprobs>, EngineError> {
        let vocab = self.model.config().vocab;
        tokens
            .iter()
            .skip(1)
            .zip(logits.chunks_exact(vocab))
            .map(|(&id, row)| {
                crate::sampler::logprobs(self.sampled(row), id, top).ok_or(EngineError::Model(
                    ModelError::BadToken {
                        id,
                        vocab: self.sample_vocab,
                    },
                ))
            })
            .collect()
    }

    /// Context length of each session, in positions.
    pub fn ctx_len(&self) -> usize {
        self.ctx_len
    }

    /// A fresh session (KV cache) on this engine's model and kernels; a typed error
    /// when its KV cache cannot be allocated.
    pub fn session(&self) -> Result<Session<'_>, EngineError> {
        let mut s = Session::new(self.model.as_ref(), self.kernels.clone(), self.ctx_len)?;
        s.set_hybrid(self.hybrid.clone())?;
        s.set_prefill(self.prefill);
        Ok(s)
    }

    /// The token ids a prompt becomes: with `params.chat`, the model's chat template
    /// around it ([`Tokenizer::chat_tokens`]); otherwise the prompt alone. Either way
    /// the prompt is text: a special token spelled in it is not parsed.
    pub fn prompt_tokens(
        &self,
        prompt: &str,
        params: &GenerateParams,
    ) -> Result<Vec<u32>, EngineError> {
        Ok(if params.chat {
            self.tokenizer
                .chat_tokens(params.system.as_deref(), prompt)?
        } else {
            self.tokenizer.encode(prompt, self.tokenizer.adds_bos())?
        })
    }

    /// Prefills the prompt and returns a streaming iterator over generated tokens.
    pub fn generate(
        &self,
        prompt: &str,
        params: &GenerateParams,
    ) -> Result<Generation<'_>, EngineError> {
        let tokens = self.prompt_tokens(prompt, params)?;
        self.generate_tokens(tokens, params)
    }

    /// Prefills `tokens` (a prompt already tokenized, e.g. a template built from ids)
    /// and returns a streaming iterator over generated tokens.
    pub fn generate_tokens(
        &self,
        tokens: Vec<u32>,
        params: &GenerateParams,
    ) -> Result<Generation<'_>, EngineError> {
        self.check_prompt(&tokens)?;
        Generation::start(Handle::Borrowed(self), self.session()?, tokens, params, 0)
    }

    /// [`Engine::generate_tokens`] on an engine shared through an `Arc`: the generation
    /// owns what it uses (the engine handle, a session over the shared model), so it is
    /// `Send + 'static` and can move into a thread or an async task, one per request.
    pub fn generate_shared(
        self: &Arc<Self>,
        tokens: Vec<u32>,
        params: &GenerateParams,
    ) -> Result<Generation<'static>, EngineError> {
        self.check_prompt(&tokens)?;
        let mut session =
            Session::shared(Arc::clone(&self.model), self.kernels.clone(), self.ctx_len)?;
        session.set_hybrid(self.hybrid.clone())?;
        session.set_prefill(self.prefill);
        Generation::start(Handle::Shared(Arc::clone(self)), session, tokens, params, 0)
    }

    /// [`Engine::generate_shared`] in a session kept from an earlier generation (see
    /// [`Generation::into_session`]): the positions it can reuse for `tokens`
    /// ([`Session::reusable_prefix`]) are not computed again, so a chat continued with the
    /// same history prefills only what is new. The result is exactly that of a fresh
    /// session. The session must have run `params.policy` (its cached keys and values
    /// depend on it): pool sessions per policy.
    pub fn generate_continuing(
        self: &Arc<Self>,
        session: Session<'static>,
        tokens: Vec<u32>,
        params: &GenerateParams,
    ) -> Result<Generation<'static>, EngineError> {
        self.check_prompt(&tokens)?;
        if session.ctx_len() != self.ctx_len || !std::ptr::eq(session.model(), self.model.as_ref())
        {
            return Err(EngineError::Model(ModelError::Policy(
                "a session from another engine or context length cannot be continued".into(),
            )));
        }
        let keep = session.reusable_prefix(&tokens);
        Generation::start(
            Handle::Shared(Arc::clone(self)),
            session,
            tokens,
            params,
            keep,
        )
    }

    fn check_prompt(&self, tokens: &[u32]) -> Result<(), EngineError> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if tokens.len() > self.ctx_len {
            return Err(EngineError::PromptTooLong {
                prompt: tokens.len(),
                ctx_len: self.ctx_len,
            });
        }
        Ok(())
    }
}

/// How a generation holds its engine: borrowed, or shared (an owning generation).
type EngineRef<'e> = Handle<'e, Engine>;

impl<'e> Generation<'e> {
    /// Prefills `tokens` in `session` and samples the first token.
    fn start(
        engine: EngineRef<'e>,
        mut session: Session<'e>,
        tokens: Vec<u32>,
        params: &GenerateParams,
        keep: usize,
    ) -> Result<Generation<'e>, EngineError> {
        let start = Instant::now();
        // Scoring the prompt needs every position's logits: nothing cached is reused.
        let keep = if params.prompt_logprobs.is_some() {
            0
        } else {
            keep
        };
        session.truncate(keep);
        let (logits, prompt_logprobs) = match params.prompt_logprobs {
            // One pass gives the prompt's scores and, from its last row (the same
            // arithmetic as `forward`'s), the first token.
            Some(top) => {
                let mut all = session.forward_all(&tokens, &params.policy)?;
                let scored = engine.score(&tokens, &all, top)?;
                let vocab = engine.model.config().vocab;
                (all.split_off(all.len() - vocab), scored)
            }
            None => (
                session.forward(&tokens[keep..], &params.policy)?,
                Vec::new(),
            ),
        };
        let prefill = start.elapsed();
        session.reset_stats();
        let mut sampler = Sampler::new(params.sampler.clone());
        let first = (params.max_tokens > 0)
            .then(|| Pending::sample(&engine, &mut sampler, &logits, &tokens, params.logprobs))
            .flatten();
        Ok(Generation {
            engine,
            session,
            sampler,
            // The answer continues the prompt: its first word keeps its space.
            decoder: TokenDecoder::continuing(),
            policy: params.policy.clone(),
            remaining: params.max_tokens,
            next: first,
            logprobs: params.logprobs,
            prompt_logprobs,
            stats: GenerationStats {
                prompt_tokens: tokens.len(),
                reused_tokens: keep,
                generated: 0,
                decode_steps: 0,
                prefill,
                decode: Duration::ZERO,
                ffn_density: Vec::new(),
                hybrid: HybridStats::default(),
            },
            history: tokens,
        })
    }
}

/// One generated token and the text it completes (may be empty while a multi-byte
/// character is still incomplete). The texts of a generation's tokens add up to the
/// decode of its ids after the prompt; the last token's text ends with any bytes still
/// held back, as U+FFFD.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// Token id.
    pub id: u32,
    /// Text newly completed by this token.
    pub text: String,
    /// With [`GenerateParams::logprobs`]: its log-probability under the model (before
    /// temperature, top-k/p and penalties; see [`crate::sampler::logprobs`]) and the most
    /// likely tokens at this position with theirs, most likely first.
    pub logprobs: Option<Logprobs>,
}

/// A token sampled but not yet yielded, with its log-probabilities if asked for.
struct Pending {
    id: u32,
    logprobs: Option<Logprobs>,
}

impl Pending {
    /// Samples the next token from `logits`; `None` when it is a stop token.
    fn sample(
        engine: &Engine,
        sampler: &mut Sampler,
        logits: &[f32],
        history: &[u32],
        top: Option<usize>,
    ) -> Option<Pending> {
        let logits = engine.sampled(logits);
        let id = sampler.sample(logits, history);
        if engine.stop_ids.contains(&id) {
            return None;
        }
        let logprobs = match top {
            // The sampler returned an index of `logits`, so this is `Some`.
            Some(top) => Some(crate::sampler::logprobs(logits, id, top)?),
            None => None,
        };
        Some(Pending { id, logprobs })
    }
}

/// Timing and sparsity of one generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Of those, how many a continued session had cached (not prefilled again).
    pub reused_tokens: usize,
    /// Tokens generated (yielded by the iterator).
    pub generated: usize,
    /// Decode steps run (forward passes of one token), which the decode rate counts:
    /// one fewer than `generated` when the last token was not fed back.
    pub decode_steps: usize,
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
    /// Prompt tokens prefilled per second (reused ones not counted).
    pub fn prefill_tok_s(&self) -> f64 {
        (self.prompt_tokens - self.reused_tokens) as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    /// Decode steps per second.
    pub fn decode_tok_s(&self) -> f64 {
        self.decode_steps as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// A generation in progress: an iterator of tokens.
pub struct Generation<'e> {
    engine: EngineRef<'e>,
    session: Session<'e>,
    sampler: Sampler,
    decoder: TokenDecoder,
    policy: FfnPolicy,
    remaining: usize,
    /// The token sampled but not yet yielded (`None` once the generation is over).
    next: Option<Pending>,
    logprobs: Option<usize>,
    prompt_logprobs: Vec<Logprobs>,
    history: Vec<u32>,
    stats: GenerationStats,
}

impl<'e> Generation<'e> {
    /// With [`GenerateParams::prompt_logprobs`], the scores of the prompt's tokens after
    /// the first (entry `p` is for prompt token `p + 1`), as [`Engine::prompt_logprobs`]
    /// computes them; empty otherwise.
    pub fn prompt_logprobs(&self) -> &[Logprobs] {
        &self.prompt_logprobs
    }

    /// Ends the generation and returns its session (the prompt and the tokens generated
    /// so far cached), to continue it later with [`Engine::generate_continuing`].
    pub fn into_session(self) -> Session<'e> {
        self.session
    }
}

impl Generation<'_> {
    /// Statistics so far (complete once the iterator is exhausted).
    pub fn stats(&self) -> GenerationStats {
        let mut s = self.stats.clone();
        s.ffn_density = self.session.stats().density_per_layer();
        s.hybrid = self.session.stats().hybrid.clone();
        s
    }

    /// Yields the sampled token, feeds it back and samples the one after: knowing
    /// whether a token is the last lets its text carry the decoder's held-back bytes.
    fn step(&mut self) -> Result<Option<Token>, EngineError> {
        let Some(Pending { id, logprobs }) = self.next.take() else {
            return Ok(None);
        };
        self.remaining -= 1;
        self.history.push(id);
        self.stats.generated += 1;
        let tokenizer = &self.engine.tokenizer;
        let mut text = self.decoder.push(tokenizer, id)?;
        // The last position of the context is usable: a token fed there still yields
        // logits for one more.
        if self.remaining > 0 && self.session.pos() < self.session.ctx_len() {
            let start = Instant::now();
            let logits = self.session.forward(&[id], &self.policy)?;
            self.stats.decode += start.elapsed();
            self.stats.decode_steps += 1;
            self.next = Pending::sample(
                &self.engine,
                &mut self.sampler,
                &logits,
                &self.history,
                self.logprobs,
            );
        }
        if self.next.is_none() {
            text.push_str(&std::mem::take(&mut self.decoder).finish());
        }
        Ok(Some(Token { id, text, logprobs }))
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<Token, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => None,
            Err(e) => {
                self.next = None;
                Some(Err(e))
            }
        }
    }
}
