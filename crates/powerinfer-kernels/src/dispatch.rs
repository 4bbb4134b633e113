//! The row kernels the operations are written over, at a given [`Isa`].
//!
//! Why: the operations (gemv, axpy, FFN) are written once over "a row dot" and "a row
//! axpy"; per weight type these come from its [`crate::types::BlockKernels`] impl, and
//! the type-independent kernels (f32 GEMM block, ColQ4, packed groups, attention heads)
//! pick their ISA here. Every function takes a [`Supported`], the proof that the CPU
//! runs its level, so the `unsafe` calls below are sound whatever the caller.

use crate::isa::Supported;
use crate::packed::PACK_ROWS;
use crate::q8::{Act, BlockQ8};
use crate::{Isa, WType};

/// Rows per call of [`dot_rows`] (callers pass at most this many).
pub(crate) const DOT_ROWS: usize = 4;

/// `out[r] = rows[r] · x` for `r < out.len()` (at most [`DOT_ROWS`] rows), each with
/// exactly the arithmetic of the type's single-row dot, however rows are
/// grouped into calls (a type may share activation loads and scale conversions across
/// the rows, and prefetch the rows `next` as it goes: a hint).
#[inline]
pub(crate) fn dot_rows(
    isa: Supported,
    wtype: WType,
    rows: &[&[u8]],
    next: &[&[u8]],
    x: &Act,
    out: &mut [f32],
) {
    wtype.kernels().dot_rows(isa, rows, next, x, out);
}

/// `y += h · row` at `isa`.
#[inline]
pub(crate) fn axpy(isa: Supported, wtype: WType, row: &[u8], h: f32, y: &mut [f32]) {
    wtype.kernels().axpy(isa, row, h, y);
}

/// `w · x` over f32 weights (rows decoded once and reused, as the batched kernels do).
#[inline]
pub(crate) fn dot_f32(isa: Supported, w: &[f32], x: &[f32]) -> f32 {
    WType::F32
        .kernels()
        .dot(isa, bytemuck::cast_slice(w), &Act::floats(x))
}

/// `y += h · w` over f32 weights.
#[inline]
pub(crate) fn axpy_f32(isa: Supported, w: &[f32], h: f32, y: &mut [f32]) {
    axpy(isa, WType::F32, bytemuck::cast_slice(w), h, y)
}

/// Weight rows per block of [`dot_f32_rows`] (callers pass at most this many).
pub(crate) const GEMM_ROWS: usize = 4;

/// `out[r·n + t] = w[r] · xs[t·cols ..][.. cols]` for every row `r < w.len()` (at most
/// [`GEMM_ROWS`]) and token `t < n = out.len() / w.len()`: each output with exactly the
/// arithmetic of [`dot_f32`]`(isa, w[r], x_t)`, however rows are grouped into calls.
/// AVX2 computes a register block of rows × tokens at a time (loads shared).
#[inline]
pub(crate) fn dot_f32_rows(isa: Supported, w: &[&[f32]], xs: &[f32], cols: usize, out: &mut [f32]) {
    match isa.isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Supported(Isa::Avx2)` exists only once AVX2, FMA and F16C were
        // detected at run time (`Isa::supported`, `Supported::best`).
        Isa::Avx2 => unsafe { crate::avx2::dot_f32_rows(w, xs, cols, out) },
        _ => {
            let rows = w.len().min(GEMM_ROWS);
            if rows == 0 {
                return;
            }
            let n = out.len() / rows;
            for (wr, yr) in w.iter().zip(out.chunks_exact_mut(n)) {
                for (y, x) in yr.iter_mut().zip(xs.chunks_exact(cols.max(1))) {
                    *y = dot_f32(isa, wr, x);
                }
            }
        }
    }
}

/// Row `row` of `wtype` as f32: borrowed when it already is f32 (aligned), else
/// decoded into `buf` (vectorized at AVX2, the same values at every ISA). Why: batched
/// kernels decode a weight row once and reuse it for every token, instead of decoding
/// it per token.
pub(crate) fn row_f32<'a>(
    isa: Supported,
    wtype: WType,
    row: &'a [u8],
    buf: &'a mut Vec<f32>,
    values: usize,
) -> &'a [f32] {
    if wtype == WType::F32
        && let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(row)
    {
        return v;
    }
    buf.resize(values, 0.0);
    wtype.kernels().decode_at(isa, row, buf);
    buf
}

/// Four [`axpy`] calls in order, as one pass over `y` where the type has one (the same
/// updates and roundings).
#[inline]
pub(crate) fn axpy4(isa: Supported, wtype: WType, rows: [&[u8]; 4], h: [f32; 4], y: &mut [f32]) {
    wtype.kernels().axpy4(isa, rows, h, y);
}

/// One block run of the column-blocked Q4 sparse axpy:
/// `y_j += d_j·Σ_r h_r·q_rj + m_j·s` over the outputs of `y` (see [`crate::ColQ4`]).
#[inline]
pub(crate) fn colq4_block(
    isa: Supported,
    rows: &[&[u8]],
    h: &[f32],
    s: f32,
    d: &[u16],
    m: &[u16],
    y: &mut [f32],
) {
    match isa.isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Supported(Isa::Avx2)` exists only once AVX2, FMA and F16C were
        // detected at run time.
        Isa::Avx2 => unsafe { crate::avx2::colq4_block(rows, h, s, d, m, y) },
        _ => crate::colq4::colq4_block_scalar(rows, h, s, d, m, y),
    }
}

/// Tokens per call of [`packed_group`] (callers pass at most this many).
pub(crate) const PACKED_TOKENS: usize = 4;

/// One group of a [`crate::PackedMatrix`] dotted with each of `xqs` (at most
/// [`PACKED_TOKENS`]): `out[t][r]` = row `r` · token `t` (see `packed::group_dot`, the
/// reference every level reproduces bitwise, whatever the grouping of tokens).
#[inline]
pub(crate) fn packed_group(
    isa: Supported,
    wtype: WType,
    group: &[u8],
    xqs: &[&[BlockQ8]],
    out: &mut [[f32; PACK_ROWS]],
) {
    match isa.isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Supported(Isa::Avx2)` exists only once AVX2, FMA and F16C were
        // detected at run time.
        Isa::Avx2 => unsafe { crate::avx2_packed::group_dot(wtype, group, xqs, out) },
        _ => {
            for (xq, o) in xqs.iter().zip(out) {
                crate::packed::group_dot(wtype, group, xq, o);
            }
        }
    }
}

/// Attention scores of one head at `isa` (see `heads::scores`, the reference every level
/// reproduces bitwise).
#[inline]
pub(crate) fn head_scores(isa: Supported, k: &crate::HeadRows, q: &[f32], out: &mut [f32]) {
    match isa.isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Supported(Isa::Avx2)` exists only once AVX2, FMA and F16C were
        // detected at run time.
        Isa::Avx2 => unsafe { crate::avx2_heads::head_scores(k, q, out) },
        _ => crate::heads::scores(k, q, out),
    }
}

/// The attention mix of one head at `isa` (see `heads::mix`, the reference every level
/// reproduces bitwise).
#[inline]
pub(crate) fn head_mix(isa: Supported, v: &crate::HeadRows, w: &[f32], out: &mut [f32]) {
    match isa.isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Supported(Isa::Avx2)` exists only once AVX2, FMA and F16C were
        // detected at run time.
        Isa::Avx2 => unsafe { crate::avx2_heads::head_mix(v, w, out) },
        _ => crate::heads::mix(v, w, out),
    }
}
