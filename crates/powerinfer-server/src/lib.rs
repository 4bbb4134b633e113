//! An OpenAI-compatible HTTP server over a powerinfer-rs [`Engine`]: `/v1/chat/completions`
//! (streamed as server-sent events or not), `/v1/completions` (with `echo` and
//! `logprobs`), `/v1/models` and `/health`, with per-request sparsity
//! (`"powerinfer": {"policy": "threshold:0.3"}`), a bounded queue (429/503 with
//! `Retry-After`), an optional API key and errors in OpenAI's JSON shape.
//!
//! Why a library as well as a binary: tests (and applications) start it on their own
//! listener with [`router`] and [`serve`].
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod api;
mod error;
mod routes;
mod run;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use powerinfer_core::Engine;

pub use error::ApiError;
pub use state::{AppState, ServerConfig};

/// The routes over `engine` configured by `config`.
pub fn router(engine: Arc<Engine>, config: ServerConfig) -> Router {
    let state = Arc::new(AppState::new(engine, config));
    Router::new()
        .route("/health", get(routes::health))
        .route("/v1/models", get(routes::models))
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/completions", post(routes::completions))
        .fallback(routes::not_found)
        .with_state(state)
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
