//! Throughput harness for the batched (prefill) GEMM and the quantized axpy, not a
//! correctness test: `cargo test --release -p powerinfer-kernels --test timing --
//! --ignored --nocapture`. Prints GFLOP/s (gemm) and GB/s of weights (axpy_rows).

use std::time::Instant;

use powerinfer_kernels::{Kernels, Matrix, WType, quantize_matrix};

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// Best of `reps` runs of `f`, in seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "timing harness; run with --ignored --nocapture in release"]
fn gemm_throughput() {
    let k = Kernels::new().with_threads(1).unwrap();
    for (wtype, rows, cols, n) in [
        (WType::Q4_1, 1536, 576, 128),
        (WType::Q8_0, 576, 576, 128),
        (WType::F32, 576, 576, 64),
        (WType::F32, 576, 576, 12),
        (WType::Q4_1, 1536, 576, 16),
    ] {
        let bytes = quantize_matrix(wtype, &values(rows * cols, 1), rows, cols).unwrap();
        let m = Matrix::new(wtype, rows, cols, &bytes).unwrap();
        let xs = values(n * cols, 2);
        let mut ys = vec![0f32; n * rows];
        let s = best(15, || k.gemm(&m, &xs, n, &mut ys).unwrap());
        let gflops = 2.0 * (rows * cols * n) as f64 / s / 1e9;
        println!(
            "gemm {wtype} {rows}x{cols} n={n} t1: {:.3} ms, {gflops:.2} GFLOP/s",
            s * 1e3
        );
    }
}

#[test]
#[ignore = "timing harness; run with --ignored --nocapture in release"]
fn axpy_rows_throughput() {
    let k = Kernels::new().with_threads(1).unwrap();
    let (rows, cols) = (1536, 576);
    for wtype in [WType::Q8_0, WType::Q4_0, WType::Q4_1] {
        let bytes = quantize_matrix(wtype, &values(rows * cols, 3), rows, cols).unwrap();
        let m = Matrix::new(wtype, rows, cols, &bytes).unwrap();
        for density in [100, 30] {
            let idx: Vec<u32> = (0..rows as u32)
                .filter(|i| (i * 37 % 100) < density)
                .collect();
            let h = values(idx.len(), 4);
            let mut y = vec![0f32; cols];
            let s = best(200, || k.axpy_rows(&m, &h, &idx, &mut y).unwrap());
            let gbs = (idx.len() * m.row_bytes()) as f64 / s / 1e9;
            println!(
                "axpy_rows {wtype} {rows}x{cols} {density}% t1 (cache-warm): {:.1} us, {gbs:.2} GB/s",
                s * 1e6
            );
        }
    }
}
