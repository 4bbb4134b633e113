//! Q4_K: ggml's 4-bit K-quant, 256 values in 144 bytes (4.5 bits per weight).
//!
//! Why: the most common weight type of llama.cpp's "Q4_K_M" models (attention output,
//! most FFN matrices). Layout (`block_q4_K` in `ggml-common.h`): f16 `d`, f16 `dmin`,
//! 12 bytes of eight 6-bit scales and eight 6-bit minimums (`get_scale_min_k4`), then
//! 128 bytes of nibbles. Sub-block `j` (32 values) decodes as
//! `d·sc[j]·q − dmin·m[j]`; bytes `32c..32c + 32` of the nibbles hold sub-block `2c`
//! in their low halves and `2c + 1` in their high halves.
//!
//! The scale unpacking and the `make_qkx2_quants` encoder are shared with Q5_K.

use crate::blocks::f16_at;
use crate::q8k::{BlockQ8K, QK_K, nearest_int};

/// Bytes per block of 256 values.
///
/// Why: callers size rows and step through them with it.
pub(crate) const BLOCK_BYTES: usize = 144;

/// Offset of the 12 scale bytes in a Q4_K or Q5_K block (after `d`, `dmin`).
const SCALES: usize = 4;
/// Offset of the nibbles in a Q4_K block.
const QS: usize = 16;

/// The eight 6-bit scales (bytes 0..8) and eight 6-bit minimums (bytes 8..16) of the
/// 12 packed bytes `s`, with ggml's `utmp` shuffle (`kmask1..3`), which is
/// `get_scale_min_k4(j)` for every `j` at once.
///
/// Why shared: Q4_K and Q5_K pack their scales identically, and the AVX2 kernels widen
/// this 16-byte form straight into i16 lanes.
#[inline]
pub(crate) fn scales_mins(s: &[u8; 12]) -> [u8; 16] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let w = |k: usize| u32::from_le_bytes([s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]]);
    let (u0, u1, u2) = (w(0), w(1), w(2));
    let t = [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ];
    let mut out = [0u8; 16];
    for (o, v) in out.chunks_exact_mut(4).zip(t) {
        o.copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// The 12 scale bytes of the Q4_K/Q5_K block starting at `b` (which holds them).
///
/// Why: [`scales_mins`] takes them as an array, so its unpacking has no bounds checks.
#[inline]
pub(crate) fn scale_bytes(b: &[u8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&b[SCALES..SCALES + 12]);
    s
}

/// Decodes as many whole blocks as both `row` and `out` hold (any lengths, no panic),
/// as ggml's `dequantize_row_q4_K`.
///
/// Why: the reference definition of the format; loaders and tests turn rows to f32.
pub(crate) fn decode(row: &[u8], out: &mut [f32]) {
    for (o, b) in out
        .chunks_exact_mut(QK_K)
        .zip(row.chunks_exact(BLOCK_BYTES))
    {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let sm = scales_mins(&scale_bytes(b));
        for (c, (oc, q)) in o
            .chunks_exact_mut(64)
            .zip(b[QS..].chunks_exact(32))
            .enumerate()
        {
            let (d1, m1) = (d * sm[2 * c] as f32, dmin * sm[8 + 2 * c] as f32);
            let (d2, m2) = (d * sm[2 * c + 1] as f32, dmin * sm[8 + 2 * c + 1] as f32);
            for (l, &v) in q.iter().enumerate() {
                oc[l] = d1 * (v & 0xF) as f32 - m1;
                oc[l + 32] = d2 * (v >> 4) as f32 - m2;
            }
        }
    }
}

/// The 256 quants (0..16) of the Q4_K block `b`, in value order.
fn quants(b: &[u8]) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (qc, bc) in q.chunks_exact_mut(64).zip(b[QS..QS + 128].chunks_exact(32)) {
        for (l, &v) in bc.iter().enumerate() {
            qc[l] = v & 0xF;
            qc[l + 32] = v >> 4;
        }
    }
    q
}

/// The integer sums of one Q4_K/Q5_K block (quants `q` in value order, scales and
/// minimums `sm` as [`scales_mins`]) with `xb`: `(Σ_j sc[j]·Σ q·x over sub-block j,
/// Σ_k bsums[k]·m[k/2])`, as ggml's generic `vec_dot_q4_K_q8_K`.
///
/// Why shared: Q5_K differs only in how `q` is unpacked.
pub(crate) fn block_sums(q: &[u8; QK_K], sm: &[u8; 16], xb: &BlockQ8K) -> (i32, i32) {
    let sumi = q
        .chunks_exact(32)
        .zip(xb.qs.chunks_exact(32))
        .zip(&sm[..8])
        .map(|((qj, xj), &sc)| {
            let s: i32 = qj.iter().zip(xj).map(|(&a, &b)| a as i32 * b as i32).sum();
            sc as i32 * s
        })
        .sum();
    let summ = xb
        .bsums
        .iter()
        .enumerate()
        .map(|(k, &s)| s as i32 * sm[8 + k / 2] as i32)
        .sum();
    (sumi, summ)
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
/// as ggml's `quantize_row_q4_K_ref`.
///
/// Why: tests and loaders make Q4_K rows from f32 with ggml's own choices of scales.
pub(crate) fn encode(values: &[f32], out: &mut Vec<u8>) {
    for x in values.chunks_exact(QK_K) {
        let (head, l) = encode_k4(x, 15, -1.0, 20);
        out.extend_from_slice(&head);
        for c in l.chunks_exact(64) {
            out.extend((0..32).map(|i| c[i] | (c[i + 32] << 4)));
        }
    }
}

/// The 16 header bytes (`d`, `dmin`, 12 scale bytes) and the quants `L` (0..=nmax) of a
/// Q4_K (`nmax` 15) or Q5_K (`nmax` 31) block of values `x`: the common part of ggml's
/// `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref` (`rmin`, `nstep` are the
/// `make_qkx2_quants` search they pass: -1, 20 for Q4_K; -0.5, 15 for Q5_K).
///
/// Why shared: the two encoders differ only in `nmax`, the search and the bit packing.
pub(crate) fn encode_k4(x: &[f32], nmax: i32, rmin: f32, nstep: i32) -> ([u8; 16], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let xj: [f32; 32] = std::array::from_fn(|i| x[32 * j + i]);
        let sum_x2: f32 = xj.iter().map(|v| v * v).sum();
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights = xj.map(|v| av_x + v.abs());
        let mut lj = [0u8; 32];
        (scales[j], mins[j]) = make_qkx2_quants(nmax, &xj, &weights, &mut lj, rmin, 0.1, nstep);
        l[32 * j..32 * j + 32].copy_from_slice(&lj);
        // As ggml: `if (v > max) max = v`.
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut s = [0u8; 12];
    for j in 0..8 {
        // As ggml: the int result stored to uint8_t (truncating), then MIN(63, ·).
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            s[j - 4] |= (ls >> 4) << 6;
            s[j] |= (lm >> 4) << 6;
        }
    }
    let dh = half::f16::from_f32(max_scale / 63.0);
    let mh = half::f16::from_f32(max_min / 63.0);
    let sm = scales_mins(&s);
    for j in 0..8 {
        let d = dh.to_f32() * sm[j] as f32;
        if d == 0.0 {
            continue;
        }
        let dm = mh.to_f32() * sm[8 + j] as f32;
        for (q, &v) in l[32 * j..32 * j + 32].iter_mut().zip(&x[32 * j..]) {
            *q = nearest_int((v + dm) / d).clamp(0, nmax) as u8;
        }
    }
    let mut head = [0u8; 16];
    head[..2].copy_from_slice(&dh.to_le_bytes());
    head[2..4].copy_from_slice(&mh.to_le_bytes());
    head[4..].copy_from_slice(&s);
    (head, l)
}

/// ggml's `make_qkx2_quants(n = 32, nmax, x, weights, L, &the_min, Laux, rmin,
/// rdelta, nstep, use_mad = false)`: the scale and (negated) minimum of `x` in `L`
/// (0..=nmax), searching `nstep + 1` trial scales for the least weighted squared error.
/// Returns `(scale, the_min)`.
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32; 32],
    weights: &[f32; 32],
    l: &mut [u8; 32],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0f32;
    for ((q, &v), &w) in l.iter_mut().zip(x).zip(weights) {
        *q = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        let diff = scale * *q as f32 + min - v;
        best_mad += w * (diff * diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for ((q, &v), &w) in laux.iter_mut().zip(x).zip(weights) {
            let li = nearest_int(iscale * (v - min)).clamp(0, nmax);
            *q = li as u8;
            let lf = li as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * v;
        }
        let dd = sum_w * sum_l2 - sum_l * sum_l;
        if dd > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / dd;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / dd;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0f32;
            for ((&q, &v), &w) in laux.iter().zip(x).zip(weights) {
                let diff = this_scale * q as f32 + this_min - v;
                mad += w * (diff * diff);
            }
            if mad < best_mad {
                *l = laux;
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// [`crate::WType::Q4K`]'s kernels.
pub(crate) struct Q4K;

super::forward_kernels!(Q4K, super::ActKind::Q8K, k);

/// AVX2 + FMA + F16C Q4_K kernels: ggml's `__AVX2__` `vec_dot_q4_K_q8_K`, and an axpy.
///
/// Why: the scalar kernels (vectorized by the compiler to SSE2 at most) run at ~2.5×
/// the time (4096×4096 GEMV, one thread). Both are safe for any slice lengths: they iterate the
/// whole blocks present in every operand (`chunks_exact` pairs), so each raw load is
/// inside a block slice or an activation block.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, QS, scale_bytes, scales_mins};
    use crate::q8k::avx2::{axpy32, f16x2, hsum, hsum4, mins_dot, prefetch_ahead, xq32};
    use crate::q8k::{BlockQ8K, QK_K};

    /// The eight scales of the Q4_K/Q5_K block `b` as i16 lanes, repeated in both
    /// 128-bit halves, and its eight minimums as i16 lanes.
    ///
    /// Why shared with Q5_K: the same 12 scale bytes, the same `madd` use.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn block_scales(b: &[u8]) -> (__m256i, __m128i) {
        let sm = scales_mins(&scale_bytes(b));
        // SAFETY: `sm` is 16 readable bytes; loadu has no alignment need.
        let v = _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(sm.as_ptr().cast()) });
        let sc = _mm256_castsi256_si128(v);
        (
            _mm256_broadcastsi128_si256(sc),
            _mm256_extracti128_si256(v, 1),
        )
    }

    /// A `pshufb` control that broadcasts i16 lane `j` (< 8) of each 128-bit half.
    ///
    /// Why shared with Q5_K: ggml's `get_scale_shuffle_k4(j)`, without the table.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn scale_shuffle(j: usize) -> __m256i {
        _mm256_set1_epi16((((2 * j + 1) << 8) | (2 * j)) as i16)
    }

    /// `row · x` (see [`super::dot`]), as ggml's AVX2 `vec_dot_q4_K_q8_K`.
    ///
    /// Why: the dense GEMV's row kernel at AVX2 (integer `maddubs`/`madd` per 32 values).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn dot(row: &[u8], xq: &[BlockQ8K]) -> f32 {
        let m4 = _mm256_set1_epi8(0xF);
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
            let mut sumi = _mm256_setzero_si256();
            for j in 0..QK_K / 64 {
                // SAFETY: the nibbles are bytes QS..QS + 128 of the block; this reads
                // the 32 at QS + 32j.
                let q4 = unsafe { _mm256_loadu_si256(p.add(QS + 32 * j).cast()) };
                let lo = _mm256_and_si256(q4, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), m4);
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
        let (m4, hv) = (_mm256_set1_epi8(0xF), _mm256_set1_ps(h));
        for (yb, b) in y.chunks_exact_mut(QK_K).zip(row.chunks_exact(BLOCK_BYTES)) {
            let p = b.as_ptr();
            // SAFETY: `b` is one whole block: `d` and `dmin` are its first 4 bytes.
            let (d, dmin) = f16x2(unsafe { p.cast::<u32>().read_unaligned() }, 1.0);
            let sm = scales_mins(&scale_bytes(b));
            let yp = yb.as_mut_ptr();
            for c in 0..QK_K / 64 {
                let (d1, m1) = (d * sm[2 * c] as f32, dmin * sm[8 + 2 * c] as f32);
                let (d2, m2) = (d * sm[2 * c + 1] as f32, dmin * sm[9 + 2 * c] as f32);
                // SAFETY: bytes QS + 32c..QS + 32c + 32 are nibbles of this block;
                // values 64c..64c + 64 of `yb` (256 floats, borrowed mutably) are
                // written.
                unsafe {
                    let q4 = _mm256_loadu_si256(p.add(QS + 32 * c).cast());
                    let lo = _mm256_and_si256(q4, m4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), m4);
                    axpy32(lo, d1, m1, hv, yp.add(64 * c));
                    axpy32(hi, d2, m2, hv, yp.add(64 * c + 32));
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
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// `get_scale_min_k4` exactly as ggml writes it.
    fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
        if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        }
    }

    #[test]
    fn scales_mins_is_get_scale_min_k4() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let s: [u8; 12] = std::array::from_fn(|_| rng.random());
            let sm = scales_mins(&s);
            for j in 0..8 {
                assert_eq!((sm[j], sm[8 + j]), get_scale_min_k4(j, &s));
            }
        }
    }

    #[test]
    fn known_block_decodes_per_ggml() {
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
        let s = &mut b[4..16];
        s[0] = 0b11_000011; // sc0 = 3; top bits = bits 4..6 of sc4
        s[4] = 0b10_000101; // m0 = 5; top bits = bits 4..6 of m4
        s[8] = 0x21; // sc4 low = 1, m4 low = 2
        s[9] = 0x32; // sc5 = 2, m5 = 3
        s[1] = 7; // sc1 = 7, m1 = 0
        b[16] = 0x9C; // value 0: 12 (sub-block 0); value 32: 9 (sub-block 1)
        b[16 + 64] = 0x7A; // value 128: 10 (sub-block 4); value 160: 7 (sub-block 5)
        b[16 + 65] = 0x0F; // value 129: 15
        let mut out = vec![f32::NAN; QK_K];
        decode(&b, &mut out);
        assert_eq!(out[0], 0.5 * 3.0 * 12.0 - 0.25 * 5.0);
        assert_eq!(out[1], -0.25 * 5.0);
        assert_eq!(out[32], 0.5 * 7.0 * 9.0);
        assert_eq!(out[128], 0.5 * 49.0 * 10.0 - 0.25 * 34.0);
        assert_eq!(out[129], 0.5 * 49.0 * 15.0 - 0.25 * 34.0);
        assert_eq!(out[160], 0.5 * 2.0 * 7.0 - 0.25 * 3.0);
        assert_eq!(out[192], 0.0); // sub-block 6: scale and min 0
        // Short slices: only whole blocks both hold.
        let mut short = vec![1.0f32; QK_K - 1];
        decode(&b, &mut short);
        assert!(short.iter().all(|&v| v == 1.0));
        decode(&b[..BLOCK_BYTES - 1], &mut out[..]);
    }

    #[test]
    fn encode_decode_round_trip() {
        // 4 bits over a range of ~2 (min to max of each 32): a step of ~0.13, so half a
        // step ~0.07, plus the 6-bit scale and min quantization.
        check_round_trip(BLOCK_BYTES, encode, decode, 0.12, 0.045);
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
