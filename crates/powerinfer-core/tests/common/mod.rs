//! Helpers shared by the model-level tests: test-data paths, error measures, and a
//! ReLU model with PowerInfer predictor tensors.
#![allow(dead_code)]

use std::path::PathBuf;

use half::f16;
use powerinfer_core::gguf::{GgufFile, GgufWriter};
use powerinfer_core::powerinfer_predictors::SPARSE_THRESHOLD_KEY;
use powerinfer_kernels::WType;

/// Largest |a − b| over the largest |b|.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The ReLU-LLaMA reference model with PowerInfer predictor tensors of rank `r` added
/// (`fc2` scaled by `fc2_scale`), as PowerInfer's converter lays them out, magic `PWRI`.
pub fn with_powerinfer_predictors(
    r: u64,
    fc2_scale: f32,
    threshold: f32,
    drop: Option<&str>,
) -> Vec<u8> {
    let f = GgufFile::open(data("ref_relu_llama.gguf")).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.add(k, v.clone());
    }
    w.add(SPARSE_THRESHOLD_KEY, threshold);
    for t in f.tensors() {
        w.add_tensor(&t.name, &t.dims, t.wtype, f.tensor_data(t).to_vec())
            .unwrap();
    }
    let (d, n_ff) = (64u64, 160u64);
    let f16s = |n: u64, seed: u64, scale: f32| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let v = (((i * 2654435761 + seed) % 1000) as f32 / 500.0 - 1.0) * scale;
                f16::from_f32(v).to_le_bytes()
            })
            .collect()
    };
    for l in 0..2u64 {
        let (n1, n2) = (format!("blk.{l}.fc1.weight"), format!("blk.{l}.fc2.weight"));
        if drop != Some(n1.as_str()) {
            w.add_tensor(&n1, &[d, r], WType::F16, f16s(d * r, l, 0.3))
                .unwrap();
        }
        if drop != Some(n2.as_str()) {
            w.add_tensor(
                &n2,
                &[r, n_ff],
                WType::F16,
                f16s(r * n_ff, l + 7, fc2_scale),
            )
            .unwrap();
        }
    }
    let mut bytes = w.to_bytes().unwrap();
    bytes[..4].copy_from_slice(b"PWRI");
    bytes
}
