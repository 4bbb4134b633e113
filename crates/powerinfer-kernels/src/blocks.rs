//! Reference (scalar) encode/decode of every weight type, one row at a time.
//!
//! Why here: tests, benches and model loaders need to turn f32 into each format and
//! back; the SIMD kernels are checked against these definitions. Layouts follow ggml
//! (`ggml-common.h`): little-endian f16 scales first, then the quants.

use half::f16;

use crate::{KernelError, WType};

/// Values per block of the 32-value quantized types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1).
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
    wtype.kernels().decode(row, out);
}

/// Encodes `values` (a whole number of blocks) as one row of `wtype`, the way ggml's
/// reference quantizers do (round to nearest).
pub fn quantize_row(wtype: WType, values: &[f32]) -> Result<Vec<u8>, KernelError> {
    let mut out = Vec::with_capacity(wtype.row_bytes(values.len())?);
    wtype.kernels().encode(values, &mut out);
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
