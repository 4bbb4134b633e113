//! `bench decode`: prompt prefill and decode speed of a real model, dense and at
//! calibrated FFN densities, against the memory-bandwidth bound.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use powerinfer::core::calibrate::thresholds_for_density;
use powerinfer::core::sampler::argmax;
use powerinfer::core::{
    FfnPolicy, Hybrid, LoadOptions, Model, Packing, Prefill, Session, tokenizer::Tokenizer,
};
use powerinfer::kernels::{Kernels, WType};
use powerinfer::predictor::PredictorSet;
use powerinfer_assets as assets;

use crate::kernels::measure_bandwidth;

/// Options of `bench decode`.
#[derive(Parser, Debug)]
pub struct Args {
    /// GGUF model (default: the embedded SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// Thread counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Prompt length (tokens of data/botchan.txt).
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Decode steps to time.
    #[arg(long, default_value_t = 64)]
    decode_tokens: usize,
    /// FFN densities for the calibrated threshold policy, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.3,0.15")]
    densities: Vec<f64>,
    /// Only the dense policy (no threshold or predictor rows).
    #[arg(long)]
    dense_only: bool,
    /// Which matrices get a packed copy at load: all, attention, none.
    #[arg(long, default_value = "all", value_parser = ["all", "attention", "none"])]
    packing: String,
    /// Prefill arithmetic: exact (f32) or int8 (the decode step's, over packed weights).
    #[arg(long, default_value = "exact", value_parser = ["exact", "int8"])]
    prefill: String,
    /// A predictor file (from `train_predictor`): adds `predictor` rows, on the model
    /// as loaded (4-bit models: the exact 4-bit transpose of the down projection) and,
    /// for 4-bit models, with the Q8_0 re-quantized transpose for comparison.
    #[arg(long)]
    predictor: Option<std::path::PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// With `--hybrid sim|cuda --budget <size>`: every policy also runs split between
    /// the host (the row's threads) and the accelerator (rows `+hybrid`).
    #[command(flatten)]
    hybrid: crate::hybrid::HybridArgs,
}

/// Runs the benchmark and prints the table.
pub fn run(args: &Args) -> Result<()> {
    let path = match &args.model {
        Some(p) => p.clone(),
        None => {
            assets::ensure_assets()?;
            assets::default_model_path()
        }
    };
    let packing = match args.packing.as_str() {
        "attention" => Packing::Attention,
        "none" => Packing::None,
        _ => Packing::All,
    };
    let prefill = match args.prefill.as_str() {
        "int8" => Prefill::Int8,
        _ => Prefill::Exact,
    };
    let model = Model::open_with(
        &path,
        &LoadOptions {
            packing,
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(model.gguf())?;
    let text = std::fs::read_to_string(assets::data_path("botchan.txt"))?;
    let all = tokenizer.encode(&text, false)?;
    let need = args.prompt_tokens + 256;
    anyhow::ensure!(
        all.len() >= need,
        "botchan.txt has only {} tokens",
        all.len()
    );
    let (calib, prompt) = (&all[..256], &all[256..need]);
    let dense_bytes = model.dense_bytes_per_token();
    // Weight bytes of a decode step outside the FFN (attention, output head).
    let other_bytes = dense_bytes as f64 - model.ffn_bytes() as f64;
    let sparse_model = match (&args.predictor, model.ffn_wtype()) {
        (Some(_), Some(WType::Q4_0 | WType::Q4_1)) => Some(Model::open_with(
            &path,
            &LoadOptions {
                down_t: Some(WType::Q8_0),
                packing,
                ..LoadOptions::default()
            },
        )?),
        _ => None,
    };
    let predictor = match &args.predictor {
        Some(p) => {
            let set = PredictorSet::load(p)?;
            set.check_model(model.predictor_id(), &p.display().to_string())?;
            Some(std::sync::Arc::new(set))
        }
        None => None,
    };
    let hybrid = match args.hybrid.spec(|| Ok(calib.to_vec()))? {
        Some(spec) => {
            let h = Hybrid::build(&model, &Kernels::new(), &spec)?;
            println!("{}", crate::hybrid::describe(&h));
            Some(std::sync::Arc::new(h))
        }
        None => None,
    };
    let bw = measure_bandwidth(1024, &args.threads);
    if !args.json {
        println!(
            "{}: {:.1} MB of weights read per dense decode step; prompt {} tokens, {} decode steps",
            path.display(),
            dense_bytes as f64 / 1e6,
            prompt.len(),
            args.decode_tokens
        );
        println!(
            "{:<22} {:>3} {:>9} {:>12} {:>11} {:>8} {:>9} {:>10} {:>8} {:>9} {:>10} {:>7}",
            "policy",
            "thr",
            "density",
            "prefill t/s",
            "decode t/s",
            "vs dense",
            "BW GB/s",
            "bound t/s",
            "% bound",
            "MB/token",
            "byte bound",
            "pred %"
        );
    }
    for (&threads, &bw) in args.threads.iter().zip(&bw) {
        let kernels = Kernels::new().with_threads(threads)?;
        let mut policies = vec![("dense".to_string(), FfnPolicy::Dense, &model)];
        let densities = if args.dense_only {
            &[][..]
        } else {
            &args.densities[..]
        };
        for &d in densities {
            let per_layer = thresholds_for_density(&model, &kernels, calib, d)?;
            policies.push((
                format!("threshold:{d}"),
                FfnPolicy::Threshold { per_layer },
                &model,
            ));
        }
        if let Some(set) = predictor.as_ref().filter(|_| !args.dense_only) {
            for m in std::iter::once(&model).chain(&sparse_model) {
                let name = format!("predictor({} down)", m.down_t_layout());
                let policy = FfnPolicy::Predictor {
                    set: set.clone(),
                    gate_check: None,
                };
                policies.push((name, policy, m));
            }
        }
        let mut runs: Vec<(String, &FfnPolicy, &Model, bool)> = Vec::new();
        for (name, policy, m) in &policies {
            runs.push((name.clone(), policy, m, false));
            // The split needs the model it was loaded for.
            if hybrid.is_some() && std::ptr::eq(*m, &model) {
                runs.push((format!("{name} +hybrid"), policy, m, true));
            }
        }
        let mut dense_rate = None;
        for (name, policy, model, split) in runs {
            let mut s = Session::new(
                model,
                kernels.clone(),
                prompt.len() + args.decode_tokens + 1,
            )?;
            if split {
                s.set_hybrid(hybrid.clone())?;
            }
            s.set_prefill(prefill);
            let start = Instant::now();
            let mut logits = s.forward(prompt, policy)?;
            let prefill = prompt.len() as f64 / start.elapsed().as_secs_f64();
            s.reset_stats();
            let start = Instant::now();
            for _ in 0..args.decode_tokens {
                logits = s.forward(&[argmax(&logits)], policy)?;
            }
            let decode = args.decode_tokens as f64 / start.elapsed().as_secs_f64();
            let density = s.stats().density();
            if split && !args.json {
                let h = &s.stats().hybrid;
                let per = |x: u64| x as f64 / args.decode_tokens.max(1) as f64;
                println!(
                    "  split (per decode token): host {:.0} / device {:.0} neurons, {:.1} KB over the link, host waited {:.2} ms",
                    per(h.host_neurons),
                    per(h.device_neurons),
                    per(h.link_bytes) / 1e3,
                    h.wait_time.as_secs_f64() * 1e3 / args.decode_tokens as f64
                );
            }
            let dense = *dense_rate.get_or_insert(decode);
            // The bound is for dense decoding: every weight byte once per token.
            let bound = bw * 1e9 / dense_bytes as f64;
            // This policy's own bytes per step (FFN as measured, predictors included)
            // and the speedup over dense they allow.
            let bytes = other_bytes + s.stats().bytes_per_token();
            let byte_bound = dense_bytes as f64 / bytes;
            // Predictor time as a share of the sparse FFN's kernel time.
            let pred = s.stats().predictor_time.as_secs_f64()
                / s.stats().ffn_time.as_secs_f64().max(1e-12);
            if args.json {
                println!(
                    "{{\"policy\":\"{name}\",\"threads\":{threads},\"density\":{density:.4},\"prefill_tok_s\":{prefill:.2},\"decode_tok_s\":{decode:.2},\"speedup\":{:.3},\"bw_gbps\":{bw:.2},\"bound_tok_s\":{bound:.2},\"dense_bytes\":{dense_bytes},\"bytes_per_token\":{bytes:.0},\"byte_bound_speedup\":{byte_bound:.3},\"predictor_share\":{pred:.4}}}",
                    decode / dense
                );
            } else {
                println!(
                    "{name:<22} {threads:>3} {:>8.1}% {prefill:>12.1} {decode:>11.1} {:>7.2}x {bw:>9.1} {bound:>10.1} {:>7.0}% {:>9.1} {:>9.2}x {:>6.1}%",
                    100.0 * density,
                    decode / dense,
                    100.0 * decode / bound,
                    bytes / 1e6,
                    byte_bound,
                    100.0 * pred
                );
            }
        }
    }
    Ok(())
}
