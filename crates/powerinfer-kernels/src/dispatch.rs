//! One place that maps an [`Isa`] to its row kernels.
//!
//! Why: the operations (gemv, axpy, FFN) are written once over "a row dot" and "a row
//! axpy"; adding an ISA or a weight type touches this file and that ISA's file only.

use crate::q8::Act;
use crate::{Isa, WType, scalar};

/// `row · x` at `isa`. `isa` must be available on this CPU (the [`crate::Kernels`]
/// context verifies that when it is built; it is the only caller).
#[inline]
pub(crate) fn dot(isa: Isa, wtype: WType, row: &[u8], x: &Act) -> f32 {
    match isa {
        Isa::Scalar => scalar::dot(wtype, row, x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernels` only holds an `Isa::Avx2` after `Isa::require` confirmed
        // AVX2, FMA and F16C at run time.
        Isa::Avx2 => unsafe { crate::avx2::dot(wtype, row, x) },
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 => scalar::dot(wtype, row, x),
    }
}

/// `y += h · row` at `isa` (same contract as [`dot`]).
#[inline]
pub(crate) fn axpy(isa: Isa, wtype: WType, row: &[u8], h: f32, y: &mut [f32]) {
    match isa {
        Isa::Scalar => scalar::axpy(wtype, row, h, y),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`: the ISA was verified when the context was built.
        Isa::Avx2 => unsafe { crate::avx2::axpy(wtype, row, h, y) },
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 => scalar::axpy(wtype, row, h, y),
    }
}
