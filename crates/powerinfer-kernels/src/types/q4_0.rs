//! Q4_0: blocks of 32 four-bit values with an f16 scale, `x = d·(q − 8)` (ggml's
//! `block_q4_0`: `d: f16`, `qs: [u8; 16]`, 18 bytes; byte `j` holds value `j` in its low
//! nibble and value `j + 16` in its high nibble).

use half::f16;

use super::{ActKind, BlockKernels, by_isa};
use crate::blocks::{QK, f16_at};
use crate::isa::Supported;
use crate::q8::{Act, BlockQ8};

/// Bytes per block.
const BB: usize = 18;

/// [`crate::WType::Q4_0`]'s kernels.
pub(crate) struct Q4_0;

/// `Σ q_j·x_j` over one block of 16 nibble bytes `qs` (ggml order) and the activation
/// block `xb`: the integer core of the Q4_0 and Q4_1 dots.
pub(super) fn nibble_dot(qs: &[u8], xb: &BlockQ8) -> i32 {
    (0..16)
        .map(|j| {
            (qs[j] & 0x0F) as i32 * xb.qs[j] as i32 + (qs[j] >> 4) as i32 * xb.qs[j + 16] as i32
        })
        .sum()
}

/// Scalar reference `row · x`: `d_w·d_x·(Σ q·x_q − 8·Σ x_q)` per block.
fn dot(row: &[u8], xq: &[BlockQ8]) -> f32 {
    row.chunks_exact(BB)
        .zip(xq)
        .map(|(b, xb)| {
            let s = nibble_dot(&b[2..BB], xb);
            f16_at(b, 0) * xb.d * (s - 8 * xb.sum) as f32
        })
        .sum()
}

/// Scalar reference `y += h · row`.
fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(BB)) {
        let hd = h * f16_at(b, 0);
        let hm = -8.0 * hd;
        for (j, &q) in b[2..BB].iter().enumerate() {
            o[j] += hd * (q & 0x0F) as f32 + hm;
            o[j + 16] += hd * (q >> 4) as f32 + hm;
        }
    }
}

impl BlockKernels for Q4_0 {
    fn act(&self) -> ActKind {
        ActKind::Q8
    }

    fn decode(&self, row: &[u8], out: &mut [f32]) {
        for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(BB)) {
            let d = f16_at(b, 0);
            for (j, &q) in b[2..BB].iter().enumerate() {
                o[j] = d * ((q & 0x0F) as i32 - 8) as f32;
                o[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
            }
        }
    }

    fn encode(&self, values: &[f32], out: &mut Vec<u8>) {
        for blk in values.chunks_exact(QK) {
            // ggml: the value of largest magnitude maps to -8.
            let max = blk
                .iter()
                .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
            out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            out.extend((0..16).map(|j| q(blk[j]) | (q(blk[j + 16]) << 4)));
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
            avx2 => crate::avx2::axpy4_q4::<false>(rows, h, y),
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
    use crate::avx2::{axpy_pairs, dot_pairs, fma_i32, nibbles};
    use crate::q8::BlockQ8;

    /// One Q4_0 block at `b` dotted with `xb` (`d` = both scales), added to `acc`; the
    /// `−8·Σx` offset is folded into the integer sum.
    ///
    /// # Safety
    /// `b` must be valid for 18 bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(b: *const u8, xb: &BlockQ8, d: f32, acc: __m256) -> __m256 {
        // SAFETY: the caller guarantees the block: 2 scale bytes then 16 quant bytes.
        let w = unsafe { nibbles(b.add(2)) };
        // SAFETY: `xb.qs` is 32 readable bytes.
        let x = unsafe { _mm256_loadu_si256(xb.qs.as_ptr().cast()) };
        let v = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
        let offset = _mm256_zextsi128_si256(_mm_cvtsi32_si128(8 * xb.sum));
        fma_i32(acc, d, _mm256_sub_epi32(v, offset))
    }

    /// A Q4_0 block's quants minus 8.
    ///
    /// # Safety
    /// `b` must be valid for 18 bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quants(b: *const u8) -> (__m128i, __m128i) {
        // SAFETY: bytes 2..18 of the block are its quants.
        let q = _mm256_sub_epi8(unsafe { nibbles(b.add(2)) }, _mm256_set1_epi8(8));
        (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1))
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
}
