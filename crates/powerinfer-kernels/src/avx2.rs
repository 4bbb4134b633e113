//! AVX2 + FMA + F16C row kernels (x86-64).
//!
//! Every function here is safe to call for *any* slice lengths: loops run only over the
//! values present in all operands, so each raw load below is in bounds by its loop
//! condition. The one precondition is the CPU feature set, which the `#[target_feature]`
//! attribute makes the caller's `unsafe` responsibility (see `dispatch.rs`).

use std::arch::x86_64::*;

use crate::WType;
use crate::blocks::QK;
use crate::q8::{Act, BlockQ8};

/// `row · x` for every type (see `scalar::dot`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot(wtype: WType, row: &[u8], x: &Act) -> f32 {
    match wtype {
        WType::F32 | WType::F16 | WType::BF16 => dot_float(wtype, row, x.f),
        WType::Q8_0 => dot_q8_0(row, x.q),
        WType::Q4_0 => dot_q4(row, x.q, false),
        WType::Q4_1 => dot_q4(row, x.q, true),
    }
}

/// `y += h · row` for every type (see `scalar::axpy`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn axpy(wtype: WType, row: &[u8], h: f32, y: &mut [f32]) {
    match wtype {
        WType::F32 | WType::F16 | WType::BF16 => axpy_float(wtype, row, h, y),
        WType::Q8_0 => axpy_q8_0(row, h, y),
        WType::Q4_0 => axpy_q4(row, h, y, false),
        WType::Q4_1 => axpy_q4(row, h, y, true),
    }
}

/// Loads 8 weights of a float type from `p` as f32.
type Load8 = unsafe fn(*const u8) -> __m256;

/// # Safety
/// `p` must be valid for 32 bytes of reads; the CPU must have AVX.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f32(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 32 readable bytes; loadu has no alignment need.
    unsafe { _mm256_loadu_ps(p.cast()) }
}

/// # Safety
/// `p` must be valid for 16 bytes of reads; the CPU must have F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f16(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment need.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
}

/// # Safety
/// `p` must be valid for 16 bytes of reads; the CPU must have AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_bf16(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment need.
    let h = unsafe { _mm_loadu_si128(p.cast()) };
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

/// An f16 stored little-endian at `b[at..at + 2]`, converted with F16C.
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_at(b: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([b[at], b[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Bytes per value and the 8-wide loader of a float type.
fn float_loader(wtype: WType) -> (usize, Load8) {
    match wtype {
        WType::F32 => (4, load_f32),
        WType::BF16 => (2, load_bf16),
        _ => (2, load_f16),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_float(wtype: WType, row: &[u8], x: &[f32]) -> f32 {
    let (width, load) = float_loader(wtype);
    let n = (row.len() / width).min(x.len());
    let (w, xp) = (row.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let j = i + 8 * k;
            // SAFETY: j + 8 <= n, so 8 weights (8·width bytes) and 8 floats are in
            // bounds; the CPU features are this function's own.
            let (wv, xv) = unsafe { (load(w.add(j * width)), _mm256_loadu_ps(xp.add(j))) };
            *a = _mm256_fmadd_ps(wv, xv, *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, as above.
        let (wv, xv) = unsafe { (load(w.add(i * width)), _mm256_loadu_ps(xp.add(i))) };
        acc[0] = _mm256_fmadd_ps(wv, xv, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let tail = Act {
        f: &x[i..n],
        q: &[],
    };
    hsum(sum) + crate::scalar::dot(wtype, &row[i * width..n * width], &tail)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn axpy_float(wtype: WType, row: &[u8], h: f32, y: &mut [f32]) {
    let (width, load) = float_loader(wtype);
    let n = (row.len() / width).min(y.len());
    let (w, yp) = (row.as_ptr(), y.as_mut_ptr());
    let hv = _mm256_set1_ps(h);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 weights and 8 outputs are in bounds; `y` is borrowed
        // mutably, so nothing else aliases the store.
        unsafe {
            let yv = _mm256_fmadd_ps(hv, load(w.add(i * width)), _mm256_loadu_ps(yp.add(i)));
            _mm256_storeu_ps(yp.add(i), yv);
        }
        i += 8;
    }
    crate::scalar::axpy(wtype, &row[i * width..n * width], h, &mut y[i..n]);
}

/// Sum of the eight i32 lanes of `v` as floats, scaled by `d` and added to `acc`.
#[target_feature(enable = "avx2,fma,f16c")]
fn fma_i32(acc: __m256, d: f32, v: __m256i) -> __m256 {
    _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(v), acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0(row: &[u8], xq: &[BlockQ8]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (b, xb) in row.chunks_exact(34).zip(xq) {
        // SAFETY: `b` is 34 bytes, so bytes 2..34 are in bounds; `xb.qs` is 32 bytes.
        let (w, x) = unsafe {
            (
                _mm256_loadu_si256(b.as_ptr().add(2).cast()),
                _mm256_loadu_si256(xb.qs.as_ptr().cast()),
            )
        };
        // maddubs wants unsigned × signed: move w's sign onto x (ggml's trick).
        let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        acc = fma_i32(acc, f16_at(b, 0) * xb.d, _mm256_madd_epi16(p, ones));
    }
    hsum(acc)
}

/// The 32 nibbles of a Q4 block as bytes: values 0..16 in the low lane, 16..32 high.
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles(qs: &[u8; 16]) -> __m256i {
    // SAFETY: `qs` is exactly 16 readable bytes; loadu has no alignment need.
    let raw = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let m = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(raw, m);
    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m);
    _mm256_set_m128i(hi, lo)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4(row: &[u8], xq: &[BlockQ8], with_min: bool) -> f32 {
    let bb = if with_min { 20 } else { 18 };
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    let mut corr = 0f32;
    for (b, xb) in row.chunks_exact(bb).zip(xq) {
        let Some(qs) = b.last_chunk::<16>() else {
            break;
        };
        let w = nibbles(qs);
        // SAFETY: `xb.qs` is 32 readable bytes.
        let x = unsafe { _mm256_loadu_si256(xb.qs.as_ptr().cast()) };
        let p = _mm256_maddubs_epi16(w, x);
        let dd = f16_at(b, 0) * xb.d;
        acc = fma_i32(acc, dd, _mm256_madd_epi16(p, ones));
        corr += if with_min {
            f16_at(b, 2) * xb.d * xb.sum as f32
        } else {
            -8.0 * dd * xb.sum as f32
        };
    }
    hsum(acc) + corr
}

#[target_feature(enable = "avx2,fma,f16c")]
fn axpy_q8_0(row: &[u8], h: f32, y: &mut [f32]) {
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(34)) {
        let hd = _mm256_set1_ps(h * f16_at(b, 0));
        for k in 0..4 {
            // SAFETY: `b` has 34 bytes: 2 + 8k + 8 <= 34 for k < 4. `o` has 32 floats:
            // 8k + 8 <= 32; it is borrowed mutably, so the store aliases nothing.
            unsafe {
                let q = _mm_loadl_epi64(b.as_ptr().add(2 + 8 * k).cast());
                let w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                let yp = o.as_mut_ptr().add(8 * k);
                _mm256_storeu_ps(yp, _mm256_fmadd_ps(hd, w, _mm256_loadu_ps(yp)));
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn axpy_q4(row: &[u8], h: f32, y: &mut [f32], with_min: bool) {
    let bb = if with_min { 20 } else { 18 };
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(bb)) {
        let d = h * f16_at(b, 0);
        let m = if with_min { h * f16_at(b, 2) } else { -8.0 * d };
        let (hd, hm) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
        let Some(qs) = b.last_chunk::<16>() else {
            break;
        };
        let q = nibbles(qs);
        let lanes = [
            _mm256_castsi256_si128(q),
            _mm_srli_si128(_mm256_castsi256_si128(q), 8),
            _mm256_extracti128_si256(q, 1),
            _mm_srli_si128(_mm256_extracti128_si256(q, 1), 8),
        ];
        for (k, lane) in lanes.into_iter().enumerate() {
            let w = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lane));
            // SAFETY: `o` has 32 floats and 8k + 8 <= 32; borrowed mutably.
            unsafe {
                let yp = o.as_mut_ptr().add(8 * k);
                let yv = _mm256_add_ps(_mm256_loadu_ps(yp), hm);
                _mm256_storeu_ps(yp, _mm256_fmadd_ps(hd, w, yv));
            }
        }
    }
}
