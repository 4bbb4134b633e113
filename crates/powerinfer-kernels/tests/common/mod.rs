//! Shared helpers: random weights, f64 ground truth, tolerances, every ISA level.
#![allow(dead_code)]

use powerinfer_kernels::{Isa, Kernels, WType, dequantize_row, quantize_matrix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A weight matrix in some type plus its exact decoded values.
pub struct TestMatrix {
    pub wtype: WType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Vec<u8>,
    pub values: Vec<f32>,
}

impl TestMatrix {
    pub fn random(wtype: WType, rows: usize, cols: usize, seed: u64) -> TestMatrix {
        let mut rng = StdRng::seed_from_u64(seed);
        let src: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let bytes = quantize_matrix(wtype, &src, rows, cols).expect("quantize");
        let rb = wtype.row_bytes(cols).expect("row bytes");
        let mut values = vec![0f32; rows * cols];
        for r in 0..rows {
            dequantize_row(
                wtype,
                &bytes[r * rb..(r + 1) * rb],
                &mut values[r * cols..(r + 1) * cols],
            )
            .expect("dequantize");
        }
        TestMatrix {
            wtype,
            rows,
            cols,
            bytes,
            values,
        }
    }

    pub fn matrix(&self) -> powerinfer_kernels::Matrix<'_> {
        powerinfer_kernels::Matrix::new(self.wtype, self.rows, self.cols, &self.bytes)
            .expect("matrix")
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }
}

pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// Exact dot in f64 and the scale Σ|w·x| that errors are measured against.
pub fn dot64(w: &[f32], x: &[f32]) -> (f64, f64) {
    w.iter().zip(x).fold((0.0, 0.0), |(s, a), (&w, &x)| {
        let p = w as f64 * x as f64;
        (s + p, a + p.abs())
    })
}

/// Relative tolerance of a result against exact math: quantized types also quantize
/// the activations to 8 bits (error ≤ ½ step of 1/127 of the block max).
pub fn tol(wtype: WType) -> f64 {
    if wtype.block_size() > 1 { 1.2e-2 } else { 2e-5 }
}

/// Tolerance of one ISA against the scalar reference (same algorithm, other order).
pub const ISA_TOL: f64 = 2e-5;

pub fn assert_close(what: &str, got: f32, want: f64, scale: f64, rel: f64) {
    let err = (got as f64 - want).abs();
    assert!(
        err <= rel * scale + 1e-5,
        "{what}: got {got}, want {want}, |err| {err} > {rel} × {scale}"
    );
}

/// Every ISA this CPU has, printing the ones it lacks.
pub fn isas() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|i| {
            let ok = i.is_available();
            if !ok {
                println!("skipping ISA {i}: not available on this CPU");
            }
            ok
        })
        .collect()
}

pub fn kernels(isa: Isa, threads: usize) -> Kernels {
    Kernels::new()
        .with_isa(isa)
        .expect("isa")
        .with_threads(threads)
        .expect("pool")
}

/// Column counts to sweep for a type: every multiple of the block up to 8 blocks
/// (float types: 1..=8 and some odd ones), plus two large ones.
pub fn col_sweep(wtype: WType) -> Vec<usize> {
    let b = wtype.block_size();
    let mut v: Vec<usize> = if b == 1 {
        vec![1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 67, 100, 255]
    } else {
        (1..=8).map(|k| k * b).collect()
    };
    v.extend([4096, 11008]);
    v
}

/// `n` rounded up to a whole number of `wtype`'s blocks (the K-quants' 256-value
/// super-blocks turn the odd test widths of the 32-value types into 256, 512, …).
pub fn fit(wtype: WType, n: usize) -> usize {
    n.div_ceil(wtype.block_size()).max(1) * wtype.block_size()
}

pub fn rows_for(cols: usize) -> Vec<usize> {
    if cols >= 4096 {
        vec![1, 3, 17]
    } else {
        vec![1, 2, 3, 5, 8, 13, 31, 32, 33, 67]
    }
}

/// A sorted random subset of 0..n with about `density` of the elements.
pub fn random_idx(n: usize, density: f64, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n as u32).filter(|_| rng.random_bool(density)).collect()
}

/// The index lists every sparse op is tried with.
pub fn idx_cases(n: usize, seed: u64) -> Vec<(&'static str, Vec<u32>)> {
    vec![
        ("empty", vec![]),
        ("single-first", vec![0]),
        ("single-last", vec![(n - 1) as u32]),
        ("all", (0..n as u32).collect()),
        ("random-30%", random_idx(n, 0.3, seed)),
    ]
}
