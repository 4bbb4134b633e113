//! A bounded load run on loopback: an in-process server, N concurrent clients × M
//! streamed chat requests each, per policy. Prints requests/s, time to first token and
//! per-request decode tokens/s (p50/p99).
//!
//! `cargo run --release -p powerinfer-server --example load -- [--clients 4] [--requests 4]
//! [--parallel 2] [--max-tokens 32] [--policies dense,threshold:0.3]`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use powerinfer_core::corpus::quick_sample;
use powerinfer_core::{Engine, EngineOptions};
use powerinfer_server::{ServerConfig, router, serve};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 4)]
    requests: usize,
    /// Server slots (requests generating at once).
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Tokens per answer.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// Policies to compare, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "dense,threshold:0.3")]
    policies: Vec<String>,
}

/// One streamed chat request: (time to first content, total time, completion tokens).
fn one(addr: SocketAddr, body: &str) -> Result<(Duration, Duration, u64)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: l\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let (mut raw, mut buf, mut first) = (Vec::new(), [0u8; 4096], None);
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        // The first chunk carries the role (empty content); the second, the first text.
        if first.is_none()
            && String::from_utf8_lossy(&raw)
                .matches("\"content\":\"")
                .count()
                >= 2
        {
            first = Some(t0.elapsed());
        }
    }
    let total = t0.elapsed();
    let text = String::from_utf8_lossy(&raw);
    let usage = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v["usage"]["completion_tokens"].as_u64())
        .context("no usage in the stream")?;
    Ok((first.unwrap_or(total), total, usage))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    powerinfer_assets::ensure_assets()?;
    let engine = Arc::new(Engine::load(
        powerinfer_assets::default_model_path(),
        &EngineOptions {
            ctx_len: 512,
            ..EngineOptions::default()
        },
    )?);
    let mut config = ServerConfig::new("smollm2");
    config.parallel = args.parallel;
    config.queue = args.clients * args.requests;
    let botchan = std::fs::read_to_string(powerinfer_assets::data_path("botchan.txt"))?;
    config.calibration = quick_sample(engine.tokenizer(), &botchan)?;
    let app = router(engine, config);
    let rt = tokio::runtime::Runtime::new()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(async move { serve(listener, app).await });
    println!(
        "| policy | clients × requests | slots | req/s | TTFT p50 ms | TTFT p99 ms | decode tok/s p50 | decode tok/s p99 |\n|---|---|---|---|---|---|---|---|"
    );
    let questions = [
        "What is the capital of France?",
        "Name three colours.",
        "What is 2+2?",
        "Say hello.",
    ];
    for policy in &args.policies {
        // Warm the policy (calibration) outside the timing.
        let warm = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "stream": true, "powerinfer": {"policy": policy}});
        one(addr, &warm.to_string())?;
        let t0 = Instant::now();
        let results: Vec<Result<Vec<(Duration, Duration, u64)>>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..args.clients)
                .map(|c| {
                    sc.spawn(move || {
                        (0..args.requests)
                            .map(|r| {
                                let q = questions[(c + r) % questions.len()];
                                let body = json!({"messages": [{"role": "user", "content": q}],
                                    "max_tokens": args.max_tokens, "temperature": 0, "stream": true,
                                    "powerinfer": {"policy": policy}});
                                one(addr, &body.to_string())
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("client panicked")))
                })
                .collect()
        });
        let wall = t0.elapsed();
        let all: Vec<(Duration, Duration, u64)> = results
            .into_iter()
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        let mut ttft: Vec<f64> = all.iter().map(|r| r.0.as_secs_f64() * 1e3).collect();
        let mut rate: Vec<f64> = all
            .iter()
            .map(|r| r.2.saturating_sub(1) as f64 / (r.1 - r.0).as_secs_f64().max(1e-9))
            .collect();
        println!(
            "| {policy} | {} × {} | {} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} |",
            args.clients,
            args.requests,
            args.parallel,
            all.len() as f64 / wall.as_secs_f64(),
            pct(&mut ttft, 0.5),
            pct(&mut ttft, 0.99),
            pct(&mut rate, 0.5),
            pct(&mut rate, 0.01), // the slowest 1%
        );
    }
    Ok(())
}
