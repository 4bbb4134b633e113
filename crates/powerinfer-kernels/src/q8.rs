//! Activations quantized to 8-bit blocks, once per call.
//!
//! Why: a Q4/Q8 weight row dotted with an f32 vector would convert every weight to
//! float. ggml instead quantizes the activation vector to 8-bit blocks once, then uses
//! integer multiply-adds per block (`maddubs`/VNNI/dotprod). We do the same; the block
//! carries `Σq` so Q4_0's `−8` offset and Q4_1's minimum cost one multiply per block.

use crate::blocks::QK;
use crate::q8k::BlockQ8K;

/// One block of 32 activations: `x ≈ d·q`, with `sum = Σ q` precomputed.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
pub(crate) struct BlockQ8 {
    /// The quants (aligned first so SIMD loads are aligned).
    pub qs: [i8; QK],
    /// Scale.
    pub d: f32,
    /// Sum of `qs`.
    pub sum: i32,
}

/// Quantizes `x` (a whole number of blocks) into `out` (cleared first).
pub(crate) fn quantize_q8(x: &[f32], out: &mut Vec<BlockQ8>) {
    out.clear();
    out.resize(x.len() / QK, BlockQ8::default());
    quantize_q8_into(x, out);
}

/// Quantizes the whole blocks of `x` into `out` (as many as both hold).
pub(crate) fn quantize_q8_into(x: &[f32], out: &mut [BlockQ8]) {
    for (o, blk) in out.iter_mut().zip(x.chunks_exact(QK)) {
        *o = quantize_block(blk);
    }
}

/// One block of 32 activations quantized.
fn quantize_block(blk: &[f32]) -> BlockQ8 {
    let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut b = BlockQ8 {
        d,
        ..Default::default()
    };
    let mut sum = 0i32;
    for (q, v) in b.qs.iter_mut().zip(blk) {
        *q = round_i8(v * id);
        sum += *q as i32;
    }
    b.sum = sum;
    b
}

/// `v` rounded half away from zero and saturated to `i8`: exactly `v.round() as i8`
/// (NaN gives 0), without the `roundf` library call that `f32::round` compiles to on
/// baseline x86-64.
#[inline]
pub(crate) fn round_i8(v: f32) -> i8 {
    // Clamping first keeps every value in i32 range and changes no result: anything
    // beyond [-128, 127] saturates to the same end. NaN stays NaN, then casts to 0.
    let c = v.clamp(-128.0, 127.0);
    let t = c as i32; // truncation toward zero
    let frac = c - t as f32; // exact: |c| < 2^23
    let r = t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
    r as i8
}

/// An activation vector prepared for one call: the floats, and their 8-bit blocks in
/// the form the weight type dots with (the others empty).
#[derive(Clone, Copy)]
pub(crate) struct Act<'a> {
    /// The activations.
    pub f: &'a [f32],
    /// `f` in blocks of 32 (for Q8_0, Q4_x, Q5_x weights).
    pub q: &'a [BlockQ8],
    /// `f` in super-blocks of 256 (for the K-quants).
    pub k: &'a [BlockQ8K],
}

impl<'a> Act<'a> {
    /// Float activations only (for the float weight types).
    pub(crate) fn floats(f: &'a [f32]) -> Act<'a> {
        Act { f, q: &[], k: &[] }
    }
}

/// Reusable storage for [`Act`]'s quantized forms.
#[derive(Clone, Debug, Default)]
pub(crate) struct ActBuf {
    /// Blocks of 32.
    pub q: Vec<BlockQ8>,
    /// Super-blocks of 256.
    pub k: Vec<BlockQ8K>,
}

#[cfg(test)]
mod tests {
    use super::round_i8;

    #[test]
    fn round_i8_matches_round_as_i8() {
        let mut vals = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            127.5,
            -127.5,
            128.5,
            -128.5,
            -129.0,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ];
        // Every f32 step around each half-integer in range, and a dense sweep.
        for k in -260..=260 {
            let h = k as f32 * 0.5;
            let mut v = h;
            for _ in 0..4 {
                v = v.next_down();
            }
            for _ in 0..9 {
                vals.push(v);
                v = v.next_up();
            }
        }
        vals.extend((0..200_000).map(|i| (i as f32 - 100_000.0) * 0.0013));
        for v in vals {
            assert_eq!(round_i8(v), v.round() as i8, "{v:e}");
        }
    }
}
