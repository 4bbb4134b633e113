//! Convert a Hugging Face checkpoint (config.json, *.safetensors, tokenizer.json) to a
//! GGUF file our loader (and llama.cpp-style tools that know the architecture) reads.
//!
//! ```text
//! cargo run --release --example convert -- --model path/to/checkpoint-dir --out model.gguf
//! cargo run --release --example convert -- --model dir --quantize q4_0 --out model.q4_0.gguf
//! ```
//! The file holds exactly what `--model dir` loads in memory (same tensors, same
//! metadata, the tokenizer included), so it gives the same logits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

#[path = "common/load.rs"]
mod load;
use powerinfer::core::hf::HfCheckpoint;

#[derive(Parser, Debug)]
#[command(about = "Convert a Hugging Face checkpoint directory to GGUF")]
struct Args {
    /// The checkpoint directory.
    #[arg(long)]
    model: PathBuf,
    /// Output GGUF file.
    #[arg(long)]
    out: PathBuf,
    /// Quantize the weight matrices (q8_0, q4_0, q4_1, …; default: as stored).
    #[arg(long)]
    quantize: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let quantize = load::quantize_arg(args.quantize.as_deref())?;
    let ck = HfCheckpoint::open(&args.model)
        .with_context(|| format!("opening {}", args.model.display()))?;
    let writer = load::convert_with_bar(quantize, |c| Ok(ck.to_gguf(c)?))?;
    writer
        .write(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out)?.len();
    println!(
        "{} ({:?}) -> {} ({:.1} MB{})",
        args.model.display(),
        ck.arch(),
        args.out.display(),
        bytes as f64 / 1e6,
        quantize.map_or(String::new(), |q| format!(", {q}"))
    );
    Ok(())
}
