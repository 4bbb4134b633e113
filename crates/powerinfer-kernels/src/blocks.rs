//! Reference (scalar) encode/decode of every weight type, one row at a time.
//!
//! Why here: tests, benches and model loaders need to turn f32 into each format and
//! back; the SIMD kernels are checked against these definitions. Layouts follow ggml
//! (`ggml-common.h`): little-endian f16 scales first, then the quants.

use half::{bf16, f16};

use crate::{KernelError, WType};

/// Values per quantized block (Q8_0, Q4_0, Q4_1).
pub const QK: usize = 32;

#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Decodes one row of `wtype` bytes into `out` (`out.len()` values).
///
/// Errors when `row` is not exactly one row of `out.len()` values.
pub fn dequantize_row(wtype: WType, row: &[u8], out: &mut [f32]) -> Result<(), KernelError> {
    let expected = wtype.row_bytes(out.len())?;
    if row.len() != expected {
        return Err(KernelError::Length {
            what: "dequantize_row: row bytes",
            expected,
            got: row.len(),
        });
    }
    decode_row(wtype, row, out);
    Ok(())
}

/// [`dequantize_row`] after its checks: decodes as many whole values as both sides hold.
pub(crate) fn decode_row(wtype: WType, row: &[u8], out: &mut [f32]) {
    match wtype {
        WType::F32 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        WType::F16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        WType::BF16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        WType::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(34)) {
                let d = f16_at(b, 0);
                for (v, &q) in o.iter_mut().zip(&b[2..34]) {
                    *v = d * (q as i8) as f32;
                }
            }
        }
        WType::Q4_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(18)) {
                let d = f16_at(b, 0);
                for (j, &q) in b[2..18].iter().enumerate() {
                    o[j] = d * ((q & 0x0F) as i32 - 8) as f32;
                    o[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
                }
            }
        }
        WType::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(20)) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                for (j, &q) in b[4..20].iter().enumerate() {
                    o[j] = d * (q & 0x0F) as f32 + m;
                    o[j + 16] = d * (q >> 4) as f32 + m;
                }
            }
        }
    }
}

/// Encodes `values` (a whole number of blocks) as one row of `wtype`, the way ggml's
/// reference quantizers do (round to nearest).
pub fn quantize_row(wtype: WType, values: &[f32]) -> Result<Vec<u8>, KernelError> {
    let mut out = Vec::with_capacity(wtype.row_bytes(values.len())?);
    match wtype {
        WType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        WType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        WType::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
        WType::Q8_0 => {
            for blk in values.chunks_exact(QK) {
                let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(blk.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        WType::Q4_0 => {
            for blk in values.chunks_exact(QK) {
                // ggml: the value of largest magnitude maps to -8.
                let max = blk
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend((0..16).map(|j| q(blk[j]) | (q(blk[j + 16]) << 4)));
            }
        }
        WType::Q4_1 => {
            for blk in values.chunks_exact(QK) {
                let min = blk.iter().fold(f32::INFINITY, |a, &v| a.min(v));
                let max = blk.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                out.extend((0..16).map(|j| q(blk[j]) | (q(blk[j + 16]) << 4)));
            }
        }
    }
    Ok(out)
}

/// Encodes a `rows × cols` row-major f32 matrix as `wtype` bytes.
pub fn quantize_matrix(
    wtype: WType,
    values: &[f32],
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, KernelError> {
    let n = rows.checked_mul(cols).ok_or(KernelError::SizeOverflow)?;
    if values.len() != n {
        return Err(KernelError::Length {
            what: "quantize_matrix: values",
            expected: n,
            got: values.len(),
        });
    }
    let mut out = Vec::with_capacity(wtype.matrix_bytes(rows, cols)?);
    for r in values.chunks_exact(cols.max(1)).take(rows) {
        out.extend(quantize_row(wtype, r)?);
    }
    Ok(out)
}
