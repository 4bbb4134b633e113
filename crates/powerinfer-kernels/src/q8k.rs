//! Activations quantized to 8-bit super-blocks of 256 (ggml's `block_q8_K`), once per
//! call, for the K-quant weight types (Q4_K, Q5_K, Q6_K).
//!
//! Why a second activation format: K-quant weights carry a scale (and a minimum) per 16
//! or 32 values under one f16 per 256, so their integer dot wants activations with one
//! scale per 256 and the sums of each 16 quants (`bsums`, which turn the minimums into
//! one multiply per 16 values). The layout and rounding follow ggml
//! (`quantize_row_q8_K_ref`), so our dots agree with ggml's on the same bytes.

/// Values per K-quant super-block (ggml's `QK_K`).
///
/// Why a constant: every K-quant format, and [`BlockQ8K`], holds exactly 256 values.
pub(crate) const QK_K: usize = 256;

/// 256 activations: `x ≈ d·q`; `bsums[i] = Σ qs[16i..16i + 16]` (as ggml's
/// `block_q8_K`).
///
/// Why this layout: `qs` first and the struct 32-byte aligned, so SIMD loads of the
/// quants are aligned; `bsums` let the weight kernels apply per-16 minimums and offsets
/// without touching the quants again.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(crate) struct BlockQ8K {
    /// The quants, in `-127..=127` when made by [`quantize_q8k`].
    pub qs: [i8; QK_K],
    /// Scale (negative when the value of largest magnitude is positive, as in ggml).
    pub d: f32,
    /// Sums of each 16 consecutive `qs`.
    pub bsums: [i16; QK_K / 16],
}

/// All zero: the block of 256 zeros.
///
/// Why by hand: `Default` is not derived for arrays longer than 32.
impl Default for BlockQ8K {
    fn default() -> Self {
        Self {
            qs: [0; QK_K],
            d: 0.0,
            bsums: [0; QK_K / 16],
        }
    }
}

/// Quantizes `x` (whole blocks of 256; a partial tail is ignored) into `out` (cleared
/// first), as ggml's `quantize_row_q8_K_ref`.
///
/// Why a `Vec`: callers keep one across calls, so the blocks are allocated once.
pub(crate) fn quantize_q8k(x: &[f32], out: &mut Vec<BlockQ8K>) {
    out.clear();
    out.resize(x.len() / QK_K, BlockQ8K::default());
    quantize_q8k_into(x, out);
}

/// Quantizes the whole blocks of `x` into `out` (as many as both hold).
///
/// Why: a caller with its own buffer (a per-thread slice, say) fills it in place.
pub(crate) fn quantize_q8k_into(x: &[f32], out: &mut [BlockQ8K]) {
    for (o, blk) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        *o = quantize_block(blk);
    }
}

/// One block of 256 activations, as `quantize_row_q8_K_ref`: the value of largest
/// magnitude maps to `-127`, the rest round to nearest (ties to even).
fn quantize_block(blk: &[f32]) -> BlockQ8K {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in blk {
        if v.abs() > amax {
            (amax, max) = (v.abs(), v);
        }
    }
    let mut b = BlockQ8K::default();
    if amax == 0.0 {
        return b;
    }
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(blk) {
        // As ggml: `MIN(127, v)` then a store to int8_t (which truncates).
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, q) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = q.iter().map(|&v| i16::from(v)).sum();
    }
    b.d = 1.0 / iscale;
    b
}

/// `v` rounded to the nearest integer, ties to even: ggml's `nearest_int` (the
/// `v + 1.5·2^23` trick), bit for bit. Valid for `|v| ≤ 4194303`, as in ggml; outside
/// that (or NaN) the result is meaningless but defined (no panic).
///
/// Why not `crate::q8::round_i8`: that rounds ties away from zero and saturates to i8;
/// the K-quant encoders and `quantize_q8k` must round exactly as ggml does to produce
/// ggml's bytes (and they need results beyond i8, e.g. 6-bit scales before clamping).
#[inline]
pub(crate) fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0).to_bits();
    (bits & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// AVX2 helpers shared by the K-quant kernels (`types::q4_k`, `q5_k`, `q6_k`).
///
/// Why here: all three weight types load activations, reduce sums and prefetch alike,
/// widen their quants the same way for axpy, and (Q4_K, Q5_K) apply minimums through
/// [`BlockQ8K::bsums`].
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::BlockQ8K;

    pub(crate) use crate::avx2::hsum;

    /// The two f16 values packed in `bits` (low half first) as f32, each times `k`:
    /// [`crate::avx2::f16x2`] for the blocks' adjacent `d` and `dmin`, read as one u32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn f16x2(bits: u32, k: f32) -> (f32, f32) {
        crate::avx2::f16x2(bits as u16, (bits >> 16) as u16, _mm_set1_ps(k))
    }

    /// `Σ_k mins[k]·(bsums[2k] + bsums[2k + 1])` of `xb`, as four i32 partial sums, for
    /// eight minimums (one per 32 values) as i16 lanes.
    ///
    /// Why: a Q4_K/Q5_K block's `−dmin·m` terms dotted with the activations need only
    /// these sums (ggml's `hadd` + `madd`). No lane overflows while `bsums` are sums of
    /// 16 `i8` (`|b| ≤ 2048`, as [`quantize_q8k`] makes them); arbitrary `bsums` would
    /// wrap in the 16-bit pairwise add, where the scalar kernels would not.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn mins_dot(mins: __m128i, xb: &BlockQ8K) -> __m128i {
        // SAFETY: `bsums` is 16 i16 values, 32 readable bytes; loadu has no alignment need.
        let s = unsafe { _mm256_loadu_si256(xb.bsums.as_ptr().cast()) };
        let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        _mm_madd_epi16(mins, pairs)
    }

    /// The 32 activation quants of `xb` from value `at` (`at + 32 <= 256`).
    ///
    /// Why shared: every K-quant dot loads its activations 32 at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn xq32(xb: &BlockQ8K, at: usize) -> __m256i {
        let q = &xb.qs[at..at + 32];
        // SAFETY: `q` is 32 readable bytes; loadu has no alignment need.
        unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
    }

    /// The sum of the four lanes of `v`.
    ///
    /// Why: the Q4_K/Q5_K minimum terms accumulate in four lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn hsum4(v: __m128) -> f32 {
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)))
    }

    /// How far ahead of the block in use [`prefetch_ahead`] asks for weights, in bytes.
    const PF_AHEAD: usize = 2048;

    /// Prefetches every cache line of the `bb`-byte block [`PF_AHEAD`] bytes past `p`
    /// (a hint: the addresses are never read and may lie past the row; prefetches
    /// never fault).
    ///
    /// Why: measured on a shared 2-core AMD EPYC VM, 4096×4096 GEMV from memory, 1
    /// thread: Q4_K ~1.7 → ~1.3 ms, Q5_K ~2.1 → ~1.75, Q6_K ~2.5 → ~2.2 (a row's blocks,
    /// then the next row's, are contiguous; the hardware prefetcher alone lags). No
    /// change when the matrix is in cache.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn prefetch_ahead(p: *const u8, bb: usize) {
        let at = p.wrapping_add(PF_AHEAD);
        let mut off = 0;
        while off < bb {
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(off).cast());
            off += 64;
        }
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(bb.saturating_sub(1)).cast());
    }

    /// `y[..32] += hd[0]·q[..16]`, `y[16..32] += hd[1]·q[16..]` for 32 signed byte quants
    /// `q`: one FMA per 8 values.
    ///
    /// Why: Q6_K has no minimum, so `h·d` folds into one scale per 16 values (Q6_K axpy
    /// measured ~10-15% faster than through [`axpy32`]; the rounding is `(h·d)·q`
    /// instead of `h·(d·q)`).
    ///
    /// # Safety
    /// `y` must be valid for 32 floats of reads and writes, aliased by nothing else.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn axpy32_scaled(q: __m256i, hd: [f32; 2], y: *mut f32) {
        let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        let pieces = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
        let (d0, d1) = (_mm256_set1_ps(hd[0]), _mm256_set1_ps(hd[1]));
        for (k, p) in pieces.into_iter().enumerate() {
            let dv = if k < 2 { d0 } else { d1 };
            let w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(p));
            // SAFETY: 8k + 8 <= 32 floats, which the caller guarantees.
            unsafe {
                let yp = y.add(8 * k);
                _mm256_storeu_ps(yp, _mm256_fmadd_ps(dv, w, _mm256_loadu_ps(yp)));
            }
        }
    }

    /// `y[..32] += h·(d·q − m)` for 32 signed byte quants `q`.
    ///
    /// Why: the Q4_K and Q5_K axpy are this per 32 values (one scale and one minimum
    /// per 32) once their quants are unpacked.
    ///
    /// # Safety
    /// `y` must be valid for 32 floats of reads and writes, aliased by nothing else.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn axpy32(q: __m256i, d: f32, m: f32, h: __m256, y: *mut f32) {
        let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        let pieces = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
        let (dv, mv) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
        for (k, p) in pieces.into_iter().enumerate() {
            let w = _mm256_fmsub_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(p)), mv);
            // SAFETY: 8k + 8 <= 32 floats, which the caller guarantees.
            unsafe {
                let yp = y.add(8 * k);
                _mm256_storeu_ps(yp, _mm256_fmadd_ps(h, w, _mm256_loadu_ps(yp)));
            }
        }
    }
}

/// Test helpers shared by the K-quant types' tests.
#[cfg(test)]
pub(crate) mod test_util {
    use super::{BlockQ8K, QK_K, quantize_q8k};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// `n` values uniform in `[-1, 1)` from `seed`.
    pub(crate) fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// The f64 dot of `w` with the dequantized activation (`d·q`), and `Σ|w·x|`.
    pub(crate) fn reference(w: &[f32], xq: &[BlockQ8K]) -> (f64, f64) {
        let mut s = (0f64, 0f64);
        for (wb, xb) in w.chunks_exact(QK_K).zip(xq) {
            for (&a, &q) in wb.iter().zip(&xb.qs) {
                let p = a as f64 * (xb.d as f64 * q as f64);
                s = (s.0 + p, s.1 + p.abs());
            }
        }
        s
    }

    /// Encodes 8 random blocks and decodes them back: the row has `8·bb` bytes, the
    /// largest error is below `max_err` and the rms error below `max_rms`; an all-zero
    /// block decodes to zeros.
    pub(crate) fn check_round_trip(
        bb: usize,
        encode: fn(&[f32], &mut Vec<u8>),
        decode: fn(&[u8], &mut [f32]),
        max_err: f32,
        max_rms: f32,
    ) {
        let x = random(8 * QK_K, 2);
        let mut bytes = Vec::new();
        encode(&x, &mut bytes);
        assert_eq!(bytes.len(), 8 * bb);
        let mut y = vec![0f32; x.len()];
        decode(&bytes, &mut y);
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < max_err, "max error {err}");
        let rms = (x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / x.len() as f32)
            .sqrt();
        assert!(rms < max_rms, "rms {rms}");
        let mut z = Vec::new();
        encode(&[0.0; QK_K], &mut z);
        let mut zy = vec![1f32; QK_K];
        decode(&z, &mut zy);
        assert!(zy.iter().all(|&v| v == 0.0));
    }

    /// The scalar dot against the f64 dot of the decoded row with the dequantized
    /// activation (within 1e-5 of Σ|w·x|), for 1, 2, 3 and 5 blocks, and with fewer
    /// activation blocks than row blocks (only the common ones).
    pub(crate) fn check_dot_matches_f64(
        encode: fn(&[f32], &mut Vec<u8>),
        decode: fn(&[u8], &mut [f32]),
        dot: fn(&[u8], &[BlockQ8K]) -> f32,
    ) {
        for nb in [1, 2, 3, 5] {
            let mut row = Vec::new();
            encode(&random(nb * QK_K, 3 + nb as u64), &mut row);
            let mut xq = Vec::new();
            quantize_q8k(&random(nb * QK_K, 40 + nb as u64), &mut xq);
            let mut w = vec![0f32; nb * QK_K];
            decode(&row, &mut w);
            let (want, scale) = reference(&w, &xq);
            let got = dot(&row, &xq) as f64;
            assert!((got - want).abs() <= 1e-5 * scale, "{nb}: {got} vs {want}");
            let (want1, _) = reference(&w, &xq[..1]);
            assert!((dot(&row, &xq[..1]) as f64 - want1).abs() <= 1e-5 * scale);
        }
    }

    /// The scalar axpy adds exactly `h·decode(row)` to the values the row covers and
    /// leaves the rest of `y` alone.
    pub(crate) fn check_axpy_adds_decoded_row(
        encode: fn(&[f32], &mut Vec<u8>),
        decode: fn(&[u8], &mut [f32]),
        axpy: fn(&[u8], f32, &mut [f32]),
    ) {
        let mut row = Vec::new();
        encode(&random(2 * QK_K, 9), &mut row);
        let mut w = vec![0f32; 2 * QK_K];
        decode(&row, &mut w);
        let mut y = random(2 * QK_K + 3, 10);
        let y0 = y.clone();
        axpy(&row, -0.75, &mut y);
        for i in 0..2 * QK_K {
            assert_eq!(y[i], y0[i] + -0.75 * w[i]);
        }
        assert_eq!(&y[2 * QK_K..], &y0[2 * QK_K..]);
    }

    /// One weight type's functions, scalar and AVX2, for [`check_avx2`].
    pub(crate) struct Kernels<D, A> {
        pub bb: usize,
        pub encode: fn(&[f32], &mut Vec<u8>),
        pub decode: fn(&[u8], &mut [f32]),
        pub dot: fn(&[u8], &[BlockQ8K]) -> f32,
        pub axpy: fn(&[u8], f32, &mut [f32]),
        pub avx_dot: D,
        pub avx_axpy: A,
        /// Byte offsets of the block's f16 scales (`d`, `dmin`).
        pub f16_at: &'static [usize],
    }

    /// AVX2 dot and axpy against scalar for 1..=5 and 43 blocks, and on mismatched
    /// lengths (only the common whole blocks, nothing read or written beyond); skipped
    /// (with a note) when the CPU lacks AVX2, FMA or F16C.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn check_avx2<D, A>(k: Kernels<D, A>)
    where
        D: Fn(&[u8], &[BlockQ8K]) -> f32,
        A: Fn(&[u8], f32, &mut [f32]),
    {
        let have = ["avx2", "fma", "f16c"].map(|f| match f {
            "avx2" => is_x86_feature_detected!("avx2"),
            "fma" => is_x86_feature_detected!("fma"),
            _ => is_x86_feature_detected!("f16c"),
        });
        if have.contains(&false) {
            eprintln!("skipped: this CPU lacks avx2/fma/f16c ({have:?})");
            return;
        }
        check_random_bytes(&k);
        let mut rng = StdRng::seed_from_u64(11);
        for nb in [1, 2, 3, 4, 5, 43] {
            // Weights with a few scale magnitudes, so sub-block scales differ.
            let vals: Vec<f32> = random(nb * QK_K, 100 + nb as u64)
                .iter()
                .enumerate()
                .map(|(i, v)| v * [0.02, 1.0, 0.3, 5.0][(i / 48) % 4])
                .collect();
            let mut row = Vec::new();
            (k.encode)(&vals, &mut row);
            assert_eq!(row.len(), nb * k.bb);
            let mut w = vec![0f32; nb * QK_K];
            (k.decode)(&row, &mut w);
            let x: Vec<f32> = (0..nb * QK_K)
                .map(|_| rng.random_range(-3.0f32..3.0))
                .collect();
            let mut xq = Vec::new();
            quantize_q8k(&x, &mut xq);
            let (_, scale) = reference(&w, &xq);
            let (want, got) = ((k.dot)(&row, &xq), (k.avx_dot)(&row, &xq));
            assert!(
                ((got - want) as f64).abs() <= 2e-5 * scale,
                "{nb} blocks: avx2 {got} vs scalar {want}"
            );
            for h in [0.7f32, -1.3] {
                let y0: Vec<f32> = (0..nb * QK_K)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect();
                let (mut ys, mut ya) = (y0.clone(), y0.clone());
                (k.axpy)(&row, h, &mut ys);
                (k.avx_axpy)(&row, h, &mut ya);
                let wmax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (i, (a, s)) in ya.iter().zip(&ys).enumerate() {
                    let tol = 2e-5 * (h.abs() * wmax + y0[i].abs());
                    assert!((a - s).abs() <= tol, "{nb} blocks, y[{i}]: {a} vs {s}");
                }
            }
            // Row shorter than xq (and cut inside a block): the common whole blocks.
            let cut = &row[..(nb - 1) * k.bb + k.bb / 2];
            let (want, got) = ((k.dot)(cut, &xq), (k.avx_dot)(cut, &xq));
            let (_, scale) = reference(&w[..(nb - 1) * QK_K], &xq);
            assert!(((got - want) as f64).abs() <= 2e-5 * scale.max(1e-30));
            // xq shorter than the row.
            let (want, got) = (
                (k.dot)(&row, &xq[..nb - 1]),
                (k.avx_dot)(&row, &xq[..nb - 1]),
            );
            assert!(((got - want) as f64).abs() <= 2e-5 * scale.max(1e-30));
            // y shorter than the row, inside a larger buffer: nothing past `y` written,
            // nothing past its last whole block changed.
            let mut buf = vec![9.0f32; nb * QK_K + 64];
            let ylen = (nb - 1) * QK_K + 100;
            (k.avx_axpy)(&row, 1.0, &mut buf[..ylen]);
            let mut want = vec![9.0f32; nb * QK_K + 64];
            (k.axpy)(&row, 1.0, &mut want[..ylen]);
            let done = (nb - 1) * QK_K;
            assert!(
                buf[done..].iter().all(|&v| v == 9.0),
                "{nb}: wrote past the common blocks"
            );
            for (a, s) in buf[..done].iter().zip(&want[..done]) {
                assert!((a - s).abs() <= 2e-5 * (wmax_of(&w) + 9.0));
            }
            // A row cut inside a block: its partial block is not used.
            let mut yc = vec![0f32; nb * QK_K];
            (k.avx_axpy)(cut, 1.0, &mut yc);
            assert!(yc[done..].iter().all(|&v| v == 0.0));
        }
    }

    /// Random bytes as blocks (every bit pattern is a valid block once its f16 scales
    /// are finite) against activations over the whole i8 range, `-128` included: the
    /// integer paths must agree exactly, so only float rounding may differ.
    #[cfg(target_arch = "x86_64")]
    fn check_random_bytes<D, A>(k: &Kernels<D, A>)
    where
        D: Fn(&[u8], &[BlockQ8K]) -> f32,
        A: Fn(&[u8], f32, &mut [f32]),
    {
        let mut rng = StdRng::seed_from_u64(12);
        let nb = 7;
        let mut row: Vec<u8> = (0..nb * k.bb).map(|_| rng.random()).collect();
        for b in row.chunks_exact_mut(k.bb) {
            for &at in k.f16_at {
                let v = half::f16::from_f32(rng.random_range(-0.05f32..0.05));
                b[at..at + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        let xq: Vec<BlockQ8K> = (0..nb)
            .map(|_| {
                let mut b = BlockQ8K {
                    d: rng.random_range(-0.1f32..0.1),
                    ..Default::default()
                };
                for q in b.qs.iter_mut() {
                    *q = rng.random();
                }
                b.qs[0] = -128;
                for (s, q) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
                    *s = q.iter().map(|&v| i16::from(v)).sum();
                }
                b
            })
            .collect();
        let mut w = vec![0f32; nb * QK_K];
        (k.decode)(&row, &mut w);
        let (want64, scale) = reference(&w, &xq);
        let (want, got) = ((k.dot)(&row, &xq), (k.avx_dot)(&row, &xq));
        assert!(
            ((got - want) as f64).abs() <= 2e-5 * scale,
            "random bytes: {got} vs {want}"
        );
        assert!(
            (want as f64 - want64).abs() <= 1e-5 * scale,
            "random bytes: {want} vs {want64}"
        );
        let (mut ys, mut ya) = (vec![0.5f32; nb * QK_K], vec![0.5f32; nb * QK_K]);
        (k.axpy)(&row, 0.3, &mut ys);
        (k.avx_axpy)(&row, 0.3, &mut ya);
        let tol = 2e-5 * (0.3 * wmax_of(&w) + 0.5);
        assert!(ya.iter().zip(&ys).all(|(a, s)| (a - s).abs() <= tol));
    }

    /// Encoding NaN, infinities, huge and tiny values neither panics (integer overflow
    /// included, in debug builds) nor makes decode, dot or axpy panic.
    pub(crate) fn check_pathological(
        encode: fn(&[f32], &mut Vec<u8>),
        decode: fn(&[u8], &mut [f32]),
        dot: fn(&[u8], &[BlockQ8K]) -> f32,
        axpy: fn(&[u8], f32, &mut [f32]),
    ) {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            3e38,
            -3e38,
            1e-40,
            0.0,
            -0.0,
        ];
        let mut x = random(4 * QK_K, 13);
        for (i, v) in x.iter_mut().enumerate().take(2 * QK_K) {
            *v = specials[i % specials.len()] * if i % 3 == 0 { 1.0 } else { 1e-3 };
        }
        x[3 * QK_K..].iter_mut().for_each(|v| *v *= 1e30);
        let mut row = Vec::new();
        encode(&x, &mut row);
        let mut y = vec![0f32; x.len()];
        decode(&row, &mut y);
        let mut xq = Vec::new();
        quantize_q8k(&x, &mut xq);
        let _ = dot(&row, &xq);
        axpy(&row, 1.0, &mut y);
    }

    fn wmax_of(w: &[f32]) -> f32 {
        w.iter().fold(0f32, |m, v| m.max(v.abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (0.49, 0),
            (0.51, 1),
            (-127.0, -127),
            (126.6, 127),
            (1000.3, 1000),
            (-4_194_303.0, -4_194_303),
        ];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "{v}");
        }
        assert_eq!(nearest_int(f32::NAN), 0);
    }

    #[test]
    fn quantize_matches_ggml_definition() {
        let mut rng = StdRng::seed_from_u64(7);
        let x: Vec<f32> = (0..3 * QK_K + 17)
            .map(|_| rng.random_range(-3.0f32..3.0))
            .collect();
        let mut q = Vec::new();
        quantize_q8k(&x, &mut q);
        assert_eq!(q.len(), 3);
        for (b, blk) in q.iter().zip(x.chunks_exact(QK_K)) {
            let max = blk
                .iter()
                .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            assert_eq!(b.d, 1.0 / (-127.0 / max));
            assert!(b.qs.contains(&-127));
            for (s, qs) in b.bsums.iter().zip(b.qs.chunks_exact(16)) {
                assert_eq!(*s as i32, qs.iter().map(|&v| v as i32).sum::<i32>());
            }
            for (&v, &qv) in blk.iter().zip(&b.qs) {
                assert!((v - b.d * qv as f32).abs() <= 0.5 * b.d.abs() * 1.0001);
            }
        }
        // An all-zero block stays zero; `_into` fills only what both hold.
        let mut z = [BlockQ8K::default(); 2];
        z[1].d = 5.0;
        quantize_q8k_into(&vec![0.0; QK_K + 10], &mut z);
        assert_eq!(z[0].d, 0.0);
        assert!(z[0].qs.iter().all(|&v| v == 0) && z[0].bsums.iter().all(|&v| v == 0));
        assert_eq!(z[1].d, 5.0);
    }
}
