//! Every operation × weight type × ISA level against f64 ground truth and against the
//! scalar reference, on odd shapes and every kind of index list.

mod common;

use common::*;
use powerinfer_kernels::{Activation, BundledFfn, FfnScratch, Isa, Matrix, Skip, WType, transpose};

#[test]
fn gemv_matches_reference_everywhere() {
    for isa in isas() {
        let k = kernels(isa, 2);
        let reference = kernels(Isa::Scalar, 1);
        for wtype in WType::ALL {
            for cols in col_sweep(wtype) {
                for rows in rows_for(cols) {
                    let m = TestMatrix::random(wtype, rows, cols, (rows * 31 + cols) as u64);
                    let x = random_vec(cols, cols as u64);
                    let mut y = vec![0f32; rows];
                    let mut yr = vec![0f32; rows];
                    k.gemv(&m.matrix(), &x, &mut y).unwrap();
                    reference.gemv(&m.matrix(), &x, &mut yr).unwrap();
                    for r in 0..rows {
                        let (want, scale) = dot64(m.row(r), &x);
                        let what = format!("gemv {isa} {wtype} {rows}x{cols} row {r}");
                        assert_close(&what, y[r], want, scale, tol(wtype));
                        assert_close(
                            &format!("{what} vs scalar"),
                            y[r],
                            yr[r] as f64,
                            scale,
                            ISA_TOL,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn gemv_rows_matches_reference_for_every_index_list() {
    for isa in isas() {
        let k = kernels(isa, 2);
        for wtype in WType::ALL {
            for (rows, cols) in [(1, 64), (67, 96), (200, 256), (40, 4096)] {
                let cols = fit(wtype, cols);
                let m = TestMatrix::random(wtype, rows, cols, 7);
                let x = random_vec(cols, 8);
                for (name, idx) in idx_cases(rows, 9) {
                    let mut y = vec![0f32; idx.len()];
                    k.gemv_rows(&m.matrix(), &x, &idx, &mut y).unwrap();
                    for (j, &i) in idx.iter().enumerate() {
                        let (want, scale) = dot64(m.row(i as usize), &x);
                        let what = format!("gemv_rows {isa} {wtype} {rows}x{cols} {name}");
                        assert_close(&what, y[j], want, scale, tol(wtype));
                    }
                }
            }
        }
    }
}

/// `y += Σ h_k · Wt[idx_k]` in f64, with the error scale Σ|h_k · w|.
fn axpy64(m: &TestMatrix, h: &[f32], idx: &[u32], y0: &[f32]) -> Vec<(f64, f64)> {
    (0..m.cols)
        .map(|c| {
            idx.iter()
                .zip(h)
                .fold((y0[c] as f64, y0[c].abs() as f64), |(s, a), (&i, &hk)| {
                    let p = hk as f64 * m.values[i as usize * m.cols + c] as f64;
                    (s + p, a + p.abs())
                })
        })
        .collect()
}

#[test]
fn axpy_rows_matches_reference_for_every_index_list() {
    for isa in isas() {
        for threads in [1, 2, 3] {
            let k = kernels(isa, threads);
            for wtype in WType::ALL {
                let col_cases: Vec<usize> = match wtype.block_size() {
                    1 => vec![1, 7, 67, 576, 4096],
                    32 => vec![32, 96, 256, 576, 4096],
                    _ => vec![256, 768, 4096],
                };
                for cols in col_cases {
                    let rows = 37;
                    let m = TestMatrix::random(wtype, rows, cols, 11);
                    for (name, idx) in idx_cases(rows, 12) {
                        let h = random_vec(idx.len(), 13);
                        let y0 = random_vec(cols, 14);
                        let mut y = y0.clone();
                        k.axpy_rows(&m.matrix(), &h, &idx, &mut y).unwrap();
                        for (c, (want, scale)) in axpy64(&m, &h, &idx, &y0).into_iter().enumerate()
                        {
                            let what =
                                format!("axpy_rows {isa} t{threads} {wtype} {cols} {name} col {c}");
                            assert_close(&what, y[c], want, scale, 2e-5);
                        }
                    }
                }
            }
        }
    }
}

/// Batched forms decode each weight row once and work in f32, so they match exact
/// math to f32 rounding for every type (the single-token forms quantize activations
/// for quantized types), and equal the single-token forms exactly for F32.
#[test]
fn batched_forms_match_reference_and_single_token_forms() {
    for isa in isas() {
        for threads in [1, 2] {
            let k = kernels(isa, threads);
            for wtype in WType::ALL {
                let (rows, cols, n) = (45, fit(wtype, 128), 5);
                let m = TestMatrix::random(wtype, rows, cols, 21);
                let xs = random_vec(n * cols, 22);
                let idx = random_idx(rows, 0.4, 23);
                let mut ys = vec![0f32; n * rows];
                k.gemm(&m.matrix(), &xs, n, &mut ys).unwrap();
                let mut ysr = vec![0f32; n * idx.len()];
                k.gemm_rows(&m.matrix(), &xs, n, &idx, &mut ysr).unwrap();
                for b in 0..n {
                    let x = &xs[b * cols..(b + 1) * cols];
                    for r in 0..rows {
                        let (want, scale) = dot64(m.row(r), x);
                        assert_close(
                            &format!("gemm {isa} t{threads} {wtype} token {b} row {r}"),
                            ys[b * rows + r],
                            want,
                            scale,
                            ISA_TOL,
                        );
                    }
                    for (j, &i) in idx.iter().enumerate() {
                        assert_eq!(
                            ysr[b * idx.len() + j],
                            ys[b * rows + i as usize],
                            "gemm_rows {isa} {wtype}"
                        );
                    }
                    if wtype == WType::F32 {
                        let mut y = vec![0f32; rows];
                        k.gemv(&m.matrix(), x, &mut y).unwrap();
                        assert_eq!(
                            &ys[b * rows..(b + 1) * rows],
                            &y[..],
                            "gemm = gemv {isa} {wtype}"
                        );
                    }
                }
                let mut hs = random_vec(n * idx.len(), 24);
                hs[1] = 0.0; // zero activations are skipped, which must not change anything
                let mut yb = random_vec(n * cols, 25);
                let y0 = yb.clone();
                k.axpy_rows_batch(&m.matrix(), &hs, n, &idx, &mut yb)
                    .unwrap();
                for b in 0..n {
                    let h = &hs[b * idx.len()..(b + 1) * idx.len()];
                    let y0b = &y0[b * cols..(b + 1) * cols];
                    for (c, (want, scale)) in axpy64(&m, h, &idx, y0b).into_iter().enumerate() {
                        assert_close(
                            &format!("axpy_rows_batch {isa} {wtype} token {b} col {c}"),
                            yb[b * cols + c],
                            want,
                            scale,
                            ISA_TOL,
                        );
                    }
                    if wtype == WType::F32 {
                        let mut y = y0b.to_vec();
                        k.axpy_rows(&m.matrix(), h, &idx, &mut y).unwrap();
                        assert_eq!(
                            &yb[b * cols..(b + 1) * cols],
                            &y[..],
                            "batch = single {isa} {wtype}"
                        );
                    }
                }
            }
        }
    }
}

/// f64 FFN over dequantized weights: (output, neurons that fire). `gates`/`ups` are the
/// pre-activations as the kernel computes them (with 8-bit activations for quantized
/// types), so a neuron sitting at the threshold is decided the same way on both sides.
fn ffn64(
    gates: &[f32],
    ups: &[f32],
    down_t: &[f32],
    act: Activation,
    x: &[f32],
    t: f32,
) -> (Vec<f64>, Vec<u32>) {
    let d = x.len();
    let mut y = vec![0f64; d];
    let mut fired = vec![];
    for (i, &g) in gates.iter().enumerate() {
        let a = act.gate(g);
        if a.abs() <= t {
            continue;
        }
        let u = ups[i];
        let h = act.combine(a, u) as f64;
        if h == 0.0 {
            continue;
        }
        fired.push(i as u32);
        for c in 0..d {
            y[c] += h * down_t[i * d + c] as f64;
        }
    }
    (y, fired)
}

#[test]
fn fused_ffn_matches_reference_for_every_activation() {
    for isa in isas() {
        for threads in [1, 2] {
            let k = kernels(isa, threads);
            for wtype in WType::ALL {
                for act in Activation::ALL {
                    let (n_ff, d) = (fit(wtype, 96), fit(wtype, 64));
                    let gate = TestMatrix::random(wtype, n_ff, d, 31);
                    let up = TestMatrix::random(wtype, n_ff, d, 32);
                    let down = TestMatrix::random(wtype, d, n_ff, 33);
                    let dt_bytes = transpose(&down.matrix(), WType::F32).unwrap();
                    let dt = Matrix::new(WType::F32, n_ff, d, &dt_bytes).unwrap();
                    let dt_vals: Vec<f32> = dt_bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    let upm = act.has_up().then(|| up.matrix());
                    let bundle =
                        BundledFfn::pack(&gate.matrix(), upm.as_ref(), &dt, None, act).unwrap();
                    let x = random_vec(d, 34);
                    let t = if act == Activation::SwiGlu { 0.05 } else { 0.0 };
                    let mut gates = vec![0f32; n_ff];
                    k.gemv(&gate.matrix(), &x, &mut gates).unwrap();
                    for (g, row) in gates.iter().zip(0..n_ff) {
                        let (want, scale) = dot64(gate.row(row), &x);
                        assert_close("gate", *g, want, scale, tol(wtype));
                    }
                    let mut ups = vec![0f32; n_ff];
                    k.gemv(&up.matrix(), &x, &mut ups).unwrap();
                    let (want, fired) = ffn64(&gates, &ups, &dt_vals, act, &x, t);
                    let mut y = vec![0f32; d];
                    let mut s = FfnScratch::default();
                    let n = k
                        .ffn_sparse(&bundle.weights(), &x, None, Skip::Below(t), &mut y, &mut s)
                        .unwrap();
                    assert_eq!(s.active(), &fired[..], "{isa} {wtype} {act:?}: active set");
                    assert_eq!(n, fired.len());
                    let scale: f64 = want.iter().map(|v| v.abs()).sum::<f64>() / d as f64 + 1.0;
                    for c in 0..d {
                        assert_close(
                            &format!("ffn {isa} t{threads} {wtype} {act:?} col {c}"),
                            y[c],
                            want[c],
                            scale,
                            5.0 * tol(wtype),
                        );
                    }
                    // Dense (no skipping) gives the same values where skipped neurons are exact zeros.
                    if act != Activation::SwiGlu {
                        let mut yd = vec![0f32; d];
                        k.ffn_sparse(&bundle.weights(), &x, None, Skip::None, &mut yd, &mut s)
                            .unwrap();
                        assert_eq!(s.active().len(), n_ff);
                        assert_eq!(
                            y, yd,
                            "{isa} {wtype} {act:?}: dense vs oracle at threshold 0"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    for isa in isas() {
        for wtype in WType::ALL {
            let m = TestMatrix::random(wtype, 300, 512, 41);
            let x = random_vec(512, 42);
            let idx = random_idx(300, 0.25, 43);
            let h = random_vec(idx.len(), 44);
            let run = |threads| {
                // 0 stands for the calling thread alone.
                let k = match threads {
                    0 => kernels(isa, 2).single_threaded(),
                    t => kernels(isa, t),
                };
                let mut y = vec![0f32; 300];
                k.gemv(&m.matrix(), &x, &mut y).unwrap();
                let mut z = vec![0f32; 512];
                k.axpy_rows(&m.matrix(), &h, &idx, &mut z).unwrap();
                (y, z)
            };
            let one = run(1);
            for t in [0, 2, 3, 4] {
                assert_eq!(one, run(t), "{isa} {wtype}: {t} threads differ from 1");
            }
        }
    }
}

#[test]
fn wrong_shapes_are_typed_errors() {
    use powerinfer_kernels::KernelError;
    let k = kernels(Isa::Scalar, 1);
    let m = TestMatrix::random(WType::Q4_0, 4, 64, 1);
    let mut y = vec![0f32; 4];
    assert!(matches!(
        k.gemv(&m.matrix(), &[0.0; 63], &mut y),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        k.gemv(&m.matrix(), &[0.0; 64], &mut [0.0; 3]),
        Err(KernelError::Length { .. })
    ));
    let mut y2 = vec![0f32; 2];
    assert!(matches!(
        k.gemv_rows(&m.matrix(), &[0.0; 64], &[2, 1], &mut y2),
        Err(KernelError::BadIndex {
            position: 1,
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        k.gemv_rows(&m.matrix(), &[0.0; 64], &[0, 4], &mut y2),
        Err(KernelError::BadIndex { index: 4, .. })
    ));
    assert!(matches!(
        k.axpy_rows(&m.matrix(), &[1.0], &[0, 1], &mut [0.0; 64]),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        Matrix::new(WType::Q4_0, 4, 64, &m.bytes[1..]),
        Err(KernelError::WeightBytes {
            expected: 144,
            got: 143,
            ..
        })
    ));
    assert!(matches!(
        Matrix::new(WType::Q8_0, 1, 33, &[0; 34]),
        Err(KernelError::NotBlockAligned { cols: 33, .. })
    ));
    assert!(matches!(
        WType::F32.matrix_bytes(usize::MAX, 2),
        Err(KernelError::SizeOverflow)
    ));
    assert!(matches!(
        k.gemm(&m.matrix(), &[0.0; 64], 2, &mut [0.0; 8]),
        Err(KernelError::Length { .. })
    ));
}
