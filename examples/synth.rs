//! Writes a ReLU-LLaMA GGUF with random weights, shaped like a real model (default: 7B,
//! Q4_0, ≈ 3.8 GB), for speed runs at PowerInfer's scale.
//!
//! ```text
//! cargo run --release --example synth                      # models/synthetic-relu-llama-7b.q4_0.gguf
//! cargo run --release --example synth -- --layers 4 --out /tmp/small.gguf
//! ```
//!
//! **Synthetic weights, speed only.** The weights are random, so the model's outputs mean
//! nothing; the file has the tensors, shapes, types and byte counts of a PowerInfer
//! ReLU-LLaMA file (`ffn_down_t` stored transposed, as PowerInfer's converter writes it),
//! so decode reads exactly the bytes a real model of that shape would. Pair it with the
//! `trace` policy of `bench synthetic`, which draws the active neurons from a power-law
//! trace. Written on demand, never committed (`models/` is git-ignored).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use half::f16;
use powerinfer::core::gguf::GgufWriter;
use powerinfer::kernels::WType;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

#[derive(Parser, Debug)]
#[command(
    about = "Write a random-weight ReLU-LLaMA GGUF of a real model's shape (speed runs only)"
)]
struct Args {
    /// Output file.
    #[arg(long, default_value = "models/synthetic-relu-llama-7b.q4_0.gguf")]
    out: PathBuf,
    /// Transformer blocks.
    #[arg(long, default_value_t = 32)]
    layers: usize,
    /// Model dimension (a multiple of 32 and of the head count).
    #[arg(long, default_value_t = 4096)]
    dim: usize,
    /// FFN neurons per layer (a multiple of 32).
    #[arg(long, default_value_t = 11008)]
    ff: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 32)]
    heads: usize,
    /// Key/value heads.
    #[arg(long, default_value_t = 32)]
    kv_heads: usize,
    /// Vocabulary.
    #[arg(long, default_value_t = 32000)]
    vocab: usize,
    /// Context length.
    #[arg(long, default_value_t = 2048)]
    ctx: usize,
    /// Seed of the weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A `rows × cols` Q4_0 matrix of random codes, scaled so a row's dot product with a
/// unit-RMS input has about unit size (values `(q − 8)·d`, std ≈ 4.6·d).
fn q4_0(rows: usize, cols: usize, rng: &mut SmallRng) -> Vec<u8> {
    let d = f16::from_f32(1.0 / (4.6 * (cols as f32).sqrt())).to_le_bytes();
    let mut out = vec![0u8; rows * cols / 32 * 18];
    for block in out.chunks_exact_mut(18) {
        block[..2].copy_from_slice(&d);
        rng.fill_bytes(&mut block[2..]);
    }
    out
}

fn ones(n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| 1f32.to_le_bytes()).collect()
}

fn main() -> Result<()> {
    let a = Args::parse();
    ensure!(
        a.dim % 32 == 0 && a.ff % 32 == 0 && a.heads > 0 && a.dim % a.heads == 0,
        "dim and ff must be multiples of 32, dim a multiple of the head count"
    );
    ensure!(
        a.kv_heads > 0 && a.heads % a.kv_heads == 0,
        "the head count must be a multiple of the key/value head count"
    );
    let start = Instant::now();
    let (d, ff, kv) = (
        a.dim as u64,
        a.ff as u64,
        (a.dim / a.heads * a.kv_heads) as u64,
    );
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama")
        .add(
            "general.name",
            "synthetic ReLU-LLaMA (random weights: speed only)",
        )
        .add("llama.context_length", a.ctx as u32)
        .add("llama.embedding_length", a.dim as u32)
        .add("llama.block_count", a.layers as u32)
        .add("llama.feed_forward_length", a.ff as u32)
        .add("llama.attention.head_count", a.heads as u32)
        .add("llama.attention.head_count_kv", a.kv_heads as u32)
        .add("llama.attention.layer_norm_rms_epsilon", 1e-5f32)
        .add("llama.rope.freq_base", 10_000f32)
        .add("llama.rope.dimension_count", (a.dim / a.heads) as u32)
        .add("llama.vocab_size", a.vocab as u32)
        .add("powerinfer.ffn_activation", "relu");
    let mut state = SmallRng::seed_from_u64(a.seed);
    let q = WType::Q4_0;
    let mut add = |name: &str, dims: &[u64], wtype: WType, data: Vec<u8>| {
        w.add_tensor(name, dims, wtype, data)
            .with_context(|| format!("adding {name}"))
            .map(drop)
    };
    add(
        "token_embd.weight",
        &[d, a.vocab as u64],
        q,
        q4_0(a.vocab, a.dim, &mut state),
    )?;
    for l in 0..a.layers {
        let t = |s: &str| format!("blk.{l}.{s}.weight");
        add(&t("attn_norm"), &[d], WType::F32, ones(a.dim))?;
        add(&t("attn_q"), &[d, d], q, q4_0(a.dim, a.dim, &mut state))?;
        add(
            &t("attn_k"),
            &[d, kv],
            q,
            q4_0(kv as usize, a.dim, &mut state),
        )?;
        add(
            &t("attn_v"),
            &[d, kv],
            q,
            q4_0(kv as usize, a.dim, &mut state),
        )?;
        add(
            &t("attn_output"),
            &[d, d],
            q,
            q4_0(a.dim, a.dim, &mut state),
        )?;
        add(&t("ffn_norm"), &[d], WType::F32, ones(a.dim))?;
        add(&t("ffn_gate"), &[d, ff], q, q4_0(a.ff, a.dim, &mut state))?;
        add(&t("ffn_up"), &[d, ff], q, q4_0(a.ff, a.dim, &mut state))?;
        // PowerInfer's layout: the down projection stored one row per neuron.
        add(&t("ffn_down_t"), &[d, ff], q, q4_0(a.ff, a.dim, &mut state))?;
    }
    add("output_norm.weight", &[d], WType::F32, ones(a.dim))?;
    add(
        "output.weight",
        &[d, a.vocab as u64],
        q,
        q4_0(a.vocab, a.dim, &mut state),
    )?;
    if let Some(dir) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    w.write(&a.out)?;
    let bytes = std::fs::metadata(&a.out)?.len();
    println!(
        "{}: {:.2} GB, {} layers × {} neurons, Q4_0 (synthetic weights, speed only) in {:.1} s",
        a.out.display(),
        bytes as f64 / 1e9,
        a.layers,
        a.ff,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
