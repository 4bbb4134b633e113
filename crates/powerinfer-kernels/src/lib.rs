//! Dense and sparse GEMV/axpy kernels over ggml-compatible weight blocks.
//!
//! Why a leaf crate: anyone can use fast sparse kernels without our model code. Slices
//! in, slices out; no files, no models. See `docs/DESIGN.md` §3.
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod wtype;

pub use error::KernelError;
pub use wtype::WType;
