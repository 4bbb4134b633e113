//! AVX2 forms of the attention head kernels (see `heads.rs`, whose reference arithmetic
//! they reproduce bitwise). Every function requires AVX2 and FMA (callers hold a
//! [`crate::isa::Supported`] proof; see `dispatch.rs`).

use std::arch::x86_64::*;

use crate::heads::{HeadRows, score};

/// `((a0+a1)+(a2+a3)) + ((a4+a5)+(a6+a7))` of each of eight accumulators, as one
/// vector (lane `j` for accumulator `j`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce8(a: [__m256; 8]) -> __m256 {
    let h01 = _mm256_hadd_ps(a[0], a[1]);
    let h23 = _mm256_hadd_ps(a[2], a[3]);
    let h45 = _mm256_hadd_ps(a[4], a[5]);
    let h67 = _mm256_hadd_ps(a[6], a[7]);
    // Lane j (of 0..4, per half): (x01 + x23) of accumulators 0..4 / 4..8.
    let lo = _mm256_hadd_ps(h01, h23);
    let hi = _mm256_hadd_ps(h45, h67);
    // Low halves hold lanes 0..4 of each accumulator, high halves lanes 4..8.
    let first = _mm256_permute2f128_ps::<0x20>(lo, hi);
    let second = _mm256_permute2f128_ps::<0x31>(lo, hi);
    _mm256_add_ps(first, second)
}

/// Scores of every position, eight at a time (then one at a time through the reference,
/// which has the same arithmetic).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn head_scores(k: &HeadRows, q: &[f32], out: &mut [f32]) {
    let width = k.width().min(q.len());
    let whole = width / 8 * 8;
    let n = k.len().min(out.len());
    let mut p = 0;
    while p + 8 <= n {
        let rows: [&[f32]; 8] = std::array::from_fn(|r| k.row(p + r));
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut c = 0;
        while c < whole {
            // SAFETY: c + 8 <= whole <= width: 8 values of q and of every row.
            let qv = unsafe { _mm256_loadu_ps(q.as_ptr().add(c)) };
            for (a, row) in acc.iter_mut().zip(&rows) {
                // SAFETY: as above.
                let kv = unsafe { _mm256_loadu_ps(row.as_ptr().add(c)) };
                *a = _mm256_fmadd_ps(kv, qv, *a);
            }
            c += 8;
        }
        let mut s = [0f32; 8];
        // SAFETY: `s` is 8 writable floats; storeu has no alignment need.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), reduce8(acc)) };
        for (r, (o, sr)) in out[p..p + 8].iter_mut().zip(s).enumerate() {
            let (kr, qr) = (&rows[r][whole..width], &q[whole..width]);
            *o = kr.iter().zip(qr).fold(sr, |acc, (a, b)| a.mul_add(*b, acc));
        }
        p += 8;
    }
    for (o, pp) in out[p..n].iter_mut().zip(p..n) {
        *o = score(k.row(pp), q);
    }
}

/// The mix, 64 outputs (eight registers) per pass over the positions.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn head_mix(v: &HeadRows, w: &[f32], out: &mut [f32]) {
    let width = v.width().min(out.len());
    let whole = width / 8 * 8;
    let n = v.len().min(w.len());
    let mut c0 = 0;
    while c0 < whole {
        let chunks = ((whole - c0) / 8).min(8);
        let mut acc = [_mm256_setzero_ps(); 8];
        for (p, &wp) in w.iter().enumerate().take(n) {
            let row = v.row(p);
            let wv = _mm256_set1_ps(wp);
            for (j, a) in acc.iter_mut().enumerate().take(chunks) {
                // SAFETY: c0 + 8j + 8 <= whole <= width: inside the row.
                let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(c0 + 8 * j)) };
                *a = _mm256_fmadd_ps(wv, x, *a);
            }
        }
        for (j, a) in acc.iter().enumerate().take(chunks) {
            // SAFETY: c0 + 8j + 8 <= whole <= out.len(): 8 writable floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * j), *a) };
        }
        c0 += 8 * chunks;
    }
    for (i, o) in out.iter_mut().enumerate().take(width).skip(whole) {
        *o = w
            .iter()
            .take(n)
            .enumerate()
            .fold(0f32, |acc, (p, wp)| wp.mul_add(v.row(p)[i], acc));
    }
}
