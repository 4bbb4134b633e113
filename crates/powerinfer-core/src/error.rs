//! Errors of the model side: loading, shapes, running.

use powerinfer_kernels::KernelError;

use crate::gguf::GgufError;

/// Why a model could not be loaded or run. File-related variants name the file and
/// the tensor or key, so a user can tell a wrong file from a corrupt one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The GGUF container itself is unreadable.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A Hugging Face checkpoint directory that could not be read or converted.
    #[error(transparent)]
    Hf(#[from] crate::hf::HfError),
    /// An architecture we do not implement.
    #[error(
        "{file}: unsupported architecture {arch:?} (supported: llama, bamboo, opt, gemma3, falcon)"
    )]
    UnsupportedArch {
        /// The file.
        file: String,
        /// `general.architecture`.
        arch: String,
    },
    /// A hyper-parameter that is missing, zero or inconsistent.
    #[error("{file}: bad model config {key}: {problem}")]
    Config {
        /// The file.
        file: String,
        /// The key or derived quantity.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{file}: missing tensor {tensor}")]
    MissingTensor {
        /// The file.
        file: String,
        /// Tensor name.
        tensor: String,
    },
    /// A tensor whose shape does not match the config.
    #[error("{file}: tensor {tensor} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The file.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Expected ggml dims.
        expected: Vec<u64>,
        /// Dims in the file.
        found: Vec<u64>,
    },
    /// A kernel refused its operands (a shape bug or a corrupt tensor).
    #[error("{context}: {source}")]
    Kernel {
        /// Where (tensor or step).
        context: String,
        /// The kernel's reason.
        #[source]
        source: KernelError,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    BadToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A buffer that cannot be allocated: its size overflows, or memory is short.
    /// Sizes derived from inputs (a context length, a calibration corpus) are checked
    /// and reserved fallibly, so this is an error, not an abort.
    #[error(
        "{what} needs {} and cannot be allocated",
        bytes.map_or("more than usize::MAX bytes".to_string(), |b| format!("{:.2} GB", b as f64 / 1e9))
    )]
    Alloc {
        /// What it is for, with the size that was asked (e.g. "a KV cache of 131072 positions").
        what: String,
        /// Bytes it needs (`None`: more than `usize::MAX`).
        bytes: Option<usize>,
    },
    /// A position past the model's learned position embeddings.
    #[error("position {pos} is past the model's {max} learned positions")]
    BadPosition {
        /// The position.
        pos: usize,
        /// Rows of the position embedding.
        max: usize,
    },
    /// The KV cache is full.
    #[error("context full: {needed} positions needed, the context holds {ctx_len}")]
    ContextFull {
        /// Positions the call needed.
        needed: usize,
        /// Context length.
        ctx_len: usize,
    },
    /// A predictor or stats file refused, or one made for another model.
    #[error(transparent)]
    Predictor(#[from] powerinfer_predictor::PredictorError),
    /// A policy that does not fit this model (wrong layer count, neuron index, …).
    #[error("FFN policy: {0}")]
    Policy(String),
    /// An accelerator backend refused an upload or an operation.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// The placement solver refused its problem (a budget below its reservations, …).
    #[error(transparent)]
    Placement(#[from] powerinfer_placement::PlacementError),
    /// A placement plan file that could not be read.
    #[error(transparent)]
    PlanFile(#[from] powerinfer_placement::PlanFileError),
    /// A placement plan that does not fit this model.
    #[error("placement plan {plan}: {problem}")]
    Plan {
        /// Where the plan came from (a file, or `computed`).
        plan: String,
        /// What does not match.
        problem: String,
    },
}

/// Adds a context string to kernel errors.
pub(crate) trait KernelContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ModelError>;
}

impl<T> KernelContext<T> for Result<T, KernelError> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ModelError> {
        self.map_err(|source| ModelError::Kernel {
            context: context(),
            source,
        })
    }
}
