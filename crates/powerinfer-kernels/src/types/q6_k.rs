//! Q6_K: ggml's 6-bit K-quant, 256 values in 210 bytes (6.5625 bits per weight).
//!
//! Why: llama.cpp's "Q4_K_M"/"Q5_K_M" models store `ffn_down` (and the output matrix)
//! as Q6_K. Layout (`block_q6_K` in `ggml-common.h`): 128 bytes `ql` of low nibbles,
//! 64 bytes `qh` of 2-bit high parts, 16 signed 8-bit scales (one per 16 values), then
//! f16 `d`. In half `n` (128 values), value `128n + 32g + l` (`g < 4`, `l < 32`) takes
//! its low nibble from `ql[64n + 32(g & 1) + l]` (low half for `g < 2`, high half
//! otherwise) and bits `2g..2g + 2` of `qh[32n + l]` as bits 4..6; it decodes as
//! `d·scales[v / 16]·(q − 32)`.

use crate::blocks::f16_at;
use crate::q8k::{BlockQ8K, QK_K, nearest_int};

/// Bytes per block of 256 values.
///
/// Why: callers size rows and step through them with it.
pub(crate) const BLOCK_BYTES: usize = 210;

/// Offset of the high bits in a block.
const QH: usize = 128;
/// Offset of the 16 scales.
const SCALES: usize = 192;
/// Offset of `d`.
const D: usize = 208;

/// The 256 quants of the Q6_K block `b` minus 32 (−32..32), in value order.
fn quants(b: &[u8]) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (n, qn) in q.chunks_exact_mut(128).enumerate() {
        let (ql, qh) = (&b[64 * n..64 * n + 64], &b[QH + 32 * n..QH + 32 * n + 32]);
        for l in 0..32 {
            let h = qh[l];
            qn[l] = ((ql[l] & 0xF) | ((h & 3) << 4)) as i8 - 32;
            qn[l + 32] = ((ql[l + 32] & 0xF) | (((h >> 2) & 3) << 4)) as i8 - 32;
            qn[l + 64] = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
            qn[l + 96] = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    q
}

/// Decodes as many whole blocks as both `row` and `out` hold (any lengths, no panic),
/// as ggml's `dequantize_row_q6_K` (`d·sc·q`, multiplied left to right).
///
/// Why: the reference definition of the format; loaders and tests turn rows to f32.
pub(crate) fn decode(row: &[u8], out: &mut [f32]) {
    for (o, b) in out
        .chunks_exact_mut(QK_K)
        .zip(row.chunks_exact(BLOCK_BYTES))
    {
        let d = f16_at(b, D);
        let q = quants(b);
        for ((og, qg), &sc) in o
            .chunks_exact_mut(16)
            .zip(q.chunks_exact(16))
            .zip(&b[SCALES..D])
        {
            let ds = d * (sc as i8) as f32;
            for (v, &qv) in og.iter_mut().zip(qg) {
                *v = ds * qv as f32;
            }
        }
    }
}

/// Scalar reference `row · x`, `x` as Q8_K blocks, over `min(row blocks, xq.len())`
/// blocks: integer sums per 16 values times their scale, then `d·Σ` per block in f32.
///
/// Why: the definition the AVX2 kernel is tested against, and the fallback.
pub(crate) fn dot(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    row.chunks_exact(BLOCK_BYTES)
        .zip(xq)
        .map(|(b, xb)| {
            let q = quants(b);
            let sumi: i32 = q
                .chunks_exact(16)
                .zip(xb.qs.chunks_exact(16))
                .zip(&b[SCALES..D])
                .map(|((qg, xg), &sc)| {
                    let s: i32 = qg.iter().zip(xg).map(|(&a, &x)| a as i32 * x as i32).sum();
                    (sc as i8) as i32 * s
                })
                .sum();
            f16_at(b, D) * xb.d * sumi as f32
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
/// as ggml's `quantize_row_q6_K_ref`.
///
/// Why: tests and loaders make Q6_K rows from f32 with ggml's own choices of scales.
pub(crate) fn encode(values: &[f32], out: &mut Vec<u8>) {
    const GROUP_MAX_EPS: f32 = 1e-15;
    for x in values.chunks_exact(QK_K) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for (ib, sc) in scales.iter_mut().enumerate() {
            let xs: [f32; 16] = std::array::from_fn(|i| x[16 * ib + i]);
            let mut lb = [0u8; 16];
            *sc = make_qx_quants_rmse1(32, &xs, &mut lb);
            l[16 * ib..16 * ib + 16].copy_from_slice(&lb);
            if sc.abs() > max_abs_scale {
                (max_abs_scale, max_scale) = (sc.abs(), *sc);
            }
        }
        let mut blk = [0u8; BLOCK_BYTES];
        if max_abs_scale < GROUP_MAX_EPS {
            out.extend_from_slice(&blk);
            continue;
        }
        let iscale = -128.0 / max_scale;
        let dh = half::f16::from_f32(1.0 / iscale);
        for (s, &sc) in blk[SCALES..D].iter_mut().zip(&scales) {
            // As ggml: MIN(127, ·) then a store to int8_t.
            *s = nearest_int(iscale * sc).min(127) as i8 as u8;
        }
        for j in 0..16 {
            let d = dh.to_f32() * (blk[SCALES + j] as i8) as f32;
            if d == 0.0 {
                continue;
            }
            for (q, &v) in l[16 * j..16 * j + 16].iter_mut().zip(&x[16 * j..]) {
                *q = (nearest_int(v / d).clamp(-32, 31) + 32) as u8;
            }
        }
        for n in 0..2 {
            let (ln, j) = (&l[128 * n..128 * n + 128], 64 * n);
            for i in 0..32 {
                let (q1, q2, q3, q4) = (ln[i], ln[i + 32], ln[i + 64], ln[i + 96]);
                blk[j + i] = (q1 & 0xF) | ((q3 & 0xF) << 4);
                blk[j + i + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
                blk[QH + 32 * n + i] =
                    (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
        blk[D..].copy_from_slice(&dh.to_le_bytes());
        out.extend_from_slice(&blk);
    }
}

/// ggml's `make_qx_quants(n = 16, nmax, x, L, rmse_type = 1, qw = NULL)`, the only form
/// Q6_K's reference quantizer uses: `L = nmax + clamp(round(x/scale), −nmax, nmax − 1)`
/// for the scale of least `x²`-weighted error among 19 trials. Returns the scale.
fn make_qx_quants_rmse1(nmax: i32, x: &[f32; 16], l: &mut [u8; 16]) -> f32 {
    const GROUP_MAX_EPS: f32 = 1e-15;
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            (amax, max) = (v.abs(), v);
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let q = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let (li, w) = (q(iscale, v) as f32, v * v);
            sumlx += w * v * li;
            suml2 += w * li * li;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    for (o, &v) in l.iter_mut().zip(x) {
        *o = (q(iscale, v) + nmax) as u8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l.iter_mut().zip(x) {
                *o = (q(iscale, v) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// [`crate::WType::Q6K`]'s kernels.
pub(crate) struct Q6K;

super::forward_kernels!(Q6K, super::ActKind::Q8K, k);

/// AVX2 + FMA + F16C Q6_K kernels: ggml's `__AVX2__` `vec_dot_q6_K_q8_K`, and an axpy.
///
/// Why: the scalar kernels (vectorized by the compiler to SSE2 at most) run at ~2.5×
/// the time (4096×4096 GEMV, one thread). Both are safe for
/// any slice lengths: they iterate the whole blocks present in every operand
/// (`chunks_exact` pairs), so each raw load is inside a block slice.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, D, QH, SCALES};
    use crate::q8k::avx2::{axpy32_scaled, f16x2, hsum, prefetch_ahead, xq32};
    use crate::q8k::{BlockQ8K, QK_K};

    /// The 128 quants (0..64, as bytes) of half `n` of a block: values
    /// `128n + 32g..128n + 32g + 32` for `g` = 0..4.
    ///
    /// # Safety
    /// `p` must be valid for one block (210 bytes) of reads and `n < 2`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn half(p: *const u8, n: usize) -> [__m256i; 4] {
        let (m4, m2) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(3));
        // SAFETY: n < 2: bytes 64n..64n + 64 (`ql`) and QH + 32n..QH + 32n + 32 (`qh`)
        // are within the block.
        let (l1, l2, h) = unsafe {
            (
                _mm256_loadu_si256(p.add(64 * n).cast()),
                _mm256_loadu_si256(p.add(64 * n + 32).cast()),
                _mm256_loadu_si256(p.add(QH + 32 * n).cast()),
            )
        };
        // 16-bit shifts then per-byte masks (bits shifted in from the next byte are
        // masked off); the 2-bit parts move to bits 4..6.
        let hi = |v: __m256i| _mm256_slli_epi16::<4>(_mm256_and_si256(v, m2));
        [
            _mm256_or_si256(_mm256_and_si256(l1, m4), hi(h)),
            _mm256_or_si256(_mm256_and_si256(l2, m4), hi(_mm256_srli_epi16::<2>(h))),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
                hi(_mm256_srli_epi16::<4>(h)),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(l2), m4),
                hi(_mm256_srli_epi16::<6>(h)),
            ),
        ]
    }

    /// `row · x` (see [`super::dot`]), as ggml's AVX2 `vec_dot_q6_K_q8_K` except for
    /// the `−32` offset: ggml takes a second `maddubs` of 32 with the activations per
    /// 32 values; here it is `32·Σ_g sc[g]·bsums[g]`, one `madd` per block (measured
    /// ~12% faster: 4096×4096 from memory 2.2 → 1.9 ms, in cache 16 → 14 µs per 32 rows). Exact in integers, like the scalar kernel,
    /// while `bsums` are the sums of `qs` ([`BlockQ8K`]'s invariant); no i16 lane can
    /// overflow for any activation bytes (`63·128·2 < 2^15`).
    ///
    /// Why: the dense GEMV's row kernel at AVX2 (integer `maddubs`/`madd` per 32 values).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn dot(row: &[u8], xq: &[BlockQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (b, xb) in row.chunks_exact(BLOCK_BYTES).zip(xq) {
            let p = b.as_ptr();
            prefetch_ahead(p, BLOCK_BYTES);
            // SAFETY: `b` is one whole block: bytes D..D + 2 are `d`, the 16 bytes
            // at SCALES are the scales.
            let (bits, scales) = unsafe {
                (
                    p.add(D).cast::<u16>().read_unaligned(),
                    _mm_loadu_si128(p.add(SCALES).cast()),
                )
            };
            let (d, _) = f16x2(u32::from(bits), xb.d);
            // SAFETY: `bsums` is 16 i16 values, 32 readable bytes.
            let bs = unsafe { _mm256_loadu_si256(xb.bsums.as_ptr().cast()) };
            let offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), bs);
            let mut sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(offset));
            for n in 0..QK_K / 128 {
                // SAFETY: `p` is one whole block and n < 2.
                let q = unsafe { half(p, n) };
                for (g, qg) in q.into_iter().enumerate() {
                    let at = 128 * n + 32 * g;
                    let x = xq32(xb, at);
                    let v = _mm256_maddubs_epi16(qg, x);
                    // Scales at / 16 and at / 16 + 1, each over 8 i16 lanes (ggml's
                    // `get_scale_shuffle`).
                    let k = (at / 16) as i64;
                    let ctl =
                        _mm_set_epi64x((k + 1) * 0x0101_0101_0101_0101, k * 0x0101_0101_0101_0101);
                    let sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, ctl));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, v));
                }
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum(acc)
    }

    /// `y += h·decode(row)` (see [`super::axpy`]) over the whole blocks both hold.
    ///
    /// Why: the sparse down projection's row kernel at AVX2 (one row per active neuron).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
        let m32 = _mm256_set1_epi8(32);
        for (yb, b) in y.chunks_exact_mut(QK_K).zip(row.chunks_exact(BLOCK_BYTES)) {
            let p = b.as_ptr();
            // SAFETY: `b` is one whole block: bytes D..D + 2 are `d`.
            let bits = unsafe { p.add(D).cast::<u16>().read_unaligned() };
            let (hd, _) = f16x2(u32::from(bits), h);
            let sc = &b[SCALES..D];
            let yp = yb.as_mut_ptr();
            for n in 0..QK_K / 128 {
                // SAFETY: `p` is one whole block and n < 2.
                let q = unsafe { half(p, n) };
                for (g, qg) in q.into_iter().enumerate() {
                    let at = 128 * n + 32 * g;
                    let hd = [sc[at / 16], sc[at / 16 + 1]].map(|s| hd * (s as i8) as f32);
                    // SAFETY: values at..at + 32 (< 256) of `yb` (256 floats, borrowed
                    // mutably) are written.
                    unsafe { axpy32_scaled(_mm256_sub_epi8(qg, m32), hd, yp.add(at)) };
                }
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
        b[D..].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        b[SCALES] = 3; // values 0..16
        b[SCALES + 1] = (-2i8) as u8; // values 16..32
        b[SCALES + 4] = 5; // values 64..80
        b[SCALES + 6] = 1; // values 96..112
        b[SCALES + 15] = 127; // values 240..256
        b[32] = 0x30; // value 96 low nibble 3 (value 32: 0)
        b[0] = 0x9C; // value 0 low nibble 12, value 64 low nibble 9
        b[QH] = 0b10_00_00_11; // value 0 high 3, value 32 high 0, value 64 high 0, value 96 high 2
        b[17] = 0x05; // value 17: low 5
        b[QH + 17] = 0b01; // value 17: high 1 → 21
        b[64 + 32 + 31] = 0xF0; // value 128 + 96 + 31 = 255: low nibble 15
        b[QH + 32 + 31] = 0b11_00_00_00; // value 255: high 3 → 63
        let mut out = vec![f32::NAN; QK_K];
        decode(&b, &mut out);
        assert_eq!(out[0], 0.5 * 3.0 * (12 + 48 - 32) as f32);
        assert_eq!(out[1], 0.5 * 3.0 * -32.0);
        assert_eq!(out[17], 0.5 * -2.0 * (5 + 16 - 32) as f32);
        assert_eq!(out[64], 0.5 * 5.0 * (9 - 32) as f32);
        assert_eq!(out[32], 0.0); // scale 2 is 0
        assert_eq!(out[96], 0.5 * 1.0 * (3 + 32 - 32) as f32);
        assert_eq!(out[255], 0.5 * 127.0 * 31.0);
        let mut short = vec![1.0f32; QK_K - 1];
        decode(&b, &mut short);
        assert!(short.iter().all(|&v| v == 1.0));
        decode(&b[..BLOCK_BYTES - 1], &mut out[..]);
    }

    #[test]
    fn encode_decode_round_trip() {
        // 6 bits (−32..31) over ±1: a step of ~1/32, half a step ~0.016, plus the
        // 8-bit scale quantization.
        check_round_trip(BLOCK_BYTES, encode, decode, 0.03, 0.011);
        let mut z = Vec::new();
        encode(&[0.0; QK_K], &mut z);
        assert!(z.iter().all(|&v| v == 0));
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
            f16_at: &[D],
        });
    }

    #[test]
    fn pathological_values_do_not_panic() {
        crate::q8k::test_util::check_pathological(encode, decode, dot, axpy);
    }
}
