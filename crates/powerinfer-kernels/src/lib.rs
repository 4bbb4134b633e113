//! Dense and sparse GEMV/axpy kernels over ggml-compatible weight blocks.
//!
//! Why a leaf crate: anyone can use fast sparse kernels without our model code. Slices
//! in, slices out; no files, no models. See `docs/DESIGN.md` §3.
//!
//! ```
//! use powerinfer_kernels::{Kernels, Matrix, WType, quantize_matrix};
//! let (rows, cols) = (4, 64);
//! let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 - 3.0).collect();
//! let bytes = quantize_matrix(WType::Q8_0, &w, rows, cols).unwrap();
//! let m = Matrix::new(WType::Q8_0, rows, cols, &bytes).unwrap();
//! let x = vec![1.0f32; cols];
//! let mut y = vec![0.0; rows];
//! Kernels::new().gemv(&m, &x, &mut y).unwrap();
//! assert!((y[0] - w[..cols].iter().sum::<f32>()).abs() < 0.5);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
// Library code returns typed errors on input-derived data: no unwrap, expect or panic
// outside tests (each remaining site is an `allow` with the invariant that makes it safe).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_heads;
#[cfg(target_arch = "x86_64")]
mod avx2_packed;
mod axpy;
mod blocks;
mod colq4;
mod context;
mod dispatch;
mod error;
mod ffn;
mod ffn_batch;
mod gemv;
mod heads;
mod isa;
mod matrix;
mod packed;
mod q8;
mod q8k;
mod types;
mod wtype;

pub use blocks::{QK, dequantize_row, quantize_matrix, quantize_row};
pub use colq4::{COLQ4_BLOCK, ColQ4};
pub use context::{Kernels, MAX_THREADS};
pub use error::KernelError;
pub use ffn::{Activation, BundledFfn, DownRows, FfnScratch, FfnWeights, Skip, transpose};
pub use ffn_batch::FfnBatchScratch;
pub use heads::HeadRows;
pub use isa::{Isa, Supported};
pub use matrix::Matrix;
pub use packed::{PACK_ROWS, PackedMatrix};
pub use wtype::WType;

/// Checks that `idx` is strictly increasing and below `rows`, as every sparse kernel
/// requires of its index lists. Why public: a caller that stores an index list for later
/// (a device upload, say) can refuse a bad one up front, with the kernels' own error.
pub fn check_index_list(idx: &[u32], rows: usize) -> Result<(), KernelError> {
    context::check_idx(idx, rows)
}

/// The crate README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
