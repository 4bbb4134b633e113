//! Row-dot operations: dense and row-gathered GEMV, and their batched (GEMM) forms.

use crate::context::{check_idx, check_len, prefetch, prepare};
use crate::dispatch::dot;
use crate::q8::{Act, BlockQ8};
use crate::{KernelError, Kernels, Matrix};

impl Kernels {
    /// `y = W·x` (dense). `x.len() == cols`, `y.len() == rows`.
    pub fn gemv(&self, w: &Matrix, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        check_len("gemv: x", w.cols(), x.len())?;
        check_len("gemv: y", w.rows(), y.len())?;
        let mut buf = Vec::new();
        let act = prepare(w.wtype(), x, &mut buf);
        let isa = self.isa();
        self.par_fill(y, w.row_bytes(), |r| dot(isa, w.wtype(), w.row(r), &act));
        Ok(())
    }

    /// `y[k] = W[idx[k]]·x` for a strictly increasing `idx` (the active neurons' gate or
    /// up rows); `y.len() == idx.len()` — a compact output, ready for [`Kernels::axpy_rows`].
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
        let mut buf = Vec::new();
        let act = prepare(w.wtype(), x, &mut buf);
        let isa = self.isa();
        self.par_fill(y, w.row_bytes(), |k| {
            if let Some(&next) = idx.get(k + 1) {
                prefetch(w.row(next as usize));
            }
            dot(isa, w.wtype(), w.row(idx[k] as usize), &act)
        });
        Ok(())
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
        let bufs: Vec<Vec<BlockQ8>> = xs
            .chunks_exact(cols.max(1))
            .map(|x| {
                let mut b = Vec::new();
                prepare(w.wtype(), x, &mut b);
                b
            })
            .collect();
        let acts: Vec<Act> = xs
            .chunks_exact(cols.max(1))
            .zip(&bufs)
            .map(|(f, q)| Act { f, q })
            .collect();
        // Output transposed (m × n) so each thread owns whole weight rows, then
        // transposed back.
        let mut yt = vec![0f32; m * n];
        let isa = self.isa();
        let row_of = |k: usize| idx.map_or(k, |i| i[k] as usize);
        self.par_fill(&mut yt, w.row_bytes(), |e| {
            let (k, b) = (e / n, e % n);
            dot(isa, w.wtype(), w.row(row_of(k)), &acts[b])
        });
        for (k, yr) in yt.chunks_exact(n).enumerate() {
            for (b, &v) in yr.iter().enumerate() {
                ys[b * m + k] = v;
            }
        }
        Ok(())
    }
}
