//! Why a Hugging Face checkpoint could not be read.

use powerinfer_kernels::KernelError;

use crate::gguf::GgufError;
use crate::tokenizer::TokenizerError;

/// A checkpoint directory that cannot be loaded. Every variant names the file (and the
/// tensor or key), so a user can tell a missing shard from a corrupt one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HfError {
    /// A file that cannot be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` or `model.safetensors.index.json` that is not the JSON expected.
    #[error("{file}: {problem}")]
    Json {
        /// The file.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A `config.json` field that is missing, of the wrong kind, out of range, or
    /// asks for something we do not implement.
    #[error("{file}: {key}: {problem}")]
    Config {
        /// The file.
        file: String,
        /// The field.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A `model_type` / `architectures` we do not run.
    #[error("{file}: unsupported model {model:?} (supported: llama, mistral, bamboo, opt, falcon)")]
    UnsupportedModel {
        /// The file.
        file: String,
        /// `model_type` (and `architectures`).
        model: String,
    },
    /// A safetensors file whose header the `safetensors` crate refused (truncated,
    /// a header length past the end, bad JSON, an unknown dtype, overlapping or
    /// non-contiguous tensor ranges, …).
    #[error("{file}: not a valid safetensors file: {source}")]
    Safetensors {
        /// The file.
        file: String,
        /// The crate's reason.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The directory has no weights (`model.safetensors`, or an index with shards).
    #[error("{dir}: no model.safetensors or model.safetensors.index.json")]
    NoWeights {
        /// The directory.
        dir: String,
    },
    /// A tensor that two shards (or the index and a shard) both claim.
    #[error("{file}: tensor {tensor} is also in {other}")]
    DuplicateTensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The other file that has it.
        other: String,
    },
    /// A tensor the index lists in a shard that does not hold it.
    #[error("{index}: tensor {tensor} is listed in {shard}, which does not hold it")]
    NotInShard {
        /// The index file.
        index: String,
        /// The tensor.
        tensor: String,
        /// The shard it names.
        shard: String,
    },
    /// A tensor the architecture needs that no file holds.
    #[error("{dir}: missing tensor {tensor}")]
    MissingTensor {
        /// The directory.
        dir: String,
        /// The Hugging Face tensor name.
        tensor: String,
    },
    /// A tensor whose shape does not match `config.json`.
    #[error("{file}: tensor {tensor} has shape {found:?}, config.json implies {expected:?}")]
    Shape {
        /// The file holding it.
        file: String,
        /// The tensor.
        tensor: String,
        /// The shape config.json implies (outermost first, as safetensors).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor stored in a type other than F32, F16 or BF16.
    #[error("{file}: tensor {tensor} is {dtype}; F32, F16 and BF16 are supported")]
    Dtype {
        /// The file holding it.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor that could not be re-encoded (quantized) for the model.
    #[error("{tensor}: {source}")]
    Kernel {
        /// The tensor.
        tensor: String,
        /// The kernel's reason.
        #[source]
        source: KernelError,
    },
    /// `tokenizer.json` refused.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The converted model could not be laid out as GGUF.
    #[error(transparent)]
    Gguf(#[from] GgufError),
}
