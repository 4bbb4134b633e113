//! The predictor crate's errors: every refusal names the file (when there is one) and
//! the problem.

use std::path::PathBuf;

use powerinfer_kernels::KernelError;
use thiserror::Error;

use crate::ModelId;

/// Why a predictor or statistics operation was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PredictorError {
    /// A stats or predictor file could not be read or written.
    #[error("{kind} file {}: {problem}", path.as_ref().map_or_else(|| "(in memory)".to_string(), |p| format!("`{}`", p.display())))]
    File {
        /// "predictor" or "activation stats".
        kind: &'static str,
        /// The file, `None` when decoding bytes from memory.
        path: Option<PathBuf>,
        /// What is wrong.
        problem: FileProblem,
    },
    /// A file made for another model.
    #[error("{what} was made for {found}, but the model is {expected}")]
    WrongModel {
        /// What was refused (file name or "predictor").
        what: String,
        /// The model being used.
        expected: Box<ModelId>,
        /// The model the file records.
        found: Box<ModelId>,
    },
    /// Shapes that do not fit together (input length, layer index, rank).
    #[error("shape: {0}")]
    Shape(String),
    /// A training or calibration request that cannot be carried out (no data, bad
    /// option).
    #[error("{0}")]
    Invalid(String),
    /// A kernel refused its operands.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// What is wrong with a file's bytes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FileProblem {
    /// The file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the expected magic bytes.
    #[error("bad magic bytes (not this kind of file)")]
    BadMagic,
    /// Written by another format version.
    #[error("unsupported format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The bytes end before the data they announce.
    #[error("truncated: {what} needs {needed} bytes, only {available} left")]
    Truncated {
        /// Which field was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// The payload does not match its checksum.
    #[error("checksum mismatch: header says {expected:#010x}, payload hashes to {actual:#010x}")]
    Checksum {
        /// CRC in the header.
        expected: u32,
        /// CRC of the payload as read.
        actual: u32,
    },
    /// Bytes after the announced payload.
    #[error("{0} unexpected bytes after the payload")]
    Trailing(u64),
    /// The payload passed its checksum but is inconsistent.
    #[error("malformed: {0}")]
    Malformed(String),
}
