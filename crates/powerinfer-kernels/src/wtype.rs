//! The weight types the kernels understand, described once.
//!
//! Why a table: every other piece (GGUF reader, placement byte counts, kernels) needs the
//! same three facts per type — values per block, bytes per block, ggml's type id — and
//! they must agree byte for byte with ggml so tensors go from an mmap to a kernel as is.

use crate::KernelError;

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
///
/// In Q4_0/Q4_1, byte `j` of `qs` holds value `j` in its low nibble and value `j + 16`
/// in its high nibble (ggml's layout).
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
}

impl WType {
    /// Every supported type, for tests and benches that sweep them all.
    pub const ALL: [WType; 6] = [
        WType::F32,
        WType::F16,
        WType::BF16,
        WType::Q8_0,
        WType::Q4_0,
        WType::Q4_1,
    ];

    /// Values per block (1 for the float types).
    pub const fn block_size(self) -> usize {
        match self {
            WType::F32 | WType::F16 | WType::BF16 => 1,
            WType::Q8_0 | WType::Q4_0 | WType::Q4_1 => 32,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            WType::F32 => 4,
            WType::F16 | WType::BF16 => 2,
            WType::Q8_0 => 34,
            WType::Q4_0 => 18,
            WType::Q4_1 => 20,
        }
    }

    /// ggml's numeric type id (as stored in GGUF tensor infos).
    pub const fn ggml_id(self) -> u32 {
        match self {
            WType::F32 => 0,
            WType::F16 => 1,
            WType::Q4_0 => 2,
            WType::Q4_1 => 3,
            WType::Q8_0 => 8,
            WType::BF16 => 30,
        }
    }

    /// The type for a ggml type id, if we support it.
    pub fn from_ggml_id(id: u32) -> Option<WType> {
        WType::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// Lower-case name as ggml and our tools print it (`q4_1`, `bf16`, …).
    pub const fn name(self) -> &'static str {
        match self {
            WType::F32 => "f32",
            WType::F16 => "f16",
            WType::BF16 => "bf16",
            WType::Q8_0 => "q8_0",
            WType::Q4_0 => "q4_0",
            WType::Q4_1 => "q4_1",
        }
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
