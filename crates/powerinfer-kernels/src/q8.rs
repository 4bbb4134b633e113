//! Activations quantized to 8-bit blocks, once per call.
//!
//! Why: a Q4/Q8 weight row dotted with an f32 vector would convert every weight to
//! float. ggml instead quantizes the activation vector to 8-bit blocks once, then uses
//! integer multiply-adds per block (`maddubs`/VNNI/dotprod). We do the same; the block
//! carries `Σq` so Q4_0's `−8` offset and Q4_1's minimum cost one multiply per block.

use crate::blocks::QK;

/// One block of 32 activations: `x ≈ d·q`, with `sum = Σ q` precomputed.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
pub struct BlockQ8 {
    /// The quants (aligned first so SIMD loads are aligned).
    pub qs: [i8; QK],
    /// Scale.
    pub d: f32,
    /// Sum of `qs`.
    pub sum: i32,
}

/// Quantizes `x` (a whole number of blocks) into `out` (cleared first).
pub fn quantize_q8(x: &[f32], out: &mut Vec<BlockQ8>) {
    out.clear();
    out.extend(x.chunks_exact(QK).map(|blk| {
        let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut b = BlockQ8 {
            d,
            ..Default::default()
        };
        let mut sum = 0i32;
        for (q, v) in b.qs.iter_mut().zip(blk) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        b.sum = sum;
        b
    }));
}

/// An activation vector prepared for one call: the floats, and their 8-bit blocks when
/// the weight type is quantized (empty otherwise).
#[derive(Clone, Copy)]
pub(crate) struct Act<'a> {
    /// The activations.
    pub f: &'a [f32],
    /// `f` quantized (only for quantized weight types).
    pub q: &'a [BlockQ8],
}
