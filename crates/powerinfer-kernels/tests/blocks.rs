//! Known-byte vectors: decoded values written out by hand from ggml's block definitions.

use powerinfer_kernels::{WType, dequantize_row, quantize_row};

/// f16 bit patterns: 0x3C00 = 1.0, 0x3800 = 0.5, 0xC000 = -2.0, 0x4000 = 2.0.
#[test]
fn q8_0_block_decodes_as_ggml_defines() {
    // d = 0.5, qs = 0, 1, -1, 127, -128, then 2 for the rest.
    let mut b = vec![0x00, 0x38, 0x00, 0x01, 0xFF, 0x7F, 0x80];
    b.extend([2u8; 27]);
    let mut out = [0f32; 32];
    dequantize_row(WType::Q8_0, &b, &mut out).unwrap();
    assert_eq!(&out[..5], &[0.0, 0.5, -0.5, 63.5, -64.0]);
    assert!(out[5..].iter().all(|&v| v == 1.0));
}

#[test]
fn q4_0_block_decodes_as_ggml_defines() {
    // d = 2.0; byte j: low nibble = value j, high nibble = value j + 16; x = d·(q − 8).
    let mut b = vec![0x00, 0x40];
    b.push(0xF0); // value 0: q=0 → -16; value 16: q=15 → 14
    b.push(0x98); // value 1: q=8 → 0;  value 17: q=9 → 2
    b.extend([0x88u8; 14]);
    let mut out = [0f32; 32];
    dequantize_row(WType::Q4_0, &b, &mut out).unwrap();
    assert_eq!((out[0], out[16], out[1], out[17]), (-16.0, 14.0, 0.0, 2.0));
    assert!(
        out.iter()
            .enumerate()
            .filter(|(i, _)| ![0, 1, 16, 17].contains(i))
            .all(|(_, &v)| v == 0.0)
    );
}

#[test]
fn q4_1_block_decodes_as_ggml_defines() {
    // d = 0.5, m = -2.0; x = d·q + m.
    let mut b = vec![0x00, 0x38, 0x00, 0xC0];
    b.push(0x3F); // value 0: q=15 → 5.5; value 16: q=3 → -0.5
    b.extend([0x00u8; 15]);
    let mut out = [0f32; 32];
    dequantize_row(WType::Q4_1, &b, &mut out).unwrap();
    assert_eq!((out[0], out[16]), (5.5, -0.5));
    assert!(
        out.iter()
            .enumerate()
            .filter(|(i, _)| ![0, 16].contains(i))
            .all(|(_, &v)| v == -2.0)
    );
}

#[test]
fn float_types_decode_little_endian() {
    let mut out = [0f32; 2];
    dequantize_row(WType::F16, &[0x00, 0x3C, 0x00, 0xC0], &mut out).unwrap();
    assert_eq!(out, [1.0, -2.0]);
    // bf16 0x3F80 = 1.0, 0xC040 = -3.0
    dequantize_row(WType::BF16, &[0x80, 0x3F, 0x40, 0xC0], &mut out).unwrap();
    assert_eq!(out, [1.0, -3.0]);
    dequantize_row(WType::F32, &[0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0], &mut out).unwrap();
    assert_eq!(out, [1.0, -2.0]);
}

#[test]
fn quantize_round_trips_within_half_a_step() {
    // 256 values: a whole super-block of the K-quants, eight blocks of the others.
    let x: Vec<f32> = (0..256)
        .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
        .collect();
    for wtype in WType::ALL {
        let bytes = quantize_row(wtype, &x).unwrap();
        assert_eq!(bytes.len(), wtype.row_bytes(256).unwrap());
        let mut y = vec![0f32; 256];
        dequantize_row(wtype, &bytes, &mut y).unwrap();
        let step = match wtype {
            WType::F32 => 0.0,
            WType::F16 => 2e-3,
            WType::BF16 => 2e-2,
            WType::Q8_0 => 3.0 / 127.0,
            WType::Q4_0 => 3.3 / 8.0,
            WType::Q4_1 => 3.2 / 15.0,
            WType::Q5_0 => 3.3 / 16.0,
            WType::Q5_1 => 3.2 / 31.0,
            // K-quants: the sub-block scales are quantized too (6 or 8 bits), which
            // costs up to about a step more than the value's own rounding.
            WType::Q4K => 3.3 / 8.0,
            WType::Q5K => 3.3 / 16.0,
            WType::Q6K => 3.3 / 32.0,
        };
        for (a, b) in x.iter().zip(&y) {
            assert!(
                (a - b).abs() <= step * 0.5 + 1e-3 * a.abs() + 1e-6,
                "{wtype}: {a} → {b}"
            );
        }
    }
}

#[test]
fn ggml_type_ids_round_trip() {
    for t in WType::ALL {
        assert_eq!(WType::from_ggml_id(t.ggml_id()), Some(t));
        assert_eq!(WType::from_name(t.name()), Some(t));
    }
    assert_eq!(WType::from_ggml_id(2), Some(WType::Q4_0));
    assert_eq!(WType::from_ggml_id(6), Some(WType::Q5_0));
    assert_eq!(WType::from_ggml_id(16), None); // IQ2_XXS: not supported
}

/// A row length a type cannot hold (640 values: 20 blocks of 32, 2.5 super-blocks of
/// 256) is a typed error, for every K-quant, before any byte is read.
#[test]
fn k_quant_rows_must_be_whole_super_blocks() {
    use powerinfer_kernels::{KernelError, Matrix};
    for wtype in [WType::Q4K, WType::Q5K, WType::Q6K] {
        assert_eq!(wtype.block_size(), 256);
        let err = wtype.row_bytes(640).unwrap_err();
        assert!(
            matches!(
                err,
                KernelError::NotBlockAligned {
                    cols: 640,
                    block: 256,
                    ..
                }
            ),
            "{wtype}: {err}"
        );
        let bytes = vec![0u8; 4 * wtype.block_bytes()];
        assert!(Matrix::new(wtype, 1, 640, &bytes).is_err());
        assert!(Matrix::new(wtype, 1, 1024, &bytes).is_ok());
        assert!(dequantize_row(wtype, &bytes, &mut [0f32; 640]).is_err());
    }
    assert_eq!(WType::from_ggml_id(12), Some(WType::Q4K));
    assert_eq!(WType::from_name("q6_k"), Some(WType::Q6K));
}
