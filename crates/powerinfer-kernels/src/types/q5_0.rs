//! Q5_0 weights: ggml's `block_q5_0`, 32 values in 22 bytes.
//!
//! Why: Q5_0 is a common GGUF weight type (between Q4_0 and Q8_0 in size and
//! accuracy); these are its reference encode/decode and row kernels, checked against
//! ggml's definitions. Layout (`ggml-common.h`): the little-endian f16 scale `d`, then
//! `qh` (4 bytes, a little-endian u32 whose bit `j` is the fifth bit of value `j`), then
//! `qs` (16 bytes: value `j` in the low nibble of byte `j`, value `j + 16` in its high
//! nibble). Each 5-bit code `q` (0..32) stands for `x = d·(q − 16)`.

use half::f16;

use crate::blocks::{QK, f16_at};
use crate::q8::BlockQ8;

/// Bytes per block of 32 values: the f16 scale, 4 bytes of fifth bits, 16 of nibbles.
/// Why a constant: row sizes and block strides all derive from it.
pub(crate) const BLOCK_BYTES: usize = 22;

/// Offset of `qh` (the fifth bits) in a block.
const QH: usize = 2;
/// Offset of `qs` (the nibbles) in a block.
const QS: usize = 6;

/// The 32 codes (0..32) of block `b` (`BLOCK_BYTES` bytes), in value order.
fn codes(b: &[u8]) -> [u8; QK] {
    super::five_bit_codes(&b[QH..QS], &b[QS..QS + 16])
}

/// Decodes as many whole blocks as both `row` and `out` hold (never panics, any lengths).
/// Why: the definition every kernel is tested against, and the loader's way back to f32.
pub(crate) fn decode(row: &[u8], out: &mut [f32]) {
    for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(BLOCK_BYTES)) {
        let d = f16_at(b, 0);
        for (v, q) in o.iter_mut().zip(codes(b)) {
            *v = d * (i32::from(q) - 16) as f32;
        }
    }
}

/// Appends the encoding of `values` (whole blocks of 32; a partial tail is ignored) to
/// `out`, as ggml's `quantize_row_q5_0_ref` does. Why: tests, benches and model
/// writers need ggml-identical bytes.
pub(crate) fn encode(values: &[f32], out: &mut Vec<u8>) {
    for blk in values.chunks_exact(QK) {
        // ggml: the value of largest magnitude (the first, on ties) maps to code 0 (−16).
        let max = blk
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // ggml: `MIN(31, (int8_t)(v·id + 16.5))`, truncating; the sum is ≥ 0 for finite
        // inputs, where this is the same.
        let q = |v: f32| ((v * id + 16.5) as i32).clamp(0, 31) as u32;
        let mut b = [0u8; BLOCK_BYTES];
        b[..QH].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        let mut qh = 0u32;
        for j in 0..16 {
            let (lo, hi) = (q(blk[j]), q(blk[j + 16]));
            b[QS + j] = ((lo & 0x0F) | ((hi & 0x0F) << 4)) as u8;
            qh |= ((lo >> 4) << j) | ((hi >> 4) << (j + 16));
        }
        b[QH..QS].copy_from_slice(&qh.to_le_bytes());
        out.extend_from_slice(&b);
    }
}

/// Scalar reference: `row · x` with the activation quantized to Q8 blocks (an integer
/// dot per block, as ggml's `vec_dot_q5_0_q8_0`), over min(row blocks, `xq.len()`)
/// blocks. Why: the definition of correct for the SIMD versions, and the fallback.
pub(crate) fn dot(row: &[u8], xq: &[BlockQ8]) -> f32 {
    row.chunks_exact(BLOCK_BYTES)
        .zip(xq)
        .map(|(b, xb)| {
            let s: i32 = codes(b)
                .iter()
                .zip(&xb.qs)
                .map(|(&q, &x)| (i32::from(q) - 16) * i32::from(x))
                .sum();
            f16_at(b, 0) * xb.d * s as f32
        })
        .sum()
}

/// Scalar reference: `y += h · decode(row)`, over the whole blocks both hold. Why: the
/// sparse FFN's down projection adds rows of active neurons; this is its definition.
pub(crate) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(BLOCK_BYTES)) {
        let hd = h * f16_at(b, 0);
        for (v, q) in o.iter_mut().zip(codes(b)) {
            *v += hd * (i32::from(q) - 16) as f32;
        }
    }
}

/// [`crate::WType::Q5_0`]'s kernels.
pub(crate) struct Q5_0;

super::forward_kernels!(Q5_0, super::ActKind::Q8, q, decode: false);

/// AVX2 + FMA + F16C Q5_0 kernels (x86-64), after ggml's AVX2 `vec_dot_q5_0_q8_0`.
///
/// Why: the scalar kernels rebuild each code bit by bit; here the fifth bits are spread
/// to bytes with one shuffle and a compare (ggml's `bytes_from_bits_32`) and the dot is
/// one `maddubs` per block. Both functions are safe for *any* slice lengths: loops run
/// only over the blocks present in all operands, so each raw load below is in bounds by
/// its loop condition. The one precondition is the CPU feature set, which the
/// `#[target_feature]` attribute makes the caller's `unsafe` responsibility.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, QH, QS};
    use crate::avx2::{axpy_pairs, dot_pairs, five_bit_codes, fma_i32};

    /// The block at `b`'s 32 quants as signed bytes in value order (the codes minus 16),
    /// for `decode_blocks`.
    ///
    /// # Safety
    /// `b` must be valid for `BLOCK_BYTES` bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quants(b: *const u8) -> (__m128i, __m128i) {
        // SAFETY: the caller guarantees the whole block at `b`.
        let q = _mm256_sub_epi8(
            unsafe { five_bit_codes(b.add(QH), b.add(QS)) },
            _mm256_set1_epi8(16),
        );
        (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1))
    }

    /// `row · xq` (see [`super::dot`]): two blocks per step into independent
    /// accumulators, the two weight scales converted together. Why: the dense and
    /// sparse GEMV inner loop for Q5_0 weights.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn dot(row: &[u8], xq: &[super::BlockQ8]) -> f32 {
        dot_pairs(row, xq, BLOCK_BYTES, block)
    }

    /// `y += h · decode(row)` (see [`super::axpy`]), over the whole blocks both hold, two
    /// blocks per step (their scales converted together). Why: the sparse down
    /// projection for Q5_0 weights.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
        axpy_pairs(row, h, y, BLOCK_BYTES, quants);
    }

    /// One block at `b` dotted with `xb` (`d` = both scales), added to `acc`: the codes
    /// (0..32, unsigned) go straight into `maddubs`, and the `−16·Σx` offset is folded
    /// into the integer sum via the activation block's `sum`.
    ///
    /// # Safety
    /// `b` must be valid for `BLOCK_BYTES` bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(b: *const u8, xb: &super::BlockQ8, d: f32, acc: __m256) -> __m256 {
        // SAFETY: the caller guarantees the whole block at `b`.
        let q = unsafe { five_bit_codes(b.add(QH), b.add(QS)) };
        // SAFETY: `qs` is 32 readable bytes at the start of the 32-byte-aligned BlockQ8.
        let x = unsafe { _mm256_load_si256(xb.qs.as_ptr().cast()) };
        // Products ≤ 31·128 per byte, so the pair sums never saturate.
        let v = _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), _mm256_set1_epi16(1));
        // |sum| ≤ 32·128 in any quantized block; wrapping only keeps a corrupt one from
        // panicking in a debug build.
        let offset = _mm256_zextsi128_si256(_mm_cvtsi32_si128(xb.sum.wrapping_mul(16)));
        let v = _mm256_sub_epi32(v, offset);
        fma_i32(acc, d, v)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::types::q5_test_util::{self, Q5Fns};

    /// `blocks` blocks of values in ±1, each block scaled by a different power of ten.
    fn random(blocks: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..blocks * QK)
            .map(|i| rng.random_range(-1.0f32..1.0) * 10f32.powi((i / QK % 5) as i32 - 2))
            .collect()
    }

    /// This type's functions for the shared Q5 checks.
    fn fns() -> Q5Fns {
        Q5Fns {
            bb: BLOCK_BYTES,
            m_at: None,
            random,
            encode,
            decode,
            dot,
            axpy,
            // SAFETY: the shared checks call these only once AVX2, FMA and F16C were
            // detected.
            #[cfg(target_arch = "x86_64")]
            avx_dot: |r, x| unsafe { avx2::dot(r, x) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            avx_axpy: |r, h, y| unsafe { avx2::axpy(r, h, y) },
        }
    }

    fn encoded(values: &[f32]) -> Vec<u8> {
        fns().encoded(values)
    }

    fn decoded(row: &[u8]) -> Vec<f32> {
        fns().decoded(row)
    }

    #[test]
    fn decodes_a_known_block() {
        // d = 0.5; qh bits 0, 5, 15 and 31 set.
        let mut b = [0u8; BLOCK_BYTES];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[QH..QS].copy_from_slice(&0x8000_8021u32.to_le_bytes());
        b[QS] = 0x3A; // value 0: 0xA | 0x10 = 26; value 16: 3 (bit 16 clear)
        b[QS + 5] = 0x07; // value 5: 7 | 0x10 = 23; value 21: 0
        b[QS + 15] = 0xF0; // value 15: 0 | 0x10 = 16; value 31: 0xF | 0x10 = 31
        let mut out = [f32::NAN; QK];
        decode(&b, &mut out);
        let expect = [
            (0, 5.0),
            (16, -6.5),
            (5, 3.5),
            (21, -8.0),
            (15, 0.0),
            (31, 7.5),
        ];
        for (j, v) in expect {
            assert_eq!(out[j], v, "value {j}");
        }
        for (j, &v) in out.iter().enumerate() {
            if !expect.iter().any(|&(k, _)| k == j) {
                assert_eq!(v, -8.0, "value {j}: code 0");
            }
        }
    }

    #[test]
    fn encodes_codes_0_to_31_exactly() {
        // −16..16: the largest magnitude is −16, so d = 1 and value j gets code j.
        let values: Vec<f32> = (0..QK).map(|j| j as f32 - 16.0).collect();
        let row = encoded(&values);
        let mut expect = vec![0x00, 0x3C, 0x00, 0x00, 0xFF, 0xFF];
        expect.extend((0..16u8).map(|j| j | (j << 4)));
        assert_eq!(row, expect);
        assert_eq!(decoded(&row), values);
    }

    #[test]
    fn round_trip_within_half_a_step() {
        let values = random(40, 7);
        let row = encoded(&values);
        assert_eq!(row.len(), 40 * BLOCK_BYTES);
        let back = decoded(&row);
        for (blk, (v, b)) in values.chunks(QK).zip(back.chunks(QK)).enumerate() {
            let ds = f16_at(&row[blk * BLOCK_BYTES..], 0);
            let d = ds.abs();
            for (x, y) in v.iter().zip(b) {
                // Half a step, plus what rounding d to f16 moves a code of magnitude
                // ≤ 16. The codes reach −16 steps on the side of the largest magnitude
                // but only +15 on the other (ggml's asymmetry), so a value beyond +15.5
                // steps is clamped to code 31: off by up to one step.
                let steps = x / ds;
                let tol = (0.5f32).max(steps - 15.0) * d + 16.0 * d * 2f32.powi(-11) + 1e-7 * d;
                assert!((x - y).abs() <= tol, "block {blk}: {x} vs {y} (d {d})");
            }
        }
        // A partial tail block is not encoded.
        assert_eq!(encoded(&values[..QK + 5]).len(), BLOCK_BYTES);
    }

    #[test]
    fn zero_and_constant_blocks_are_exact() {
        for c in [0.0f32, 3.0, -2.5, 1e-3] {
            let values = vec![c; 2 * QK];
            let back = decoded(&encoded(&values));
            let tol = if c == 0.0 || c.abs() >= 1.0 {
                0.0
            } else {
                c.abs() * 2f32.powi(-10)
            };
            for v in back {
                assert!((v - c).abs() <= tol, "{c}: {v}");
            }
        }
    }

    #[test]
    fn scalar_axpy_matches_decode() {
        let row = encoded(&random(3, 9));
        let w = decoded(&row);
        let mut y = vec![1.0f32; 3 * QK + 4];
        axpy(&row, -0.75, &mut y);
        for (i, v) in y.iter().enumerate() {
            let expect = if i < 3 * QK { 1.0 - 0.75 * w[i] } else { 1.0 };
            assert!((v - expect).abs() <= 1e-6 * (1.0 + w.get(i).map_or(0.0, |w| w.abs())));
        }
    }

    #[test]
    fn decode_handles_any_lengths() {
        q5_test_util::check_decode_any_lengths(&fns());
    }

    #[test]
    fn scalar_dot_matches_f64() {
        q5_test_util::check_scalar_dot(&fns());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_matches_scalar_on_any_lengths() {
        q5_test_util::check_avx2(&fns());
    }
}
