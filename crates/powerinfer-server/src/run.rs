//! One generation on a blocking thread, its output streamed back over a channel.
//!
//! Why a thread: a forward pass is seconds of CPU work that must not stall the async
//! runtime. The generation owns what it uses ([`Engine::generate_shared`]), and stops as
//! soon as its receiver is gone (the client disconnected), a stop string appears, or the
//! deadline passes.

use std::sync::Arc;
use std::time::Instant;

use powerinfer_core::sampler::Logprobs;
use powerinfer_core::{Engine, EngineError, GenerateParams, Token};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::error::ApiError;
use crate::state::SessionPool;

/// What a generation sends back.
#[derive(Debug)]
pub enum Event {
    /// New text (never a prefix of a stop string held back) and the tokens consumed.
    Text {
        /// Text to show.
        delta: String,
        /// The tokens generated since the last event.
        tokens: Vec<Token>,
    },
    /// The end.
    Done(Summary),
    /// A failure before or during generation.
    Failed(ApiError),
}

/// How a generation ended.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `stop` (end of turn or a stop string) or `length` (token limit, context, deadline).
    pub finish_reason: &'static str,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Mean FFN density over layers during decode.
    pub ffn_density: f64,
    /// Decode tokens per second.
    pub decode_tok_s: f64,
    /// Prompt tokens a cached session already held (not prefilled again).
    pub cached_tokens: usize,
    /// The prompt's scores when the job asked for them (`GenerateParams::prompt_logprobs`).
    pub prompt_logprobs: Vec<Logprobs>,
}

/// A generation to run.
pub struct Job {
    /// The prompt's token ids.
    pub tokens: Vec<u32>,
    /// Sampling, policy, token limit, logprobs.
    pub params: GenerateParams,
    /// Stop strings: the text ends before the first one that appears.
    pub stops: Vec<String>,
    /// When to stop regardless.
    pub deadline: Instant,
    /// The policy string the session pool files this generation's session under.
    pub policy_key: String,
}

/// Starts `job` on a blocking thread holding `slot` until it ends; events arrive on the
/// returned channel.
pub fn spawn(
    engine: Arc<Engine>,
    pool: Arc<SessionPool>,
    job: Job,
    slot: OwnedSemaphorePermit,
) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        if let Err(e) = generate(&engine, &pool, job, &tx) {
            let _ = tx.blocking_send(Event::Failed(e));
        }
    });
    rx
}

fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::PromptTooLong { prompt, ctx_len } => ApiError::context_length(format!(
            "the prompt is {prompt} tokens; the context holds {ctx_len}"
        )),
        EngineError::EmptyPrompt => ApiError::bad_request("the prompt is empty", Some("prompt")),
        other => ApiError::internal(other.to_string()),
    }
}

fn generate(
    engine: &Arc<Engine>,
    pool: &SessionPool,
    job: Job,
    tx: &mpsc::Sender<Event>,
) -> Result<(), ApiError> {
    let prompt_tokens = job.tokens.len();
    let max_tokens = job.params.max_tokens;
    let mut generation = match pool.take(&job.policy_key, &job.tokens) {
        Some(session) => engine.generate_continuing(session, job.tokens, &job.params),
        None => engine.generate_shared(job.tokens, &job.params),
    }
    .map_err(engine_error)?;
    let prompt_logprobs = generation.prompt_logprobs().to_vec();
    let hold = job.stops.iter().map(String::len).max().unwrap_or(1).max(1) - 1;
    let (mut text, mut sent, mut pending) = (String::new(), 0usize, Vec::new());
    let mut finish = None;
    for token in generation.by_ref() {
        let token = token.map_err(engine_error)?;
        text.push_str(&token.text);
        pending.push(token);
        // A stop string may start in text already sent but not held back: search from
        // where an unsent match could begin.
        let from = floor_char(&text, sent.saturating_sub(hold));
        if let Some(at) = job
            .stops
            .iter()
            .filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i))
            .min()
        {
            text.truncate(at.max(sent));
            finish = Some("stop");
            break;
        }
        let safe = floor_char(&text, text.len().saturating_sub(hold));
        if safe > sent || Instant::now() >= job.deadline {
            let delta = text[sent..safe].to_string();
            sent = safe;
            let ev = Event::Text {
                delta,
                tokens: std::mem::take(&mut pending),
            };
            if tx.blocking_send(ev).is_err() {
                return Ok(()); // the client is gone: stop generating
            }
        }
        if Instant::now() >= job.deadline {
            finish = Some("length");
            break;
        }
    }
    let stats = generation.stats();
    let completion_tokens = stats.generated;
    let ctx_full = prompt_tokens + completion_tokens > engine.ctx_len();
    let finish = finish.unwrap_or(if completion_tokens >= max_tokens || ctx_full {
        "length"
    } else {
        "stop"
    });
    if sent < text.len() || !pending.is_empty() {
        let ev = Event::Text {
            delta: text[sent..].to_string(),
            tokens: pending,
        };
        if tx.blocking_send(ev).is_err() {
            return Ok(());
        }
    }
    let density = &stats.ffn_density;
    let cached_tokens = stats.reused_tokens;
    // The session (prompt and answer cached) stays for a continuation of this chat.
    pool.put(job.policy_key, generation.into_session());
    let _ = tx.blocking_send(Event::Done(Summary {
        finish_reason: finish,
        prompt_tokens,
        completion_tokens,
        ffn_density: density.iter().sum::<f64>() / density.len().max(1) as f64,
        decode_tok_s: stats.decode_tok_s(),
        cached_tokens,
        prompt_logprobs,
    }));
    Ok(())
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
