//! Row-dot operations: dense and row-gathered GEMV, and their batched (GEMM) forms.

use crate::context::{PAR_MIN_BYTES, check_idx, check_len, prepare};
use crate::dispatch::{DOT_ROWS, GEMM_ROWS, dot_f32_rows, dot_rows, row_f32};
use crate::q8::Act;
use crate::q8::ActBuf;
use crate::{KernelError, Kernels, Matrix};

impl Kernels {
    /// `y = W·x` (dense). `x.len() == cols`, `y.len() == rows`.
    ///
    /// Precision: for the quantized weight types `x` is itself quantized to 8 bits (blocks
    /// of 32 for Q8_0, Q4_x and Q5_x; super-blocks of 256 for the K-quants, as ggml does)
    /// and the dot runs on integers, which differs from an f32 dot with the dequantized
    /// weights by about 1% relative; F32, F16 and BF16 rows are dotted in f32. Every ISA
    /// gives the same values within f32 rounding (the tests compare each level with the
    /// scalar reference).
    pub fn gemv(&self, w: &Matrix, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        check_len("gemv: x", w.cols(), x.len())?;
        check_len("gemv: y", w.rows(), y.len())?;
        let mut buf = ActBuf::default();
        let act = prepare(w.wtype(), x, &mut buf);
        self.gemv_blocks(w, &act, None, y);
        Ok(())
    }

    /// `y[k] = W[idx[k]]·x` for a strictly increasing `idx` (the active neurons' gate or
    /// up rows); `y.len() == idx.len()` — a compact output, ready for [`Kernels::axpy_rows`].
    ///
    /// Each `y[k]` is bitwise equal to row `idx[k]` of the dense [`Kernels::gemv`] at the
    /// same ISA (the same per-row arithmetic, however rows are grouped), so a sparse pass
    /// that keeps every neuron reproduces the dense one exactly.
    pub fn gemv_rows(
        &self,
        w: &Matrix,
        x: &[f32],
        idx: &[u32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        check_len("gemv_rows: x", w.cols(), x.len())?;
        check_len("gemv_rows: y", idx.len(), y.len())?;
        check_idx(idx, w.rows())?;
        let mut buf = ActBuf::default();
        let act = prepare(w.wtype(), x, &mut buf);
        self.gemv_blocks(w, &act, Some(idx), y);
        Ok(())
    }

    /// `y[k] = W[row k]·x` where row k is `idx[k]` (or `k` without `idx`), in groups of
    /// [`DOT_ROWS`] rows through [`dot_rows`], split over threads in runs of whole
    /// groups. Every output has the arithmetic of the single-row dot whatever group or
    /// task it falls in, so results do not depend on the thread count, and a gathered
    /// gemv_rows equals the dense gemv.
    pub(crate) fn gemv_blocks(&self, w: &Matrix, act: &Act, idx: Option<&[u32]>, y: &mut [f32]) {
        let isa = self.level();
        let wtype = w.wtype();
        let row_of = |k: usize| idx.map_or(k, |i| i[k] as usize);
        let run = |k0: usize, out: &mut [f32]| {
            let out_len = out.len();
            for (g, ys) in out.chunks_mut(DOT_ROWS).enumerate() {
                let j0 = k0 + g * DOT_ROWS;
                let mut rows: [&[u8]; DOT_ROWS] = [&[]; DOT_ROWS];
                for (r, j) in rows.iter_mut().zip(j0..j0 + ys.len()) {
                    *r = w.row(row_of(j));
                }
                // The next group's rows, loaded while this one runs (interleaved rows
                // defeat the hardware prefetcher's stream detection, and scattered
                // rows would each start with a full memory latency).
                let mut next: [&[u8]; DOT_ROWS] = [&[]; DOT_ROWS];
                let after = (j0 + DOT_ROWS..j0 + 2 * DOT_ROWS).take_while(|&j| j < k0 + out_len);
                let mut nn = 0;
                for (r, j) in next.iter_mut().zip(after) {
                    *r = w.row(row_of(j));
                    nn += 1;
                }
                dot_rows(isa, wtype, &rows[..ys.len()], &next[..nn], act, ys);
            }
        };
        let m = y.len();
        let rows_per_task = self
            .rows_per_task(m, w.row_bytes())
            .next_multiple_of(DOT_ROWS);
        if rows_per_task >= m {
            run(0, y);
        } else {
            use rayon::prelude::*;
            self.install(|| {
                y.par_chunks_mut(rows_per_task)
                    .enumerate()
                    .for_each(|(c, out)| run(c * rows_per_task, out))
            });
        }
    }

    /// Batched [`Kernels::gemv`] for `n` tokens: `xs` is `n × cols`, `ys` is `n × rows`
    /// (row-major). Each weight row is read once and dotted with all `n` inputs.
    pub fn gemm(
        &self,
        w: &Matrix,
        xs: &[f32],
        n: usize,
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        self.gemm_impl("gemm", w, xs, n, None, ys)
    }

    /// Batched [`Kernels::gemv_rows`]: `ys` is `n × idx.len()`.
    pub fn gemm_rows(
        &self,
        w: &Matrix,
        xs: &[f32],
        n: usize,
        idx: &[u32],
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        check_idx(idx, w.rows())?;
        self.gemm_impl("gemm_rows", w, xs, n, Some(idx), ys)
    }

    fn gemm_impl(
        &self,
        what: &'static str,
        w: &Matrix,
        xs: &[f32],
        n: usize,
        idx: Option<&[u32]>,
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        let cols = w.cols();
        let m = idx.map_or(w.rows(), <[u32]>::len);
        check_len(
            what,
            n.checked_mul(cols).ok_or(KernelError::SizeOverflow)?,
            xs.len(),
        )?;
        check_len(
            what,
            n.checked_mul(m).ok_or(KernelError::SizeOverflow)?,
            ys.len(),
        )?;
        if n == 0 || m == 0 {
            return Ok(());
        }
        // Output transposed (m × n) so each task owns whole weight rows; each row is
        // decoded to f32 once and dotted with all n inputs (in f32: batched results are
        // at least as exact as the single-token ones with 8-bit activations).
        let mut yt = vec![0f32; m * n];
        let isa = self.level();
        let wtype = w.wtype();
        let row_of = |k: usize| idx.map_or(k, |i| i[k] as usize);
        // Rows go in blocks of GEMM_ROWS through one register-blocked kernel; every
        // output has the same arithmetic whatever block or task it falls in, so results
        // do not depend on the thread count, and gemm_rows equals gemm.
        let run = |k0: usize, out: &mut [f32]| {
            let mut bufs: [Vec<f32>; GEMM_ROWS] = Default::default();
            for (b, block) in out.chunks_mut(GEMM_ROWS * n).enumerate() {
                let j0 = k0 + b * GEMM_ROWS;
                let mut ws: [&[f32]; GEMM_ROWS] = [&[]; GEMM_ROWS];
                let rows = block.len() / n;
                for ((wr, buf), j) in ws.iter_mut().zip(bufs.iter_mut()).zip(j0..j0 + rows) {
                    *wr = row_f32(isa, wtype, w.row(row_of(j)), buf, cols);
                }
                dot_f32_rows(isa, &ws[..rows], xs, cols, block);
            }
        };
        let rows_per_task = self
            .rows_per_task(m, w.row_bytes().saturating_mul(n))
            .next_multiple_of(GEMM_ROWS);
        if rows_per_task >= m {
            run(0, &mut yt);
        } else {
            use rayon::prelude::*;
            self.install(|| {
                yt.par_chunks_mut(rows_per_task * n)
                    .enumerate()
                    .for_each(|(c, out)| run(c * rows_per_task, out))
            });
        }
        // Back to token rows, a token per task for a large batch (a serial transpose
        // kept the exact prefill from scaling with threads).
        let transpose = |(b, yb): (usize, &mut [f32])| {
            for (k, y) in yb.iter_mut().enumerate() {
                *y = yt[k * n + b];
            }
        };
        if self.threads() > 1 && n > 1 && m * n >= PAR_MIN_BYTES {
            use rayon::prelude::*;
            self.install(|| ys.par_chunks_exact_mut(m).enumerate().for_each(transpose));
        } else {
            ys.chunks_exact_mut(m).enumerate().for_each(transpose);
        }
        Ok(())
    }
}
