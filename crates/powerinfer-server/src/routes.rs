//! The HTTP handlers: health, models, chat completions (streamed or not), completions.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use powerinfer_core::sampler::SamplerParams;
use powerinfer_core::tokenizer::{ChatMessage, ChatRole};
use powerinfer_core::{GenerateParams, Token};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::api::{ChatRequest, CompletionRequest, Sampling};
use crate::error::ApiError;
use crate::run::{self, Event, Job, Summary};
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// `GET /health`: 200 while the model is loaded and the queue has room, else 503.
pub async fn health(State(s): Shared) -> Response {
    if s.has_room() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "busy"})),
        )
            .into_response()
    }
}

/// `GET /v1/models`.
pub async fn models(State(s): Shared, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    Ok(Json(json!({"object": "list", "data": [{
        "id": s.config.model_id, "object": "model", "created": 0, "owned_by": "powerinfer"
    }]})))
}

/// Any other route: 404 in OpenAI's shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found("unknown_route", "no such route".into())
}

/// Checks `Authorization: Bearer <key>` in time independent of where it differs.
fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &s.config.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), key.as_bytes());
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |d, (x, y)| d | usize::from(x ^ y));
    if diff == 0 {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Reads and parses a JSON body within the size limit.
async fn parse<T: DeserializeOwned>(s: &AppState, body: Body) -> Result<T, ApiError> {
    let limit = s.config.body_limit;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}"), None))
}

fn check_model(s: &AppState, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        Some(m) if m != s.config.model_id => Err(ApiError::not_found(
            "model_not_found",
            format!(
                "model {m:?} is not served here (this server serves {:?})",
                s.config.model_id
            ),
        )),
        _ => Ok(()),
    }
}

/// The generation parameters of a request, checked against the context.
fn params(
    s: &AppState,
    req: &Sampling,
    prompt: usize,
    logprobs: Option<usize>,
) -> Result<GenerateParams, ApiError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is served", Some("n")));
    }
    let ctx = s.engine.ctx_len();
    if prompt > ctx {
        return Err(ApiError::context_length(format!(
            "the prompt is {prompt} tokens; the context holds {ctx}"
        )));
    }
    let room = ctx + 1 - prompt;
    let max_tokens = match req.max_tokens.or(req.max_completion_tokens) {
        Some(0) => {
            return Err(ApiError::bad_request(
                "max_tokens must be at least 1",
                Some("max_tokens"),
            ));
        }
        Some(m) if m > room => {
            return Err(ApiError::context_length(format!(
                "max_tokens {m} past the context: the prompt is {prompt} tokens, the context holds {ctx}, so at most {room} more"
            )));
        }
        Some(m) => m,
        None => room,
    };
    let temperature = req.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request(
            "temperature must be in [0, 2]",
            Some("temperature"),
        ));
    }
    let top_p = req.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_request(
            "top_p must be in (0, 1]",
            Some("top_p"),
        ));
    }
    Ok(GenerateParams {
        max_tokens,
        sampler: SamplerParams {
            temperature,
            top_k: 0,
            top_p,
            seed: req.seed.unwrap_or(0),
            ..SamplerParams::default()
        },
        logprobs,
        ..GenerateParams::default()
    })
}

/// Queues, resolves the policy and starts the generation.
async fn start(
    s: &Arc<AppState>,
    req: &Sampling,
    tokens: Vec<u32>,
    mut params: GenerateParams,
) -> Result<tokio::sync::mpsc::Receiver<Event>, ApiError> {
    let slot = s.slot().await?;
    let spec = req.powerinfer.as_ref().and_then(|p| p.policy.clone());
    let policy_key = spec
        .clone()
        .unwrap_or_else(|| s.config.default_policy.clone());
    let state = Arc::clone(s);
    params.policy = tokio::task::spawn_blocking(move || state.policy(spec.as_deref()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let job = Job {
        tokens,
        params,
        stops: req.stop.strings(),
        deadline: Instant::now() + s.config.request_timeout,
        policy_key,
    };
    Ok(run::spawn(
        Arc::clone(&s.engine),
        Arc::clone(&s.sessions),
        job,
        slot,
    ))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn id(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{nanos:x}")
}

fn usage(sum: &Summary) -> Value {
    json!({"prompt_tokens": sum.prompt_tokens, "completion_tokens": sum.completion_tokens,
           "total_tokens": sum.prompt_tokens + sum.completion_tokens,
           "prompt_tokens_details": {"cached_tokens": sum.cached_tokens}})
}

fn report(sum: &Summary) -> Value {
    json!({"ffn_density": sum.ffn_density, "decode_tok_s": sum.decode_tok_s})
}

/// Collects a whole generation: text, tokens, summary.
async fn collect(
    mut rx: tokio::sync::mpsc::Receiver<Event>,
) -> Result<(String, Vec<Token>, Summary), ApiError> {
    let (mut text, mut tokens) = (String::new(), Vec::new());
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text { delta, tokens: t } => {
                text.push_str(&delta);
                tokens.extend(t);
            }
            Event::Done(sum) => return Ok((text, tokens, sum)),
            Event::Failed(e) => return Err(e),
        }
    }
    Err(ApiError::internal(
        "the generation ended without a summary".into(),
    ))
}

/// `POST /v1/chat/completions`.
pub async fn chat(State(s): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let req: ChatRequest = parse(&s, body).await?;
    check_model(&s, req.model.as_deref())?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages is empty", Some("messages")));
    }
    let mut turns = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = ChatRole::from_name(&m.role).ok_or_else(|| {
            ApiError::bad_request(
                format!(
                    "messages[{i}].role {:?} is not system, user or assistant",
                    m.role
                ),
                Some("messages"),
            )
        })?;
        turns.push(ChatMessage::new(role, &m.content));
    }
    let tokens = s
        .engine
        .tokenizer()
        .chat_conversation(&turns)
        .map_err(|e| ApiError::bad_request(e.to_string(), Some("messages")))?;
    let params = params(&s, &req.sampling, tokens.len(), None)?;
    let rx = start(&s, &req.sampling, tokens, params).await?;
    let (cid, created, model) = (id("chatcmpl"), now(), s.config.model_id.clone());
    if req.sampling.stream.unwrap_or(false) {
        let chunk = move |delta: Value, finish: Option<&str>, extra: Option<(Value, Value)>| {
            let mut c = json!({"id": cid, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            if let Some((u, p)) = extra {
                c["usage"] = u;
                c["powerinfer"] = p;
            }
            SseEvent::default().data(c.to_string())
        };
        let first = chunk(json!({"role": "assistant", "content": ""}), None, None);
        let events = ReceiverStream::new(rx).map(move |ev| {
            Ok::<_, Infallible>(match ev {
                Event::Text { delta, .. } => chunk(json!({"content": delta}), None, None),
                Event::Done(sum) => chunk(
                    json!({}),
                    Some(sum.finish_reason),
                    Some((usage(&sum), report(&sum))),
                ),
                Event::Failed(e) => SseEvent::default().data(e.body().to_string()),
            })
        });
        let done = tokio_stream::once(Ok(SseEvent::default().data("[DONE]")));
        let stream = tokio_stream::once(Ok(first)).chain(events).chain(done);
        return Ok(Sse::new(stream).into_response());
    }
    let (text, _, sum) = collect(rx).await?;
    Ok(Json(json!({
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": sum.finish_reason}],
        "usage": usage(&sum), "powerinfer": report(&sum),
    }))
    .into_response())
}

/// `POST /v1/completions` (not streamed), with `echo` and `logprobs`.
pub async fn completions(
    State(s): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let req: CompletionRequest = parse(&s, body).await?;
    check_model(&s, req.model.as_deref())?;
    if req.sampling.stream.unwrap_or(false) {
        return Err(ApiError::bad_request(
            "stream is served for chat completions only",
            Some("stream"),
        ));
    }
    let top = req.logprobs.unwrap_or(0);
    if top > 20 {
        return Err(ApiError::bad_request(
            "logprobs is at most 20",
            Some("logprobs"),
        ));
    }
    let tok = s.engine.tokenizer();
    let tokens = tok
        .encode(&req.prompt, tok.adds_bos())
        .map_err(|e| ApiError::bad_request(e.to_string(), Some("prompt")))?;
    if tokens.is_empty() {
        return Err(ApiError::bad_request("the prompt is empty", Some("prompt")));
    }
    let mut sampling = req.sampling.clone();
    sampling.max_tokens = sampling.max_tokens.or(Some(16));
    let mut params = params(&s, &sampling, tokens.len(), req.logprobs)?;
    // The prompt's own logprobs (echo), like lm-eval's loglikelihood: scored by the
    // generation's own prefill, under the request's policy and inside its slot.
    if req.echo && req.logprobs.is_some() {
        params.prompt_logprobs = Some(top);
    }
    let rx = start(&s, &sampling, tokens.clone(), params).await?;
    let (text, generated, sum) = collect(rx).await?;
    let piece = |id: u32| tok.decode(&[id]).unwrap_or_default();
    let (mut tokens_out, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
    let mut offset = 0usize;
    let mut push = |text: String, logprob: Option<f32>, top: Option<&[(u32, f32)]>| {
        let top = top.map(|t| {
            t.iter()
                .map(|&(i, l)| (piece(i), json!(l)))
                .collect::<serde_json::Map<_, _>>()
        });
        offsets.push(offset);
        offset += text.len();
        tokens_out.push(text);
        lps.push(logprob);
        tops.push(top);
    };
    let mut out_text = String::new();
    if req.echo {
        for (k, &id) in tokens.iter().enumerate() {
            let scored = k.checked_sub(1).and_then(|j| sum.prompt_logprobs.get(j));
            push(
                piece(id),
                scored.map(|x| x.logprob),
                scored.map(|x| x.top.as_slice()),
            );
        }
        out_text.push_str(&req.prompt);
    }
    for t in &generated {
        let lp = t.logprobs.as_ref();
        push(
            t.text.clone(),
            lp.map(|l| l.logprob),
            lp.map(|l| l.top.as_slice()),
        );
    }
    out_text.push_str(&text);
    let lp = json!({"tokens": tokens_out, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets});
    let logprobs = req.logprobs.map(|_| lp);
    Ok(Json(json!({
        "id": id("cmpl"), "object": "text_completion", "created": now(), "model": s.config.model_id,
        "choices": [{"index": 0, "text": out_text, "logprobs": logprobs, "finish_reason": sum.finish_reason}],
        "usage": usage(&sum), "powerinfer": report(&sum),
    }))
    .into_response())
}
