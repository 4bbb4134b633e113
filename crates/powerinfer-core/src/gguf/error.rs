//! The one error type for reading and writing GGUF files.
//!
//! Why so many variants: a model file is untrusted input, and when one is rejected the
//! message must say which file, which tensor or key, and what exactly is wrong, so the
//! user can tell a truncated download from an unsupported quantisation.

/// Everything that can go wrong reading or writing a GGUF file.
///
/// `file` is the path as given, or `<memory>` for [`GgufFile::from_bytes`](super::GgufFile::from_bytes)
/// and the writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened, mapped or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("{file}: not a GGUF file (magic {found:02x?})")]
    BadMagic {
        /// The file.
        file: String,
        /// The bytes found instead of `GGUF` (fewer when the file is shorter).
        found: Vec<u8>,
    },
    /// A GGUF version other than 2 or 3 (version 1 used 32-bit counts and is obsolete).
    #[error("{file}: unsupported GGUF version {version} (only 2 and 3 are read)")]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// The version number in the header.
        version: u32,
    },
    /// The file ends (or a length read from it points) before `what` is complete.
    #[error("{file}: truncated while reading {what} at byte offset {offset}")]
    Truncated {
        /// The file.
        file: String,
        /// What was being read, e.g. `metadata key #3` or `tensor info #7 name`.
        what: String,
        /// Where it started.
        offset: u64,
    },
    /// A header whose parsed form would outgrow [`MAX_HEADER_MEMORY`](super::MAX_HEADER_MEMORY)
    /// (huge arrays or counts that the file's bytes could still encode).
    #[error(
        "{file}: {what} would take {} of memory, past the header limit of {limit} bytes",
        bytes.map_or("more than 2^64 bytes".to_string(), |b| format!("{b} bytes"))
    )]
    HeaderTooLarge {
        /// The file.
        file: String,
        /// The key, array or table that asked for it.
        what: String,
        /// Bytes it needs (`None`: past `u64`).
        bytes: Option<u64>,
        /// The limit.
        limit: u64,
    },
    /// A metadata value type id outside 0..=12.
    #[error("{file}: {what} has unknown metadata value type {type_id}")]
    UnknownValueType {
        /// The file.
        file: String,
        /// The key (or array element) being read.
        what: String,
        /// The type id found.
        type_id: u32,
    },
    /// Arrays nested deeper than the reader allows (a guard against stack exhaustion).
    #[error("{file}: metadata key {key:?} nests arrays deeper than {max}")]
    NestingTooDeep {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The deepest nesting accepted.
        max: usize,
    },
    /// A metadata value that is malformed in itself (e.g. a bool byte other than 0/1).
    #[error("{file}: metadata key {key:?}: {problem}")]
    BadValue {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A string in the file is not UTF-8.
    #[error("{file}: {what} is not valid UTF-8")]
    Utf8 {
        /// The file.
        file: String,
        /// Which string, e.g. `metadata key #2` or `value of tokenizer.ggml.tokens`.
        what: String,
    },
    /// The same metadata key appears twice.
    #[error("{file}: duplicate metadata key {key:?}")]
    DuplicateKey {
        /// The file.
        file: String,
        /// The key.
        key: String,
    },
    /// `general.alignment` is zero, not a power of two, or not an integer.
    #[error("{file}: bad general.alignment {alignment} (must be a power of two)")]
    BadAlignment {
        /// The file.
        file: String,
        /// The value found (as u64; 0 when it was not an integer).
        alignment: u64,
    },
    /// Two tensors share a name.
    #[error("{file}: duplicate tensor name {tensor:?}")]
    DuplicateTensor {
        /// The file.
        file: String,
        /// The name.
        tensor: String,
    },
    /// A tensor's rank or dimensions are unusable.
    #[error("{file}: tensor {tensor:?}: {problem}")]
    BadShape {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// What is wrong (rank above 4, a zero dimension, columns not a whole number of blocks).
        problem: String,
    },
    /// A tensor type id we do not support (or that does not exist).
    #[error("{file}: tensor {tensor:?} has unsupported ggml type id {type_id}")]
    UnknownType {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The ggml type id found.
        type_id: u32,
    },
    /// The tensor's byte size (type × shape) does not fit in 64 bits / the address space.
    #[error("{file}: tensor {tensor:?}: size of shape {dims:?} overflows")]
    SizeOverflow {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The dims (ggml order).
        dims: Vec<u64>,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    #[error("{file}: tensor {tensor:?} data offset {offset} is not aligned to {alignment}")]
    MisalignedTensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Offset relative to the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor's data does not lie inside the file.
    #[error(
        "{file}: tensor {tensor:?} data [{offset}, +{n_bytes}) lies outside the data section of {data_len} bytes"
    )]
    TensorOutOfBounds {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Offset relative to the data section.
        offset: u64,
        /// The tensor's byte size.
        n_bytes: u64,
        /// Bytes available in the data section.
        data_len: u64,
    },
    /// A required metadata key is absent.
    #[error("{file}: missing metadata key {key:?}")]
    MissingKey {
        /// The file.
        file: String,
        /// The key.
        key: String,
    },
    /// A metadata key holds a value of another type (or an integer that does not fit).
    #[error("{file}: metadata key {key:?} is {found}, expected {expected}")]
    WrongType {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The type asked for.
        expected: &'static str,
        /// The type (or out-of-range value) found.
        found: String,
    },
    /// A required tensor is absent.
    #[error("{file}: missing tensor {tensor:?}")]
    MissingTensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
    },
    /// The writer was given tensor bytes that do not match the type and shape.
    #[error("{file}: tensor {tensor:?}: {problem}")]
    BadTensorData {
        /// The file (`<memory>` until written).
        file: String,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        problem: String,
    },
}

/// Turns a [`GgufError::MissingKey`] into `Ok(None)`, for metadata that has a default.
///
/// Why: many llama.cpp keys are optional (`rope.freq_base`, `add_bos_token`, …); the model
/// code wants `file.get_f32(k).optional()?.unwrap_or(default)` and still an error when the
/// key exists with the wrong type.
pub trait OptionalKey<T> {
    /// `Ok(Some(v))` for a value, `Ok(None)` for a missing key, the error otherwise.
    fn optional(self) -> Result<Option<T>, GgufError>;
}

impl<T> OptionalKey<T> for Result<T, GgufError> {
    fn optional(self) -> Result<Option<T>, GgufError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(GgufError::MissingKey { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
