//! Grouped and blocked kernels keep the per-element arithmetic of the plain ones.

mod common;

use common::{TestMatrix, fit, isas, kernels, random_idx, random_vec};
use powerinfer_kernels::WType;

/// `axpy_rows` applies rows four at a time where the ISA can; that must be exactly the
/// same updates, in the same order, as one row at a time (for every type and ISA).
#[test]
fn axpy_rows_groups_of_four_equal_row_by_row() {
    for isa in isas() {
        let k = kernels(isa, 1);
        for wtype in WType::ALL {
            for cols in [32, 96, 576] {
                let (rows, cols) = (23, fit(wtype, cols));
                let m = TestMatrix::random(wtype, rows, cols, 31);
                let idx = random_idx(rows, 0.7, 32);
                let h = random_vec(idx.len(), 33);
                let y0 = random_vec(cols, 34);
                let mut grouped = y0.clone();
                k.axpy_rows(&m.matrix(), &h, &idx, &mut grouped).unwrap();
                let mut single = y0;
                for (i, hk) in idx.iter().zip(&h) {
                    k.axpy_rows(&m.matrix(), &[*hk], &[*i], &mut single)
                        .unwrap();
                }
                assert_eq!(grouped, single, "{isa} {wtype} cols {cols}");
            }
        }
    }
}

/// `gemm` computes blocks of rows × tokens; every output must equal the one-row,
/// one-token `gemm` exactly, whatever block it falls in.
#[test]
fn gemm_blocks_equal_single_row_single_token() {
    for isa in isas() {
        for threads in [1, 2] {
            let k = kernels(isa, threads);
            for wtype in WType::ALL {
                for (rows, cols, n) in [(9, 64, 7), (6, 96, 5), (5, 32 * 3 + 8 * 2, 4), (3, 101, 4)]
                {
                    let cols = match wtype.block_size() {
                        b if b > 32 => fit(wtype, cols),
                        b => cols / b * b,
                    };
                    let m = TestMatrix::random(wtype, rows, cols, 41);
                    let xs = random_vec(n * cols, 42);
                    let mut ys = vec![0f32; n * rows];
                    k.gemm(&m.matrix(), &xs, n, &mut ys).unwrap();
                    for r in 0..rows {
                        for b in 0..n {
                            let mut y = [0f32];
                            let x = &xs[b * cols..(b + 1) * cols];
                            k.gemm_rows(&m.matrix(), x, 1, &[r as u32], &mut y).unwrap();
                            assert_eq!(
                                ys[b * rows + r],
                                y[0],
                                "{isa} t{threads} {wtype} r{r} b{b}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// `gemv` and `gemv_rows` dot rows four at a time where the ISA can, and split rows
/// over threads; every output must equal the one-row `gemv_rows` exactly, whatever
/// group or task it falls in (for every type, ISA and thread count, with matrices large
/// enough to be split over threads).
#[test]
fn gemv_groups_equal_single_row() {
    for isa in isas() {
        for threads in [1, 2] {
            let k = kernels(isa, threads);
            for wtype in WType::ALL {
                for (rows, cols) in [(23, 96), (203, 576), (7, 32)] {
                    let cols = fit(wtype, cols);
                    let m = TestMatrix::random(wtype, rows, cols, 51);
                    let x = random_vec(cols, 52);
                    let mut dense = vec![0f32; rows];
                    k.gemv(&m.matrix(), &x, &mut dense).unwrap();
                    let idx = random_idx(rows, 0.6, 53);
                    let mut gathered = vec![0f32; idx.len()];
                    k.gemv_rows(&m.matrix(), &x, &idx, &mut gathered).unwrap();
                    for (r, d) in dense.iter().enumerate() {
                        let mut y = [0f32];
                        k.gemv_rows(&m.matrix(), &x, &[r as u32], &mut y).unwrap();
                        let what = format!("{isa} t{threads} {wtype} {rows}x{cols} r{r}");
                        assert_eq!(d.to_bits(), y[0].to_bits(), "{what}");
                    }
                    for (g, &i) in gathered.iter().zip(&idx) {
                        let what = format!("{isa} t{threads} {wtype} {rows}x{cols} idx {i}");
                        assert_eq!(g.to_bits(), dense[i as usize].to_bits(), "{what}");
                    }
                }
            }
        }
    }
}
