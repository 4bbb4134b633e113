//! Hugging Face checkpoints (`tests/data/hf/`, written by `scripts/hf_reference.py`
//! with an independent float64 numpy forward that follows the `transformers` modeling
//! code) load from their directories and match the reference; the same model written
//! as GGUF gives identical logits; quantize-at-load stays within its tolerance.

use std::path::{Path, PathBuf};

mod common;
use common::rel_err;

use powerinfer_core::gguf::GgufFile;
use powerinfer_core::hf::{ConvertOptions, HfCheckpoint};
use powerinfer_core::{Arch, FfnPolicy, LoadOptions, Model, Prefill, Session};
use powerinfer_kernels::{Kernels, WType};
use serde_json::Value;

const MODELS: [&str; 7] = [
    "llama",
    "relu_llama",
    "mistral",
    "bamboo",
    "opt",
    "falcon",
    "falcon_relu",
];

fn dir(name: &str) -> PathBuf {
    common::data("hf").join(name)
}

struct Reference {
    tokens: Vec<u32>,
    logits: Vec<f32>,
}

fn reference(name: &str) -> Reference {
    let d = dir(name);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("reference.json")).unwrap()).unwrap();
    let tokens = meta["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let logits = std::fs::read(d.join(meta["logits"].as_str().unwrap()))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Reference { tokens, logits }
}

fn prefill(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut s = Session::new(model, Kernels::new(), 32).unwrap();
    s.set_prefill(Prefill::Exact);
    s.forward_all(tokens, &FfnPolicy::Dense).unwrap()
}

fn decode(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut s = Session::new(model, Kernels::new(), 32).unwrap();
    tokens
        .iter()
        .flat_map(|&t| s.forward(&[t], &FfnPolicy::Dense).unwrap())
        .collect()
}

#[test]
fn every_architecture_matches_the_reference_in_prefill_and_decode() {
    for name in MODELS {
        let r = reference(name);
        let model = Model::open(dir(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let vocab = model.config().vocab;
        assert_eq!(r.logits.len(), r.tokens.len() * vocab, "{name}");
        let got = prefill(&model, &r.tokens);
        assert_eq!(got.len(), r.logits.len(), "{name}");
        let err = rel_err(&got, &r.logits);
        println!("{name}: prefill max rel err {err:.2e}");
        assert!(err < 2e-4, "{name} prefill: rel err {err}");
        let got = decode(&model, &r.tokens);
        let err = rel_err(&got, &r.logits);
        println!("{name}: decode max rel err {err:.2e}");
        assert!(err < 2e-4, "{name} decode: rel err {err}");
    }
}

#[test]
fn configs_pick_the_architecture_and_activation() {
    use powerinfer_kernels::Activation;
    let want = [
        ("llama", Arch::Llama, Activation::SwiGlu, 2),
        ("relu_llama", Arch::Llama, Activation::ReGlu, 4),
        ("mistral", Arch::Llama, Activation::SwiGlu, 1),
        ("bamboo", Arch::Bamboo, Activation::DRelu, 2),
        ("opt", Arch::Opt, Activation::Relu, 4),
        // Old-architecture multi-query Falcon has one KV head, whatever its
        // `num_kv_heads` (4 here, as transformers writes it) says.
        ("falcon", Arch::Falcon, Activation::Gelu, 1),
        ("falcon_relu", Arch::Falcon, Activation::Relu, 2),
    ];
    for (name, arch, act, kv) in want {
        let model = Model::open(dir(name)).unwrap();
        let c = model.config();
        assert_eq!(
            (c.arch, c.activation, c.n_kv_heads),
            (arch, act, kv),
            "{name}"
        );
        assert_eq!((c.dim, c.n_layers, c.n_heads, c.head_dim), (64, 2, 4, 16));
    }
}

/// The GGUF the checkpoint converts to, written out and read back.
fn through_gguf_file(ck: &HfCheckpoint, opts: &ConvertOptions<'_>, path: &Path) -> Model {
    ck.to_gguf(opts).unwrap().write(path).unwrap();
    Model::open(path).unwrap()
}

#[test]
fn the_same_weights_as_gguf_give_identical_logits() {
    let tmp = std::env::temp_dir().join(format!("powerinfer-hf-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in MODELS {
        let r = reference(name);
        let ck = HfCheckpoint::open(dir(name)).unwrap();
        let direct =
            Model::from_hf(&ck, &ConvertOptions::default(), &LoadOptions::default()).unwrap();
        let file = tmp.join(format!("{name}.gguf"));
        let written = through_gguf_file(&ck, &ConvertOptions::default(), &file);
        assert_eq!(
            prefill(&direct, &r.tokens),
            prefill(&written, &r.tokens),
            "{name}: GGUF vs in-memory"
        );
        // The written file is an ordinary GGUF: architecture, tokenizer and all.
        let g = GgufFile::open(&file).unwrap();
        assert_eq!(g.architecture().unwrap(), direct.config().arch.name());
        assert!(
            g.get("tokenizer.ggml.tokens").is_some(),
            "{name}: tokenizer"
        );
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn quantize_at_load_stays_within_the_quantization_tolerance() {
    let tmp = std::env::temp_dir().join(format!("powerinfer-hf-q-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    // Max |Δlogit| over the largest |logit| against the reference, every matrix (the
    // embedding and tied head included) quantized. Measured on these random models:
    // q8_0 1.2e-2 … 2.5e-2, q4_1 0.16 … 0.34, q4_0 0.21 … 0.29 (4 bits on Gaussian
    // weights at dim 64 is coarse); bounds with margin.
    for (wtype, bound) in [
        (WType::Q8_0, 4e-2),
        (WType::Q4_1, 0.45),
        (WType::Q4_0, 0.45),
    ] {
        for name in MODELS {
            let r = reference(name);
            let ck = HfCheckpoint::open(dir(name)).unwrap();
            let opts = ConvertOptions {
                quantize: Some(wtype),
                progress: None,
            };
            let model = Model::from_hf(&ck, &opts, &LoadOptions::default()).unwrap();
            assert_eq!(model.ffn_wtype(), Some(wtype), "{name}");
            let got = prefill(&model, &r.tokens);
            let err = rel_err(&got, &r.logits);
            println!("{name} {wtype}: max rel err vs reference {err:.2e}");
            assert!(err < bound, "{name} {wtype}: {err}");
            // Through `LoadOptions` (what `generate --quantize` uses): the same model.
            let opened = Model::open_with(
                dir(name),
                &LoadOptions {
                    quantize: Some(wtype),
                    ..LoadOptions::default()
                },
            )
            .unwrap();
            assert_eq!(prefill(&opened, &r.tokens), got, "{name} {wtype}");
            // A GGUF written from the quantized conversion gives the same logits.
            let file = tmp.join(format!("{name}-{wtype}.gguf"));
            let written = through_gguf_file(&ck, &opts, &file);
            assert_eq!(prefill(&written, &r.tokens), got, "{name} {wtype} GGUF");
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn progress_reports_reach_the_total() {
    // Falcon's fused qkv feeds three tensors: its bytes still count once.
    for name in ["llama", "falcon"] {
        let ck = HfCheckpoint::open(dir(name)).unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let report = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
        let opts = ConvertOptions {
            quantize: Some(WType::Q8_0),
            progress: Some(&report),
        };
        ck.to_gguf(&opts).unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(seen.len() > 10, "{name}");
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "{name}: monotonic"
        );
        let (done, total) = *seen.last().unwrap();
        assert_eq!(done, total, "{name}");
        // Every stored tensor is read: the last tensor's report is the total, and no
        // earlier one reaches it.
        let (last_tensor, rest) = seen[..seen.len() - 1].split_last().unwrap();
        assert_eq!(last_tensor.0, total, "{name}");
        assert!(
            rest.iter().all(|&(d, _)| d < total),
            "{name}: counted twice"
        );
    }
}

#[test]
fn an_engine_loads_a_checkpoint_directory_and_generates_greedily() {
    use powerinfer_core::engine::{Engine, EngineOptions, GenerateParams};
    use powerinfer_core::sampler::SamplerParams;
    for name in ["falcon_relu", "llama"] {
        let engine = Engine::load(dir(name), &EngineOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let params = GenerateParams {
            max_tokens: 6,
            sampler: SamplerParams {
                temperature: 0.0,
                repetition_penalty: 1.0,
                ..SamplerParams::default()
            },
            ..GenerateParams::default()
        };
        let tokens: Vec<_> = engine
            .generate("The quick brown fox", &params)
            .unwrap()
            .map(|t| t.unwrap())
            .collect();
        assert!(!tokens.is_empty(), "{name}");
        // Greedy: each token is the argmax of the model's logits after the text so far.
        let model = Model::open(dir(name)).unwrap();
        let tok = engine.tokenizer();
        let prompt = tok.encode("The quick brown fox", tok.adds_bos()).unwrap();
        let mut s = Session::new(&model, Kernels::new(), 32).unwrap();
        let mut logits = s.forward(&prompt, &FfnPolicy::Dense).unwrap();
        for t in &tokens {
            let best = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as u32;
            assert_eq!(t.id, best, "{name}");
            logits = s.forward(&[t.id], &FfnPolicy::Dense).unwrap();
        }
        println!(
            "{name}: {:?}",
            tokens.iter().map(|t| t.text.as_str()).collect::<String>()
        );
    }
}

#[test]
fn the_checkpoints_tokenizer_encodes_like_hugging_face() {
    // `tokenizer_cases.json`: HF tokenizers' ids (add_special_tokens=False) for the
    // tokenizer.json every test checkpoint carries.
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(common::data("hf/tokenizer_cases.json")).unwrap(),
    )
    .unwrap();
    let engine = powerinfer_core::engine::Engine::load(
        dir("opt"),
        &powerinfer_core::engine::EngineOptions::default(),
    )
    .unwrap();
    let tok = engine.tokenizer();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text, false).unwrap(), want, "{text:?}");
        assert_eq!(tok.decode(&want).unwrap(), text);
    }
}
