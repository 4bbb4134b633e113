//! AVX2 + FMA + F16C building blocks shared by the types' kernels (`types/*.rs`), and
//! the type-independent kernels: the f32 register-blocked GEMM and the ColQ4 axpy.
//!
//! Every function here is safe to call for *any* slice lengths: loops run only over the
//! values present in all operands, so each raw load below is in bounds by its loop
//! condition. The one precondition is the CPU feature set, which the `#[target_feature]`
//! attribute makes the caller's `unsafe` responsibility (see `types::by_isa`).

use std::arch::x86_64::*;

use crate::blocks::QK;
use crate::dispatch::GEMM_ROWS;
use crate::q8::BlockQ8;

/// Rows per call of the four-row axpy kernels.
pub(crate) const R: usize = 4;

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

/// [`axpy4`] for Q4_0 (`MIN = false`: `d·(q − 8)`) and Q4_1 (`MIN`: `d·q + m`): the
/// same updates as four [`axpy`] calls, but the nibbles are widened straight from memory:
/// `vpmovzxbd` of 8 quant bytes gives values `j..j + 8` in the low nibbles and
/// `j + 16..j + 24` in the high ones (an `and` and a shift, no cross-lane shuffles).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn axpy4_q4<const MIN: bool>(rows: [&[u8]; R], h: [f32; R], y: &mut [f32]) {
    let (bb, qs) = if MIN { (20, 4) } else { (18, 2) };
    let n = rows.iter().fold(y.len() / QK, |n, r| n.min(r.len() / bb));
    let w = rows.map(<[u8]>::as_ptr);
    let yp = y.as_mut_ptr();
    let (low, eight) = (_mm256_set1_epi32(0x0F), _mm256_set1_epi32(8));
    for i in 0..n {
        // SAFETY: i < n: block i of every row (`bb` bytes at bb·i: the scale(s), then
        // 16 quant bytes at `qs`, read as two 8-byte pieces) and values
        // QK·i..QK·(i + 1) of `y` are in bounds; `y` is borrowed mutably.
        unsafe {
            let p = w.map(|r| r.add(bb * i));
            let mut d = [_mm256_setzero_ps(); R];
            let mut m = [_mm256_setzero_ps(); R];
            if MIN {
                for r in 0..R {
                    let (dr, mr) = f16x2(f16_bits(p[r]), f16_bits(p[r].add(2)), _mm_set1_ps(h[r]));
                    (d[r], m[r]) = (_mm256_set1_ps(dr), _mm256_set1_ps(mr));
                }
            } else {
                for r in (0..R).step_by(2) {
                    let hv = _mm_setr_ps(h[r], h[r + 1], 0.0, 0.0);
                    let (da, db) = f16x2(f16_bits(p[r]), f16_bits(p[r + 1]), hv);
                    (d[r], d[r + 1]) = (_mm256_set1_ps(da), _mm256_set1_ps(db));
                }
            }
            for half in 0..2 {
                // Bytes 8·half.. of the quants: values 8·half.. (low nibbles), then
                // 16 + 8·half.. (high nibbles).
                let b =
                    p.map(|pr| _mm256_cvtepu8_epi32(_mm_loadl_epi64(pr.add(qs + 8 * half).cast())));
                for (k, shift) in [(half, false), (half + 2, true)] {
                    let yk = yp.add(QK * i + 8 * k);
                    let mut yv = _mm256_loadu_ps(yk);
                    for r in 0..R {
                        let q = if shift {
                            _mm256_srli_epi32(b[r], 4)
                        } else {
                            _mm256_and_si256(b[r], low)
                        };
                        let q = if MIN { q } else { _mm256_sub_epi32(q, eight) };
                        yv = _mm256_fmadd_ps(d[r], _mm256_cvtepi32_ps(q), yv);
                        if MIN {
                            yv = _mm256_add_ps(yv, m[r]);
                        }
                    }
                    _mm256_storeu_ps(yk, yv);
                }
            }
        }
    }
}

/// The f16 stored little-endian at `p`, as bits.
///
/// # Safety
/// `p` must be valid for 2 bytes of reads.
#[inline]
pub(crate) unsafe fn f16_bits(p: *const u8) -> u16 {
    // SAFETY: the caller guarantees 2 readable bytes; read_unaligned has no alignment need.
    unsafe { p.cast::<u16>().read_unaligned() }
}

/// Two f16 values (bits) converted together into f32 lanes 0 and 1, then times `k`.
///
/// Why pairs: converting a single f16 lets the compiler load it with a `pinsrw` that
/// merges into a stale register, which chains each block to the previous block's
/// result (measured: half the speed). With both lanes used it is one whole `movd`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16x2(lo: u16, hi: u16, k: __m128) -> (f32, f32) {
    let bits = (u32::from(lo) | (u32::from(hi) << 16)) as i32;
    let v = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)), k);
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// Prefetches byte `off` of each row at `pf` when `PF` (a hint: the addresses are
/// never read, and may lie past a row's end).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn prefetch_blocks<const PF: bool, const R: usize>(pf: [*const u8; R], off: usize) {
    if PF {
        for p in pf {
            // A prefetch never faults and reads nothing architecturally.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast());
        }
    }
}

/// The number of whole blocks of `bb` bytes that every one of `rows` and `xq` holds.
pub(crate) fn blocks_in<const R: usize>(rows: &[&[u8]; R], xq: &[BlockQ8], bb: usize) -> usize {
    rows.iter().fold(xq.len(), |n, r| n.min(r.len() / bb))
}

/// `v` with lane `k` broadcast to all eight lanes (`k < 8`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn lane(v: __m256, k: usize) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(k as i32))
}

/// The 32 nibbles at `qs` as bytes: values 0..16 in the low lane, 16..32 high (one
/// broadcast load, then a per-lane shift: no cross-lane shuffle).
///
/// # Safety
/// `qs` must be valid for 16 bytes of reads.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn nibbles(qs: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment need.
    let raw = unsafe { _mm_loadu_si128(qs.cast()) };
    let both = _mm256_broadcastsi128_si256(raw);
    let shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

/// Sums pairs of i16 lanes of `v` into i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn pairs(v: __m256i) -> __m256i {
    _mm256_madd_epi16(v, _mm256_set1_epi16(1))
}

/// The activation block `xb`'s quants (32-byte aligned by `BlockQ8`'s layout).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn xq_load(xb: &BlockQ8) -> __m256i {
    // SAFETY: `qs` is 32 readable bytes at the start of a 32-byte-aligned struct.
    unsafe { _mm256_load_si256(xb.qs.as_ptr().cast()) }
}

/// The i32 lanes of `v` as floats, scaled by `d` and added to `acc`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fma_i32(acc: __m256, d: f32, v: __m256i) -> __m256 {
    _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(v), acc)
}

/// Dots a row of `bb`-byte blocks two at a time (independent accumulators, scales
/// converted in pairs) with `block(ptr, x block, scale product, acc)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_pairs(
    row: &[u8],
    xq: &[BlockQ8],
    bb: usize,
    block: unsafe fn(*const u8, &BlockQ8, f32, __m256) -> __m256,
) -> f32 {
    let n = (row.len() / bb).min(xq.len());
    let w = row.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i + 2 <= n {
        let (xa, xb) = (&xq[i], &xq[i + 1]);
        // SAFETY: i + 2 <= n: blocks i and i + 1 (`bb` bytes each) are within `row`.
        unsafe {
            let (pa, pb) = (w.add(bb * i), w.add(bb * (i + 1)));
            let (da, db) = f16x2(
                f16_bits(pa),
                f16_bits(pb),
                _mm_setr_ps(xa.d, xb.d, 0.0, 0.0),
            );
            acc[0] = block(pa, xa, da, acc[0]);
            acc[1] = block(pb, xb, db, acc[1]);
        }
        i += 2;
    }
    if i < n {
        // SAFETY: i < n: block i is within `row`.
        unsafe {
            let p = w.add(bb * i);
            let (d, _) = f16x2(f16_bits(p), 0, _mm_set1_ps(xq[i].d));
            acc[0] = block(p, &xq[i], d, acc[0]);
        }
    }
    hsum(_mm256_add_ps(acc[0], acc[1]))
}

/// `y[..32] += d · q[..32]` (then `+ m` when `MIN`) for 32 signed bytes `q` (as two
/// 16-byte halves).
///
/// # Safety
/// `y` must be valid for 32 floats of reads and writes, aliased by nothing else.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_i8x32<const MIN: bool>(
    lo: __m128i,
    hi: __m128i,
    d: f32,
    m: f32,
    y: *mut f32,
) {
    let (hd, hm) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
    let lanes = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
    for (k, lane) in lanes.into_iter().enumerate() {
        let w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lane));
        // SAFETY: 8k + 8 <= 32 floats, which the caller guarantees.
        unsafe {
            let yp = y.add(8 * k);
            let yv = _mm256_fmadd_ps(hd, w, _mm256_loadu_ps(yp));
            _mm256_storeu_ps(yp, if MIN { _mm256_add_ps(yv, hm) } else { yv });
        }
    }
}

/// `y += h·row` over `bb`-byte blocks whose scale is the block's first f16 and whose
/// 32 signed quants `quants(block)` returns; scales are converted in pairs.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn axpy_pairs(
    row: &[u8],
    h: f32,
    y: &mut [f32],
    bb: usize,
    quants: unsafe fn(*const u8) -> (__m128i, __m128i),
) {
    let n = (row.len() / bb).min(y.len() / QK);
    let (w, yp) = (row.as_ptr(), y.as_mut_ptr());
    let hv = _mm_set1_ps(h);
    let mut i = 0;
    while i < n {
        let pair = i + 1 < n;
        // SAFETY: i < n, so block i is within `row` and values QK·i.. QK·(i + 1) are
        // within `y`; block i + 1 is touched only when `pair` (i + 1 < n). `y` is
        // borrowed mutably, so nothing else aliases it.
        unsafe {
            let pa = w.add(bb * i);
            let pb = if pair { w.add(bb * (i + 1)) } else { pa };
            let (da, db) = f16x2(f16_bits(pa), f16_bits(pb), hv);
            let (lo, hi) = quants(pa);
            axpy_i8x32::<false>(lo, hi, da, 0.0, yp.add(QK * i));
            if pair {
                let (lo, hi) = quants(pb);
                axpy_i8x32::<false>(lo, hi, db, 0.0, yp.add(QK * (i + 1)));
            }
        }
        i += 2;
    }
}

/// [`decode_row`] over `bb`-byte blocks: `d·q` (then `+ m` when `MIN`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn decode_blocks<const MIN: bool>(
    row: &[u8],
    out: &mut [f32],
    bb: usize,
    quants: unsafe fn(*const u8) -> (__m128i, __m128i),
) {
    let n = (row.len() / bb).min(out.len() / QK);
    let (w, op) = (row.as_ptr(), out.as_mut_ptr());
    for i in 0..n {
        // SAFETY: i < n: block i (`bb` bytes at bb·i) is within `row` and values
        // QK·i..QK·(i + 1) are within `out`, which is borrowed mutably.
        unsafe {
            let p = w.add(bb * i);
            let mbits = if MIN { f16_bits(p.add(2)) } else { 0 };
            let (d, m) = f16x2(f16_bits(p), mbits, _mm_set1_ps(1.0));
            let (dv, mv) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
            let (lo, hi) = quants(p);
            let lanes = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
            for (k, lane) in lanes.into_iter().enumerate() {
                let v = _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lane)));
                let v = if MIN { _mm256_add_ps(v, mv) } else { v };
                _mm256_storeu_ps(op.add(QK * i + 8 * k), v);
            }
        }
    }
}

/// Tokens per register block of [`dot_f32_rows`].
const GEMM_TOKENS: usize = 3;

/// `out[r·n + t] = w[r] · xs[t·cols ..][.. cols]` for every row `r < w.len()` (at most
/// [`GEMM_ROWS`]; more are ignored) and token `t < n`, where `n = out.len() / w.len()`
/// (tokens beyond `xs` are left alone).
///
/// Every output has exactly the arithmetic of `dot(F32, w[r], xs[t])` (the same four
/// accumulator chains, the same final sums), whatever block it falls in; the block
/// only shares loads: each x chunk is loaded once per rows block, each w chunk once per
/// token group, for `R × T` independent FMA chains.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f32_rows(w: &[&[f32]], xs: &[f32], cols: usize, out: &mut [f32]) {
    let rows = w.len().min(GEMM_ROWS);
    if rows == 0 || cols == 0 {
        return;
    }
    let n = (out.len() / rows).min(xs.len() / cols);
    let ld = out.len() / rows;
    let mut t = 0;
    while t < n {
        let tt = (n - t).min(GEMM_TOKENS);
        let x = |k: usize| &xs[(t + k) * cols..(t + k + 1) * cols];
        match (rows, tt) {
            (4, 3) => put(
                out,
                ld,
                t,
                dot_block([w[0], w[1], w[2], w[3]], [x(0), x(1), x(2)]),
            ),
            (4, 2) => put(
                out,
                ld,
                t,
                dot_block([w[0], w[1], w[2], w[3]], [x(0), x(1)]),
            ),
            (4, _) => put(out, ld, t, dot_block([w[0], w[1], w[2], w[3]], [x(0)])),
            (3, 3) => put(
                out,
                ld,
                t,
                dot_block([w[0], w[1], w[2]], [x(0), x(1), x(2)]),
            ),
            (3, 2) => put(out, ld, t, dot_block([w[0], w[1], w[2]], [x(0), x(1)])),
            (3, _) => put(out, ld, t, dot_block([w[0], w[1], w[2]], [x(0)])),
            (2, 3) => put(out, ld, t, dot_block([w[0], w[1]], [x(0), x(1), x(2)])),
            (2, 2) => put(out, ld, t, dot_block([w[0], w[1]], [x(0), x(1)])),
            (2, _) => put(out, ld, t, dot_block([w[0], w[1]], [x(0)])),
            (_, 3) => put(out, ld, t, dot_block([w[0]], [x(0), x(1), x(2)])),
            (_, 2) => put(out, ld, t, dot_block([w[0]], [x(0), x(1)])),
            (_, _) => put(out, ld, t, dot_block([w[0]], [x(0)])),
        }
        t += tt;
    }
}

/// Stores an `R × T` block at column `t` of the `ld`-wide rows of `out`.
#[inline]
fn put<const R2: usize, const T: usize>(out: &mut [f32], ld: usize, t: usize, v: [[f32; T]; R2]) {
    for (r, vr) in v.iter().enumerate() {
        out[r * ld + t..r * ld + t + T].copy_from_slice(vr);
    }
}

/// Adds chunk `j` (8 values) of every `w` row times every `x` into `acc`.
///
/// # Safety
/// Every pointer must be valid for 8 floats of reads from offset `j`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fma_chunk<const R2: usize, const T: usize>(
    acc: &mut [[__m256; T]; R2],
    w: &[*const f32; R2],
    x: &[*const f32; T],
    j: usize,
) {
    // SAFETY: the caller guarantees 8 floats at offset j of every pointer.
    let xv = x.map(|p| unsafe { _mm256_loadu_ps(p.add(j)) });
    for r in 0..R2 {
        // SAFETY: as above.
        let wv = unsafe { _mm256_loadu_ps(w[r].add(j)) };
        for t in 0..T {
            acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
}

/// `w[r] · x[t]` for an `R × T` block, each with the arithmetic of `dot_float::<F32>`:
/// accumulator `k` of 4 sums chunks `8k, 8k + 32, …` of the whole 32-value groups (the
/// first one then also the remaining whole 8-value chunks), the result is
/// `hsum((a0 + a1) + (a2 + a3))` plus the scalar dot of the last `len % 8` values. Here
/// the four accumulators are run one after another (four strided passes over data in
/// L1) so that `R × T` of them fit in registers at a time.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_block<const R2: usize, const T: usize>(w: [&[f32]; R2], x: [&[f32]; T]) -> [[f32; T]; R2] {
    let len = w
        .iter()
        .map(|r| r.len())
        .chain(x.iter().map(|v| v.len()))
        .min()
        .unwrap_or(0);
    let (full, whole) = (len / 32 * 32, len / 8 * 8);
    let (wp, xp) = (w.map(<[f32]>::as_ptr), x.map(<[f32]>::as_ptr));
    let zero = [[_mm256_setzero_ps(); T]; R2];
    let (mut s01, mut s23) = (zero, zero);
    for k in 0..4 {
        let mut acc = zero;
        let mut j = 8 * k;
        while j < full {
            // SAFETY: j + 8 <= full <= len: 8 values of every row and token.
            unsafe { fma_chunk(&mut acc, &wp, &xp, j) };
            j += 32;
        }
        if k == 0 {
            let mut j = full;
            while j < whole {
                // SAFETY: j + 8 <= whole <= len, as above.
                unsafe { fma_chunk(&mut acc, &wp, &xp, j) };
                j += 8;
            }
        }
        for r in 0..R2 {
            for t in 0..T {
                match k {
                    0 => s01[r][t] = acc[r][t],
                    1 => s01[r][t] = _mm256_add_ps(s01[r][t], acc[r][t]),
                    2 => s23[r][t] = acc[r][t],
                    _ => s23[r][t] = _mm256_add_ps(s23[r][t], acc[r][t]),
                }
            }
        }
    }
    let mut res = [[0f32; T]; R2];
    for r in 0..R2 {
        for t in 0..T {
            let sum = hsum(_mm256_add_ps(s01[r][t], s23[r][t]));
            // An empty tail adds nothing (skipped: it is a call per output).
            res[r][t] = if whole < len {
                sum + crate::types::float::dot_f32(&w[r][whole..len], &x[t][whole..len])
            } else {
                sum
            };
        }
    }
    res
}

/// One block run of the [`crate::ColQ4`] axpy (see `colq4::colq4_block_scalar`): 32 outputs
/// at a time in four accumulators, codes widened from 16 bytes per row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn colq4_block(rows: &[&[u8]], h: &[f32], s: f32, d: &[u16], m: &[u16], y: &mut [f32]) {
    let groups = rows
        .iter()
        .map(|r| r.len() / 16)
        .fold(y.len().min(d.len()).min(m.len()) / 32, usize::min);
    let (sv, mask) = (_mm256_set1_ps(s), _mm_set1_epi8(0x0F));
    for g in 0..groups {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (row, &hr) in rows.iter().zip(h) {
            // SAFETY: g < groups ≤ row.len() / 16, so bytes 16g..16g+16 are in `row`.
            let b = unsafe { _mm_loadu_si128(row.as_ptr().add(g * 16).cast()) };
            let lo = _mm_and_si128(b, mask);
            let hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
            let hv = _mm256_set1_ps(hr);
            let v = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
            for (a, q) in acc.iter_mut().zip(v) {
                *a = _mm256_fmadd_ps(hv, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q)), *a);
            }
        }
        for (k, a) in acc.into_iter().enumerate() {
            let at = g * 32 + k * 8;
            // SAFETY: at + 8 ≤ 32·groups ≤ min(y, d, m) lengths; `y` is borrowed
            // mutably, loads and stores are unaligned.
            unsafe {
                let dv = _mm256_cvtph_ps(_mm_loadu_si128(d.as_ptr().add(at).cast()));
                let mv = _mm256_cvtph_ps(_mm_loadu_si128(m.as_ptr().add(at).cast()));
                let yp = y.as_mut_ptr().add(at);
                let r = _mm256_fmadd_ps(dv, a, _mm256_mul_ps(mv, sv));
                _mm256_storeu_ps(yp, _mm256_add_ps(_mm256_loadu_ps(yp), r));
            }
        }
    }
    let done = groups * 32;
    if done < y.len() {
        let rest: Vec<&[u8]> = rows.iter().map(|r| &r[(done / 2).min(r.len())..]).collect();
        crate::colq4::colq4_block_scalar(
            &rest,
            h,
            s,
            &d[done.min(d.len())..],
            &m[done.min(m.len())..],
            &mut y[done..],
        );
    }
}

/// `y += h·row` over `bb`-byte blocks that start with an f16 scale `d` and an f16
/// minimum `m` and whose 32 quants `quants(block)` returns: `y += h·d·q + h·m`, a block
/// at a time (both scales converted together). Q4_1 and Q5_1.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn axpy_blocks_min(
    row: &[u8],
    h: f32,
    y: &mut [f32],
    bb: usize,
    quants: unsafe fn(*const u8) -> (__m128i, __m128i),
) {
    let hv = _mm_set1_ps(h);
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(bb)) {
        // SAFETY: `b` is one whole block (d, m, then the quants `quants` reads); `o` is
        // 32 floats borrowed mutably.
        unsafe {
            let p = b.as_ptr();
            let (d, m) = f16x2(f16_bits(p), f16_bits(p.add(2)), hv);
            let (lo, hi) = quants(p);
            axpy_i8x32::<true>(lo, hi, d, m, o.as_mut_ptr());
        }
    }
}

/// The 32 five-bit codes (0..32) of a Q5_0/Q5_1 block as bytes, in value order: the
/// nibbles at `qs` (values 0..16 low, 16..32 high, as [`nibbles`]) or'd with the fifth
/// bits of the little-endian u32 at `qh` spread to `0x10` bytes (ggml's
/// `bytes_from_bits_32`: byte `j` takes qh byte `j / 8`, and is all ones after or-ing
/// every bit but `j % 8` iff that bit is set).
///
/// # Safety
/// `qh` must be valid for 4 bytes of reads and `qs` for 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn five_bit_codes(qh: *const u8, qs: *const u8) -> __m256i {
    // SAFETY: the caller guarantees both ranges; the reads are unaligned.
    let (bits, nib) = unsafe { (qh.cast::<u32>().read_unaligned(), nibbles(qs)) };
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi8(-1));
    _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
}
