//! Q4_1: blocks of 32 four-bit values with an f16 scale and minimum, `x = d·q + m`
//! (ggml's `block_q4_1`: `d: f16`, `m: f16`, `qs: [u8; 16]`, 20 bytes; nibble order as
//! Q4_0's).

use half::f16;

use super::q4_0::nibble_dot;
use super::{ActKind, BlockKernels, by_isa};
use crate::blocks::{QK, f16_at};
use crate::dispatch::DOT_ROWS;
use crate::isa::Supported;
use crate::q8::{Act, BlockQ8};

/// Bytes per block.
const BB: usize = 20;

/// [`crate::WType::Q4_1`]'s kernels.
pub(crate) struct Q4_1;

/// Scalar reference `row · x`: `d_w·d_x·Σ q·x_q + m·d_x·Σ x_q` per block.
fn dot(row: &[u8], xq: &[BlockQ8]) -> f32 {
    row.chunks_exact(BB)
        .zip(xq)
        .map(|(b, xb)| {
            let s = nibble_dot(&b[4..BB], xb);
            f16_at(b, 0) * xb.d * s as f32 + f16_at(b, 2) * xb.d * xb.sum as f32
        })
        .sum()
}

/// Scalar reference `y += h · row`.
fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
    for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(BB)) {
        let hd = h * f16_at(b, 0);
        let hm = h * f16_at(b, 2);
        for (j, &q) in b[4..BB].iter().enumerate() {
            o[j] += hd * (q & 0x0F) as f32 + hm;
            o[j + 16] += hd * (q >> 4) as f32 + hm;
        }
    }
}

impl BlockKernels for Q4_1 {
    fn act(&self) -> ActKind {
        ActKind::Q8
    }

    fn decode(&self, row: &[u8], out: &mut [f32]) {
        for (o, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(BB)) {
            let d = f16_at(b, 0);
            let m = f16_at(b, 2);
            for (j, &q) in b[4..BB].iter().enumerate() {
                o[j] = d * (q & 0x0F) as f32 + m;
                o[j + 16] = d * (q >> 4) as f32 + m;
            }
        }
    }

    fn encode(&self, values: &[f32], out: &mut Vec<u8>) {
        for blk in values.chunks_exact(QK) {
            let min = blk.iter().fold(f32::INFINITY, |a, &v| a.min(v));
            let max = blk.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let d = (max - min) / 15.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
            out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
            out.extend((0..16).map(|j| q(blk[j]) | (q(blk[j + 16]) << 4)));
        }
    }

    fn dot(&self, isa: Supported, row: &[u8], x: &Act) -> f32 {
        by_isa!(
            isa,
            avx2 => avx2::dot_r::<false, 1>([row], [row.as_ptr()], x.q)[0],
            scalar => dot(row, x.q),
        )
    }

    fn dot_rows(&self, isa: Supported, rows: &[&[u8]], next: &[&[u8]], x: &Act, out: &mut [f32]) {
        let n = rows.len().min(out.len()).min(DOT_ROWS);
        // Grouped only when every row has the same length (always, for the rows of one
        // matrix) and the group is whole; otherwise row by row, the same arithmetic.
        #[cfg(target_arch = "x86_64")]
        if isa.isa() == crate::Isa::Avx2
            && n == DOT_ROWS
            && rows.iter().all(|r| r.len() == rows[0].len())
        {
            let r4 = [rows[0], rows[1], rows[2], rows[3]];
            // The rows to prefetch while these run: the caller's next rows, else these.
            let pf = std::array::from_fn(|r| next.get(r).unwrap_or(&r4[r]).as_ptr());
            // SAFETY: a `Supported(Isa::Avx2)` exists only once AVX2, FMA and F16C were
            // detected at run time, the kernel's one precondition.
            out[..n].copy_from_slice(&unsafe { avx2::dot_r::<true, 4>(r4, pf, x.q) });
            return;
        }
        super::dot_rows_each(self, isa, &rows[..n], next, x, &mut out[..n]);
    }

    fn axpy(&self, isa: Supported, row: &[u8], h: f32, y: &mut [f32]) {
        by_isa!(isa, avx2 => avx2::axpy(row, h, y), scalar => axpy(row, h, y))
    }

    fn axpy4(&self, isa: Supported, rows: [&[u8]; 4], h: [f32; 4], y: &mut [f32]) {
        by_isa!(
            isa,
            avx2 => crate::avx2::axpy4_q4::<true>(rows, h, y),
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
            avx2 => crate::avx2::decode_blocks::<true>(row, out, BB, avx2::quants),
            scalar => self.decode(row, out),
        )
    }
}

/// AVX2 + FMA + F16C kernels (safe for any slice lengths; see `crate::avx2`).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::BB;
    use crate::avx2::{
        axpy_blocks_min, blocks_in, hsum, lane, nibbles, pairs, prefetch_blocks, xq_load,
    };
    use crate::q8::BlockQ8;

    /// `R` Q4_1 rows dotted with `xq`: the scaled products go into one accumulator per
    /// row, the `min·Σx` terms into the odd lanes of `corr` (lane `2r + 1` for row `r`;
    /// the even lanes collect unused `d·Σx` values). Each row's result has exactly the
    /// arithmetic of the `R = 1` case whatever rows it is grouped with (independent
    /// lanes and accumulators); grouping shares the activation loads and converts the
    /// rows' scales together, and prefetches the rows at `pf` when `PF`, since four
    /// interleaved row streams defeat the hardware prefetcher. Only Q4_1 is grouped:
    /// for Q8_0 and Q4_0 the single-row kernels (two blocks per step, two accumulators)
    /// measured as fast or faster on Zen 3.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_r<const PF: bool, const R: usize>(
        rows: [&[u8]; R],
        pf: [*const u8; R],
        xq: &[BlockQ8],
    ) -> [f32; R] {
        let n = blocks_in(&rows, xq, BB);
        let p = rows.map(<[u8]>::as_ptr);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut corr = _mm256_setzero_ps();
        for (i, xb) in xq[..n].iter().enumerate() {
            prefetch_blocks::<PF, R>(pf, BB * i);
            let x = xq_load(xb);
            let mut dm = [0i32; 4];
            for (v, pr) in dm.iter_mut().zip(p) {
                // SAFETY: i < n: block i (20 bytes: d, m, quants) is within every row.
                *v = unsafe { pr.add(BB * i).cast::<i32>().read_unaligned() };
            }
            let bits = _mm_setr_epi32(dm[0], dm[1], dm[2], dm[3]);
            let dm = _mm256_mul_ps(_mm256_cvtph_ps(bits), _mm256_set1_ps(xb.d));
            corr = _mm256_add_ps(corr, _mm256_mul_ps(dm, _mm256_set1_ps(xb.sum as f32)));
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: as above; the quants are bytes 4..20 of block i.
                let w = unsafe { nibbles(p[r].add(BB * i + 4)) };
                let v = pairs(_mm256_maddubs_epi16(w, x));
                *a = _mm256_fmadd_ps(lane(dm, 2 * r), _mm256_cvtepi32_ps(v), *a);
            }
        }
        let mut c = [0f32; 8];
        // SAFETY: `c` is 8 writable floats; storeu has no alignment need.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), corr) };
        let mut out = [0f32; R];
        for (r, (o, a)) in out.iter_mut().zip(acc).enumerate() {
            *o = hsum(a) + c[2 * r + 1];
        }
        out
    }

    /// A Q4_1 block's quants (0..16).
    ///
    /// # Safety
    /// `b` must be valid for 20 bytes of reads.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quants(b: *const u8) -> (__m128i, __m128i) {
        // SAFETY: bytes 4..20 of the block are its quants.
        let q = unsafe { nibbles(b.add(4)) };
        (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1))
    }

    /// `y += h · row`, one block at a time (d and m converted together).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy(row: &[u8], h: f32, y: &mut [f32]) {
        axpy_blocks_min(row, h, y, BB, quants);
    }
}
