//! Scoring a policy on text: perplexity and next-token log-likelihood in batched
//! prefill (the path that matches the float64 reference), chunk by chunk; and
//! comparing it with the dense model on the same tokens (KL, top-1 agreement, top-1
//! accuracy, greedy-continuation agreement), the sparsity sweep's metrics.

use std::sync::Arc;

use powerinfer_kernels::Kernels;

use crate::input_sparsity::InputSparsity;
use crate::sampler::argmax;
use crate::{FfnObserver, FfnPolicy, FfnStats, Model, ModelError, Session};

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
    let (mut nll, mut n) = (0f64, 0usize);
    let stats = for_each_scored(
        model,
        kernels,
        items,
        &policy.clone().into(),
        |row, next| {
            nll -= log_softmax_at(row, next as usize);
            n += 1;
        },
    )?;
    Ok(finish(nll, n, &stats))
}

/// How a run of the model is sparsified: the FFN policy and, optionally, model-wide
/// input sparsity (TEAL/WINA), which needs the dense FFN policy.
#[derive(Clone, Debug)]
pub struct Sparsity {
    /// The FFN policy.
    pub ffn: FfnPolicy,
    /// Input sparsity of every projection, or none.
    pub input: Option<Arc<InputSparsity>>,
}

impl From<FfnPolicy> for Sparsity {
    fn from(ffn: FfnPolicy) -> Sparsity {
        Sparsity { ffn, input: None }
    }
}

/// The dense model's next-token distributions at every scored position of a set of
/// items: what [`compare`] measures a policy against.
pub struct Reference {
    vocab: usize,
    /// `log softmax` of the dense logits, one row of `vocab` per scored position.
    log_probs: Vec<f32>,
    /// The dense model's top-1 token per scored position.
    top: Vec<u32>,
    /// The dense score on the items.
    pub score: Score,
}

/// A policy measured against the dense [`Reference`] on the same tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Perplexity, density and bytes.
    pub score: Score,
    /// Mean `KL(dense ‖ policy)` per scored position (nats).
    pub kl: f64,
    /// Share of positions whose top-1 token equals dense's.
    pub agree: f64,
    /// Share of positions whose top-1 token is the real next token (teacher-forced
    /// accuracy).
    pub top1: f64,
    /// Share of projection input entries kept, with input sparsity.
    pub input_density: Option<f64>,
}

/// Runs the dense model over `items` and keeps its distributions at the scored
/// positions (`positions × vocab` floats: size `items` accordingly).
pub fn reference(
    model: &Model,
    kernels: &Kernels,
    items: &[(&[u32], usize)],
) -> Result<Reference, ModelError> {
    let vocab = model.config().vocab;
    let (mut log_probs, mut top) = (Vec::new(), Vec::new());
    let mut nll = 0f64;
    let stats = for_each_scored(
        model,
        kernels,
        items,
        &FfnPolicy::Dense.into(),
        |row, next| {
            let start = log_probs.len();
            log_softmax_into(row, &mut log_probs);
            nll -= f64::from(log_probs[start + next as usize]);
            top.push(argmax(row));
        },
    )?;
    let n = top.len();
    Ok(Reference {
        vocab,
        log_probs,
        top,
        score: finish(nll, n, &stats),
    })
}

/// Scores `sparsity` on `items` against `reference` (made by [`reference()`] on the same
/// items): perplexity, KL from dense, top-1 agreement with dense and top-1 accuracy.
pub fn compare(
    model: &Model,
    kernels: &Kernels,
    items: &[(&[u32], usize)],
    sparsity: &Sparsity,
    reference: &Reference,
) -> Result<Comparison, ModelError> {
    let vocab = reference.vocab;
    if vocab != model.config().vocab {
        return Err(ModelError::Policy(format!(
            "reference over {vocab} tokens, the model has {}",
            model.config().vocab
        )));
    }
    let (mut nll, mut kl, mut agree, mut top1, mut n) = (0f64, 0f64, 0usize, 0usize, 0usize);
    let mut lp = Vec::with_capacity(vocab);
    let stats = for_each_scored(model, kernels, items, sparsity, |row, next| {
        if n >= reference.top.len() {
            n += 1;
            return;
        }
        lp.clear();
        log_softmax_into(row, &mut lp);
        let dense = &reference.log_probs[n * vocab..(n + 1) * vocab];
        kl += dense
            .iter()
            .zip(&lp)
            .map(|(&p, &q)| f64::from(p).exp() * (f64::from(p) - f64::from(q)))
            .sum::<f64>();
        nll -= f64::from(lp[next as usize]);
        let top = argmax(row);
        agree += usize::from(top == reference.top[n]);
        top1 += usize::from(top == next);
        n += 1;
    })?;
    if n != reference.top.len() {
        return Err(ModelError::Policy(format!(
            "{n} scored positions, the reference has {}: not the same items",
            reference.top.len()
        )));
    }
    let m = n.max(1) as f64;
    Ok(Comparison {
        score: finish(nll, n, &stats),
        kl: kl / m,
        agree: agree as f64 / m,
        top1: top1 as f64 / m,
        input_density: stats.input_density(),
    })
}

/// Dense greedy continuations of `prompts`, `n_new` tokens each, as `(prompt ++
/// continuation, prompt length)`. Each continuation is cut at the first token where
/// the batched scoring pass disagrees with the decode steps that produced it (rounding
/// differs between the two paths), so dense reproduces every kept token exactly.
pub fn greedy_continuations(
    model: &Model,
    kernels: &Kernels,
    prompts: &[&[u32]],
    n_new: usize,
) -> Result<Vec<(Vec<u32>, usize)>, ModelError> {
    let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut session = Session::new(model, kernels.clone(), longest + n_new)?;
    let mut out = Vec::with_capacity(prompts.len());
    for &prompt in prompts {
        if prompt.is_empty() {
            return Err(ModelError::Policy(
                "greedy continuation of an empty prompt".into(),
            ));
        }
        session.reset();
        let mut seq = prompt.to_vec();
        let mut logits = session.forward(prompt, &FfnPolicy::Dense)?;
        for _ in 0..n_new {
            let next = argmax(&logits);
            seq.push(next);
            logits = session.forward(&[next], &FfnPolicy::Dense)?;
        }
        session.reset();
        let kept = agreed(&mut session, &seq, prompt.len(), &FfnPolicy::Dense.into())?;
        seq.truncate(prompt.len() + kept);
        out.push((seq, prompt.len()));
    }
    Ok(out)
}

/// Mean number of continuation tokens `sparsity` reproduces under greedy decoding
/// before it first diverges, over `items` from [`greedy_continuations`] (computed in
/// one batched pass per item: up to the divergence the sequences are the same).
pub fn greedy_agreement(
    model: &Model,
    kernels: &Kernels,
    items: &[(Vec<u32>, usize)],
    sparsity: &Sparsity,
) -> Result<f64, ModelError> {
    let longest = items.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    let mut session = Session::new(model, kernels.clone(), longest.max(1))?;
    session.set_input_sparsity(sparsity.input.clone());
    let mut total = 0usize;
    for (seq, first) in items {
        session.reset();
        total += agreed(&mut session, seq, *first, sparsity)?;
    }
    Ok(total as f64 / items.len().max(1) as f64)
}

/// How many of `seq[first..]` the session's greedy choice reproduces before the first
/// mismatch.
fn agreed(
    session: &mut Session,
    seq: &[u32],
    first: usize,
    sparsity: &Sparsity,
) -> Result<usize, ModelError> {
    if first == 0 || first >= seq.len() {
        return Ok(0);
    }
    let vocab = session.model().config().vocab;
    let logits = session.forward_rows(seq, &sparsity.ffn, first - 1..seq.len() - 1)?;
    Ok(logits
        .chunks_exact(vocab)
        .zip(&seq[first..])
        .take_while(|&(row, &t)| argmax(row) == t)
        .count())
}

/// Runs `sparsity` over each item as a fresh sequence and calls `visit(logits, next)`
/// for every scored position in order; returns the run's statistics.
fn for_each_scored(
    model: &Model,
    kernels: &Kernels,
    items: &[(&[u32], usize)],
    sparsity: &Sparsity,
    mut visit: impl FnMut(&[f32], u32),
) -> Result<FfnStats, ModelError> {
    let longest = items.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    let mut session = Session::new(model, kernels.clone(), longest.max(1))?;
    session.set_input_sparsity(sparsity.input.clone());
    let vocab = model.config().vocab;
    let mut scored = 0usize;
    for &(seq, first) in items {
        let first = first.max(1);
        if seq.len() <= first {
            continue;
        }
        session.reset();
        let logits = session.forward_rows(seq, &sparsity.ffn, first - 1..seq.len() - 1)?;
        for (row, &next) in logits.chunks_exact(vocab).zip(&seq[first..]) {
            visit(row, next);
            scored += 1;
        }
    }
    if scored == 0 {
        return Err(ModelError::Policy(
            "scoring needs at least one token after its context".into(),
        ));
    }
    Ok(session.stats().clone())
}

fn finish(nll: f64, n: usize, stats: &FfnStats) -> Score {
    Score {
        ppl: (nll / n.max(1) as f64).exp(),
        nll: nll / n.max(1) as f64,
        tokens: n,
        density: stats.density(),
        ffn_bytes_per_token: stats.bytes_per_token(),
    }
}

/// Appends `log softmax(row)` (computed in f64) to `out`.
fn log_softmax_into(row: &[f32], out: &mut Vec<f32>) {
    let lse = log_sum_exp(row);
    out.extend(row.iter().map(|&v| (v as f64 - lse) as f32));
}

/// `ln Σ exp(row)` in f64, stable.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
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
    let mut session = Session::new(model, kernels.clone(), chunk)?;
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
    row.get(at)
        .map_or(f64::NEG_INFINITY, |&v| v as f64 - log_sum_exp(row))
}
