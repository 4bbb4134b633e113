//! The attention head kernels: every ISA bitwise equal to the scalar reference, close to
//! f64 math, on odd widths, position counts, strides and offsets; bad shapes are errors.

mod common;

use common::*;
use powerinfer_kernels::{HeadRows, Isa, KernelError};

#[test]
fn head_kernels_match_the_reference_everywhere() {
    let reference = kernels(Isa::Scalar, 1);
    for isa in isas() {
        let k = kernels(isa, 1);
        for width in [1, 7, 8, 9, 16, 33, 64, 100, 128] {
            for len in [1, 2, 7, 8, 9, 17, 64, 201] {
                for (stride, offset) in [(width, 0), (3 * width + 5, width + 2)] {
                    let data = random_vec(len * stride + offset + width, (width * 7 + len) as u64);
                    let rows = HeadRows::new(&data, stride, offset, width, len).unwrap();
                    let q = random_vec(width, len as u64 + 3);
                    let what = format!("{isa} width {width} len {len} stride {stride}");
                    let (mut s, mut sr) = (vec![0f32; len], vec![0f32; len]);
                    k.head_scores(&rows, &q, &mut s).unwrap();
                    reference.head_scores(&rows, &q, &mut sr).unwrap();
                    for p in 0..len {
                        assert_eq!(s[p].to_bits(), sr[p].to_bits(), "scores {what} pos {p}");
                        let row = &data[p * stride + offset..][..width];
                        let (want, scale) = dot64(row, &q);
                        assert_close(&format!("scores {what} pos {p}"), s[p], want, scale, 2e-5);
                    }
                    let w = random_vec(len, width as u64 + 11);
                    let (mut o, mut or) = (vec![f32::NAN; width], vec![0f32; width]);
                    k.head_mix(&rows, &w, &mut o).unwrap();
                    reference.head_mix(&rows, &w, &mut or).unwrap();
                    for i in 0..width {
                        assert_eq!(o[i].to_bits(), or[i].to_bits(), "mix {what} value {i}");
                        let col: Vec<f32> =
                            (0..len).map(|p| data[p * stride + offset + i]).collect();
                        let (want, scale) = dot64(&col, &w);
                        assert_close(&format!("mix {what} value {i}"), o[i], want, scale, 2e-5);
                    }
                }
            }
        }
    }
}

#[test]
fn bad_head_shapes_are_typed_errors() {
    let data = vec![0f32; 100];
    // 10 positions of 8 values, 10 apart: the last ends at 98.
    assert!(HeadRows::new(&data, 10, 2, 8, 10).is_ok());
    for (stride, offset, width, len) in [(10, 3, 8, 10), (10, 0, 8, 11), (4, 0, 8, 3)] {
        assert!(
            matches!(
                HeadRows::new(&data, stride, offset, width, len),
                Err(KernelError::Length { .. })
            ),
            "{stride} {offset} {width} {len}"
        );
    }
    let rows = HeadRows::new(&data, 10, 2, 8, 10).unwrap();
    let k = kernels(Isa::Scalar, 1);
    assert!(k.head_scores(&rows, &[0.0; 7], &mut [0.0; 10]).is_err());
    assert!(k.head_scores(&rows, &[0.0; 8], &mut [0.0; 9]).is_err());
    assert!(k.head_mix(&rows, &[0.0; 9], &mut [0.0; 8]).is_err());
    assert!(k.head_mix(&rows, &[0.0; 10], &mut [0.0; 7]).is_err());
}
