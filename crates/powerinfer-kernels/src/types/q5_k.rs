//! Q5_K: ggml's 5-bit K-quant, 256 values in 176 bytes (5.5 bits per weight).
//!
//! Why: llama.cpp's "Q5_K_M" models, and the higher-precision matrices of "Q4_K_M".
//! Layout (`block_q5_K` in `ggml-common.h`): f16 `d`, f16 `dmin`, the 12 scale bytes
//! of Q4_K, 32 bytes `qh` of high bits, then 128 bytes of low nibbles as in Q4_K.
//! Value `64c + l` (`l < 32`) is `(qs[32c + l] & 0xF) | bit 2c of qh[l] << 4`; value
//! `64c + 32 + l` is `(qs[32c + l] >> 4) | bit 2c + 1 of qh[l] << 4`; sub-block `j`
//! decodes as `d·sc[j]·q − dmin·m[j]`.

use super::q4_k::{block_sums, encode_k4, scale_bytes, scales_mins};
use crate::blocks::f16_at;
use crate::q8k::{BlockQ8K, QK_K};

/// Bytes per block of 256 values.
///
/// Why: callers size rows and step through them with it.
pub(crate) const BLOCK_BYTES: usize = 176;

/// Offset of the high bits in a block.
const QH: usize = 16;
/// Offset of the low nibbles in a block.
const QS: usize = 48;

/// Decodes as many whole blocks as both `row` and `out` hold (any lengths, no panic),
/// as ggml's `dequantize_row_q5_K`.
///
/// Why: the reference definition of the format; loaders and tests turn rows to f32.
pub(crate) fn decode(row: &[u8], out: &mut [f32]) {
    for (o, b) in out
        .chunks_exact_mut(QK_K)
        .zip(row.chunks_exact(BLOCK_BYTES))
    {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let sm = scales_mins(&scale_bytes(b));
        let qh = &b[QH..QS];
        for (c, (oc, ql)) in o
            .chunks_exact_mut(64)
            .zip(b[QS..].chunks_exact(32))
            .enumerate()
        {
            let (d1, m1) = (d * sm[2 * c] as f32, dmin * sm[8 + 2 * c] as f32);
            let (d2, m2) = (d * sm[2 * c + 1] as f32, dmin * sm[9 + 2 * c] as f32);
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for (l, (&v, &h)) in ql.iter().zip(qh).enumerate() {
                let hi1 = if h & u1 != 0 { 16 } else { 0 };
                let hi2 = if h & u2 != 0 { 16 } else { 0 };
                oc[l] = d1 * ((v & 0xF) + hi1) as f32 - m1;
                oc[l + 32] = d2 * ((v >> 4) + hi2) as f32 - m2;
            }
        }
    }
}

/// The 256 quants (0..32) of the Q5_K block `b`, in value order.
fn quants(b: &[u8]) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    let qh = &b[QH..QS];
    for (c, (qc, ql)) in q
        .chunks_exact_mut(64)
        .zip(b[QS..QS + 128].chunks_exact(32))
        .enumerate()
    {
        for (l, (&v, &h)) in ql.iter().zip(qh).enumerate() {
            qc[l] = (v & 0xF) | (((h >> (2 * c)) & 1) << 4);
            qc[l + 32] = (v >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
        }
    }
    q
}

/// Scalar reference `row · x`, `x` as Q8_K blocks, over `min(row blocks, xq.len())`
/// blocks: integer sums per sub-block, then `d·Σ − dmin·Σ` per block in f32.
///
/// Why: the definition the AVX2 kernel is tested against, and the fallback.
pub(crate) fn dot(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    row.chunks_exact(BLOCK_BYTES)
        .zip(xq)
        .map(|(b, xb)| {
            let (sumi, summ) = block_sums(&quants(b), &scales_mins(&scale_bytes(b)), xb);
            f16_at(b, 0) * xb.d * sumi as f32 - f16_at(b, 2) * xb.d * summ as f32
        })
        .sum()
}

/// Scalar reference `y += h·decode(row)` over the whole blocks both hold.
///
/// Why: the definition the AVX2 kernel is tested against, and the fallback.
pub(crate) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
    let mut w = [0f32; QK_K];
    for (yb, b) in y.chunks_exact_mut(QK_K).zip(row.chunks_exact(BLOCK_BYTES)) {
        decode(b, &mut w);
        for (o, &v) in yb.iter_mut().zip(&w) {
            *o += h * v;
        }
    }
}

/// Appends the encoding of `values` (whole blocks of 256; a partial tail is ignored),
/// as ggml's `quantize_row_q5_K_ref`.
///
/// Why: tests and loaders make Q5_K rows from f32 with ggml's own choices of scales.
pub(crate) fn encode(values: &[f32], out: &mut Vec<u8>) {
    for x in values.chunks_exact(QK_K) {
        let (head, l) = encode_k4(x, 31, -0.5, 15);
        let mut qh = [0u8; 32];
        let mut ql = [0u8; 128];
        for (c, (lc, qc)) in l.chunks_exact(64).zip(ql.chunks_exact_mut(32)).enumerate() {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for j in 0..32 {
                let (mut l1, mut l2) = (lc[j], lc[j + 32]);
                if l1 > 15 {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if l2 > 15 {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                qc[j] = l1 | (l2 << 4);
            }
        }
        out.extend_from_slice(&head);
        out.extend_from_slice(&qh);
        out.extend_from_slice(&ql);
    }
}

/// [`crate::WType::Q5K`]'s kernels.
pub(crate) struct Q5K;

super::forward_kernels!(Q5K, super::ActKind::Q8K, k);

/// AVX2 + FMA + F16C Q5_K kernels: ggml's `__AVX2__` `vec_dot_q5_K_q8_K`, and an axpy.
///
/// Why: the scalar kernels (vectorized by the compiler to SSE2 at most) run at ~2.5×
/// the time (4096×4096 GEMV, one thread). Both are safe for
/// any slice lengths: they iterate the whole blocks present in every operand
/// (`chunks_exact` pairs), so each raw load is inside a block slice.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, QH, QS};
    use crate::q8k::avx2::{axpy32, f16x2, hsum, hsum4, mins_dot, prefetch_ahead, xq32};
    use crate::q8k::{BlockQ8K, QK_K};
    use crate::types::q4_k::avx2::{block_scales, scale_shuffle};
    use crate::types::q4_k::{scale_bytes, scales_mins};

    /// The 64 quants (0..32, as bytes) of chunk `c` of a block: values `64c..64c + 32`
    /// and `64c + 32..64c + 64`; `hb` is the block's `qh` shifted right by `2c` bits.
    ///
    /// # Safety
    /// `p` must be valid for one block (176 bytes) of reads and `c < 4`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(p: *const u8, c: usize, hb: __m256i) -> (__m256i, __m256i) {
        let (m4, one) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(1));
        // SAFETY: bytes QS + 32c..QS + 32c + 32 are within the block (c < 4).
        let q = unsafe { _mm256_loadu_si256(p.add(QS + 32 * c).cast()) };
        // A 16-bit shift then a per-byte mask: bit k of each byte moves to bit 0 of
        // the same byte (the bits shifted in from the next byte are masked off).
        let h0 = _mm256_slli_epi16::<4>(_mm256_and_si256(hb, one));
        let h1 = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<1>(hb), one));
        let lo = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
        let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(q), m4), h1);
        (lo, hi)
    }

    /// `row · x` (see [`super::dot`]), as ggml's AVX2 `vec_dot_q5_K_q8_K`.
    ///
    /// Why: the dense GEMV's row kernel at AVX2 (integer `maddubs`/`madd` per 32 values).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn dot(row: &[u8], xq: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for (b, xb) in row.chunks_exact(BLOCK_BYTES).zip(xq) {
            let p = b.as_ptr();
            prefetch_ahead(p, BLOCK_BYTES);
            // SAFETY: `b` is one whole block: `d` and `dmin` are its first 4 bytes.
            let (d, dmin) = f16x2(unsafe { p.cast::<u32>().read_unaligned() }, xb.d);
            let (scales, mins) = block_scales(b);
            let m = _mm_cvtepi32_ps(mins_dot(mins, xb));
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), m, acc_m);
            // SAFETY: bytes QH..QH + 32 of the block are its high bits.
            let mut hb = unsafe { _mm256_loadu_si256(p.add(QH).cast()) };
            let mut sumi = _mm256_setzero_si256();
            for j in 0..QK_K / 64 {
                // SAFETY: `p` is one whole block and j < 4.
                let (lo, hi) = unsafe { chunk(p, j, hb) };
                hb = _mm256_srli_epi16::<2>(hb);
                let pl = _mm256_maddubs_epi16(lo, xq32(xb, 64 * j));
                let ph = _mm256_maddubs_epi16(hi, xq32(xb, 64 * j + 32));
                let sl = _mm256_shuffle_epi8(scales, scale_shuffle(2 * j));
                let sh = _mm256_shuffle_epi8(scales, scale_shuffle(2 * j + 1));
                let s = _mm256_add_epi32(_mm256_madd_epi16(sl, pl), _mm256_madd_epi16(sh, ph));
                sumi = _mm256_add_epi32(sumi, s);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum(acc) - hsum4(acc_m)
    }

    /// `y += h·decode(row)` (see [`super::axpy`]) over the whole blocks both hold.
    ///
    /// Why: the sparse down projection's row kernel at AVX2 (one row per active neuron).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
        let hv = _mm256_set1_ps(h);
        for (yb, b) in y.chunks_exact_mut(QK_K).zip(row.chunks_exact(BLOCK_BYTES)) {
            let p = b.as_ptr();
            // SAFETY: `b` is one whole block: `d` and `dmin` are its first 4 bytes.
            let (d, dmin) = f16x2(unsafe { p.cast::<u32>().read_unaligned() }, 1.0);
            let sm = scales_mins(&scale_bytes(b));
            // SAFETY: bytes QH..QH + 32 of the block are its high bits.
            let mut hb = unsafe { _mm256_loadu_si256(p.add(QH).cast()) };
            let yp = yb.as_mut_ptr();
            for c in 0..QK_K / 64 {
                let (d1, m1) = (d * sm[2 * c] as f32, dmin * sm[8 + 2 * c] as f32);
                let (d2, m2) = (d * sm[2 * c + 1] as f32, dmin * sm[9 + 2 * c] as f32);
                // SAFETY: `p` is one whole block and c < 4; values 64c..64c + 64 of
                // `yb` (256 floats, borrowed mutably) are written.
                unsafe {
                    let (lo, hi) = chunk(p, c, hb);
                    axpy32(lo, d1, m1, hv, yp.add(64 * c));
                    axpy32(hi, d2, m2, hv, yp.add(64 * c + 32));
                }
                hb = _mm256_srli_epi16::<2>(hb);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q8k::test_util::{
        check_axpy_adds_decoded_row, check_dot_matches_f64, check_round_trip,
    };

    #[test]
    fn known_block_decodes_per_ggml() {
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
        let s = &mut b[4..16];
        s[0] = 0b11_000011; // sc0 = 3; top bits = bits 4..6 of sc4
        s[4] = 0b10_000101; // m0 = 5; top bits = bits 4..6 of m4
        s[8] = 0x21; // sc4 low = 1, m4 low = 2 → sc4 = 49, m4 = 34
        s[11] = 0x54; // sc7 = 4, m7 = 5
        s[7] = 0b01_000000; // m3 = 0; top bits of m7 = 1 → m7 = 21
        b[QH] = 0b0001_0001; // qh[0]: bit 0 (value 0) and bit 4 (value 128)
        b[QH + 1] = 0b1000_0000; // qh[1]: bit 7 (value 192 + 32 + 1 = 225)
        b[QS] = 0x9C; // value 0: 12 | 16 = 28; value 32: 9
        b[QS + 64] = 0x7A; // value 128: 10 | 16 = 26; value 160: 7
        b[QS + 96 + 1] = 0x3F; // value 193: 15; value 225: 3 | 16 = 19
        let mut out = vec![f32::NAN; QK_K];
        decode(&b, &mut out);
        assert_eq!(out[0], 0.5 * 3.0 * 28.0 - 0.25 * 5.0);
        assert_eq!(out[32], 0.0);
        assert_eq!(out[128], 0.5 * 49.0 * 26.0 - 0.25 * 34.0);
        assert_eq!(out[160], 0.0);
        assert_eq!(out[193], 0.0);
        assert_eq!(out[225], 0.5 * 4.0 * 19.0 - 0.25 * 21.0);
        assert_eq!(out[224], -0.25 * 21.0);
        let mut short = vec![1.0f32; QK_K - 1];
        decode(&b, &mut short);
        assert!(short.iter().all(|&v| v == 1.0));
        decode(&b[..BLOCK_BYTES - 1], &mut out[..]);
    }

    #[test]
    fn encode_decode_round_trip() {
        // 5 bits over a range of ~2: a step of ~0.065, half a step ~0.033, plus the
        // 6-bit scale and min quantization.
        check_round_trip(BLOCK_BYTES, encode, decode, 0.06, 0.022);
    }

    #[test]
    fn dot_matches_f64() {
        check_dot_matches_f64(encode, decode, dot);
    }

    #[test]
    fn axpy_adds_decoded_row() {
        check_axpy_adds_decoded_row(encode, decode, axpy);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_matches_scalar() {
        crate::q8k::test_util::check_avx2(crate::q8k::test_util::Kernels {
            bb: BLOCK_BYTES,
            encode,
            decode,
            dot,
            axpy,
            // SAFETY: check_avx2 calls these only once AVX2, FMA and F16C were detected.
            avx_dot: |r: &[u8], x: &[BlockQ8K]| unsafe { avx2::dot(r, x) },
            // SAFETY: as above.
            avx_axpy: |r: &[u8], h: f32, y: &mut [f32]| unsafe { avx2::axpy(r, h, y) },
            f16_at: &[0, 2],
        });
    }

    #[test]
    fn pathological_values_do_not_panic() {
        crate::q8k::test_util::check_pathological(encode, decode, dot, axpy);
    }
}
