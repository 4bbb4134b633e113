//! The weight types the kernels understand, described once.
//!
//! Why a table: every other piece (GGUF reader, placement byte counts, kernels) needs the
//! same three facts per type — values per block, bytes per block, ggml's type id — and
//! they must agree byte for byte with ggml so tensors go from an mmap to a kernel as is.

use crate::KernelError;
use crate::types::{self, BlockKernels};

/// A weight storage type, byte-compatible with ggml's type of the same name.
///
/// | type | values/block | bytes/block | dequantize                                  |
/// |------|-------------:|------------:|---------------------------------------------|
/// | F32  | 1            | 4           | as is                                       |
/// | F16  | 1            | 2           | IEEE half → f32                             |
/// | BF16 | 1            | 2           | bfloat16 → f32 (upper 16 bits of an f32)    |
/// | Q8_0 | 32           | 34          | `d: f16`, `qs: [i8; 32]`: `x = d·q`         |
/// | Q4_0 | 32           | 18          | `d: f16`, `qs: [u8; 16]`: `x = d·(q − 8)`   |
/// | Q4_1 | 32           | 20          | `d: f16`, `m: f16`, `qs: [u8; 16]`: `x = d·q + m` |
/// | Q5_0 | 32           | 22          | `d: f16`, `qh: u32`, `qs: [u8; 16]`: `x = d·(q − 16)` |
/// | Q5_1 | 32           | 24          | `d: f16`, `m: f16`, `qh: u32`, `qs: [u8; 16]`: `x = d·q + m` |
/// | Q4K | 256          | 144         | `d, dmin: f16`, `scales: [u8; 12]` (6-bit `sc`, `m` per 32), `qs: [u8; 128]`: `x = d·sc·q − dmin·m` |
/// | Q5K | 256          | 176         | as Q4K plus `qh: [u8; 32]` (fifth bits) |
/// | Q6K | 256          | 210         | `ql: [u8; 128]`, `qh: [u8; 64]`, `scales: [i8; 16]`, `d: f16`: `x = d·sc·(q − 32)` |
///
/// In Q4_0/Q4_1, byte `j` of `qs` holds value `j` in its low nibble and value `j + 16`
/// in its high nibble (ggml's layout); in Q5_0/Q5_1 bit `j` of the little-endian `qh`
/// is value `j`'s fifth bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WType {
    /// 32-bit float.
    F32,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16.
    BF16,
    /// 8-bit blocks of 32 with an f16 scale.
    Q8_0,
    /// 4-bit blocks of 32 with an f16 scale, offset 8.
    Q4_0,
    /// 4-bit blocks of 32 with an f16 scale and f16 minimum.
    Q4_1,
    /// 5-bit blocks of 32 with an f16 scale, offset 16.
    Q5_0,
    /// 5-bit blocks of 32 with an f16 scale and f16 minimum.
    Q5_1,
    /// 4-bit super-blocks of 256: eight sub-blocks with 6-bit scales and minimums.
    Q4K,
    /// 5-bit super-blocks of 256: Q4K's layout plus a fifth bit per value.
    Q5K,
    /// 6-bit super-blocks of 256: sixteen sub-blocks with 8-bit scales.
    Q6K,
}

/// One row of the type table: what every other piece needs to know about a type.
struct Info {
    /// The type this row describes (checked against its index by a test).
    wtype: WType,
    /// Lower-case name, as ggml prints it.
    name: &'static str,
    /// ggml's numeric type id.
    ggml_id: u32,
    /// Values per block.
    block: usize,
    /// Bytes per block.
    bytes: usize,
    /// The type's row kernels (`types/<name>.rs`).
    kernels: &'static dyn BlockKernels,
}

/// Every type, in the order of [`WType`]'s variants: adding a type is a variant, a row
/// here and its file under `types/`.
const TABLE: [Info; 11] = [
    Info {
        wtype: WType::F32,
        name: "f32",
        ggml_id: 0,
        block: 1,
        bytes: 4,
        kernels: &types::float::F32,
    },
    Info {
        wtype: WType::F16,
        name: "f16",
        ggml_id: 1,
        block: 1,
        bytes: 2,
        kernels: &types::float::F16,
    },
    Info {
        wtype: WType::BF16,
        name: "bf16",
        ggml_id: 30,
        block: 1,
        bytes: 2,
        kernels: &types::float::BF16,
    },
    Info {
        wtype: WType::Q8_0,
        name: "q8_0",
        ggml_id: 8,
        block: 32,
        bytes: 34,
        kernels: &types::q8_0::Q8_0,
    },
    Info {
        wtype: WType::Q4_0,
        name: "q4_0",
        ggml_id: 2,
        block: 32,
        bytes: 18,
        kernels: &types::q4_0::Q4_0,
    },
    Info {
        wtype: WType::Q4_1,
        name: "q4_1",
        ggml_id: 3,
        block: 32,
        bytes: 20,
        kernels: &types::q4_1::Q4_1,
    },
    Info {
        wtype: WType::Q5_0,
        name: "q5_0",
        ggml_id: 6,
        block: 32,
        bytes: 22,
        kernels: &types::q5_0::Q5_0,
    },
    Info {
        wtype: WType::Q5_1,
        name: "q5_1",
        ggml_id: 7,
        block: 32,
        bytes: 24,
        kernels: &types::q5_1::Q5_1,
    },
    Info {
        wtype: WType::Q4K,
        name: "q4_k",
        ggml_id: 12,
        block: 256,
        bytes: 144,
        kernels: &types::q4_k::Q4K,
    },
    Info {
        wtype: WType::Q5K,
        name: "q5_k",
        ggml_id: 13,
        block: 256,
        bytes: 176,
        kernels: &types::q5_k::Q5K,
    },
    Info {
        wtype: WType::Q6K,
        name: "q6_k",
        ggml_id: 14,
        block: 256,
        bytes: 210,
        kernels: &types::q6_k::Q6K,
    },
];

impl WType {
    /// Every supported type, for tests and benches that sweep them all.
    pub const ALL: [WType; TABLE.len()] = {
        let mut all = [WType::F32; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].wtype;
            i += 1;
        }
        all
    };

    /// This type's row of the table.
    const fn info(self) -> &'static Info {
        &TABLE[self as usize]
    }

    /// The type's row kernels.
    pub(crate) fn kernels(self) -> &'static dyn BlockKernels {
        self.info().kernels
    }

    /// Values per block (1 for the float types).
    pub const fn block_size(self) -> usize {
        self.info().block
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        self.info().bytes
    }

    /// ggml's numeric type id (as stored in GGUF tensor infos).
    pub const fn ggml_id(self) -> u32 {
        self.info().ggml_id
    }

    /// The type for a ggml type id, if we support it.
    pub fn from_ggml_id(id: u32) -> Option<WType> {
        WType::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// Lower-case name as ggml and our tools print it (`q4_1`, `bf16`, …).
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// Parses [`WType::name`] back.
    pub fn from_name(name: &str) -> Option<WType> {
        WType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Bytes of one row of `cols` values, or an error when `cols` is not a whole number
    /// of blocks or the size overflows.
    pub fn row_bytes(self, cols: usize) -> Result<usize, KernelError> {
        if !cols.is_multiple_of(self.block_size()) {
            return Err(KernelError::NotBlockAligned {
                wtype: self,
                cols,
                block: self.block_size(),
            });
        }
        (cols / self.block_size())
            .checked_mul(self.block_bytes())
            .ok_or(KernelError::SizeOverflow)
    }

    /// Bytes of a `rows × cols` matrix (overflow-checked).
    pub fn matrix_bytes(self, rows: usize, cols: usize) -> Result<usize, KernelError> {
        self.row_bytes(cols)?
            .checked_mul(rows)
            .ok_or(KernelError::SizeOverflow)
    }
}

impl std::fmt::Display for WType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::{TABLE, WType};

    #[test]
    fn table_rows_follow_the_variants() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.wtype as usize, i, "row {i} describes {:?}", row.wtype);
        }
        assert_eq!(WType::ALL.len(), TABLE.len());
    }
}
