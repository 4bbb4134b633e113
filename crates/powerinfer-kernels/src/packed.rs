//! Row-interleaved ("packed") copies of 8-bit and 4-bit weight matrices for dense
//! products, and the scalar reference of their kernels.
//!
//! Why: in ggml's row-major block layout a SIMD dot handles one row at a time, so every
//! 32-value block costs a horizontal step per row (nibble unpack, a multiply-add chain,
//! a scale broadcast and an FMA). With the same block of [`PACK_ROWS`] rows stored side
//! by side — their scales in one 16-byte run, their quants in 4-byte pieces — one
//! integer multiply-add of a SIMD register covers all rows at once (lane `r` is row
//! `r`), the scales convert 8 at a time and the weights stream from memory in order.
//! That is ggml's `q4_0_8x8` repacking idea. It pays only where every row is read,
//! so the sparse kernels keep the row-major layout (a gathered row would be scattered
//! across a packed group).

use crate::blocks::{QK, f16_at};
use crate::context::{check_len, prepare};
use crate::dispatch::{PACKED_TOKENS, packed_group};
use crate::q8::ActBuf;
use crate::q8::{BlockQ8, quantize_q8_into};
use crate::{KernelError, Kernels, Matrix, WType};

/// Rows interleaved per group: one per 32-bit lane of an AVX2 register.
pub const PACK_ROWS: usize = 8;

/// A `rows × cols` Q8_0, Q4_0 or Q4_1 matrix repacked for [`crate::Kernels::gemv_packed`]
/// and [`crate::Kernels::gemm_packed`]: the same bytes as the row-major matrix
/// (plus zero rows padding the last group), reordered.
///
/// Layout: groups of [`PACK_ROWS`] rows; in a group, block `i` of all rows is stored
/// together as the rows' f16 scales (and then the rows' f16 minimums, Q4_1), then the
/// quants in pieces of 4 bytes — piece `c` of row `r` at `32·c + 4·r`. For Q4 types a
/// piece is bytes `4c..4c+4` of the row's 16 quant bytes (values `4c..` in the low
/// nibbles, `16+4c..` in the high ones); for Q8_0 it is values `4c..4c+4`.
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    wtype: WType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

/// Bytes of the scale run (and minimum run) at the start of a packed block.
pub(crate) const fn scale_bytes(wtype: WType) -> usize {
    match wtype {
        WType::Q4_1 => 4 * PACK_ROWS,
        _ => 2 * PACK_ROWS,
    }
}

/// Quant bytes of one row's block.
const fn quant_bytes(wtype: WType) -> usize {
    match wtype {
        WType::Q8_0 => QK,
        _ => QK / 2,
    }
}

impl PackedMatrix {
    /// Whether `wtype` has a packed layout (Q8_0, Q4_0, Q4_1).
    pub fn supports(wtype: WType) -> bool {
        matches!(wtype, WType::Q8_0 | WType::Q4_0 | WType::Q4_1)
    }

    /// Repacks `m` (row-major or strided). Errors for a type without a packed layout.
    pub fn pack(m: &Matrix) -> Result<PackedMatrix, KernelError> {
        PackedMatrix::stack(&[*m])
    }

    /// Packs the rows of `parts` one after another as one matrix (rows of part 0, then
    /// part 1, …). Why: projections that read the same input (q, k and v; gate and up)
    /// then run as one product — one activation quantization, one parallel region —
    /// and the caller splits each output row at the parts' row counts. Errors for a
    /// type without a packed layout, or parts of different types or widths.
    pub fn stack(parts: &[Matrix]) -> Result<PackedMatrix, KernelError> {
        let Some(first) = parts.first() else {
            return Err(KernelError::Unsupported("stacking no matrices".into()));
        };
        let (wtype, cols) = (first.wtype(), first.cols());
        if !Self::supports(wtype) {
            return Err(KernelError::Unsupported(format!(
                "no packed layout for {wtype} (Q8_0, Q4_0 and Q4_1 have one)"
            )));
        }
        if let Some(m) = parts
            .iter()
            .find(|m| m.wtype() != wtype || m.cols() != cols)
        {
            return Err(KernelError::Unsupported(format!(
                "stacking a {} matrix of {} columns under a {wtype} one of {cols}",
                m.wtype(),
                m.cols()
            )));
        }
        // Row r of the stack: (part, row in part).
        let index: Vec<(usize, usize)> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, m)| (0..m.rows()).map(move |r| (p, r)))
            .collect();
        let rows = index.len();
        let groups = rows.div_ceil(PACK_ROWS);
        let (bb, sb, qb) = (wtype.block_bytes(), scale_bytes(wtype), quant_bytes(wtype));
        let group_bytes = PACK_ROWS
            .checked_mul(first.row_bytes())
            .ok_or(KernelError::SizeOverflow)?;
        let mut data = vec![
            0u8;
            groups
                .checked_mul(group_bytes)
                .ok_or(KernelError::SizeOverflow)?
        ];
        for (gi, group) in data.chunks_exact_mut(group_bytes.max(1)).enumerate() {
            for (i, out) in group.chunks_exact_mut(PACK_ROWS * bb).enumerate() {
                let (scales, quants) = out.split_at_mut(sb);
                for (r, &(p, pr)) in index[gi * PACK_ROWS..].iter().take(PACK_ROWS).enumerate() {
                    let src = &parts[p].row(pr)[i * bb..(i + 1) * bb];
                    // d (and m) of this row's block, into lane r of the scale run(s).
                    scales[2 * r..2 * r + 2].copy_from_slice(&src[..2]);
                    if wtype == WType::Q4_1 {
                        let at = 2 * PACK_ROWS + 2 * r;
                        scales[at..at + 2].copy_from_slice(&src[2..4]);
                    }
                    let q = &src[bb - qb..];
                    for (c, piece) in q.chunks_exact(4).enumerate() {
                        quants[32 * c + 4 * r..32 * c + 4 * r + 4].copy_from_slice(piece);
                    }
                }
            }
        }
        Ok(PackedMatrix {
            wtype,
            rows,
            cols,
            data,
        })
    }

    /// Weight type.
    pub fn wtype(&self) -> WType {
        self.wtype
    }

    /// Number of (real) rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held (the padded groups).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Number of row groups.
    pub(crate) fn groups(&self) -> usize {
        self.rows.div_ceil(PACK_ROWS)
    }

    /// Bytes of one group.
    pub(crate) fn group_bytes(&self) -> usize {
        PACK_ROWS * (self.cols / QK) * self.wtype.block_bytes()
    }

    /// Group `g`'s bytes.
    pub(crate) fn group(&self, g: usize) -> &[u8] {
        let gb = self.group_bytes();
        &self.data[g * gb..(g + 1) * gb]
    }
}

/// The reference for one group: `out[r] = row r · x` for the group's [`PACK_ROWS`] rows
/// (padding rows give 0), with `x` quantized to `xq`.
///
/// The arithmetic every level reproduces exactly: per block, the integer dot `s` of the
/// row's quants with `xq`'s (Q4_0: minus `8·Σx`), then `acc = fma(d·dx, s, acc)` in
/// block order; Q4_1 adds `macc = fma(m, dx·Σx, macc)` in block order and returns
/// `acc + macc`. (The row-major [`crate::Kernels::gemv`] sums the same block terms in
/// another order, so the two agree to f32 rounding, not bitwise.)
pub(crate) fn group_dot(wtype: WType, group: &[u8], xq: &[BlockQ8], out: &mut [f32; PACK_ROWS]) {
    let bb = PACK_ROWS * wtype.block_bytes();
    let sb = scale_bytes(wtype);
    let mut acc = [0f32; PACK_ROWS];
    let mut macc = [0f32; PACK_ROWS];
    for (blk, xb) in group.chunks_exact(bb).zip(xq) {
        let (scales, quants) = blk.split_at(sb);
        for r in 0..PACK_ROWS {
            let byte = |c: usize, j: usize| quants[32 * c + 4 * r + j];
            let s: i32 = match wtype {
                WType::Q8_0 => (0..QK)
                    .map(|k| (byte(k / 4, k % 4) as i8) as i32 * xb.qs[k] as i32)
                    .sum(),
                _ => (0..QK / 2)
                    .map(|k| {
                        let b = byte(k / 4, k % 4);
                        (b & 0x0F) as i32 * xb.qs[k] as i32 + (b >> 4) as i32 * xb.qs[k + 16] as i32
                    })
                    .sum(),
            };
            let s = if wtype == WType::Q4_0 {
                s - 8 * xb.sum
            } else {
                s
            };
            let dd = f16_at(scales, 2 * r) * xb.d;
            acc[r] = dd.mul_add(s as f32, acc[r]);
            if wtype == WType::Q4_1 {
                let m = f16_at(scales, 2 * PACK_ROWS + 2 * r);
                macc[r] = m.mul_add(xb.d * xb.sum as f32, macc[r]);
            }
        }
    }
    for r in 0..PACK_ROWS {
        out[r] = if wtype == WType::Q4_1 {
            acc[r] + macc[r]
        } else {
            acc[r]
        };
    }
}

impl Kernels {
    /// `y = W·x` over a packed matrix (`x.len() == cols`, `y.len() == rows`), `x`
    /// quantized to 8-bit blocks as [`Kernels::gemv`] does for these types. Why: the
    /// dense projections of a decode step (attention, dense FFN, output head), several
    /// times faster per byte than the row-major kernel where that one is compute bound.
    /// Results agree with `gemv` on the row-major matrix to f32 rounding (another
    /// summation order) and do not depend on the thread count.
    pub fn gemv_packed(
        &self,
        w: &PackedMatrix,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        check_len("gemv_packed: x", w.cols(), x.len())?;
        check_len("gemv_packed: y", w.rows(), y.len())?;
        let mut buf = ActBuf::default();
        let act = prepare(w.wtype(), x, &mut buf);
        self.packed_groups(w, act.q, 1, y);
        Ok(())
    }

    /// Batched [`Kernels::gemv_packed`] for `n` tokens (`xs` is `n × cols`, `ys` is
    /// `n × rows`): each token's activations quantized to 8 bits, so every output row
    /// equals `gemv_packed` of that token bitwise. Why: an integer prefill that reads
    /// each packed group once per batch (it stays in L1 while every token passes).
    pub fn gemm_packed(
        &self,
        w: &PackedMatrix,
        xs: &[f32],
        n: usize,
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        let (rows, cols) = (w.rows(), w.cols());
        check_len(
            "gemm_packed: xs",
            n.checked_mul(cols).ok_or(KernelError::SizeOverflow)?,
            xs.len(),
        )?;
        check_len(
            "gemm_packed: ys",
            n.checked_mul(rows).ok_or(KernelError::SizeOverflow)?,
            ys.len(),
        )?;
        if n == 0 || cols == 0 {
            ys.fill(0.0);
            return Ok(());
        }
        let nb = cols / QK;
        let mut xq = vec![BlockQ8::default(); n * nb];
        // Token by token, over the pool for a batch (serial parts of a prefill are
        // what keeps it from scaling with threads).
        let quantize = |(x, q): (&[f32], &mut [BlockQ8])| quantize_q8_into(x, q);
        if self.threads() > 1 && n > 1 {
            use rayon::prelude::*;
            self.install(|| {
                xs.par_chunks_exact(cols)
                    .zip(xq.par_chunks_exact_mut(nb))
                    .for_each(quantize)
            });
        } else {
            xs.chunks_exact(cols)
                .zip(xq.chunks_exact_mut(nb))
                .for_each(quantize);
        }
        self.packed_groups(w, &xq, n, ys);
        Ok(())
    }

    /// Runs every group of `w` against the `n` activation vectors in `xq` (each
    /// `cols / 32` blocks), over the pool in runs of whole groups, into `ys` (`n × rows`).
    fn packed_groups(&self, w: &PackedMatrix, xq: &[BlockQ8], n: usize, ys: &mut [f32]) {
        let (groups, nb, rows) = (w.groups(), w.cols() / QK, w.rows());
        if groups == 0 {
            return;
        }
        let isa = self.level();
        // Each task fills its groups' outputs, token-major within a group: [g][t][r].
        let run = |g0: usize, out: &mut [f32]| {
            let mut v = [[0f32; PACK_ROWS]; PACKED_TOKENS];
            for (k, og) in out.chunks_exact_mut(n * PACK_ROWS).enumerate() {
                let group = w.group(g0 + k);
                for (c, oc) in og.chunks_mut(PACKED_TOKENS * PACK_ROWS).enumerate() {
                    let t0 = c * PACKED_TOKENS;
                    let tn = oc.len() / PACK_ROWS;
                    let xqs: [&[BlockQ8]; PACKED_TOKENS] = std::array::from_fn(|t| {
                        let at = (t0 + t.min(tn - 1)) * nb;
                        &xq[at..at + nb]
                    });
                    packed_group(isa, w.wtype(), group, &xqs[..tn], &mut v[..tn]);
                    for (o, vt) in oc.chunks_exact_mut(PACK_ROWS).zip(&v) {
                        o.copy_from_slice(vt);
                    }
                }
            }
        };
        let mut tmp = vec![0f32; groups * n * PACK_ROWS];
        let per_task = self.rows_per_task(groups, w.group_bytes().saturating_mul(n));
        if per_task >= groups {
            run(0, &mut tmp);
        } else {
            use rayon::prelude::*;
            self.install(|| {
                tmp.par_chunks_mut(per_task * n * PACK_ROWS)
                    .enumerate()
                    .for_each(|(c, out)| run(c * per_task, out))
            });
        }
        // Scatter [g][t][r] into token rows, a token per task for a batch.
        let scatter = |(t, yt): (usize, &mut [f32])| {
            for (g, yg) in yt.chunks_mut(PACK_ROWS).enumerate() {
                let at = (g * n + t) * PACK_ROWS;
                yg.copy_from_slice(&tmp[at..at + yg.len()]);
            }
        };
        if self.threads() > 1 && n > 1 {
            use rayon::prelude::*;
            self.install(|| ys.par_chunks_exact_mut(rows).enumerate().for_each(scatter));
        } else {
            ys.chunks_exact_mut(rows).enumerate().for_each(scatter);
        }
    }
}
