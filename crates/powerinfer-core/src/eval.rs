//! Scoring a policy on text: perplexity and next-token log-likelihood in batched
//! prefill (the path that matches the float64 reference), chunk by chunk.

use powerinfer_kernels::Kernels;

use crate::{FfnObserver, FfnPolicy, Model, ModelError, Session};

/// What a policy scored on a text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// exp(mean negative log-likelihood).
    pub ppl: f64,
    /// Mean negative log-likelihood (nats per token).
    pub nll: f64,
    /// Tokens scored (every position of each chunk but its first).
    pub tokens: usize,
    /// Mean FFN density reached.
    pub density: f64,
    /// Mean FFN weight bytes read per token (as a decode step would).
    pub ffn_bytes_per_token: f64,
}

/// Scores `policy` on `tokens` in independent chunks of `chunk` tokens (each a fresh
/// sequence; the first token of a chunk is context only).
pub fn perplexity(
    model: &Model,
    kernels: &Kernels,
    tokens: &[u32],
    chunk: usize,
    policy: &FfnPolicy,
) -> Result<Score, ModelError> {
    let items: Vec<(&[u32], usize)> = tokens.chunks(chunk.max(2)).map(|c| (c, 1)).collect();
    score(model, kernels, &items, policy)
}

/// Scores `policy` on independent sequences `(tokens, first)`: each is run as a fresh
/// sequence and only the predictions of `tokens[first..]` are scored (e.g. a code
/// solution after its prompt).
pub fn score(
    model: &Model,
    kernels: &Kernels,
    items: &[(&[u32], usize)],
    policy: &FfnPolicy,
) -> Result<Score, ModelError> {
    let longest = items.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    let mut session = Session::new(model, kernels.clone(), longest.max(1));
    let vocab = model.config().vocab;
    let (mut nll, mut n) = (0f64, 0usize);
    for &(seq, first) in items {
        let first = first.max(1);
        if seq.len() <= first {
            continue;
        }
        session.reset();
        let logits = session.forward_all(seq, policy)?;
        for (p, &next) in seq.iter().enumerate().skip(first) {
            nll -= log_softmax_at(&logits[(p - 1) * vocab..p * vocab], next as usize);
            n += 1;
        }
    }
    if n == 0 {
        return Err(ModelError::Policy(
            "scoring needs at least one token after its context".into(),
        ));
    }
    let stats = session.stats();
    Ok(Score {
        ppl: (nll / n as f64).exp(),
        nll: nll / n as f64,
        tokens: n,
        density: stats.density(),
        ffn_bytes_per_token: stats.bytes_per_token(),
    })
}

/// Runs the dense model over `tokens` in independent chunks of `chunk` tokens,
/// reporting every layer's FFN through `observer`, and `progress(tokens done)` after
/// each chunk: how profiles and predictor training data are collected (one batched
/// pass, no second pass per token).
pub fn observe_dense(
    model: &Model,
    kernels: &Kernels,
    tokens: &[u32],
    chunk: usize,
    observer: &mut FfnObserver<'_>,
    progress: &mut dyn FnMut(usize),
) -> Result<(), ModelError> {
    let chunk = chunk.max(1);
    let mut session = Session::new(model, kernels.clone(), chunk);
    let mut done = 0;
    for c in tokens.chunks(chunk) {
        session.reset();
        session.observe(c, &FfnPolicy::Dense, observer)?;
        done += c.len();
        progress(done);
    }
    Ok(())
}

/// `log softmax(row)[at]` in f64.
pub fn log_softmax_at(row: &[f32], at: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row.get(at)
        .map_or(f64::NEG_INFINITY, |&v| v as f64 - max - sum.ln())
}
