//! Dense and sparse GEMV/axpy kernels over ggml-compatible weight blocks.
#![deny(unsafe_op_in_unsafe_fn)]
