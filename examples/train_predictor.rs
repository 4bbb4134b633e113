//! Train, size and calibrate per-layer activation predictors for a model, in Rust.
//!
//! ```text
//! cargo run --release --example train_predictor -- [--model M] [--corpus FILE]
//!     [--target-recall R] [--density D] [--quality-budget P] [--out FILE]
//! ```
//! With no arguments: the default model, the calibration part of data/botchan.txt
//! (training tokens / held-out tokens per `powerinfer::core::corpus`), the rank ladder
//! 16…256 within 10% of the FFN bytes, and the operating point chosen so that the
//! held-out perplexity stays within +5% of dense; writes `models/<model stem>.predictor`.

#[path = "common/data.rs"]
mod data;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use powerinfer::core::eval::{observe_dense, perplexity};
use powerinfer::core::tokenizer::Tokenizer;
use powerinfer::core::{FfnObservation, FfnPolicy, LoadOptions, Model, corpus};
use powerinfer::kernels::{Activation, WType};
use powerinfer::predictor::{
    ActiveRule, FitOptions, PredictorInput, PredictorSet, RecallKind, Samples, TrainOptions, fit,
};

#[derive(Parser, Debug)]
#[command(about = "Train per-layer FFN activation predictors (x → fc1 → ReLU → fc2)")]
struct Args {
    /// GGUF model (default: the embedded SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Plain-text corpus; only its calibration part is used.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Training target for SwiGLU models: the top `density` share of |a| per token
    /// (ReLU-family models: the neurons with a ≠ 0).
    #[arg(long, default_value_t = 0.5)]
    density: f32,
    /// A fixed recall target for every layer's threshold (skips the quality search).
    #[arg(long)]
    target_recall: Option<f64>,
    /// Recall the thresholds target: mass (share of the targets' Σ|a|) or event.
    #[arg(long, default_value = "mass")]
    recall_kind: String,
    /// Largest perplexity increase over dense allowed on the held-out calibration text.
    #[arg(long, default_value_t = 0.05)]
    quality_budget: f64,
    /// Most training tokens (0 = all of the training part).
    #[arg(long, default_value_t = 0)]
    tokens: usize,
    /// Most held-out tokens (thresholds and the quality search).
    #[arg(long, default_value_t = 4096)]
    held_out: usize,
    /// Held-out tokens the quality search scores (in chunks of 512).
    #[arg(long, default_value_t = 2048)]
    ppl_tokens: usize,
    /// Rank ladder, ascending.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    ladder: Vec<usize>,
    /// All predictors together: at most this share of the FFN bytes they guard.
    #[arg(long, default_value_t = 0.10)]
    budget_share: f64,
    /// Tokens each ladder rank is tried on.
    #[arg(long, default_value_t = 8192)]
    search_tokens: usize,
    /// Epochs of each ladder trial.
    #[arg(long, default_value_t = 2)]
    search_epochs: usize,
    /// Epochs of the final run.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Layout of the sparse path's transposed down projection during the quality
    /// search (auto = the exact 4-bit transpose for 4-bit models; decode with the same
    /// `generate --down-t`).
    #[arg(long, default_value = "auto")]
    down_t: String,
    /// Output file (default: models/<model stem>.predictor).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads, 1 to 1024 (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // A closed pipe (`| head`) ends the tool with an error, not a panic.
    let mut out = std::io::stdout().lock();
    let t0 = Instant::now();
    let path = data::model_path(args.model.as_deref())?;
    // The quality search must see the numbers decoding will: the same down_t layout.
    let down_t = match args.down_t.as_str() {
        "auto" => None,
        name => Some(WType::from_name(name).with_context(|| format!("unknown type {name:?}"))?),
    };
    let model = Model::open_with(
        &path,
        &LoadOptions {
            down_t,
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let cfg = model.config().clone();
    let tokenizer = Tokenizer::from_gguf(model.gguf())?;
    let calib = data::calibration_tokens(&tokenizer, args.corpus.as_deref())?;
    let (train_t, held_t) = corpus::split_calibration(&calib);
    let train_t = if args.tokens > 0 && args.tokens < train_t.len() {
        &train_t[..args.tokens]
    } else {
        train_t
    };
    let held_t = &held_t[..args.held_out.min(held_t.len())];
    let kernels = data::kernels(args.threads)?;
    let rule = match cfg.activation {
        Activation::SwiGlu | Activation::GeGlu => ActiveRule::TopDensity(args.density),
        _ => ActiveRule::NonZero,
    };
    let kind = match args.recall_kind.as_str() {
        "mass" => RecallKind::Mass,
        "event" => RecallKind::Event,
        other => bail!("unknown recall kind {other:?} (mass, event)"),
    };
    writeln!(
        out,
        "{}: {} layers, dim {}, n_ff {}; target = {rule}; {} training + {} held-out tokens",
        path.display(),
        cfg.n_layers,
        cfg.dim,
        cfg.n_ff,
        train_t.len(),
        held_t.len()
    )?;

    // 1. Samples from the dense model, in batched prefill.
    let collect = |tokens: &[u32], mags: bool, what: &str| -> Result<Vec<Samples>> {
        let mut s = (0..cfg.n_layers)
            .map(|_| Samples::new(cfg.dim, cfg.n_ff, rule, mags))
            .collect::<Result<Vec<_>, _>>()?;
        let bar = ProgressBar::new(tokens.len() as u64).with_style(ProgressStyle::with_template(
            &format!("{what} {{bar:40}} {{pos}}/{{len}} tokens ({{per_sec}}, eta {{eta}})"),
        )?);
        let mut err = None;
        let mut observe = |o: &FfnObservation| {
            if err.is_none() {
                err = s[o.layer].push(o.input, o.values).err();
            }
        };
        observe_dense(&model, &kernels, tokens, 512, &mut observe, &mut |d| {
            bar.set_position(d as u64)
        })?;
        bar.finish_and_clear();
        match err {
            Some(e) => Err(e.into()),
            None => Ok(s),
        }
    };
    let train_s = collect(train_t, false, "training samples")?;
    let held_s = collect(held_t, true, "held-out samples")?;
    let sample_bytes: usize = train_s.iter().chain(&held_s).map(Samples::bytes).sum();
    let t_collect = t0.elapsed();
    writeln!(
        out,
        "collected in {:.0} s ({:.2} GB of samples)",
        t_collect.as_secs_f64(),
        sample_bytes as f64 / 1e9
    )?;

    // 2. Ladder search, rank choice within the budget, final training, thresholds.
    let id = model.predictor_id().clone();
    let opts = FitOptions {
        ladder: args.ladder.clone(),
        budget_bytes: (model.ffn_bytes() as f64 * args.budget_share) as usize,
        search_tokens: args.search_tokens,
        search_epochs: args.search_epochs,
        recall_kind: kind,
        recall: args.target_recall.unwrap_or(0.95),
        train: TrainOptions {
            epochs: args.epochs,
            seed: args.seed,
            ..TrainOptions::default()
        },
        input: PredictorInput::FfnNorm,
        ..FitOptions::default()
    };
    let total = opts.total_steps(cfg.n_layers, train_t.len());
    let bar = ProgressBar::new(total as u64).with_style(ProgressStyle::with_template(
        "training {bar:40} {pos}/{len} minibatches (eta {eta}) {msg}",
    )?);
    let done = AtomicUsize::new(0);
    let t1 = Instant::now();
    let (mut set, report) = fit(id, &train_s, &held_s, &opts, &kernels, &|p| {
        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
        if d.is_multiple_of(64) {
            bar.set_position(d as u64);
            bar.set_message(format!(
                "layer {} rank {} loss {:.3} recall {:.2}",
                p.layer, p.rank, p.step.loss, p.step.recall
            ));
        }
    })?;
    bar.finish_and_clear();
    let t_fit = t1.elapsed();
    writeln!(out, "trained in {:.0} s", t_fit.as_secs_f64())?;
    // 3. The operating point: the lowest recall whose held-out perplexity stays within
    //    the quality budget.
    let ppl_t = &held_t[..args.ppl_tokens.min(held_t.len())];
    let t2 = Instant::now();
    let dense = perplexity(&model, &kernels, ppl_t, 512, &FfnPolicy::Dense)?;
    let score = |set: &PredictorSet| {
        perplexity(
            &model,
            &kernels,
            ppl_t,
            512,
            &FfnPolicy::Predictor {
                set: Arc::new(set.clone()),
                gate_check: None,
            },
        )
    };
    let recalibrate = |set: &mut PredictorSet, r: f64| set.recalibrate(&kernels, &held_s, kind, r);
    let chosen = match args.target_recall {
        Some(r) => {
            recalibrate(&mut set, r)?;
            let s = score(&set)?;
            set.point.ppl_ratio = Some(s.ppl / dense.ppl);
            s
        }
        None => {
            let ladder = [0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0];
            let (mut lo, mut hi) = (0usize, ladder.len() - 1);
            let mut best = None;
            // Binary search for the lowest recall within budget (perplexity falls as
            // recall rises).
            while lo <= hi {
                let mid = (lo + hi) / 2;
                recalibrate(&mut set, ladder[mid])?;
                let s = score(&set)?;
                let ratio = s.ppl / dense.ppl;
                writeln!(
                    out,
                    "  {kind} recall {:<6} → density {:5.1}%, ppl {:.2} ({:+.1}% vs dense {:.2})",
                    ladder[mid],
                    100.0 * s.density,
                    s.ppl,
                    100.0 * (ratio - 1.0),
                    dense.ppl
                )?;
                if ratio <= 1.0 + args.quality_budget {
                    best = Some((mid, s));
                    if mid == 0 {
                        break;
                    }
                    hi = mid - 1;
                } else {
                    lo = mid + 1;
                }
            }
            let (i, s) = match best {
                Some(b) => b,
                None => {
                    writeln!(
                        out,
                        "  no recall on the ladder meets the +{:.0}% budget; keeping recall 1.0",
                        100.0 * args.quality_budget
                    )?;
                    let last = ladder.len() - 1;
                    recalibrate(&mut set, ladder[last])?;
                    (last, score(&set)?)
                }
            };
            recalibrate(&mut set, ladder[i])?;
            set.point.quality_budget = Some(args.quality_budget);
            set.point.ppl_ratio = Some(s.ppl / dense.ppl);
            s
        }
    };
    let t_search = t2.elapsed();

    // 4. Report and file.
    let out_path = match &args.out {
        Some(p) => p.clone(),
        None => path.with_extension("predictor"),
    };
    set.save(&out_path)?;
    writeln!(
        out,
        "\n{:>5} {:>5} {:>9} {:>7} {:>9} {:>8} {:>9} {:>8}   ladder densities at {kind} recall {}",
        "layer",
        "rank",
        "bytes",
        "MFLOP",
        "ev.recall",
        "m.recall",
        "precision",
        "density",
        opts.recall
    )?;
    for (l, p) in set.layers.iter().enumerate() {
        let c = set.calibration[l];
        let ladder = report.trials.get(l).map_or(String::new(), |t| {
            t.iter()
                .map(|r| format!("{}:{:.2}", r.rank, r.calibration.density))
                .collect::<Vec<_>>()
                .join(" ")
        });
        match c {
            Some(c) => writeln!(
                out,
                "{l:>5} {:>5} {:>9} {:>7.3} {:>9.3} {:>8.3} {:>9.3} {:>7.1}%   {ladder}",
                p.rank(),
                p.bytes(),
                2.0 * p.macs() as f64 / 1e6,
                c.event_recall,
                c.mass_recall,
                c.precision,
                100.0 * c.density
            ),
            None => writeln!(
                out,
                "{l:>5} {:>5} {:>9}   (no held-out result)",
                p.rank(),
                p.bytes()
            ),
        }?;
    }
    writeln!(
        out,
        "\npredictors: {:.2} MB = {:.1}% of the FFN's {:.1} MB; operating point: {kind} recall {} → FFN density {:.1}%, held-out ppl {:.3} vs dense {:.3} ({:+.2}%)",
        set.bytes() as f64 / 1e6,
        100.0 * set.bytes() as f64 / model.ffn_bytes() as f64,
        model.ffn_bytes() as f64 / 1e6,
        set.point.recall,
        100.0 * chosen.density,
        chosen.ppl,
        dense.ppl,
        100.0 * (chosen.ppl / dense.ppl - 1.0)
    )?;
    writeln!(
        out,
        "time: samples {:.0} s, training {:.0} s, quality search {:.0} s, total {:.0} s; written to {}",
        t_collect.as_secs_f64(),
        t_fit.as_secs_f64(),
        t_search.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        out_path.display()
    )?;
    Ok(())
}
