//! `bench synthetic`: decode speed at PowerInfer's scale on a random-weight model
//! written by the `synth` example, with the active neurons drawn from a power-law
//! trace. **Synthetic weights, speed only**: the outputs mean nothing; the bytes read
//! are a real model's of that shape.
//!
//! Rows: dense CPU decode; trace-sparse CPU decode (the CPU-only PowerInfer story); and
//! the trace-sparse hybrid split on the stand-in accelerator (`sim`) per budget, beside
//! the CPU-only run with the same host threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use powerinfer::core::trace::ActivationTrace;
use powerinfer::core::{FfnPolicy, Hybrid, HybridOptions, Model, Session};
use powerinfer::kernels::Kernels;

use crate::size::parse_size;

/// Options of `bench synthetic`.
#[derive(Parser, Debug)]
pub struct Args {
    /// The model (write it with `cargo run --release --example synth`).
    #[arg(long, default_value = "models/synthetic-relu-llama-7b.q4_0.gguf")]
    model: PathBuf,
    /// Host thread counts for the CPU-only rows, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// FFN densities of the trace, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
    densities: Vec<f64>,
    /// Hot/cold skew of the trace (0: uniform; 1: Zipf-like).
    #[arg(long, default_value_t = 1.0)]
    skew: f64,
    /// Seed of the trace.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Accelerator budgets of the split rows, comma separated (empty: none).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "1GiB,2GiB,4GiB")]
    budgets: Vec<u64>,
    /// Host threads of the split rows (the stand-in device runs one more).
    #[arg(long, default_value_t = 1)]
    host_threads: usize,
    /// The accelerator of the split rows: `sim` (a stand-in thread) or `cuda` (needs
    /// `--features cuda` and a GPU).
    #[arg(long, default_value = "sim")]
    device: String,
    /// Prompt tokens (prefilled before timing).
    #[arg(long, default_value_t = 4)]
    prompt_tokens: usize,
    /// Decode steps timed.
    #[arg(long, default_value_t = 8)]
    decode_tokens: usize,
}

/// Decode tokens/s of `policy` (after a short prefill), its FFN bytes per token, and
/// the neurons per token the device computed.
fn decode(
    model: &Model,
    kernels: &Kernels,
    hybrid: Option<Arc<Hybrid>>,
    policy: &FfnPolicy,
    args: &Args,
) -> Result<(f64, f64, f64)> {
    let vocab = model.config().vocab as u32;
    let ids = |i: usize| (i as u32 * 7919 + 13) % vocab;
    let mut s = Session::new(
        model,
        kernels.clone(),
        args.prompt_tokens + args.decode_tokens + 1,
    )?;
    s.set_hybrid(hybrid)?;
    let prompt: Vec<u32> = (0..args.prompt_tokens).map(ids).collect();
    s.forward(&prompt, policy)?;
    s.reset_stats();
    let start = Instant::now();
    for i in 0..args.decode_tokens {
        s.forward(&[ids(args.prompt_tokens + i)], policy)?;
    }
    let rate = args.decode_tokens as f64 / start.elapsed().as_secs_f64();
    let per = |x: u64| x as f64 / args.decode_tokens.max(1) as f64;
    Ok((
        rate,
        s.stats().bytes_per_token(),
        per(s.stats().hybrid.device_neurons),
    ))
}

/// Runs the benchmark and prints the table.
pub fn run(args: &Args) -> Result<()> {
    ensure!(
        args.model.is_file(),
        "{} not found: write it with `cargo run --release --example synth`",
        args.model.display()
    );
    let model =
        Model::open(&args.model).with_context(|| format!("loading {}", args.model.display()))?;
    let cfg = model.config();
    let dense_bytes = model.dense_bytes_per_token() as f64;
    let other = dense_bytes - model.ffn_bytes() as f64;
    println!(
        "{} — SYNTHETIC WEIGHTS, SPEED ONLY: {} layers × {} neurons, {:.2} GB read per dense decode step (FFN {:.0}%); trace skew {}, seed {}; {} decode steps after a {}-token prompt",
        args.model.display(),
        cfg.n_layers,
        cfg.n_ff,
        dense_bytes / 1e9,
        100.0 * model.ffn_bytes() as f64 / dense_bytes,
        args.skew,
        args.seed,
        args.decode_tokens,
        args.prompt_tokens
    );
    println!(
        "{:<28} {:>7} {:>11} {:>9} {:>10} {:>11} {:>13}",
        "run", "threads", "decode t/s", "vs dense", "GB/token", "byte bound", "device neur."
    );
    let row = |name: &str, threads: &str, rate: f64, base: f64, ffn_bytes: f64, dev: f64| {
        let bytes = other + ffn_bytes;
        println!(
            "{name:<28} {threads:>7} {rate:>11.2} {:>8.2}x {:>10.2} {:>10.2}x {dev:>13.0}",
            rate / base,
            bytes / 1e9,
            dense_bytes / bytes
        );
    };
    // Per density, the trace and the policy that runs it.
    let traces: Vec<(f64, Arc<ActivationTrace>, FfnPolicy)> = args
        .densities
        .iter()
        .map(|&d| {
            let trace =
                ActivationTrace::power_law(cfg.n_layers, cfg.n_ff, &[d], args.skew, args.seed)?;
            let trace = Arc::new(trace);
            let policy = FfnPolicy::Trace {
                trace: Arc::clone(&trace),
            };
            Ok((d, trace, policy))
        })
        .collect::<Result<_>>()?;
    // Host threads of the split rows always get CPU-only rows too, to compare with.
    let mut threads = args.threads.clone();
    if !threads.contains(&args.host_threads) {
        threads.push(args.host_threads);
    }
    let (mut base, mut trace_rates) = (0.0, Vec::new());
    for &t in &threads {
        let k = Kernels::new().with_threads(t)?;
        let (dense, b, _) = decode(&model, &k, None, &FfnPolicy::Dense, args)?;
        row("dense", &t.to_string(), dense, dense, b, 0.0);
        for (d, _, policy) in &traces {
            let (rate, b, _) = decode(&model, &k, None, policy, args)?;
            row(&format!("trace:{d}"), &t.to_string(), rate, dense, b, 0.0);
            if t == args.host_threads {
                trace_rates.push(rate);
            }
        }
        if t == args.host_threads {
            base = dense;
        }
    }
    let host = Kernels::new().with_threads(args.host_threads)?;
    for ((d, trace, policy), cpu_rate) in traces.iter().zip(&trace_rates) {
        let freqs: Vec<Vec<f64>> = (0..cfg.n_layers)
            .map(|l| trace.frequencies(l).to_vec())
            .collect();
        for &budget in &args.budgets {
            let opts = HybridOptions::default();
            let plan = Hybrid::solve_from(&model, freqs.clone(), budget, &opts)?;
            let Some(device) = crate::hybrid::device(&args.device, budget, None, 1)? else {
                break;
            };
            let start = Instant::now();
            let hybrid = Arc::new(Hybrid::load(&model, plan, "trace plan", device, &opts)?);
            let upload = start.elapsed().as_secs_f64();
            let hit = hybrid.plan().overall_hit_ratio();
            let (rate, b, dev) = decode(&model, &host, Some(Arc::clone(&hybrid)), policy, args)?;
            let name = format!("trace:{d} +{} {}MiB", args.device, budget >> 20);
            row(
                &name,
                &format!("{}+1", args.host_threads),
                rate,
                base,
                b,
                dev,
            );
            println!(
                "  {:.2}x the CPU-only trace:{d} run on {} threads; {:.2} GB on the device ({} neurons, {} dense tensors, expected hit ratio {:.0}%), uploaded in {upload:.1} s",
                rate / cpu_rate,
                args.host_threads,
                hybrid.backend().bytes_held() as f64 / 1e9,
                hybrid.accelerator_neurons(),
                hybrid.accelerator_tensors().len(),
                100.0 * hit
            );
        }
    }
    Ok(())
}
