//! Criterion benches of every kernel op × weight type × density, at the 7B FFN shape
//! (11008 × 4096) and the default model's (1536 × 576).
//!
//! `cargo bench --bench kernels`. By default the 7B shape runs Q4_0 and F16 only; set
//! `POWERINFER_BENCH_FULL=1` for every type there. Weights are not rotated, so small
//! types may be cache resident: for bandwidth figures use
//! `cargo run --release --example bench -- kernels`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use powerinfer_kernels::{
    Activation, BundledFfn, FfnScratch, Kernels, Matrix, PackedMatrix, Skip, WType, quantize_matrix,
};

const DENSITIES: [usize; 5] = [100, 50, 20, 10, 5];

/// `(n_ff, dim, types)`: the shapes and the types benched at each.
fn shapes() -> Vec<(usize, usize, Vec<WType>)> {
    let full = std::env::var_os("POWERINFER_BENCH_FULL").is_some_and(|v| v != "0");
    let big = if full {
        WType::ALL.to_vec()
    } else {
        vec![WType::Q4_0, WType::F16]
    };
    vec![(1536, 576, WType::ALL.to_vec()), (11008, 4096, big)]
}

/// Every `step`-th neuron: `density`% of `n`, spread evenly.
fn spread(n: usize, density: usize) -> Vec<u32> {
    let take = (n * density / 100).max(1);
    (0..take).map(|k| (k * n / take) as u32).collect()
}

fn kernels(c: &mut Criterion) {
    let k = Kernels::new();
    for (n_ff, dim, types) in shapes() {
        let values: Vec<f32> = (0..n_ff * dim)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let x: Vec<f32> = values[..dim].to_vec();
        let h = vec![0.5f32; n_ff];
        for wtype in types {
            let bytes = quantize_matrix(wtype, &values, n_ff, dim).expect("quantize");
            let m = Matrix::new(wtype, n_ff, dim, &bytes).expect("matrix");
            let bundle =
                BundledFfn::pack(&m, Some(&m), &m, None, Activation::SwiGlu).expect("pack");
            let mut g = c.benchmark_group(format!("{wtype}/{n_ff}x{dim}"));
            g.warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(1))
                .sample_size(10);
            let mut y = vec![0f32; n_ff];
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_function("gemv", |b| b.iter(|| k.gemv(&m, &x, &mut y).expect("gemv")));
            if PackedMatrix::supports(wtype) {
                let p = PackedMatrix::pack(&m).expect("pack");
                g.bench_function("gemv_packed", |b| {
                    b.iter(|| k.gemv_packed(&p, &x, &mut y).expect("gemv_packed"))
                });
            }
            let mut scratch = FfnScratch::default();
            for d in DENSITIES {
                let idx = spread(n_ff, d);
                let n = idx.len();
                g.throughput(Throughput::Bytes((n * m.row_bytes()) as u64));
                g.bench_function(BenchmarkId::new("gemv_rows", d), |b| {
                    b.iter(|| k.gemv_rows(&m, &x, &idx, &mut y[..n]).expect("gemv_rows"))
                });
                g.bench_function(BenchmarkId::new("axpy_rows", d), |b| {
                    b.iter(|| {
                        k.axpy_rows(&m, &h[..n], &idx, &mut y[..dim])
                            .expect("axpy_rows")
                    })
                });
                g.throughput(Throughput::Bytes((n * bundle.neuron_bytes()) as u64));
                let w = bundle.weights();
                g.bench_function(BenchmarkId::new("ffn", d), |b| {
                    b.iter(|| {
                        k.ffn_sparse(&w, &x, Some(&idx), Skip::None, &mut y[..dim], &mut scratch)
                            .expect("ffn")
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
