//! `bench prefill`: the int8 prefill against the exact (f32) one on held-out text —
//! its speed, and how far its next-token distributions are from the exact ones,
//! next to how far the decode path's (one token at a time, 8-bit activations) are.
//!
//! Why: `Prefill::Int8` is the decode step's arithmetic applied to a batch; it may be
//! the default only if it stays within the decode path's own distance from exact.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use powerinfer::core::{FfnPolicy, Model, Prefill, Session, tokenizer::Tokenizer};
use powerinfer::kernels::Kernels;

#[path = "../common/data.rs"]
mod data;

/// Options of `bench prefill`.
#[derive(Parser, Debug)]
pub struct Args {
    /// GGUF model (default: the embedded SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// Tokens per sequence (each a fresh session).
    #[arg(long, default_value_t = 128)]
    chunk: usize,
    /// Sequences of the evaluation split of data/botchan.txt to run.
    #[arg(long, default_value_t = 16)]
    chunks: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Per-position log-probabilities of one pass.
struct Pass {
    log_probs: Vec<Vec<f64>>,
    secs: f64,
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = max
        + row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

fn run_pass(model: &Model, k: &Kernels, tokens: &[u32], mode: Option<Prefill>) -> Result<Pass> {
    let vocab = model.config().vocab;
    let mut s = Session::new(model, k.clone(), tokens.len())?;
    let start = Instant::now();
    let logits = match mode {
        Some(p) => {
            s.set_prefill(p);
            s.forward_all(tokens, &FfnPolicy::Dense)?
        }
        // The decode path: one token per step.
        None => {
            let mut all = Vec::with_capacity(tokens.len() * vocab);
            for &t in tokens {
                all.extend(s.forward(&[t], &FfnPolicy::Dense)?);
            }
            all
        }
    };
    let secs = start.elapsed().as_secs_f64();
    Ok(Pass {
        log_probs: logits.chunks_exact(vocab).map(log_softmax).collect(),
        secs,
    })
}

/// Mean KL(exact ‖ other), top-1 agreement, and the other's mean NLL of the next token.
fn distance(exact: &[Pass], other: &[Pass], seqs: &[&[u32]]) -> (f64, f64, f64) {
    let (mut kl, mut agree, mut nll, mut n) = (0.0, 0usize, 0.0, 0usize);
    for ((e, o), seq) in exact.iter().zip(other).zip(seqs) {
        for (pos, (p, q)) in e.log_probs.iter().zip(&o.log_probs).enumerate() {
            kl += p.iter().zip(q).map(|(a, b)| a.exp() * (a - b)).sum::<f64>();
            let top =
                |v: &[f64]| (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best });
            agree += usize::from(top(p) == top(q));
            if let Some(&next) = seq.get(pos + 1) {
                nll -= q[next as usize];
            }
            n += 1;
        }
    }
    let scored = n.saturating_sub(seqs.len()).max(1) as f64;
    (
        kl / n.max(1) as f64,
        agree as f64 / n.max(1) as f64,
        nll / scored,
    )
}

/// Runs the comparison and prints the table.
pub fn run(args: &Args) -> Result<()> {
    let path = data::model_path(args.model.as_deref())?;
    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(model.gguf())?;
    let eval = data::evaluation_tokens(&tokenizer, None)?;
    let seqs: Vec<&[u32]> = eval.chunks_exact(args.chunk).take(args.chunks).collect();
    anyhow::ensure!(
        !seqs.is_empty(),
        "the evaluation split is shorter than one chunk"
    );
    let k = data::kernels(args.threads)?;
    let modes = [
        ("exact prefill (f32)", Some(Prefill::Exact)),
        ("int8 prefill", Some(Prefill::Int8)),
        ("decode path (1 token/step)", None),
    ];
    let mut passes: Vec<Vec<Pass>> = Vec::new();
    for (_, mode) in modes {
        passes.push(
            seqs.iter()
                .map(|s| run_pass(&model, &k, s, mode))
                .collect::<Result<_>>()?,
        );
    }
    let tokens = seqs.len() * args.chunk;
    println!(
        "{}: {} sequences of {} tokens (evaluation split of botchan.txt), {} threads",
        path.display(),
        seqs.len(),
        args.chunk,
        k.threads()
    );
    println!(
        "| path | tok/s | KL(exact ‖ path) nats/token | top-1 = exact | perplexity |\n|---|---|---|---|---|"
    );
    for ((name, _), p) in modes.iter().zip(&passes) {
        let secs: f64 = p.iter().map(|x| x.secs).sum();
        let (kl, agree, nll) = distance(&passes[0], p, &seqs);
        println!(
            "| {name} | {:.1} | {kl:.2e} | {:.2}% | {:.3} |",
            tokens as f64 / secs,
            100.0 * agree,
            nll.exp()
        );
    }
    Ok(())
}
