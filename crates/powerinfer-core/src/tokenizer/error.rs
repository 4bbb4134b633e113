//! Errors from building a tokenizer out of GGUF metadata or a Hugging Face
//! `tokenizer.json`, and from using it.
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
    /// A Hugging Face `tokenizer.json` is not JSON.
    #[error("{file}: not a tokenizer.json: {source}")]
    HfJson {
        /// The tokenizer.json path.
        file: String,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A field of a `tokenizer.json` is missing or has the wrong shape.
    #[error("{file}: tokenizer.json field {field}: {problem}")]
    HfField {
        /// The tokenizer.json path.
        file: String,
        /// The field, as a path (`model.vocab`, `added_tokens[3].id`).
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A `tokenizer.json` component we do not implement (model type, pre-tokenizer,
    /// normalizer, post-processor or a model option).
    #[error("{file}: unsupported {component} {found} (supported: {supported})")]
    HfUnsupported {
        /// The tokenizer.json path.
        file: String,
        /// Which component: `model type`, `pre-tokenizer`, `normalizer`, ….
        component: &'static str,
        /// What the file has (the JSON of the component, shortened).
        found: String,
        /// What we accept.
        supported: &'static str,
    },
    /// A token id that is not an integer below the number of tokens in the file (ids
    /// must be exactly `0..n`).
    #[error("{file}: token {token:?} has id {id}, not an integer below the file's {limit} tokens")]
    HfIdOutOfRange {
        /// The tokenizer.json path.
        file: String,
        /// The token text.
        token: String,
        /// The id as written.
        id: String,
        /// The number of distinct tokens in the file.
        limit: usize,
    },
    /// Two different tokens share one id (in `model.vocab`, or an added token that
    /// clashes with it).
    #[error("{file}: id {id} is both {first:?} and {second:?}")]
    HfDuplicateId {
        /// The tokenizer.json path.
        file: String,
        /// The id.
        id: u32,
        /// The first token seen with it.
        first: String,
        /// The other one.
        second: String,
    },
    /// One token text has two ids.
    #[error("{file}: token {token:?} has ids {first} and {second}")]
    HfDuplicateToken {
        /// The tokenizer.json path.
        file: String,
        /// The token text.
        token: String,
        /// One id.
        first: u32,
        /// The other.
        second: u32,
    },
    /// An id below the vocabulary size that no token has (ids must have no holes).
    #[error("{file}: no token has id {id} (ids must run 0..{vocab_size} without holes)")]
    HfMissingId {
        /// The tokenizer.json path.
        file: String,
        /// The missing id.
        id: u32,
        /// The vocabulary size the largest id implies.
        vocab_size: usize,
    },
    /// The merges of a SentencePiece-style (byte-fallback) BPE that a score-ordered
    /// SentencePiece merge loop cannot reproduce.
    #[error("{file}: merges not expressible as SentencePiece scores: {problem}")]
    HfMergeOrder {
        /// The tokenizer.json path.
        file: String,
        /// Which token or merge breaks it.
        problem: String,
    },
    /// Text contains a byte the vocabulary cannot express (no byte token, no unknown token).
    #[error("byte 0x{byte:02x} has no token in this vocabulary")]
    UnencodableByte {
        /// The byte.
        byte: u8,
    },
}
