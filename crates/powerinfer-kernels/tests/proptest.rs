//! Property tests over random shapes, index lists, thread counts and every ISA.

use powerinfer_kernels::{
    Activation, FfnScratch, FfnWeights, Isa, KernelError, Kernels, Matrix, Skip, WType,
    dequantize_row, quantize_matrix,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random case: type, shape, a sorted index subset, threads and a data seed.
#[derive(Debug, Clone)]
struct Case {
    wtype: WType,
    rows: usize,
    cols: usize,
    idx: Vec<u32>,
    threads: usize,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        select(WType::ALL.to_vec()),
        1usize..40,
        1usize..6,
        1usize..=4,
        any::<u64>(),
    )
        .prop_flat_map(|(wtype, rows, blocks, threads, seed)| {
            subsequence((0..rows as u32).collect::<Vec<_>>(), 0..=rows).prop_map(move |idx| Case {
                wtype,
                rows,
                cols: blocks * wtype.block_size().max(32),
                idx,
                threads,
                seed,
            })
        })
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn weights(c: &Case) -> Vec<u8> {
    quantize_matrix(c.wtype, &values(c.rows * c.cols, c.seed), c.rows, c.cols).expect("quantize")
}

fn kernels(isa: Isa, threads: usize) -> Kernels {
    Kernels::new()
        .with_isa(isa)
        .expect("isa")
        .with_threads(threads)
        .expect("pool")
}

fn isas() -> impl Iterator<Item = Isa> {
    Isa::ALL.into_iter().filter(|i| i.is_available())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gemv_rows_equals_the_matching_gemv_entries(c in case()) {
        let bytes = weights(&c);
        let m = Matrix::new(c.wtype, c.rows, c.cols, &bytes).expect("matrix");
        let x = values(c.cols, c.seed ^ 1);
        for isa in isas() {
            let k = kernels(isa, c.threads);
            let mut full = vec![0f32; c.rows];
            k.gemv(&m, &x, &mut full).expect("gemv");
            let mut part = vec![0f32; c.idx.len()];
            k.gemv_rows(&m, &x, &c.idx, &mut part).expect("gemv_rows");
            for (k, &i) in c.idx.iter().enumerate() {
                prop_assert_eq!(part[k].to_bits(), full[i as usize].to_bits(), "{} {} row {}", isa, c.wtype, i);
            }
        }
    }

    #[test]
    fn axpy_rows_matches_scalar_isa(c in case()) {
        let bytes = weights(&c);
        let m = Matrix::new(c.wtype, c.rows, c.cols, &bytes).expect("matrix");
        let h = values(c.idx.len(), c.seed ^ 2);
        let y0 = values(c.cols, c.seed ^ 3);
        let mut expect = y0.clone();
        kernels(Isa::Scalar, 1).axpy_rows(&m, &h, &c.idx, &mut expect).expect("scalar");
        // Error scale per column: Σ|h·w| + |y0|.
        let rb = c.wtype.row_bytes(c.cols).expect("row bytes");
        let mut scale: Vec<f32> = y0.iter().map(|v| v.abs()).collect();
        let mut row = vec![0f32; c.cols];
        for (&i, &hk) in c.idx.iter().zip(&h) {
            let i = i as usize;
            dequantize_row(c.wtype, &bytes[i * rb..(i + 1) * rb], &mut row).expect("decode");
            for (s, w) in scale.iter_mut().zip(&row) {
                *s += (hk * w).abs();
            }
        }
        for isa in isas() {
            let mut y = y0.clone();
            kernels(isa, c.threads).axpy_rows(&m, &h, &c.idx, &mut y).expect("axpy_rows");
            for (col, ((a, b), s)) in y.iter().zip(&expect).zip(&scale).enumerate() {
                prop_assert!((a - b).abs() <= 1e-5 * (s + 1.0), "{} {} col {}: {} vs {}", isa, c.wtype, col, a, b);
            }
        }
    }

    #[test]
    fn bad_index_lists_are_errors_not_panics(c in case(), at in any::<prop::sample::Index>(), out_of_range in any::<bool>()) {
        // Corrupt a non-empty list: an entry past the end, or one not above its predecessor.
        let mut idx = if c.idx.is_empty() { vec![0] } else { c.idx.clone() };
        let p = at.index(idx.len());
        if out_of_range || idx.len() == 1 {
            idx[p] = c.rows as u32 + (c.seed % 3) as u32;
        } else {
            let p = p.max(1);
            idx[p] = idx[p - 1];
        }
        let bytes = weights(&c);
        let m = Matrix::new(c.wtype, c.rows, c.cols, &bytes).expect("matrix");
        let x = values(c.cols, 5);
        let n = idx.len();
        let bad = |r: Result<(), KernelError>| matches!(r, Err(KernelError::BadIndex { .. }));
        for isa in isas() {
            let k = kernels(isa, c.threads);
            prop_assert!(bad(k.gemv_rows(&m, &x, &idx, &mut vec![0.0; n])));
            prop_assert!(bad(k.axpy_rows(&m, &vec![1.0; n], &idx, &mut vec![0.0; c.cols])));
            prop_assert!(bad(k.gemm_rows(&m, &x, 1, &idx, &mut vec![0.0; n])));
            prop_assert!(bad(k.axpy_rows_batch(&m, &vec![1.0; n], 1, &idx, &mut vec![0.0; c.cols])));
            let w = FfnWeights { gate: m, up: None, down_t: m.into(), gate_bias: None, act: Activation::Relu };
            let r = k.ffn_sparse(&w, &x, Some(&idx), Skip::None, &mut vec![0.0; c.cols], &mut FfnScratch::default());
            prop_assert!(bad(r.map(drop)));
        }
    }
}
