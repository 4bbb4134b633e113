//! `powerinfer-server`: serve a GGUF model over an OpenAI-compatible HTTP API.
//!
//! `cargo run --release -p powerinfer-server -- [--model M] [--port 8080] [--policy P]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use powerinfer_core::corpus::quick_sample;
use powerinfer_core::{Engine, EngineOptions};
use powerinfer_predictor::PredictorSet;
use powerinfer_server::{ServerConfig, router, serve};

#[derive(Parser, Debug)]
#[command(about = "OpenAI-compatible HTTP server for a GGUF model (dense or activation-sparse)")]
struct Args {
    /// GGUF model (default: the embedded SmolLM2-135M-Instruct Q4_1, fetched on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Address to bind (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Policy of requests that name none (dense, threshold:<d>, static:<d>, oracle[:T], predictor[:gate=<d>]).
    #[arg(long, default_value = "dense")]
    policy: String,
    /// Predictor set for `predictor` policies.
    #[arg(long)]
    predictor: Option<PathBuf>,
    /// Worker threads, 1 to 1024 (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Requests generating at once.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Requests waiting beyond those (more get 429).
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Context length per request.
    #[arg(long, default_value_t = 2048)]
    ctx: usize,
    /// Require `Authorization: Bearer <key>`.
    #[arg(long)]
    api_key: Option<String>,
    /// Finished sessions kept so that continued chats reuse their KV caches (0 = none).
    #[arg(long, default_value_t = 4)]
    cached_sessions: usize,
    /// Seconds a request may wait for a slot (then 503).
    #[arg(long, default_value_t = 30)]
    queue_timeout: u64,
    /// Seconds a generation may run (then it ends with finish_reason "length").
    #[arg(long, default_value_t = 300)]
    request_timeout: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let path = match &args.model {
        Some(p) => p.clone(),
        None => {
            powerinfer_assets::ensure_assets().context("fetching the default model")?;
            powerinfer_assets::default_model_path()
        }
    };
    let opts = EngineOptions {
        threads: args.threads,
        ctx_len: args.ctx,
        ..EngineOptions::default()
    };
    let engine = Arc::new(
        Engine::load(&path, &opts).with_context(|| format!("loading {}", path.display()))?,
    );
    let mut config = ServerConfig::new(
        path.file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned()),
    );
    config.parallel = args.parallel.max(1);
    config.queue = args.queue;
    config.cached_sessions = args.cached_sessions;
    config.api_key = args.api_key.clone();
    config.default_policy = args.policy.clone();
    config.queue_timeout = Duration::from_secs(args.queue_timeout);
    config.request_timeout = Duration::from_secs(args.request_timeout);
    if let Some(p) = &args.predictor {
        config.predictor = Some(Arc::new(
            PredictorSet::load(p).with_context(|| format!("loading {}", p.display()))?,
        ));
    }
    // Calibration text for threshold/static policies: the first 256 tokens of botchan.txt
    // when the workspace's data is there (it is fetched with the default model).
    if let Ok(text) = std::fs::read_to_string(powerinfer_assets::data_path("botchan.txt")) {
        config.calibration = quick_sample(engine.tokenizer(), &text)?;
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    println!(
        "powerinfer-server: serving {} on http://{}",
        config.model_id,
        listener.local_addr()?
    );
    serve(listener, router(engine, config)).await?;
    Ok(())
}
