//! How much a predictor costs in accuracy, on held-out text and code, next to the other
//! ways of reaching the same FFN density.
//!
//! ```text
//! cargo run --release --example eval_predictor -- [--model M] [--predictor FILE]
//!     [--text FILE] [--code FILE] [--text-tokens N] [--problems N]
//! ```
//! Rows: dense; the predictor at its calibrated operating point; the gate-magnitude cut
//! (`threshold`) and the exact per-token top-k by |a| at the density the predictor
//! reached. Text: the evaluation part of data/botchan.txt (never seen by calibration);
//! code: HumanEval solutions scored after their prompts.

#[path = "common/data.rs"]
mod data;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use powerinfer::core::calibrate::thresholds_for_density;
use powerinfer::core::eval::{Score, score};
use powerinfer::core::tokenizer::Tokenizer;
use powerinfer::core::{FfnPolicy, Model, corpus};
use powerinfer::predictor::PredictorSet;

#[derive(Parser, Debug)]
#[command(about = "Perplexity of a predictor policy vs dense, threshold and top-k")]
struct Args {
    /// GGUF model (default: the embedded SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Predictor file (default: models/<model stem>.predictor).
    #[arg(long)]
    predictor: Option<PathBuf>,
    /// Plain text; its evaluation part (last 15% of tokens) is scored.
    #[arg(long)]
    text: Option<PathBuf>,
    /// HumanEval-format problems (.jsonl or .jsonl.gz).
    #[arg(long)]
    code: Option<PathBuf>,
    /// Text tokens scored, in chunks of 512.
    #[arg(long, default_value_t = 2048)]
    text_tokens: usize,
    /// Problems scored.
    #[arg(long, default_value_t = 40)]
    problems: usize,
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
    let pred_path = match &args.predictor {
        Some(p) => p.clone(),
        None => path.with_extension("predictor"),
    };
    let set = PredictorSet::load(&pred_path)
        .with_context(|| "train one with `cargo run --release --example train_predictor`")?;
    set.check_model(model.predictor_id(), &pred_path.display().to_string())?;
    let kernels = data::kernels(args.threads)?;
    let text = data::evaluation_tokens(&tokenizer, args.text.as_deref())?;
    let text = &text[..args.text_tokens.min(text.len())];
    let text_items: Vec<(&[u32], usize)> = text.chunks(512).map(|c| (c, 1)).collect();
    let code = data::code_items(&tokenizer, args.code.as_deref(), args.problems)?;
    let code_items: Vec<(&[u32], usize)> = code.iter().map(|(t, f)| (t.as_slice(), *f)).collect();
    let sets = [
        ("text", text_items.as_slice()),
        ("code", code_items.as_slice()),
    ];
    writeln!(
        out,
        "{}: predictor {} ({:.2} MB, {} recall {} on calibration text, ppl ratio there {}); text {} tokens, code {} problems",
        path.display(),
        pred_path.display(),
        set.bytes() as f64 / 1e6,
        set.point.recall_kind,
        set.point.recall,
        set.point
            .ppl_ratio
            .map_or("?".into(), |r| format!("{r:.3}")),
        text.len(),
        code.len()
    )?;
    let predictor = FfnPolicy::Predictor {
        set: Arc::new(set),
        gate_check: None,
    };
    writeln!(
        out,
        "{:<22} {:<5} {:>8} {:>9} {:>9} {:>8} {:>10}",
        "policy", "set", "density", "tokens", "ppl", "dppl", "FFN MB/tok"
    )?;
    // Calibration for the comparison policies: the first 1,024 calibration tokens.
    let calib = data::calibration_tokens(&tokenizer, args.text.as_deref())?;
    let calib = &corpus::split_calibration(&calib).0[..1024.min(calib.len())];
    for (set_name, items) in sets {
        let dense = score(&model, &kernels, items, &FfnPolicy::Dense)?;
        let mut row = |name: &str, s: &Score| {
            writeln!(
                out,
                "{name:<22} {set_name:<5} {:>7.1}% {:>9} {:>9.3} {:>+7.1}% {:>10.2}",
                100.0 * s.density,
                s.tokens,
                s.ppl,
                100.0 * (s.ppl / dense.ppl - 1.0),
                s.ffn_bytes_per_token / 1e6
            )
        };
        row("dense", &dense)?;
        let p = score(&model, &kernels, items, &predictor)?;
        row("predictor", &p)?;
        let d = p.density.clamp(0.01, 1.0);
        let per_layer = thresholds_for_density(&model, &kernels, calib, d)?;
        let t = score(&model, &kernels, items, &FfnPolicy::Threshold { per_layer })?;
        row(&format!("threshold:{d:.3}"), &t)?;
        let k = score(
            &model,
            &kernels,
            items,
            &FfnPolicy::TopK { density: d as f32 },
        )?;
        row(&format!("top-k:{d:.3}"), &k)?;
    }
    Ok(())
}
