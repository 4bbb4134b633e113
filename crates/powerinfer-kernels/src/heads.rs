//! Attention's two products for one head over cached positions — scores `K·q` and the
//! mix `Σ_p w_p·V_p` — and their scalar reference.
//!
//! Why kernels of their own: a KV cache row holds every head's slice, so one head's keys
//! are short strided rows (64 values for SmolLM2). Through the general row dot each row
//! pays a horizontal sum and each axpy reloads the output; here eight positions' sums are
//! reduced together and the output stays in registers across all positions.

use crate::context::check_len;
use crate::{KernelError, Kernels};

/// One head's slice of `len` cached positions: position `p` at
/// `data[p·stride + offset ..][.. width]`.
#[derive(Clone, Copy, Debug)]
pub struct HeadRows<'a> {
    data: &'a [f32],
    stride: usize,
    offset: usize,
    width: usize,
    len: usize,
}

impl<'a> HeadRows<'a> {
    /// Checks that every position's slice lies inside `data`.
    pub fn new(
        data: &'a [f32],
        stride: usize,
        offset: usize,
        width: usize,
        len: usize,
    ) -> Result<HeadRows<'a>, KernelError> {
        let need = match len {
            0 => 0,
            l => (l - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(offset))
                .and_then(|v| v.checked_add(width))
                .ok_or(KernelError::SizeOverflow)?,
        };
        if data.len() < need || (len > 1 && stride < width) {
            return Err(KernelError::Length {
                what: "head rows: cache",
                expected: need,
                got: data.len(),
            });
        }
        Ok(HeadRows {
            data,
            stride,
            offset,
            width,
            len,
        })
    }

    /// Values per position.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Position `p`'s slice (`p < len`).
    pub(crate) fn row(&self, p: usize) -> &'a [f32] {
        let at = p * self.stride + self.offset;
        &self.data[at..at + self.width]
    }
}

impl Kernels {
    /// `scores[p] = k[p] · q` for every position (`q.len() == k.width()`,
    /// `scores.len() == k.len()`), on the calling thread (attention splits its heads over
    /// the pool itself). Every level gives the scalar reference's values bitwise.
    pub fn head_scores(
        &self,
        k: &HeadRows,
        q: &[f32],
        scores: &mut [f32],
    ) -> Result<(), KernelError> {
        check_len("head_scores: q", k.width, q.len())?;
        check_len("head_scores: scores", k.len, scores.len())?;
        crate::dispatch::head_scores(self.level(), k, q, scores);
        Ok(())
    }

    /// `out = Σ_p w[p] · v[p]` (`w.len() == v.len()`, `out.len() == v.width()`; `out`
    /// is overwritten), on the calling thread. Every level gives the scalar reference's
    /// values bitwise.
    pub fn head_mix(&self, v: &HeadRows, w: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
        check_len("head_mix: w", v.len, w.len())?;
        check_len("head_mix: out", v.width, out.len())?;
        crate::dispatch::head_mix(self.level(), v, w, out);
        Ok(())
    }
}

/// The reference score of one row: eight lane sums `a_l = Σ_c k[8c+l]·q[8c+l]` (FMA, in
/// chunk order), reduced as `((a0+a1)+(a2+a3)) + ((a4+a5)+(a6+a7))`, then the last
/// `width % 8` products added by FMA in order.
pub(crate) fn score(k: &[f32], q: &[f32]) -> f32 {
    let whole = k.len().min(q.len()) / 8 * 8;
    let mut a = [0f32; 8];
    for (kc, qc) in k[..whole].chunks_exact(8).zip(q[..whole].chunks_exact(8)) {
        for l in 0..8 {
            a[l] = kc[l].mul_add(qc[l], a[l]);
        }
    }
    let mut s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (kv, qv) in k[whole..].iter().zip(&q[whole..]) {
        s = kv.mul_add(*qv, s);
    }
    s
}

/// The reference scores.
pub(crate) fn scores(k: &HeadRows, q: &[f32], out: &mut [f32]) {
    for (p, o) in out.iter_mut().enumerate().take(k.len) {
        *o = score(k.row(p), q);
    }
}

/// The reference mix: each output `fma`-accumulated over positions in order from 0.
pub(crate) fn mix(v: &HeadRows, w: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for (p, &wp) in w.iter().enumerate().take(v.len) {
        for (o, &x) in out.iter_mut().zip(v.row(p)) {
            *o = wp.mul_add(x, *o);
        }
    }
}
