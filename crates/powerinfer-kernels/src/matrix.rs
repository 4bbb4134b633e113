//! A borrowed, validated view of a weight matrix.

use crate::{KernelError, WType};

/// `rows × cols` weights of one type, row `r` at `data[r·stride ..][.. row_bytes]`.
///
/// Why a stride: a neuron-bundled FFN keeps gate, up and down rows of a neuron side by
/// side; each of the three is then a strided view of one buffer, so the same kernels
/// serve bundled and plain layouts. The constructor checks every size once, so kernels
/// can slice rows without further checks failing.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    wtype: WType,
    rows: usize,
    cols: usize,
    stride: usize,
    row_bytes: usize,
    data: &'a [u8],
}

impl<'a> Matrix<'a> {
    /// A contiguous row-major matrix: `data` must be exactly `rows × cols` values.
    pub fn new(
        wtype: WType,
        rows: usize,
        cols: usize,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        let expected = wtype.matrix_bytes(rows, cols)?;
        if data.len() != expected {
            return Err(KernelError::WeightBytes {
                what: "matrix",
                wtype,
                rows,
                cols,
                expected,
                got: data.len(),
            });
        }
        Ok(Matrix {
            wtype,
            rows,
            cols,
            stride: expected.checked_div(rows).unwrap_or(0),
            row_bytes: expected.checked_div(rows).unwrap_or(0),
            data,
        })
    }

    /// Rows `stride` bytes apart (`stride ≥` one row's bytes); `data` must reach the end
    /// of the last row.
    pub fn strided(
        wtype: WType,
        rows: usize,
        cols: usize,
        stride: usize,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        let row_bytes = wtype.row_bytes(cols)?;
        let need = match rows {
            0 => 0,
            r => (r - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(row_bytes))
                .ok_or(KernelError::SizeOverflow)?,
        };
        if stride < row_bytes || data.len() < need {
            return Err(KernelError::WeightBytes {
                what: "strided matrix",
                wtype,
                rows,
                cols,
                expected: need.max(row_bytes),
                got: data.len(),
            });
        }
        Ok(Matrix {
            wtype,
            rows,
            cols,
            stride,
            row_bytes,
            data,
        })
    }

    /// Weight type.
    pub fn wtype(&self) -> WType {
        self.wtype
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Row `r` as bytes. Panics if `r ≥ rows`: callers index with validated lists.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let start = r * self.stride;
        &self.data[start..start + self.row_bytes]
    }

    /// Bytes `[c0, c1)` of the value range of row `r`; `c0`, `c1` must be block aligned.
    pub(crate) fn row_cols(&self, r: usize, c0: usize, c1: usize) -> &'a [u8] {
        let (bs, bb) = (self.wtype.block_size(), self.wtype.block_bytes());
        let row = self.row(r);
        &row[c0 / bs * bb..c1 / bs * bb]
    }
}
