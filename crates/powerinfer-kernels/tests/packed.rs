//! The packed (row-interleaved) layout: every ISA level bitwise equal to the scalar
//! reference, all close to exact math and to the row-major kernels, on odd shapes and
//! thread counts; the batched form equal to one token at a time.

mod common;

use common::*;
use powerinfer_kernels::{Isa, KernelError, PackedMatrix, WType};

const PACKED: [WType; 3] = [WType::Q8_0, WType::Q4_0, WType::Q4_1];

#[test]
fn gemv_packed_matches_reference_everywhere() {
    let reference = kernels(Isa::Scalar, 1);
    for isa in isas() {
        for threads in [1, 2, 3] {
            let k = kernels(isa, threads);
            for wtype in PACKED {
                for cols in col_sweep(wtype) {
                    for rows in rows_for(cols) {
                        let m = TestMatrix::random(wtype, rows, cols, (rows * 37 + cols) as u64);
                        let p = PackedMatrix::pack(&m.matrix()).unwrap();
                        assert_eq!((p.rows(), p.cols(), p.wtype()), (rows, cols, wtype));
                        let x = random_vec(cols, cols as u64 + 5);
                        let (mut y, mut yr, mut ym) =
                            (vec![0f32; rows], vec![0f32; rows], vec![0f32; rows]);
                        k.gemv_packed(&p, &x, &mut y).unwrap();
                        reference.gemv_packed(&p, &x, &mut yr).unwrap();
                        k.gemv(&m.matrix(), &x, &mut ym).unwrap();
                        for r in 0..rows {
                            let what = format!(
                                "gemv_packed {isa} t{threads} {wtype} {rows}x{cols} row {r}"
                            );
                            assert_eq!(y[r].to_bits(), yr[r].to_bits(), "{what}: vs scalar");
                            let (want, scale) = dot64(m.row(r), &x);
                            assert_close(&what, y[r], want, scale, tol(wtype));
                            assert_close(
                                &format!("{what} vs row-major"),
                                y[r],
                                ym[r] as f64,
                                scale,
                                ISA_TOL,
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_packed_equals_gemv_packed_per_token() {
    for isa in isas() {
        for threads in [1, 2] {
            let k = kernels(isa, threads);
            for wtype in PACKED {
                for (rows, cols) in [(1, 32), (13, 96), (67, 256), (300, 576)] {
                    let m = TestMatrix::random(wtype, rows, cols, (rows + cols) as u64);
                    let p = PackedMatrix::pack(&m.matrix()).unwrap();
                    for n in [1, 2, 3, 7] {
                        let xs = random_vec(n * cols, (n * 11 + cols) as u64);
                        let mut ys = vec![f32::NAN; n * rows];
                        k.gemm_packed(&p, &xs, n, &mut ys).unwrap();
                        for t in 0..n {
                            let mut y = vec![0f32; rows];
                            k.gemv_packed(&p, &xs[t * cols..(t + 1) * cols], &mut y)
                                .unwrap();
                            for r in 0..rows {
                                assert_eq!(
                                    ys[t * rows + r].to_bits(),
                                    y[r].to_bits(),
                                    "gemm_packed {isa} t{threads} {wtype} {rows}x{cols} n{n} token {t} row {r}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn packing_refuses_other_types_and_wrong_shapes() {
    for wtype in [WType::F32, WType::F16, WType::BF16] {
        let m = TestMatrix::random(wtype, 3, 32, 1);
        assert!(!PackedMatrix::supports(wtype));
        assert!(matches!(
            PackedMatrix::pack(&m.matrix()),
            Err(KernelError::Unsupported(_))
        ));
    }
    let m = TestMatrix::random(WType::Q4_1, 9, 64, 2);
    let p = PackedMatrix::pack(&m.matrix()).unwrap();
    let k = kernels(Isa::Scalar, 1);
    let mut y = vec![0f32; 9];
    assert!(matches!(
        k.gemv_packed(&p, &[0.0; 32], &mut y),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        k.gemv_packed(&p, &[0.0; 64], &mut y[..8]),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        k.gemm_packed(&p, &[0.0; 128], 3, &mut [0.0; 27]),
        Err(KernelError::Length { .. })
    ));
}

#[test]
fn a_stack_computes_its_parts_one_after_another() {
    for isa in isas() {
        let k = kernels(isa, 2);
        for wtype in PACKED {
            // Parts whose row counts are not multiples of the group: rows of the next
            // part start inside a group.
            let parts: Vec<TestMatrix> = [5, 16, 3]
                .iter()
                .enumerate()
                .map(|(i, &rows)| TestMatrix::random(wtype, rows, 96, i as u64 + 40))
                .collect();
            let views: Vec<_> = parts.iter().map(|m| m.matrix()).collect();
            let stack = PackedMatrix::stack(&views).unwrap();
            assert_eq!(stack.rows(), 24);
            let x = random_vec(96, 9);
            let mut y = vec![0f32; 24];
            k.gemv_packed(&stack, &x, &mut y).unwrap();
            let mut want = Vec::new();
            for m in &views {
                let mut yp = vec![0f32; m.rows()];
                k.gemv_packed(&PackedMatrix::pack(m).unwrap(), &x, &mut yp)
                    .unwrap();
                want.extend(yp);
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want), "{isa} {wtype}");
        }
    }
    let a = TestMatrix::random(WType::Q4_0, 4, 64, 1);
    let b = TestMatrix::random(WType::Q8_0, 4, 64, 2);
    let c = TestMatrix::random(WType::Q4_0, 4, 32, 3);
    for bad in [
        vec![a.matrix(), b.matrix()],
        vec![a.matrix(), c.matrix()],
        vec![],
    ] {
        assert!(matches!(
            PackedMatrix::stack(&bad),
            Err(KernelError::Unsupported(_))
        ));
    }
}
