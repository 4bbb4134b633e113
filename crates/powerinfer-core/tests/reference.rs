//! The forward pass of every architecture against the independent numpy reference
//! (`scripts/reference.py`, float64 on the dequantized weights).

use std::path::PathBuf;

use powerinfer_core::{FfnPolicy, Model, Session};
use powerinfer_kernels::Kernels;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn index() -> Vec<Value> {
    let text = std::fs::read_to_string(data("ref_index.json")).expect("ref_index.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["entries"].as_array().expect("entries").clone()
}

fn read_f32(name: &str) -> Vec<f32> {
    std::fs::read(data(name))
        .expect("logits file")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn tokens(e: &Value) -> Vec<u32> {
    e["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

/// Largest |a − b| relative to the largest |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    a.iter()
        .zip(b)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64))
        / scale
}

/// Models whose every matrix is a float type are computed in f32 throughout; quantized
/// ones also quantize activations to 8 bits (as ggml does), and their down projection
/// is re-quantized to Q8_0 when transposed.
fn tolerance(e: &Value) -> f64 {
    let quantized = e["tensor_types"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t.as_str().unwrap().starts_with('Q'));
    if quantized { 2.5e-2 } else { 2e-4 }
}

#[test]
fn tiny_models_match_the_reference_in_prefill_and_decode() {
    for e in index().iter().filter(|e| e["file"] != "default") {
        let name = e["name"].as_str().unwrap();
        let model = Model::open(data(e["file"].as_str().unwrap())).unwrap();
        let want = read_f32(e["logits_file"].as_str().unwrap());
        let toks = tokens(e);
        let vocab = model.config().vocab;
        for threads in [1, 2] {
            let k = Kernels::new().with_threads(threads).unwrap();
            // Prefill: all tokens in one batched pass.
            let mut s = Session::new(&model, k.clone(), 32);
            let got = s.forward_all(&toks, &FfnPolicy::Dense).unwrap();
            let err = rel_err(&got, &want);
            println!("{name} t{threads} prefill: max rel err {err:.2e}");
            assert!(err < tolerance(e), "{name} prefill: rel err {err}");
            // Decode: one token at a time through the KV cache.
            let mut s = Session::new(&model, k, 32);
            for (p, &t) in toks.iter().enumerate() {
                let got = s.forward(&[t], &FfnPolicy::Dense).unwrap();
                let err = rel_err(&got, &want[p * vocab..(p + 1) * vocab]);
                assert!(err < tolerance(e), "{name} decode pos {p}: rel err {err}");
            }
        }
    }
}

#[test]
fn oracle_at_zero_equals_dense_and_reports_the_reference_density() {
    for e in index().iter().filter(|e| e.get("ffn_density").is_some()) {
        let name = e["name"].as_str().unwrap();
        let model = Model::open(data(e["file"].as_str().unwrap())).unwrap();
        let toks = tokens(e);
        let run = |policy: &FfnPolicy, batched: bool| {
            let mut s = Session::new(&model, Kernels::new(), 32);
            let logits = if batched {
                s.forward_all(&toks, policy).unwrap()
            } else {
                toks.iter()
                    .flat_map(|&t| s.forward(&[t], policy).unwrap())
                    .collect()
            };
            (logits, s.stats().clone())
        };
        for batched in [false, true] {
            let (dense, dense_stats) = run(&FfnPolicy::Dense, batched);
            let (oracle, stats) = run(&FfnPolicy::Oracle { threshold: 0.0 }, batched);
            assert_eq!(
                dense, oracle,
                "{name} batched={batched}: oracle(0) must equal dense exactly"
            );
            assert!((dense_stats.density() - 1.0).abs() < 1e-12);
            let want: Vec<f64> = e["ffn_density"]["per_layer_mean"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got = stats.density_per_layer();
            println!("{name} batched={batched}: density {got:?}, reference {want:?}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-9, "{name}: density {g} vs reference {w}");
            }
        }
    }
}
