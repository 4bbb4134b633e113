//! A 4-bit down projection (ggml Q4_0 / Q4_1, stored `dim × n_ff`) transposed to one
//! row per neuron **without re-quantizing it**, and the sparse axpy over it.
//!
//! Why: the sparse FFN reads the down projection by neuron (a skipped neuron is a
//! skipped row), but a stored Q4 matrix has its blocks along the neurons: 32
//! consecutive neurons share each output's scale `d` and minimum `m`. Re-quantizing the
//! transpose adds a second 4-bit rounding (measured +9.7% perplexity on SmolLM2 with
//! Q4_0, +0.25% with Q8_0 at 8.5 bits per weight). This layout keeps the source values
//! exactly: per neuron its 4-bit codes (4 bits per weight), per block of 32 neurons the
//! sources' `d` and `m` of every output (f16, 1 bit per weight amortised: 5 bits in all,
//! the Q4_1 source's own rate; Q4_0 sources store `m = −8·d`).
//!
//! `y_j += Σ_i h_i·(d_jB·q_ji + m_jB)` is computed per block `B` of 32 neurons as
//! `y_j += d_jB·t_j + m_jB·s` with `t_j = Σ_{i∈B} h_i·q_ji` and `s = Σ_{i∈B} h_i`, so a
//! block's scales are read once however many of its neurons are active.

use half::f16;

use crate::context::{check_idx, check_len};
use crate::{KernelError, Kernels, Matrix, Supported, WType};

/// Neurons per scale block (the source's block size).
pub const COLQ4_BLOCK: usize = 32;

/// A Q4_0/Q4_1 `dim × n_ff` matrix as `n_ff` neuron rows of `dim` 4-bit codes, with
/// the source's scales and minimums per block of 32 neurons (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct ColQ4 {
    neurons: usize,
    dim: usize,
    /// `neurons × dim/2` bytes: neuron `i`'s codes, per 32 outputs 16 bytes, byte `t`
    /// holding output `t` (low nibble) and `t + 16` (high nibble), as ggml blocks do.
    q: Vec<u8>,
    /// `(neurons/32) × dim` f16 bits: the source scale of block `B`, output `j`.
    d: Vec<u16>,
    /// The source minimum, same layout.
    m: Vec<u16>,
}

impl ColQ4 {
    /// Transposes a stored Q4_0 or Q4_1 matrix (`rows` = outputs, `cols` = neurons)
    /// exactly. The outputs must be a multiple of 32.
    pub fn from_matrix(src: &Matrix) -> Result<ColQ4, KernelError> {
        let (dim, neurons) = (src.rows(), src.cols());
        let (bb, has_min) = match src.wtype() {
            WType::Q4_1 => (20, true),
            WType::Q4_0 => (18, false),
            other => {
                return Err(KernelError::Unsupported(format!(
                    "ColQ4 transposes Q4_0/Q4_1 matrices, not {other}"
                )));
            }
        };
        if !dim.is_multiple_of(COLQ4_BLOCK) {
            return Err(KernelError::NotBlockAligned {
                wtype: src.wtype(),
                cols: dim,
                block: COLQ4_BLOCK,
            });
        }
        let blocks = neurons / COLQ4_BLOCK;
        let row_q = dim / 2;
        let cells = |a: usize, b: usize| a.checked_mul(b).ok_or(KernelError::SizeOverflow);
        let mut q = vec![0u8; cells(neurons, row_q)?];
        let (mut d, mut m) = (
            vec![0u16; cells(blocks, dim)?],
            vec![0u16; cells(blocks, dim)?],
        );
        for j in 0..dim {
            let row = src.row(j);
            for (b, blk) in row.chunks_exact(bb).enumerate() {
                let dj = u16::from_le_bytes([blk[0], blk[1]]);
                let (mj, qs) = if has_min {
                    (u16::from_le_bytes([blk[2], blk[3]]), &blk[4..])
                } else {
                    (
                        f16::from_f32(-8.0 * f16::from_bits(dj).to_f32()).to_bits(),
                        &blk[2..],
                    )
                };
                d[b * dim + j] = dj;
                m[b * dim + j] = mj;
                for k in 0..COLQ4_BLOCK {
                    let code = if k < 16 {
                        qs[k] & 0x0F
                    } else {
                        qs[k - 16] >> 4
                    };
                    let i = b * COLQ4_BLOCK + k;
                    let (jb, t) = (j / 32, j % 32);
                    let at = i * row_q + jb * 16 + t % 16;
                    q[at] |= if t < 16 { code } else { code << 4 };
                }
            }
        }
        Ok(ColQ4 {
            neurons,
            dim,
            q,
            d,
            m,
        })
    }

    /// Neurons (rows of the transposed view).
    pub fn neurons(&self) -> usize {
        self.neurons
    }

    /// Outputs per neuron.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes held (codes + scales + minimums).
    pub fn bytes(&self) -> usize {
        self.q.len() + 2 * (self.d.len() + self.m.len())
    }

    /// Bytes of one neuron's codes (what an active neuron reads, besides its block's
    /// scales).
    pub fn row_bytes(&self) -> usize {
        self.dim / 2
    }

    /// Bytes of one block's scales and minimums (read once per block touched).
    pub fn block_scale_bytes(&self) -> usize {
        4 * self.dim
    }

    /// Neuron `i`'s output column, decoded (`d·q + m`, the source's values exactly).
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) -> Result<(), KernelError> {
        check_len("ColQ4 row", self.dim, out.len())?;
        check_idx(&[u32::try_from(i).unwrap_or(u32::MAX)], self.neurons)?;
        let b = i / COLQ4_BLOCK;
        for (j, o) in out.iter_mut().enumerate() {
            let d = f16::from_bits(self.d[b * self.dim + j]).to_f32();
            let m = f16::from_bits(self.m[b * self.dim + j]).to_f32();
            *o = d * self.code(i, j) + m;
        }
        Ok(())
    }

    #[inline]
    fn code(&self, i: usize, j: usize) -> f32 {
        let byte = self.q[i * self.row_bytes() + (j / 32) * 16 + j % 16];
        f32::from(if j % 32 < 16 { byte & 0x0F } else { byte >> 4 })
    }

    /// Codes of neuron `i` for outputs `c0..c0 + 32·k` (c0 a multiple of 32).
    fn codes(&self, i: usize, c0: usize, c1: usize) -> &[u8] {
        let base = i * self.row_bytes();
        &self.q[base + c0 / 2..base + c1 / 2]
    }
}

impl Kernels {
    /// `y += Σ_k h[k] · W[idx[k]]` over the neuron rows of a [`ColQ4`] (strictly
    /// increasing `idx`, `h.len() == idx.len()`, `y.len() == dim`): the sparse down
    /// projection of a 4-bit model at its stored precision. Split over threads by
    /// output tiles; results do not depend on the thread count.
    pub fn axpy_colq4(
        &self,
        w: &ColQ4,
        h: &[f32],
        idx: &[u32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        check_len("axpy_colq4: h", idx.len(), h.len())?;
        check_len("axpy_colq4: y", w.dim, y.len())?;
        check_idx(idx, w.neurons)?;
        self.axpy_colq4_unchecked(w, h, idx, y);
        Ok(())
    }

    /// [`Kernels::axpy_colq4`] for `n` tokens: `hs` is `n × idx.len()`, `ys` is
    /// `n × dim`; tokens run in parallel, each with the single-token arithmetic.
    pub fn axpy_colq4_batch(
        &self,
        w: &ColQ4,
        hs: &[f32],
        n: usize,
        idx: &[u32],
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        check_len("axpy_colq4_batch: hs", n * idx.len(), hs.len())?;
        check_len("axpy_colq4_batch: ys", n * w.dim, ys.len())?;
        check_idx(idx, w.neurons)?;
        if idx.is_empty() || n == 0 {
            return Ok(());
        }
        let isa = self.level();
        let run = |(y, h): (&mut [f32], &[f32])| colq4_tile(isa, w, h, idx, 0, y);
        if self.threads() > 1 && n > 1 {
            use rayon::prelude::*;
            self.install(|| {
                ys.par_chunks_mut(w.dim)
                    .zip(hs.par_chunks(idx.len()))
                    .for_each(run)
            });
        } else {
            ys.chunks_mut(w.dim).zip(hs.chunks(idx.len())).for_each(run);
        }
        Ok(())
    }

    /// [`Kernels::axpy_colq4`] after its checks (shared with the fused FFN).
    pub(crate) fn axpy_colq4_unchecked(&self, w: &ColQ4, h: &[f32], idx: &[u32], y: &mut [f32]) {
        let isa = self.level();
        let bytes = idx.len().saturating_mul(w.row_bytes());
        self.par_tiles(y, COLQ4_BLOCK, bytes, |c0, tile| {
            colq4_tile(isa, w, h, idx, c0, tile)
        });
    }
}

/// Outputs `c0..c0 + tile.len()` (whole blocks of 32, or the row's end) of the sparse
/// axpy, block run by block run.
fn colq4_tile(isa: Supported, w: &ColQ4, h: &[f32], idx: &[u32], c0: usize, tile: &mut [f32]) {
    let c1 = c0 + tile.len();
    let mut start = 0;
    while start < idx.len() {
        let b = idx[start] as usize / COLQ4_BLOCK;
        let end = start
            + idx[start..]
                .iter()
                .take_while(|&&i| i as usize / COLQ4_BLOCK == b)
                .count();
        // A run holds at most one block's 32 neurons (idx is strictly increasing).
        let mut rows: [&[u8]; COLQ4_BLOCK] = [&[]; COLQ4_BLOCK];
        for (r, &i) in rows.iter_mut().zip(&idx[start..end]) {
            *r = w.codes(i as usize, c0, c1);
        }
        let rows = &rows[..end - start];
        let s: f32 = h[start..end].iter().sum();
        let d = &w.d[b * w.dim + c0..b * w.dim + c1];
        let m = &w.m[b * w.dim + c0..b * w.dim + c1];
        crate::dispatch::colq4_block(isa, rows, &h[start..end], s, d, m, tile);
        start = end;
    }
}

/// One block run of the [`crate::ColQ4`] axpy: `y_j += d_j·Σ_r h_r·q_rj + m_j·s`, per 32
/// outputs (`rows[r]` holds 16 code bytes per 32 outputs, ggml nibble order; `d`, `m`
/// are f16 bits). The reference the SIMD versions are tested against.
pub(crate) fn colq4_block_scalar(
    rows: &[&[u8]],
    h: &[f32],
    s: f32,
    d: &[u16],
    m: &[u16],
    y: &mut [f32],
) {
    let n = rows
        .iter()
        .map(|r| r.len() * 2)
        .fold(y.len().min(d.len()).min(m.len()), usize::min);
    for (g, ys) in y[..n].chunks_mut(32).enumerate() {
        let mut t = [0f32; 32];
        for (row, &hr) in rows.iter().zip(h) {
            let qs = &row[g * 16..];
            for (k, tk) in t.iter_mut().enumerate().take(ys.len()) {
                let code = if k < 16 {
                    qs[k % 16] & 0x0F
                } else {
                    qs[k % 16] >> 4
                };
                *tk += hr * f32::from(code);
            }
        }
        for (k, yv) in ys.iter_mut().enumerate() {
            let dj = half::f16::from_bits(d[g * 32 + k]).to_f32();
            let mj = half::f16::from_bits(m[g * 32 + k]).to_f32();
            *yv += dj * t[k] + mj * s;
        }
    }
}
