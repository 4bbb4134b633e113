//! AVX2 kernels over [`crate::PackedMatrix`] groups: lane `r` of every register is row
//! `r` of the group, so a block of eight rows costs one 32-byte load per 4-byte piece,
//! one `maddubs` per piece and one scale conversion, with no horizontal sums.
//!
//! Every function here requires AVX2, FMA and F16C (callers hold a
//! [`crate::isa::Supported`] proof; see `dispatch.rs`).

use std::arch::x86_64::*;

use crate::WType;
use crate::blocks::QK;
use crate::dispatch::PACKED_TOKENS;
use crate::packed::{PACK_ROWS, scale_bytes};
use crate::q8::BlockQ8;

/// `out[t][r] = row r · x_t` for one group and `xqs.len() <= PACKED_TOKENS` activation
/// vectors (see `packed::group_dot`, whose arithmetic this reproduces exactly for each
/// token: the same integer sums, the same FMA order). Tokens go through together so
/// that each weight piece is loaded and unpacked once for all of them.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn group_dot(
    wtype: WType,
    group: &[u8],
    xqs: &[&[BlockQ8]],
    out: &mut [[f32; PACK_ROWS]],
) {
    match xqs.len().min(out.len()) {
        0 => {}
        1 => group_dot_t::<1>(wtype, group, xqs, out),
        2 => group_dot_t::<2>(wtype, group, xqs, out),
        3 => group_dot_t::<3>(wtype, group, xqs, out),
        _ => group_dot_t::<PACKED_TOKENS>(wtype, group, xqs, out),
    }
}

/// [`group_dot`] for exactly `T` tokens (the first `T` of `xqs` and `out`).
#[target_feature(enable = "avx2,fma,f16c")]
fn group_dot_t<const T: usize>(
    wtype: WType,
    group: &[u8],
    xqs: &[&[BlockQ8]],
    out: &mut [[f32; PACK_ROWS]],
) {
    let bb = PACK_ROWS * wtype.block_bytes();
    let n = xqs[..T]
        .iter()
        .fold(group.len() / bb, |n, x| n.min(x.len()));
    let xq: [&[BlockQ8]; T] = std::array::from_fn(|t| &xqs[t][..n]);
    let p = group.as_ptr();
    let v = match wtype {
        WType::Q8_0 => blocks_q8_0::<T>(p, xq, n),
        WType::Q4_0 => blocks_q4::<false, T>(p, xq, n).0,
        _ => {
            let (a, m) = blocks_q4::<true, T>(p, xq, n);
            std::array::from_fn(|t| _mm256_add_ps(a[t], m[t]))
        }
    };
    for (o, v) in out.iter_mut().zip(v) {
        // SAFETY: `o` is 8 writable floats; storeu has no alignment need.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) };
    }
}

/// Four bytes of `x` at `at` broadcast to every 32-bit lane.
///
/// # Safety
/// `at + 4 <= 32`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn x4(xb: &BlockQ8, at: usize) -> __m256i {
    // SAFETY: the caller keeps `at + 4` within the 32 quants.
    let v = unsafe { xb.qs.as_ptr().add(at).cast::<i32>().read_unaligned() };
    _mm256_set1_epi32(v)
}

/// How far ahead of the block being read the kernels prefetch, in bytes.
const PREFETCH: usize = 4096;

/// Prefetches the `bb` bytes [`PREFETCH`] past `blk` (a hint: the addresses may lie past
/// the group, and prefetches never fault).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn prefetch_ahead(blk: *const u8, bb: usize) {
    let mut off = 0;
    while off < bb {
        _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH + off).cast());
        off += 64;
    }
}

/// Eight f16 values at `p` as floats.
///
/// # Safety
/// `p` must be valid for 16 bytes of reads.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment need.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
}

/// Q4_0 / Q4_1 blocks (`MIN`: Q4_1) `0..n` of one group against `T` activation
/// vectors (each at least `n` blocks): per token, the `d·dx·s` sums and (Q4_1) the
/// `m·dx·Σx` sums, one lane per row.
// `i` indexes block i of the group and of every token's vector alike.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
fn blocks_q4<const MIN: bool, const T: usize>(
    p: *const u8,
    xq: [&[BlockQ8]; T],
    n: usize,
) -> ([__m256; T], [__m256; T]) {
    let wtype = if MIN { WType::Q4_1 } else { WType::Q4_0 };
    let (bb, sb) = (PACK_ROWS * wtype.block_bytes(), scale_bytes(wtype));
    let mask = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let (mut acc, mut macc) = ([_mm256_setzero_ps(); T], [_mm256_setzero_ps(); T]);
    for i in 0..n {
        let xb: [&BlockQ8; T] = std::array::from_fn(|t| &xq[t][i]);
        // SAFETY: the caller passes `n` at most the number of `bb`-byte blocks in the
        // group, so block i's scales and 128 quant bytes are in it.
        unsafe {
            let blk = p.add(bb * i);
            prefetch_ahead(blk, bb);
            let q = blk.add(sb);
            // Each maddubs lane pair is at most 2·15·128 in size and eight of them
            // sum to under 2^15: the i16 sums cannot overflow.
            let mut s16 = [_mm256_setzero_si256(); T];
            for c in 0..4 {
                let raw = _mm256_loadu_si256(q.add(32 * c).cast());
                let lo = _mm256_and_si256(raw, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
                for t in 0..T {
                    let a = _mm256_maddubs_epi16(lo, x4(xb[t], 4 * c));
                    let b = _mm256_maddubs_epi16(hi, x4(xb[t], 16 + 4 * c));
                    s16[t] = _mm256_add_epi16(_mm256_add_epi16(s16[t], a), b);
                }
            }
            let d = f16x8(blk);
            let m = if MIN {
                f16x8(blk.add(2 * PACK_ROWS))
            } else {
                _mm256_setzero_ps()
            };
            for t in 0..T {
                let mut s = _mm256_madd_epi16(s16[t], ones);
                if !MIN {
                    s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * xb[t].sum));
                }
                let dd = _mm256_mul_ps(d, _mm256_set1_ps(xb[t].d));
                acc[t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s), acc[t]);
                if MIN {
                    let dxs = _mm256_set1_ps(xb[t].d * xb[t].sum as f32);
                    macc[t] = _mm256_fmadd_ps(m, dxs, macc[t]);
                }
            }
        }
    }
    (acc, macc)
}

/// Q8_0 blocks `0..n` of one group against `T` activation vectors, one lane per row.
// `i` indexes block i of the group and of every token's vector alike.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
fn blocks_q8_0<const T: usize>(p: *const u8, xq: [&[BlockQ8]; T], n: usize) -> [__m256; T] {
    let (bb, sb) = (
        PACK_ROWS * WType::Q8_0.block_bytes(),
        scale_bytes(WType::Q8_0),
    );
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); T];
    for i in 0..n {
        let xb: [&BlockQ8; T] = std::array::from_fn(|t| &xq[t][i]);
        // SAFETY: as in `blocks_q4`: block i's 16 scale and 256 quant bytes are in the
        // group.
        unsafe {
            let blk = p.add(bb * i);
            prefetch_ahead(blk, bb);
            let q = blk.add(sb);
            let mut s = [_mm256_setzero_si256(); T];
            for c in 0..QK / 4 {
                let w = _mm256_loadu_si256(q.add(32 * c).cast());
                let aw = _mm256_sign_epi8(w, w);
                for t in 0..T {
                    // maddubs wants unsigned × signed: move w's sign onto x (ggml's
                    // trick); activations lie in [-127, 127], so a pair sum stays
                    // below 2^15.
                    let x = _mm256_sign_epi8(x4(xb[t], 4 * c), w);
                    let pr = _mm256_maddubs_epi16(aw, x);
                    s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(pr, ones));
                }
            }
            let d = f16x8(blk);
            for t in 0..T {
                let dd = _mm256_mul_ps(d, _mm256_set1_ps(xb[t].d));
                acc[t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s[t]), acc[t]);
            }
        }
    }
    acc
}
