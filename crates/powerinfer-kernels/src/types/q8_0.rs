//! Q8_0: blocks of 32 signed bytes with an f16 scale, `x = d·q` (ggml's `block_q8_0`:
//! `d: f16`, `qs: [i8; 32]`, 34 bytes).

use half::f16;

use super::{ActKind, BlockKernels, by_isa};
use crate::blocks::{QK, f16_at};
use crate::isa::Supported;
use crate::q8::{Act, BlockQ8};

/// Bytes per block.
const BB: usize = 34;

/// [`crate::WType::Q8_0`]'s kernels.
pub(crate) struct Q8_0;

/// Scalar reference `row · x`: an integer dot per block, scaled by both scales.
fn dot(row: &[u8], xq: &[BlockQ8]) -> f32 {
    row.chunks_exact(BB)
        .zip(xq)
        .map(|(b, xb)| {
            let s: i32 = b[2..BB]
                .iter()
                .zip(&xb.qs)
                .map(|(&w, &x)| (w as i8) as i32 * x as i32)
                .sum();
            f16_at(b, 0) * xb.d * s as f32
        })
        .sum()
}

/// Scalar reference `y += h · row`.
fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(BB)) {
        let hd = h * f16_at(b, 0);
        for (v, &q) in o.iter_mut().zip(&b[2..BB]) {
            *v += hd * (q as i8) as f32;
        }
    }
}

impl BlockKernels for Q8_0 {
    fn act(&self) -> ActKind {
        ActKind::Q8
    }

    fn decode(&self, row: &[u8], out: &mut [f32]) {
        for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(BB)) {
            let d = f16_at(b, 0);
            for (v, &q) in o.iter_mut().zip(&b[2..BB]) {
                *v = d * (q as i8) as f32;
            }
        }
    }

    fn encode(&self, values: &[f32], out: &mut Vec<u8>) {
        for blk in values.chunks_exact(QK) {
            let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            out.extend(blk.iter().map(|v| (v * id).round() as i8 as u8));
        }
    }

    fn dot(&self, isa: Supported, row: &[u8], x: &Act) -> f32 {
        by_isa!(isa, avx2 => avx2::dot(row, x.q), scalar => dot(row, x.q))
    }

    fn axpy(&self, isa: Supported, row: &[u8], h: f32, y: &mut [f32]) {
        by_isa!(isa, avx2 => avx2::axpy(row, h, y), scalar => axpy(row, h, y))
    }

    fn axpy4(&self, isa: Supported, rows: [&[u8]; 4], h: [f32; 4], y: &mut [f32]) {
        by_isa!(
            isa,
            avx2 => avx2::axpy4(rows, h, y),
            scalar => {
                for (row, hk) in rows.into_iter().zip(h) {
                    axpy(row, hk, y);
                }
            },
        )
    }

    fn decode_at(&self, isa: Supported, row: &[u8], out: &mut [f32]) {
        by_isa!(
            isa,
            avx2 => crate::avx2::decode_blocks::<false>(row, out, BB, avx2::quants),
            scalar => self.decode(row, out),
        )
    }
}

/// AVX2 + FMA + F16C kernels (safe for any slice lengths; see `crate::avx2`).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::BB;
    use crate::avx2::{R, axpy_pairs, dot_pairs, f16_bits, f16x2, fma_i32};
    use crate::blocks::QK;
    use crate::q8::BlockQ8;

    /// One Q8_0 block at `b` dotted with `xb` (`d` = both scales), added to `acc`.
    ///
    /// # Safety
    /// `b` must be valid for 34 bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(b: *const u8, xb: &BlockQ8, d: f32, acc: __m256) -> __m256 {
        // SAFETY: the caller guarantees 34 bytes at `b`; `xb.qs` is 32 bytes.
        let (w, x) = unsafe {
            (
                _mm256_loadu_si256(b.add(2).cast()),
                _mm256_loadu_si256(xb.qs.as_ptr().cast()),
            )
        };
        // maddubs wants unsigned × signed: move w's sign onto x (ggml's trick).
        let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        fma_i32(acc, d, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }

    /// A Q8_0 block's quants.
    ///
    /// # Safety
    /// `b` must be valid for 34 bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quants(b: *const u8) -> (__m128i, __m128i) {
        // SAFETY: bytes 2..34 of the block are its quants.
        unsafe {
            (
                _mm_loadu_si128(b.add(2).cast()),
                _mm_loadu_si128(b.add(18).cast()),
            )
        }
    }

    /// `row · x`, two blocks per step.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot(row: &[u8], xq: &[BlockQ8]) -> f32 {
        dot_pairs(row, xq, BB, block)
    }

    /// `y += h · row`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
        axpy_pairs(row, h, y, BB, quants);
    }

    /// Four [`axpy`]s with the same updates, but each 8 quants are widened straight
    /// from memory (`vpmovsxbd ymm, m64`) instead of being loaded as 16 bytes and
    /// shifted into place, which saves a shuffle per 8 values per row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy4(rows: [&[u8]; R], h: [f32; R], y: &mut [f32]) {
        let n = rows.iter().fold(y.len() / QK, |n, r| n.min(r.len() / BB));
        let w = rows.map(<[u8]>::as_ptr);
        let yp = y.as_mut_ptr();
        let (h01, h23) = (
            _mm_setr_ps(h[0], h[1], 0.0, 0.0),
            _mm_setr_ps(h[2], h[3], 0.0, 0.0),
        );
        for i in 0..n {
            // SAFETY: i < n: block i of every row (34 bytes at 34·i: the scale, then 32
            // quants read as four 8-byte pieces at 2 + 8k) and values QK·i..QK·(i + 1)
            // of `y` are in bounds; `y` is borrowed mutably.
            unsafe {
                let p = w.map(|r| r.add(BB * i));
                let (d0, d1) = f16x2(f16_bits(p[0]), f16_bits(p[1]), h01);
                let (d2, d3) = f16x2(f16_bits(p[2]), f16_bits(p[3]), h23);
                let d = [d0, d1, d2, d3].map(|v| _mm256_set1_ps(v));
                for k in 0..4 {
                    let yk = yp.add(QK * i + 8 * k);
                    let mut yv = _mm256_loadu_ps(yk);
                    for r in 0..R {
                        let q = _mm_loadl_epi64(p[r].add(2 + 8 * k).cast());
                        let wv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                        yv = _mm256_fmadd_ps(d[r], wv, yv);
                    }
                    _mm256_storeu_ps(yk, yv);
                }
            }
        }
    }
}
