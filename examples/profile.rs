//! Profile a model's FFN activations: per layer and neuron, how often it is active and
//! its mass Σ|a|, with the power-law report PowerInfer is built on (or its absence).
//!
//! ```text
//! cargo run --release --example profile -- [--model M] [--corpus FILE] [--tokens N]
//!     [--out stats.bin] [--plot stats.png]
//! ```
//! With no arguments: the default model on the calibration part of data/botchan.txt.

#[path = "common/data.rs"]
mod data;
#[path = "common/plot.rs"]
mod plot;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use powerinfer::core::eval::observe_dense;
use powerinfer::core::tokenizer::Tokenizer;
use powerinfer::core::{FfnObservation, Model};
use powerinfer::kernels::Activation;
use powerinfer::predictor::{ActivationStats, ActiveRule, TOP_SHARES};

#[derive(Parser, Debug)]
#[command(about = "Profile FFN activation frequencies and mass (power-law report)")]
struct Args {
    /// GGUF model (default: the embedded SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Plain-text corpus; its calibration part (first 85% of tokens) is used.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Tokens to profile (0 = the whole calibration part).
    #[arg(long, default_value_t = 8192)]
    tokens: usize,
    /// For SwiGLU models (no exact zeros): a neuron is active when it is among the top
    /// `density` share of |a| of its token. ReLU-family models use a ≠ 0.
    #[arg(long, default_value_t = 0.5)]
    density: f32,
    /// Tokens per independent sequence.
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    /// Stats file to write.
    #[arg(long, default_value = "results/stats.bin")]
    out: PathBuf,
    /// PNG of sorted frequency and mass on log-log axes for a few layers.
    #[arg(long, default_value = "results/stats.png")]
    plot: PathBuf,
    /// Worker threads, 1 to 1024 (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // A closed pipe (`| head`) ends the tool with an error, not a panic.
    let mut out = std::io::stdout().lock();
    let path = data::model_path(args.model.as_deref())?;
    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(model.gguf())?;
    let mut tokens = data::calibration_tokens(&tokenizer, args.corpus.as_deref())?;
    if args.tokens > 0 {
        tokens.truncate(args.tokens);
    }
    let kernels = data::kernels(args.threads)?;
    let rule = match model.config().activation {
        Activation::SwiGlu | Activation::GeGlu => ActiveRule::TopDensity(args.density),
        _ => ActiveRule::NonZero,
    };
    let mut stats = ActivationStats::new(model.predictor_id().clone(), rule)?;
    let bar = ProgressBar::new(tokens.len() as u64).with_style(ProgressStyle::with_template(
        "profiling {bar:40} {pos}/{len} tokens ({per_sec}, eta {eta})",
    )?);
    let mut err = None;
    let mut observe = |o: &FfnObservation| {
        if err.is_none() {
            err = stats.record(o.layer, o.values).err();
        }
    };
    observe_dense(
        &model,
        &kernels,
        &tokens,
        args.chunk,
        &mut observe,
        &mut |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    if let Some(e) = err {
        return Err(e.into());
    }
    for p in [&args.out, &args.plot] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
    }
    stats.save(&args.out)?;
    writeln!(
        out,
        "{}: {} tokens of {}, active = {rule}; stats written to {}",
        path.display(),
        tokens.len(),
        args.corpus
            .as_ref()
            .map_or("data/botchan.txt".to_string(), |p| p.display().to_string()),
        args.out.display()
    )?;
    let pct = |s: f64| format!("{:.0}%", s * 100.0);
    let heads: Vec<String> = TOP_SHARES.iter().map(|&s| pct(s)).collect();
    writeln!(
        out,
        "{:>5} {:>8} {:>6}   share of events held by the hottest {:<22} share of mass held by the hottest",
        "layer",
        "density",
        "never",
        heads.join("/")
    )?;
    for l in 0..stats.layers() {
        let s = stats.summary(l);
        let row = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{:5.1}", 100.0 * x))
                .collect::<Vec<_>>()
                .join(" ")
        };
        writeln!(
            out,
            "{l:>5} {:>7.1}% {:>6}   {:<56} {}",
            100.0 * s.mean_density,
            s.never_active,
            row(&s.event_share),
            row(&s.mass_share)
        )?;
    }
    let n = stats.layers();
    let shown: Vec<usize> = [0, n / 4, n / 2, 3 * n / 4, n.saturating_sub(1)]
        .into_iter()
        .fold(Vec::new(), |mut v, l| {
            if !v.contains(&l) {
                v.push(l);
            }
            v
        });
    let sorted = |v: Vec<f64>| -> Vec<(f64, f64)> {
        let mut v = v;
        v.sort_by(|a, b| b.total_cmp(a));
        v.into_iter()
            .enumerate()
            .map(|(i, f)| ((i + 1) as f64, f))
            .collect()
    };
    let panel = |title: &str, y: &str, f: &dyn Fn(usize) -> Vec<f64>| plot::Panel {
        title: title.to_string(),
        x_label: "neuron rank".into(),
        y_label: y.to_string(),
        log_x: true,
        log_y: true,
        series: shown
            .iter()
            .map(|&l| plot::Series {
                label: format!("layer {l}"),
                points: sorted(f(l)),
            })
            .collect(),
    };
    let tokens_f = |l: usize| stats.tokens(l).max(1) as f64;
    plot::line_plot(
        &args.plot,
        &[
            panel(
                &format!("activation frequency ({rule})"),
                "frequency",
                &|l| stats.frequencies(l),
            ),
            panel("mean |a| per token", "mean |a|", &|l| {
                stats.mass(l).iter().map(|m| m / tokens_f(l)).collect()
            }),
        ],
        1400,
        600,
    )?;
    writeln!(out, "plot written to {}", args.plot.display())?;
    Ok(())
}
