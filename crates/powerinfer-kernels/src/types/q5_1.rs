//! Q5_1 weights: ggml's `block_q5_1`, 32 values in 24 bytes.
//!
//! Why: Q5_1 is a common GGUF weight type (Q5_0 plus a per-block minimum, for
//! asymmetric blocks); these are its reference encode/decode and row kernels, checked
//! against ggml's definitions. Layout (`ggml-common.h`): the little-endian f16 scale
//! `d` and minimum `m`, then `qh` (4 bytes, a little-endian u32 whose bit `j` is the
//! fifth bit of value `j`), then `qs` (16 bytes: value `j` in the low nibble of byte
//! `j`, value `j + 16` in its high nibble). Each 5-bit code `q` (0..32) stands for
//! `x = d·q + m`.

use half::f16;

use crate::blocks::{QK, f16_at};
use crate::q8::BlockQ8;

/// Bytes per block of 32 values: the f16 scale and minimum, 4 bytes of fifth bits, 16
/// of nibbles. Why a constant: row sizes and block strides all derive from it.
pub(crate) const BLOCK_BYTES: usize = 24;

/// Offset of the minimum `m` in a block.
const M: usize = 2;
/// Offset of `qh` (the fifth bits) in a block.
const QH: usize = 4;
/// Offset of `qs` (the nibbles) in a block.
const QS: usize = 8;

/// The 32 codes (0..32) of block `b` (`BLOCK_BYTES` bytes), in value order.
fn codes(b: &[u8]) -> [u8; QK] {
    super::five_bit_codes(&b[QH..QS], &b[QS..QS + 16])
}

/// Decodes as many whole blocks as both `row` and `out` hold (never panics, any lengths).
/// Why: the definition every kernel is tested against, and the loader's way back to f32.
pub(crate) fn decode(row: &[u8], out: &mut [f32]) {
    for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(BLOCK_BYTES)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, M));
        for (v, q) in o.iter_mut().zip(codes(b)) {
            *v = d * f32::from(q) + m;
        }
    }
}

/// Appends the encoding of `values` (whole blocks of 32; a partial tail is ignored) to
/// `out`, as ggml's `quantize_row_q5_1_ref` does. Why: tests, benches and model
/// writers need ggml-identical bytes.
pub(crate) fn encode(values: &[f32], out: &mut Vec<u8>) {
    for blk in values.chunks_exact(QK) {
        let min = blk.iter().fold(f32::MAX, |a, &v| if v < a { v } else { a });
        let max = blk
            .iter()
            .fold(-f32::MAX, |a, &v| if v > a { v } else { a });
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // ggml: `(uint8_t)((v − min)·id + 0.5)`, truncating; the sum lies in 0.5..31.5
        // for finite inputs, where the clamp changes nothing.
        let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 31) as u32;
        let mut b = [0u8; BLOCK_BYTES];
        b[..M].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        b[M..QH].copy_from_slice(&f16::from_f32(min).to_le_bytes());
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
/// dot per block, as ggml's `vec_dot_q5_1_q8_1`: `d·d_x·Σq·x_q + m·d_x·Σx_q`), over
/// min(row blocks, `xq.len()`) blocks. Why: the definition of correct for the SIMD
/// versions, and the fallback.
pub(crate) fn dot(row: &[u8], xq: &[BlockQ8]) -> f32 {
    row.chunks_exact(BLOCK_BYTES)
        .zip(xq)
        .map(|(b, xb)| {
            let s: i32 = codes(b)
                .iter()
                .zip(&xb.qs)
                .map(|(&q, &x)| i32::from(q) * i32::from(x))
                .sum();
            f16_at(b, 0) * xb.d * s as f32 + f16_at(b, M) * xb.d * xb.sum as f32
        })
        .sum()
}

/// Scalar reference: `y += h · decode(row)`, over the whole blocks both hold. Why: the
/// sparse FFN's down projection adds rows of active neurons; this is its definition.
pub(crate) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(BLOCK_BYTES)) {
        let (hd, hm) = (h * f16_at(b, 0), h * f16_at(b, M));
        for (v, q) in o.iter_mut().zip(codes(b)) {
            *v += hd * f32::from(q) + hm;
        }
    }
}

/// [`crate::WType::Q5_1`]'s kernels.
pub(crate) struct Q5_1;

super::forward_kernels!(Q5_1, super::ActKind::Q8, q, decode: true);

/// AVX2 + FMA + F16C Q5_1 kernels (x86-64), after ggml's AVX2 `vec_dot_q5_1_q8_1`.
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

    use super::{BLOCK_BYTES, M, QH, QS};
    use crate::avx2::{axpy_blocks_min, f16_bits, f16x2, five_bit_codes, fma_i32, hsum};

    /// The block at `b`'s 32 codes (0..32) in value order, for `decode_blocks`.
    ///
    /// # Safety
    /// `b` must be valid for `BLOCK_BYTES` bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quants(b: *const u8) -> (__m128i, __m128i) {
        // SAFETY: the caller guarantees the whole block at `b`.
        let q = unsafe { five_bit_codes(b.add(QH), b.add(QS)) };
        (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1))
    }

    /// `row · xq` (see [`super::dot`]): two blocks per step into independent
    /// accumulators (and independent `m·d_x·Σx` sums). Why: the dense and sparse GEMV
    /// inner loop for Q5_1 weights.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn dot(row: &[u8], xq: &[super::BlockQ8]) -> f32 {
        let n = (row.len() / BLOCK_BYTES).min(xq.len());
        let (w, xq) = (row.as_ptr(), &xq[..n]);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut corr = [0f32; 2];
        let mut pairs = xq.chunks_exact(2);
        for (i, xp) in pairs.by_ref().enumerate() {
            // SAFETY: pair i covers blocks 2i and 2i + 1 < n, both within `row`.
            unsafe {
                let p = w.add(BLOCK_BYTES * 2 * i);
                for (k, xb) in xp.iter().enumerate() {
                    let pk = p.add(BLOCK_BYTES * k);
                    let (d, m) = f16x2(f16_bits(pk), f16_bits(pk.add(M)), _mm_set1_ps(xb.d));
                    acc[k] = block(pk, xb, d, acc[k]);
                    corr[k] += m * xb.sum as f32;
                }
            }
        }
        if let [xl] = pairs.remainder() {
            // SAFETY: the odd last block is block n − 1, within `row`.
            unsafe {
                let p = w.add(BLOCK_BYTES * (n - 1));
                let (d, m) = f16x2(f16_bits(p), f16_bits(p.add(M)), _mm_set1_ps(xl.d));
                acc[0] = block(p, xl, d, acc[0]);
                corr[0] += m * xl.sum as f32;
            }
        }
        hsum(_mm256_add_ps(acc[0], acc[1])) + (corr[0] + corr[1])
    }

    /// `y += h · decode(row)` (see [`super::axpy`]), over the whole blocks both hold.
    /// Why: the sparse down projection for Q5_1 weights.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
        axpy_blocks_min(row, h, y, BLOCK_BYTES, quants);
    }

    /// One block at `b`'s `Σq·x` (codes 0..32, unsigned, straight into `maddubs`)
    /// times `d` (both scales), added to `acc`.
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
        fma_i32(acc, d, v)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::types::q5_test_util::{self, Q5Fns};

    /// `blocks` blocks of values in ±1, each block scaled by a different power of ten
    /// and every third one shifted off zero (so the minimum matters).
    fn random(blocks: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..blocks * QK)
            .map(|i| {
                let (blk, scale) = (i / QK, 10f32.powi((i / QK % 5) as i32 - 2));
                let shift = if blk % 3 == 1 { 1.5 } else { 0.0 };
                (rng.random_range(-1.0f32..1.0) + shift) * scale
            })
            .collect()
    }

    /// This type's functions for the shared Q5 checks.
    fn fns() -> Q5Fns {
        Q5Fns {
            bb: BLOCK_BYTES,
            m_at: Some(M),
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
        // d = 0.5, m = −1; qh bits 0, 5, 15 and 31 set.
        let mut b = [0u8; BLOCK_BYTES];
        b[..M].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[M..QH].copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        b[QH..QS].copy_from_slice(&0x8000_8021u32.to_le_bytes());
        b[QS] = 0x3A; // value 0: 0xA | 0x10 = 26; value 16: 3 (bit 16 clear)
        b[QS + 5] = 0x07; // value 5: 7 | 0x10 = 23; value 21: 0
        b[QS + 15] = 0xF0; // value 15: 0 | 0x10 = 16; value 31: 0xF | 0x10 = 31
        let mut out = [f32::NAN; QK];
        decode(&b, &mut out);
        let expect = [
            (0, 12.0),
            (16, 0.5),
            (5, 10.5),
            (21, -1.0),
            (15, 7.0),
            (31, 14.5),
        ];
        for (j, v) in expect {
            assert_eq!(out[j], v, "value {j}");
        }
        for (j, &v) in out.iter().enumerate() {
            if !expect.iter().any(|&(k, _)| k == j) {
                assert_eq!(v, -1.0, "value {j}: code 0");
            }
        }
    }

    #[test]
    fn encodes_codes_0_to_31_exactly() {
        // 10..41: min 10, d = 1, so value j gets code j.
        let values: Vec<f32> = (0..QK).map(|j| j as f32 + 10.0).collect();
        let row = encoded(&values);
        let mut expect = vec![0x00, 0x3C, 0x00, 0x49, 0x00, 0x00, 0xFF, 0xFF];
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
            let at = blk * BLOCK_BYTES;
            let (d, m) = (f16_at(&row[at..], 0).abs(), f16_at(&row[at..], M).abs());
            // Half a step, plus what rounding d and m to f16 moves a value (codes ≤ 31),
            // plus the f32 roundings of `d·q + m`.
            let big = 31.0 * d + m;
            let tol = 0.5 * d + (31.0 * d + m) * 2f32.powi(-11) + big * 2f32.powi(-22);
            for (x, y) in v.iter().zip(b) {
                assert!(
                    (x - y).abs() <= tol,
                    "block {blk}: {x} vs {y} (d {d}, m {m})"
                );
            }
        }
        // A partial tail block is not encoded.
        assert_eq!(encoded(&values[..QK + 5]).len(), BLOCK_BYTES);
    }

    #[test]
    fn zero_and_constant_blocks_are_exact() {
        for c in [0.0f32, 3.0, -2.5, 1e-3] {
            let values = vec![c; 2 * QK];
            let row = encoded(&values);
            // d = 0 and code 0 everywhere: the value is the minimum alone.
            for b in row.chunks(BLOCK_BYTES) {
                assert_eq!(f16_at(b, 0), 0.0);
                assert!(b[QH..].iter().all(|&q| q == 0));
            }
            let want = f16::from_f32(c).to_f32();
            assert!(decoded(&row).iter().all(|&v| v == want), "{c}");
        }
    }

    #[test]
    fn scalar_axpy_matches_decode() {
        let row = encoded(&random(3, 9));
        let w = decoded(&row);
        let mut y = vec![1.0f32; 3 * QK + 4];
        axpy(&row, -0.75, &mut y);
        for (i, v) in y.iter().enumerate() {
            if i < 3 * QK {
                // `y + (h·d·q + h·m)`: relative to the largest term.
                let m = f16_at(&row[i / QK * BLOCK_BYTES..], M);
                let big = 1.0 + 0.75 * (w[i].abs() + 2.0 * m.abs());
                let expect = 1.0 - 0.75 * w[i];
                assert!((v - expect).abs() <= 1e-6 * big, "{i}: {v} vs {expect}");
            } else {
                assert_eq!(*v, 1.0, "{i}: past the blocks");
            }
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
