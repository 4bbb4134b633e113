//! Errors from building a tokenizer out of GGUF metadata and from using it.
//!
//! Why typed: a vocabulary that cannot be used (unknown model type, a merge naming a
//! missing token) must be reported at load time with the file and the offending entry,
//! and an out-of-range id at decode time with the id.

use crate::gguf::GgufError;

/// Everything that can go wrong building or using a [`Tokenizer`](super::Tokenizer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A tokenizer key is missing or has the wrong type.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// `tokenizer.ggml.model` names a tokenizer we do not implement.
    #[error("{file}: unsupported tokenizer model {model:?} (supported: gpt2, llama)")]
    UnsupportedModel {
        /// The model file.
        file: String,
        /// The value of `tokenizer.ggml.model`.
        model: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer we do not implement.
    #[error(
        "{file}: unsupported pre-tokenizer {pre:?} for a gpt2 vocabulary (supported: {supported})"
    )]
    UnsupportedPre {
        /// The model file.
        file: String,
        /// The value of `tokenizer.ggml.pre`.
        pre: String,
        /// The values we accept.
        supported: &'static str,
    },
    /// The vocabulary arrays are inconsistent (lengths differ, a special id out of range,
    /// a duplicate token, …).
    #[error("{file}: bad vocabulary: {problem}")]
    BadVocab {
        /// The model file.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A BPE merge is malformed or names a token that is not in the vocabulary.
    #[error("{file}: merge #{index} {merge:?}: {problem}")]
    BadMerge {
        /// The model file.
        file: String,
        /// Index in `tokenizer.ggml.merges`.
        index: usize,
        /// The merge text.
        merge: String,
        /// What is wrong.
        problem: String,
    },
    /// A token id at or beyond the vocabulary size.
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    UnknownId {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// Text contains a byte the vocabulary cannot express (no byte token, no unknown token).
    #[error("byte 0x{byte:02x} has no token in this vocabulary")]
    UnencodableByte {
        /// The byte.
        byte: u8,
    },
}
