//! Row-accumulate operations over a transposed matrix (the sparse down projection).

use crate::context::{PAR_MIN_BYTES, check_idx, check_len, prefetch};
use crate::dispatch::{axpy, axpy_f32, axpy4, row_f32};
use crate::{KernelError, Kernels, Matrix};

impl Kernels {
    /// `y += Σ_k h[k] · Wt[idx[k]]`: the down projection of the active neurons, with the
    /// down matrix stored transposed (`Wt` is neurons × dim) so a skipped neuron is a
    /// skipped contiguous row. `h.len() == idx.len()`, `y.len() == cols`.
    ///
    /// Threads split `y` into column tiles, so the result is the same for any thread
    /// count: every element receives its updates in `idx` order.
    pub fn axpy_rows(
        &self,
        wt: &Matrix,
        h: &[f32],
        idx: &[u32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        check_len("axpy_rows: h", idx.len(), h.len())?;
        check_len("axpy_rows: y", wt.cols(), y.len())?;
        check_idx(idx, wt.rows())?;
        self.axpy_unchecked(wt, h, idx, y);
        Ok(())
    }

    /// Batched [`Kernels::axpy_rows`] for `n` tokens: `hs` is `n × idx.len()`, `ys` is
    /// `n × cols`. Tiles of `ys` columns are shared out; within a tile each weight row
    /// is decoded once per token while it is hot in cache.
    pub fn axpy_rows_batch(
        &self,
        wt: &Matrix,
        hs: &[f32],
        n: usize,
        idx: &[u32],
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        let (m, cols) = (idx.len(), wt.cols());
        check_len(
            "axpy_rows_batch: hs",
            n.checked_mul(m).ok_or(KernelError::SizeOverflow)?,
            hs.len(),
        )?;
        check_len(
            "axpy_rows_batch: ys",
            n.checked_mul(cols).ok_or(KernelError::SizeOverflow)?,
            ys.len(),
        )?;
        check_idx(idx, wt.rows())?;
        if n == 0 || cols == 0 {
            return Ok(());
        }
        // Work on a column-tile-major copy so each thread owns a slab of all tokens.
        let align = wt.wtype().block_size().max(32);
        let tile = cols.div_ceil(self.threads().max(1)).div_ceil(align).max(1) * align;
        let tiles = cols.div_ceil(tile);
        let mut slab = vec![0f32; n * cols];
        let mut offsets = Vec::with_capacity(tiles);
        for t in 0..tiles {
            let (c0, c1) = (t * tile, ((t + 1) * tile).min(cols));
            offsets.push((c0, c1));
        }
        // slab layout: tile t occupies n·(c1−c0) values starting at n·c0.
        for (b, yrow) in ys.chunks_exact(cols).enumerate() {
            for &(c0, c1) in &offsets {
                let w = c1 - c0;
                slab[n * c0 + b * w..n * c0 + (b + 1) * w].copy_from_slice(&yrow[c0..c1]);
            }
        }
        let isa = self.level();
        let wtype = wt.wtype();
        // Each row tile is decoded to f32 once and added into every token that uses it
        // (a zero activation adds nothing and is skipped).
        let run_tile = |c0: usize, c1: usize, part: &mut [f32]| {
            let w = c1 - c0;
            let mut buf = Vec::new();
            for (k, &i) in idx.iter().enumerate() {
                let wf = row_f32(isa, wtype, wt.row_cols(i as usize, c0, c1), &mut buf, w);
                for (b, yb) in part.chunks_exact_mut(w).enumerate() {
                    let h = hs[b * m + k];
                    if h != 0.0 {
                        axpy_f32(isa, wf, h, yb);
                    }
                }
            }
        };
        let bytes = m.saturating_mul(wt.row_bytes()).saturating_mul(n);
        if self.threads() <= 1 || tiles == 1 || bytes < PAR_MIN_BYTES {
            for &(c0, c1) in &offsets {
                run_tile(c0, c1, &mut slab[n * c0..n * c1]);
            }
        } else {
            use rayon::prelude::*;
            let mut parts: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(tiles);
            let mut rest: &mut [f32] = &mut slab;
            for &(c0, c1) in &offsets {
                let (head, tail) = rest.split_at_mut(n * (c1 - c0));
                parts.push((c0, c1, head));
                rest = tail;
            }
            self.install(|| {
                parts
                    .into_par_iter()
                    .for_each(|(c0, c1, part)| run_tile(c0, c1, part))
            });
        }
        for (b, yrow) in ys.chunks_exact_mut(cols).enumerate() {
            for &(c0, c1) in &offsets {
                let w = c1 - c0;
                yrow[c0..c1].copy_from_slice(&slab[n * c0 + b * w..n * c0 + (b + 1) * w]);
            }
        }
        Ok(())
    }

    /// [`Kernels::axpy_rows`] after its checks (shared with the fused FFN).
    pub(crate) fn axpy_unchecked(&self, wt: &Matrix, h: &[f32], idx: &[u32], y: &mut [f32]) {
        let isa = self.level();
        let wtype = wt.wtype();
        let align = wtype.block_size().max(32);
        let bytes = idx.len().saturating_mul(wt.row_bytes());
        self.par_tiles(y, align, bytes, |c0, tile| {
            let c1 = c0 + tile.len();
            let (idx4, h4) = (idx.chunks_exact(4), h.chunks_exact(4));
            let (idx_rest, h_rest) = (idx4.remainder(), h4.remainder());
            for (g, (i, hk)) in idx4.zip(h4).enumerate() {
                // Rows are scattered: ask for the rows of the group AHEAD groups on while
                // this one computes (a hint only; results are unchanged).
                let next = (g + AHEAD) * 4;
                for &r in idx.get(next..(next + 4).min(idx.len())).unwrap_or(&[]) {
                    prefetch(wt.row_cols(r as usize, c0, c1));
                }
                let rows = [0, 1, 2, 3].map(|r| wt.row_cols(i[r] as usize, c0, c1));
                axpy4(isa, wtype, rows, [hk[0], hk[1], hk[2], hk[3]], tile);
            }
            for (&i, &hk) in idx_rest.iter().zip(h_rest) {
                axpy(isa, wtype, wt.row_cols(i as usize, c0, c1), hk, tile);
            }
        });
    }
}

/// How many groups of four rows ahead [`Kernels::axpy_rows`] prefetches.
const AHEAD: usize = 2;
