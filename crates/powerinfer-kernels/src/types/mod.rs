//! One file per weight type: its decode/encode and its row kernels at every ISA level.
//!
//! Why: the operations (gemv, axpy, the fused FFN) are written once over "a row dot" and
//! "a row axpy" of some type. Each type is one [`BlockKernels`] impl in a file of its own
//! (as candle's `GgmlType`), reached through one row of the [`TABLE`] in `wtype.rs`, so
//! adding a type touches its file and that row, not the executor or every ISA file.

use crate::Isa;
use crate::isa::Supported;
use crate::q8::Act;

pub(crate) mod float;
pub(crate) mod q4_0;
pub(crate) mod q4_1;
pub(crate) mod q4_k;
pub(crate) mod q5_0;
pub(crate) mod q5_1;
pub(crate) mod q5_k;
#[cfg(test)]
mod q5_test_util;
pub(crate) mod q6_k;
pub(crate) mod q8_0;

/// The activation blocks a type's dot product reads (quantized once per call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActKind {
    /// The f32 activations as they are (float weight types).
    F32,
    /// 8-bit blocks of 32 with their sums ([`crate::q8::BlockQ8`]).
    Q8,
    /// 8-bit super-blocks of 256 with sums per 16 ([`crate::q8k::BlockQ8K`]).
    Q8K,
}

/// The row kernels of one weight type. Every method is safe for any slice lengths: it
/// works over the whole blocks present in all operands (the safe API checks shapes once,
/// so in practice they always match). Every ISA level reproduces the scalar reference
/// within rounding; methods with a default are optional speedups.
pub(crate) trait BlockKernels: Sync {
    /// What [`BlockKernels::dot`] expects in its [`Act`].
    fn act(&self) -> ActKind;

    /// Decodes the whole blocks of `row` that fit `out` (the reference definition).
    fn decode(&self, row: &[u8], out: &mut [f32]);

    /// Appends the encoding of `values` (a whole number of blocks) to `out`, rounding as
    /// ggml's reference quantizer does.
    fn encode(&self, values: &[f32], out: &mut Vec<u8>);

    /// `row · x` at `isa`.
    fn dot(&self, isa: Supported, row: &[u8], x: &Act) -> f32;

    /// `y += h · row` at `isa`.
    fn axpy(&self, isa: Supported, row: &[u8], h: f32, y: &mut [f32]);

    /// `out[r] = rows[r] · x` for `r < out.len()` (at most
    /// [`DOT_ROWS`](crate::dispatch::DOT_ROWS)), each with exactly the arithmetic of
    /// [`BlockKernels::dot`] on its row alone; `next` (the rows the caller takes next)
    /// may be prefetched.
    fn dot_rows(&self, isa: Supported, rows: &[&[u8]], next: &[&[u8]], x: &Act, out: &mut [f32]) {
        dot_rows_each(self, isa, rows, next, x, out);
    }

    /// Four [`BlockKernels::axpy`] calls in order (the same updates and roundings; a
    /// level may make it one pass over `y`).
    fn axpy4(&self, isa: Supported, rows: [&[u8]; 4], h: [f32; 4], y: &mut [f32]) {
        for (row, hk) in rows.into_iter().zip(h) {
            self.axpy(isa, row, hk, y);
        }
    }

    /// [`BlockKernels::decode`] at `isa`: the same values, maybe vectorized.
    fn decode_at(&self, isa: Supported, row: &[u8], out: &mut [f32]) {
        let _ = isa;
        self.decode(row, out);
    }
}

/// Runs `$avx2` when `$isa` is AVX2 and `$scalar` otherwise (and on other
/// architectures), so each type states its kernel pair once per operation.
macro_rules! by_isa {
    ($isa:expr, avx2 => $avx2:expr, scalar => $scalar:expr $(,)?) => {
        match $isa.isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Supported(Isa::Avx2)` exists only once AVX2, FMA and F16C were
            // detected at run time (`Isa::supported`, `Supported::best`), which is the
            // one precondition of the `#[target_feature]` kernels called here.
            $crate::Isa::Avx2 => unsafe { $avx2 },
            _ => $scalar,
        }
    };
}
pub(crate) use by_isa;

/// The [`BlockKernels`] impl of a type whose file defines the free functions `decode`,
/// `encode`, `dot` and `axpy` (the scalar reference) and `avx2::{dot, axpy}`, dotting
/// with the activation blocks in `Act.$field`; the optional methods keep their defaults.
///
/// With `decode: MIN`, `decode_at` runs `avx2::decode_blocks::<MIN>` over the file's
/// `BLOCK_BYTES`-byte blocks with its `avx2::quants` (32 signed quants of a block whose
/// f16 scale comes first, then with `MIN` its f16 minimum).
macro_rules! forward_kernels {
    ($ty:ident, $act:expr, $field:ident, decode: $min:literal) => {
        $crate::types::forward_kernels!(@impl $ty, $act, $field,
            fn decode_at(&self, isa: $crate::isa::Supported, row: &[u8], out: &mut [f32]) {
                $crate::types::by_isa!(
                    isa,
                    avx2 => $crate::avx2::decode_blocks::<$min>(row, out, BLOCK_BYTES, avx2::quants),
                    scalar => decode(row, out),
                )
            }
        );
    };
    ($ty:ident, $act:expr, $field:ident) => {
        $crate::types::forward_kernels!(@impl $ty, $act, $field,);
    };
    (@impl $ty:ident, $act:expr, $field:ident, $($extra:item)*) => {
        impl $crate::types::BlockKernels for $ty {
            fn act(&self) -> $crate::types::ActKind {
                $act
            }

            fn decode(&self, row: &[u8], out: &mut [f32]) {
                decode(row, out);
            }

            fn encode(&self, values: &[f32], out: &mut Vec<u8>) {
                encode(values, out);
            }

            fn dot(&self, isa: $crate::isa::Supported, row: &[u8], x: &$crate::q8::Act) -> f32 {
                $crate::types::by_isa!(
                    isa,
                    avx2 => avx2::dot(row, x.$field),
                    scalar => dot(row, x.$field),
                )
            }

            fn axpy(&self, isa: $crate::isa::Supported, row: &[u8], h: f32, y: &mut [f32]) {
                $crate::types::by_isa!(
                    isa,
                    avx2 => avx2::axpy(row, h, y),
                    scalar => axpy(row, h, y),
                )
            }

            $($extra)*
        }
    };
}
pub(crate) use forward_kernels;

/// [`BlockKernels::dot_rows`] one row at a time. The scalar level prefetches `next`;
/// AVX2's single-row kernels run without the hint (so they did before the per-type
/// split; the grouped Q4_1 kernel prefetches on its own).
pub(crate) fn dot_rows_each<K: BlockKernels + ?Sized>(
    k: &K,
    isa: Supported,
    rows: &[&[u8]],
    next: &[&[u8]],
    x: &Act,
    out: &mut [f32],
) {
    if isa.isa() != Isa::Avx2 {
        for row in next {
            crate::context::prefetch(row);
        }
    }
    for (o, row) in out.iter_mut().zip(rows) {
        *o = k.dot(isa, row, x);
    }
}

/// The 32 five-bit codes (0..32) of a Q5_0/Q5_1 block in value order, from its fifth
/// bits `qh` (a little-endian u32: bit `j` belongs to value `j`) and nibbles `qs`
/// (value `j` low in byte `j`, value `j + 16` high).
pub(crate) fn five_bit_codes(qh: &[u8], qs: &[u8]) -> [u8; crate::blocks::QK] {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let bit = |j: usize| (((qh >> j) & 1) as u8) << 4;
    let mut q = [0u8; crate::blocks::QK];
    for (j, &byte) in qs[..16].iter().enumerate() {
        q[j] = (byte & 0x0F) | bit(j);
        q[j + 16] = (byte >> 4) | bit(j + 16);
    }
    q
}

#[cfg(test)]
mod tests {
    use crate::{Isa, WType};

    /// Every level's `decode_at` gives the reference `decode`'s values bitwise (the
    /// batched kernels decode rows with it), on every type and odd block counts.
    #[test]
    fn decode_at_equals_decode_at_every_level() {
        for isa in Isa::ALL {
            let Ok(level) = isa.supported() else {
                println!("skipping {isa}: not available on this CPU");
                continue;
            };
            for wtype in WType::ALL {
                for blocks in [1, 3, 7] {
                    let n = blocks * wtype.block_size().max(32);
                    let x: Vec<f32> = (0..n)
                        .map(|i| ((i * 7919) % 211) as f32 / 50.0 - 2.1)
                        .collect();
                    let mut bytes = Vec::new();
                    wtype.kernels().encode(&x, &mut bytes);
                    let (mut want, mut got) = (vec![0f32; n], vec![0f32; n]);
                    wtype.kernels().decode(&bytes, &mut want);
                    wtype.kernels().decode_at(level, &bytes, &mut got);
                    let same = want
                        .iter()
                        .zip(&got)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{isa} {wtype} {blocks} blocks");
                }
            }
        }
    }
}
