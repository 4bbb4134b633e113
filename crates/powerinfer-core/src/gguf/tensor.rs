//! One entry of a GGUF tensor table.
//!
//! Why a plain struct: the model code looks tensors up by name, checks type and shape, and
//! hands the byte slice to a kernel; nothing here needs to be lazy or clever.

use powerinfer_kernels::WType;

/// A validated tensor table entry.
///
/// `dims` are in ggml order: `dims[0]` is the contiguous (innermost) dimension, i.e. the
/// number of columns of a row-major matrix; `dims[1]` is the number of rows.
///
/// PowerInfer's `.powerinfer.gguf` files store each FFN down projection transposed, as
/// `blk.N.ffn_down_t.weight` (rows = FFN neurons, so one neuron's weights are a
/// contiguous row); to this reader it is just another tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.ffn_gate.weight`.
    pub name: String,
    /// Shape in ggml order (1 to 4 dims, none zero).
    pub dims: Vec<u64>,
    /// Storage type.
    pub wtype: WType,
    /// Offset of the data from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Size of the data in bytes (type × shape).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of columns of the tensor seen as a matrix: `dims[0]`.
    pub fn cols(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows of the tensor seen as a matrix: the product of `dims[1..]`
    /// (so `dims[1]` for a 2-D tensor, 1 for a vector).
    pub fn rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// Total number of values.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}
