//! GGUF model files: a validating, memory-mapped reader and a writer.
//!
//! Why our own: the format is small, we need strict validation of untrusted files with
//! precise errors, zero-copy tensor slices for the kernels, and a writer for tests.
//!
//! Layout (v2/v3, little-endian): magic `GGUF`, u32 version, u64 tensor count, u64
//! metadata count, metadata (`string key`, `u32 type`, value), tensor infos (`string
//! name`, `u32 n_dims`, `u64 dims[n_dims]`, `u32 ggml type`, `u64 offset`), padding to
//! `general.alignment` (default 32), then tensor data. Strings are a u64 length and UTF-8
//! bytes; arrays are a u32 element type, a u64 count and the elements.
//!
//! PowerInfer's `.powerinfer.gguf` variant needs nothing special: its transposed down
//! projections (`blk.N.ffn_down_t.weight`) are ordinary tensors in the table.

mod error;
#[deny(clippy::indexing_slicing)]
mod file;
#[deny(clippy::indexing_slicing)]
mod parse;
mod tensor;
mod value;
mod writer;

pub use error::{GgufError, OptionalKey};
pub use file::{GgufFile, MEMORY_FILE};
pub use parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_DIMS, MAX_HEADER_MEMORY};
pub use tensor::TensorInfo;
pub use value::{Value, ValueType};
pub use writer::GgufWriter;
