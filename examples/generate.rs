//! Generate text with a GGUF model or a Hugging Face checkpoint, dense or sparse.
//!
//! ```text
//! cargo run --release --example generate -- --chat --prompt "What is the capital of France?"
//! cargo run --release --example generate -- --model path/to/checkpoint-dir --quantize q8_0
//! cargo run --release --example generate -- --policy threshold:0.3 --max-tokens 64
//! cargo run --release --example generate -- --hybrid sim --budget 40MiB
//! ```
//! `--hybrid sim|cuda --budget <size>` splits every FFN layer between the host and an
//! accelerator (a stand-in thread, or an NVIDIA GPU with `--features cuda`) by a plan
//! computed for the budget from a quick profile (or `--plan`/`--stats` files).
//! With no `--model`, the embedded default (SmolLM2-135M-Instruct, Q4_1) is used and
//! fetched on first run by `scripts/fetch-assets.sh`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

#[path = "common/hybrid.rs"]
mod hybrid;
#[path = "common/load.rs"]
mod load;
#[path = "common/size.rs"]
mod size;
use powerinfer::core::engine::{Engine, EngineOptions, GenerateParams};
use powerinfer::core::sampler::SamplerParams;
use powerinfer::core::{FfnPolicy, PolicySpec, Prefill, corpus};
use powerinfer::kernels::{Isa, WType};
use powerinfer::predictor::PredictorSet;
use powerinfer_assets as assets;

#[derive(Parser, Debug)]
#[command(about = "Generate text with a GGUF model (dense or activation-sparse FFN)")]
struct Args {
    /// GGUF model file, or a Hugging Face checkpoint directory (config.json,
    /// *.safetensors, tokenizer.json) (default: the embedded SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    model: Option<PathBuf>,
    /// For a checkpoint directory: quantize its weights while loading (q8_0, q4_0,
    /// q4_1, …; default: keep f32/f16/bf16 as stored).
    #[arg(long)]
    quantize: Option<String>,
    /// The prompt.
    #[arg(long, default_value = "The capital of France is")]
    prompt: String,
    /// Wrap the prompt in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message in chat mode.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// RNG seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// FFN policy: dense | oracle[:T] | threshold:<density> | static:<density> |
    /// predictor[:<file>][:gate=<d>] (`threshold` calibrates per-layer cuts, `static`
    /// per-layer hot neuron sets, on the first 256 tokens of data/botchan.txt;
    /// `predictor` reads a file from `train_predictor`; `:gate=<d>` also drops predicted
    /// neurons below the gate cut of `threshold:<d>`).
    #[arg(long, default_value = "dense")]
    policy: String,
    /// Context length in positions (prompt and answer), capped at the model's.
    #[arg(long, default_value_t = 2048)]
    ctx_len: usize,
    /// Worker threads, 1 to 1024 (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Force an instruction set (scalar, avx2).
    #[arg(long)]
    isa: Option<String>,
    /// Layout of the sparse path's transposed down projection: auto (4-bit models: the
    /// exact 4-bit transpose; Q8_0 models: Q8_0), or re-quantized to q8_0, q4_0 (+9.7%
    /// perplexity on SmolLM2), f16, f32.
    #[arg(long, default_value = "auto")]
    down_t: String,
    /// Prompt prefill arithmetic: exact (f32) or int8 (the decode step's, over packed
    /// weights).
    #[arg(long, default_value = "exact", value_parser = ["exact", "int8"])]
    prefill: String,
    /// Print the FFN density of every layer at the end.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    hybrid: hybrid::HybridArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let path = match &args.model {
        Some(p) => p.clone(),
        None => {
            assets::ensure_assets().context("fetching the default model")?;
            assets::default_model_path()
        }
    };
    let isa = args
        .isa
        .as_deref()
        .map(|s| Isa::from_name(s).with_context(|| format!("unknown ISA {s:?}")))
        .transpose()?;
    let down_t = match args.down_t.as_str() {
        "auto" => None,
        name => Some(WType::from_name(name).with_context(|| format!("unknown type {name:?}"))?),
    };
    let opts = EngineOptions {
        threads: args.threads,
        isa,
        ctx_len: args.ctx_len,
        down_t,
        prefill: if args.prefill == "exact" {
            Prefill::Exact
        } else {
            Prefill::Int8
        },
        quantize: load::quantize_arg(args.quantize.as_deref())?,
        ..EngineOptions::default()
    };
    let model = load::open_model(&path, &opts.load_options())?;
    let mut engine =
        Engine::from_model(model, &opts).with_context(|| format!("loading {}", path.display()))?;
    if let Some(spec) = args.hybrid.spec(|| calibration_tokens(&engine))? {
        let h = engine.enable_hybrid(&spec)?;
        eprintln!("[{}]", hybrid::describe(h));
    }
    let policy = parse_policy(&args.policy, &engine, &path)?;
    let params = GenerateParams {
        max_tokens: args.max_tokens,
        sampler: SamplerParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repeat_penalty,
            seed: args.seed,
            ..Default::default()
        },
        policy,
        chat: args.chat,
        system: args.system.clone(),
        ..GenerateParams::default()
    };
    // Prefill first: a prompt that does not fit is reported, not echoed.
    let mut generation = engine.generate(&args.prompt, &params)?;
    let mut out = std::io::stdout().lock();
    if !args.chat {
        write!(out, "{}", args.prompt)?;
    }
    for token in generation.by_ref() {
        write!(out, "{}", token?.text)?;
        out.flush()?;
    }
    writeln!(out)?;
    let s = generation.stats();
    eprintln!(
        "\n[{} | {} threads, {} | policy {}] prompt {} tok, prefill {:.1} tok/s; decode {} tok, {:.1} tok/s; FFN density {:.1}%",
        path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned()
        ),
        engine.kernels().threads(),
        engine.kernels().isa(),
        args.policy,
        s.prompt_tokens,
        s.prefill_tok_s(),
        s.generated,
        s.decode_tok_s(),
        100.0 * s.ffn_density.iter().sum::<f64>() / s.ffn_density.len().max(1) as f64,
    );
    if engine.hybrid().is_some() {
        let h = &s.hybrid;
        let per = |x: u64| x as f64 / s.generated.max(1) as f64;
        eprintln!(
            "[hybrid, per decode token] host {:.2} ms, device {:.2} ms, host waited {:.2} ms; {:.0} bytes over the link; neurons: {:.0} host, {:.0} device",
            h.host_time.as_secs_f64() * 1e3 / s.generated.max(1) as f64,
            h.device_time.as_secs_f64() * 1e3 / s.generated.max(1) as f64,
            h.wait_time.as_secs_f64() * 1e3 / s.generated.max(1) as f64,
            per(h.link_bytes),
            per(h.host_neurons),
            per(h.device_neurons),
        );
    }
    if args.verbose {
        for (l, d) in s.ffn_density.iter().enumerate() {
            eprintln!("  layer {l:2}: FFN density {:5.1}%", 100.0 * d);
        }
    }
    Ok(())
}

/// The quick calibration sample of data/botchan.txt (`corpus::quick_sample`).
fn calibration_tokens(engine: &Engine) -> Result<Vec<u32>> {
    assets::ensure_assets()?;
    let text = std::fs::read_to_string(assets::data_path("botchan.txt"))?;
    Ok(corpus::quick_sample(engine.tokenizer(), &text)?)
}

/// One of `powerinfer::core::POLICY_SPECS`; `predictor` alone reads the file train_predictor writes
/// next to the model.
fn parse_policy(spec: &str, engine: &Engine, model_path: &std::path::Path) -> Result<FfnPolicy> {
    let spec = PolicySpec::parse(spec)?;
    let predictor = match &spec {
        PolicySpec::Predictor { file, .. } => {
            let file = file
                .clone()
                .map_or_else(|| model_path.with_extension("predictor"), PathBuf::from);
            let set = PredictorSet::load(&file).with_context(|| {
                format!(
                    "{}: train one with `cargo run --release --example train_predictor`",
                    file.display()
                )
            })?;
            Some(std::sync::Arc::new(set))
        }
        _ => None,
    };
    let tokens = if spec.needs_calibration() {
        calibration_tokens(engine)?
    } else {
        Vec::new()
    };
    Ok(spec.resolve(
        engine.model(),
        engine.kernels(),
        &tokens,
        predictor.as_ref(),
    )?)
}
