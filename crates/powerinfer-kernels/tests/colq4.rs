//! The exact 4-bit transpose of a down projection and its sparse axpy: against the
//! source's values, against f64 ground truth, every ISA against the scalar reference,
//! thread counts and the batched form.

mod common;

use common::{ISA_TOL, TestMatrix, assert_close, idx_cases, isas, kernels, random_vec};
use powerinfer_kernels::{ColQ4, KernelError, Kernels, Matrix, WType};

/// (outputs, neurons) shapes: outputs are multiples of 32, neurons whole blocks.
const SHAPES: [(usize, usize); 6] = [
    (32, 32),
    (64, 96),
    (96, 32),
    (160, 224),
    (576, 1536),
    (32, 352),
];

#[test]
fn the_transpose_keeps_every_source_value_exactly() {
    for wtype in [WType::Q4_0, WType::Q4_1] {
        for (dim, n) in SHAPES {
            let src = TestMatrix::random(wtype, dim, n, (dim * n) as u64);
            let t = ColQ4::from_matrix(&src.matrix()).unwrap();
            assert_eq!((t.neurons(), t.dim()), (n, dim));
            // 4 bits per weight plus f16 d and m per output and block of 32 neurons.
            assert_eq!(t.bytes(), n * dim / 2 + 4 * dim * (n / 32));
            let mut col = vec![0f32; dim];
            for i in (0..n).step_by(7).chain([n - 1]) {
                t.dequantize_row(i, &mut col).unwrap();
                for (j, &v) in col.iter().enumerate() {
                    assert_eq!(
                        v,
                        src.values[j * n + i],
                        "{wtype} {dim}×{n}: neuron {i}, output {j}"
                    );
                }
            }
        }
    }
}

/// `y0 + Σ_k h_k · column idx[k]` in f64, and the scale Σ|h·w| errors are measured in.
fn reference(src: &TestMatrix, h: &[f32], idx: &[u32], y0: &[f32]) -> Vec<(f64, f64)> {
    (0..src.rows)
        .map(|j| {
            idx.iter()
                .zip(h)
                .fold((y0[j] as f64, y0[j].abs() as f64), |(s, a), (&i, &hk)| {
                    let p = hk as f64 * src.values[j * src.cols + i as usize] as f64;
                    (s + p, a + p.abs())
                })
        })
        .collect()
}

#[test]
fn sparse_axpy_matches_exact_math_at_every_isa_and_thread_count() {
    for wtype in [WType::Q4_0, WType::Q4_1] {
        for (dim, n) in SHAPES {
            let src = TestMatrix::random(wtype, dim, n, 3 + dim as u64);
            let t = ColQ4::from_matrix(&src.matrix()).unwrap();
            for (name, idx) in idx_cases(n, n as u64) {
                let h = random_vec(idx.len(), 5);
                let y0 = random_vec(dim, 6);
                let want = reference(&src, &h, &idx, &y0);
                let mut scalar = y0.clone();
                kernels(powerinfer_kernels::Isa::Scalar, 1)
                    .axpy_colq4(&t, &h, &idx, &mut scalar)
                    .unwrap();
                for isa in isas() {
                    let mut first: Option<Vec<f32>> = None;
                    for threads in [1, 2] {
                        let mut y = y0.clone();
                        kernels(isa, threads)
                            .axpy_colq4(&t, &h, &idx, &mut y)
                            .unwrap();
                        for j in 0..dim {
                            let what = format!("{wtype} {dim}×{n} {name} {isa} t{threads} y[{j}]");
                            assert_close(&what, y[j], want[j].0, want[j].1, 2e-6);
                            assert_close(&what, y[j], scalar[j] as f64, want[j].1, ISA_TOL);
                        }
                        match &first {
                            None => first = Some(y),
                            Some(f) => {
                                assert_eq!(f, &y, "{wtype} {dim}×{n} {name} {isa}: thread count")
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn the_batched_form_equals_one_token_at_a_time() {
    let (dim, n, tokens) = (160, 224, 5);
    let src = TestMatrix::random(WType::Q4_1, dim, n, 11);
    let t = ColQ4::from_matrix(&src.matrix()).unwrap();
    let idx = common::random_idx(n, 0.6, 12);
    let hs = random_vec(tokens * idx.len(), 13);
    for isa in isas() {
        let k = kernels(isa, 2);
        let mut batch = vec![0f32; tokens * dim];
        k.axpy_colq4_batch(&t, &hs, tokens, &idx, &mut batch)
            .unwrap();
        for b in 0..tokens {
            let mut y = vec![0f32; dim];
            k.single_threaded()
                .axpy_colq4(&t, &hs[b * idx.len()..(b + 1) * idx.len()], &idx, &mut y)
                .unwrap();
            assert_eq!(&batch[b * dim..(b + 1) * dim], &y[..], "{isa} token {b}");
        }
    }
}

#[test]
fn bad_operands_are_typed_errors() {
    let f16 = TestMatrix::random(WType::F16, 32, 32, 1);
    assert!(matches!(
        ColQ4::from_matrix(&f16.matrix()),
        Err(KernelError::Unsupported(_))
    ));
    let odd = TestMatrix::random(WType::Q4_1, 33, 32, 2);
    assert!(matches!(
        ColQ4::from_matrix(&odd.matrix()),
        Err(KernelError::NotBlockAligned { .. })
    ));
    let src = TestMatrix::random(WType::Q4_0, 32, 64, 3);
    let t = ColQ4::from_matrix(&src.matrix()).unwrap();
    let k = Kernels::new();
    let mut y = vec![0f32; 32];
    assert!(
        k.axpy_colq4(&t, &[1.0], &[64], &mut y).is_err(),
        "index past the end"
    );
    assert!(
        k.axpy_colq4(&t, &[1.0, 1.0], &[3, 2], &mut y).is_err(),
        "not increasing"
    );
    assert!(
        k.axpy_colq4(&t, &[1.0], &[1, 2], &mut y).is_err(),
        "h length"
    );
    assert!(
        k.axpy_colq4(&t, &[1.0], &[1], &mut y[..31]).is_err(),
        "y length"
    );
    assert!(t.dequantize_row(64, &mut y).is_err());
}

#[test]
fn the_fused_ffn_over_colq4_equals_it_over_an_exact_f32_transpose() {
    use powerinfer_kernels::{Activation, FfnScratch, FfnWeights, Skip, quantize_matrix};
    let (dim, n) = (64, 160);
    let gate = TestMatrix::random(WType::Q4_1, n, dim, 21);
    let up = TestMatrix::random(WType::Q4_1, n, dim, 22);
    let down = TestMatrix::random(WType::Q4_1, dim, n, 23);
    let exact: Vec<f32> = (0..n * dim)
        .map(|k| down.values[(k % dim) * n + k / dim])
        .collect();
    let f32_t = quantize_matrix(WType::F32, &exact, n, dim).unwrap();
    let col = ColQ4::from_matrix(&down.matrix()).unwrap();
    let x = random_vec(dim, 24);
    for isa in isas() {
        let k = kernels(isa, 2);
        let run = |down_t: powerinfer_kernels::DownRows| {
            let w = FfnWeights {
                gate: gate.matrix(),
                up: Some(up.matrix()),
                down_t,
                gate_bias: None,
                act: Activation::SwiGlu,
            };
            let mut y = vec![0f32; dim];
            let idx: Vec<u32> = (0..n as u32).step_by(3).collect();
            k.ffn_sparse(
                &w,
                &x,
                Some(&idx),
                Skip::Below(0.01),
                &mut y,
                &mut FfnScratch::default(),
            )
            .unwrap();
            y
        };
        let a = run((&col).into());
        let b = run(Matrix::new(WType::F32, n, dim, &f32_t).unwrap().into());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-5 * scale, "{isa}: {p} vs {q}");
        }
    }
}
