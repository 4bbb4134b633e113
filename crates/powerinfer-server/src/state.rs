//! What every request shares: the engine, the policies resolved so far, and the slots and
//! queue that bound concurrency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use powerinfer_core::{Engine, FfnPolicy, PolicySpec, Session};
use powerinfer_predictor::PredictorSet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The model id clients name (`/v1/models`).
    pub model_id: String,
    /// Requests generating at once.
    pub parallel: usize,
    /// Requests waiting for a slot beyond those; more get 429.
    pub queue: usize,
    /// Required `Authorization: Bearer` key, if any.
    pub api_key: Option<String>,
    /// Policy of requests that name none.
    pub default_policy: String,
    /// The predictor set a `predictor` policy uses (requests never name files).
    pub predictor: Option<Arc<PredictorSet>>,
    /// Calibration tokens for `threshold`/`static` policies and gate checks.
    pub calibration: Vec<u32>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Longest wait for a generation slot before a 503.
    pub queue_timeout: Duration,
    /// Longest a generation may run; it then ends with `finish_reason: "length"`.
    pub request_timeout: Duration,
    /// Finished sessions kept for continuing conversations (their KV caches), per server.
    pub cached_sessions: usize,
}

impl ServerConfig {
    /// Defaults for serving `model_id`: 1 slot, a queue of 16, dense, 1 MiB bodies,
    /// 30 s in the queue, 300 s per generation, 4 cached sessions.
    pub fn new(model_id: impl Into<String>) -> ServerConfig {
        ServerConfig {
            model_id: model_id.into(),
            parallel: 1,
            queue: 16,
            api_key: None,
            default_policy: "dense".into(),
            predictor: None,
            calibration: Vec::new(),
            body_limit: 1 << 20,
            queue_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            cached_sessions: 4,
        }
    }
}

/// The shared state behind every handler.
pub struct AppState {
    /// The model, tokenizer and kernels.
    pub engine: Arc<Engine>,
    /// The settings.
    pub config: ServerConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    policies: Mutex<HashMap<String, FfnPolicy>>,
    /// The session pool.
    pub sessions: Arc<SessionPool>,
}

/// Finished sessions, each with the policy it ran, kept so that a conversation continued
/// with the same history reuses their KV caches (most recent last).
pub struct SessionPool {
    capacity: usize,
    sessions: Mutex<Vec<(String, Session<'static>)>>,
}

impl SessionPool {
    /// Takes the session that can reuse the most of `tokens` under `policy`, if any.
    pub fn take(&self, policy: &str, tokens: &[u32]) -> Option<Session<'static>> {
        let mut pool = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let (at, _) = pool
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| p == policy)
            .map(|(i, (_, s))| (i, s.reusable_prefix(tokens)))
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(i, n)| (n, i))?;
        Some(pool.remove(at).1)
    }

    /// Keeps `session` (ran under `policy`), dropping the oldest past the capacity.
    pub fn put(&self, policy: String, session: Session<'static>) {
        let mut pool = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        pool.push((policy, session));
        let excess = pool.len().saturating_sub(self.capacity);
        pool.drain(..excess);
    }
}

impl AppState {
    /// State for `engine` under `config`.
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> AppState {
        AppState {
            slots: Arc::new(Semaphore::new(config.parallel.max(1))),
            engine,
            waiting: AtomicUsize::new(0),
            policies: Mutex::new(HashMap::new()),
            sessions: Arc::new(SessionPool {
                capacity: config.cached_sessions,
                sessions: Mutex::new(Vec::new()),
            }),
            config,
        }
    }

    /// Whether a new request would be queued rather than refused.
    pub fn has_room(&self) -> bool {
        self.slots.available_permits() > 0
            || self.waiting.load(Ordering::SeqCst) < self.config.queue
    }

    /// A generation slot: at once if one is free, after waiting in the queue otherwise;
    /// 429 when the queue is full, 503 when no slot frees in time.
    pub async fn slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.config.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::busy(self.config.queue));
        }
        let got = tokio::time::timeout(
            self.config.queue_timeout,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match got {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(ApiError::internal("the slot semaphore closed".into())),
            Err(_) => Err(ApiError::timed_out(self.config.queue_timeout.as_secs())),
        }
    }

    /// The FFN policy of `spec` (the default when `None`), resolved once per spec and
    /// cached. A predictor spec may not name a file: the server's `--predictor` is used.
    /// Blocking (calibration runs the model): call it off the async threads.
    pub fn policy(&self, spec: Option<&str>) -> Result<FfnPolicy, ApiError> {
        let text = spec.unwrap_or(&self.config.default_policy).to_string();
        if let Some(p) = self
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&text)
        {
            return Ok(p.clone());
        }
        let bad = |m: String| ApiError::bad_request(m, Some("powerinfer.policy"));
        let parsed = PolicySpec::parse(&text).map_err(|e| bad(e.to_string()))?;
        if let PolicySpec::Predictor { file: Some(f), .. } = &parsed {
            return Err(bad(format!(
                "policy {text:?} names a file ({f:?}); requests may not: use `predictor` with the server's --predictor"
            )));
        }
        if matches!(parsed, PolicySpec::Predictor { .. }) && self.config.predictor.is_none() {
            return Err(bad("this server has no predictor set (--predictor)".into()));
        }
        let policy = parsed
            .resolve(
                self.engine.model(),
                self.engine.kernels(),
                &self.config.calibration,
                self.config.predictor.as_ref(),
            )
            .map_err(|e| bad(e.to_string()))?;
        self.policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(text, policy.clone());
        Ok(policy)
    }
}
