//! Why a backend refused an upload or an operation.

use powerinfer_kernels::KernelError;

/// A backend's typed failure. Budget errors name what was being uploaded, so a user can
/// see which tensor did not fit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// An upload would take the device past its byte budget.
    #[error(
        "{backend}: uploading {name} ({bytes} bytes) would hold {total} bytes, past the budget of {budget}"
    )]
    Budget {
        /// The backend.
        backend: String,
        /// What was being uploaded.
        name: String,
        /// Its size.
        bytes: u64,
        /// Bytes held with it.
        total: u64,
        /// The budget.
        budget: u64,
    },
    /// An operation named a weight set the backend does not hold (or of the wrong kind).
    #[error("{backend}: no {kind} with id {id} is uploaded")]
    UnknownWeight {
        /// The backend.
        backend: String,
        /// `matrix` or `ffn`.
        kind: &'static str,
        /// The id.
        id: usize,
    },
    /// The kernels refused the operands.
    #[error("{context}: {source}")]
    Kernel {
        /// Which weight set or step.
        context: String,
        /// The kernels' reason.
        #[source]
        source: KernelError,
    },
    /// The device (or its worker thread) is gone.
    #[error("{backend}: device lost: {reason}")]
    Lost {
        /// The backend.
        backend: String,
        /// What happened.
        reason: String,
    },
    /// The device is absent or its driver/compiler could not be loaded.
    #[error("no usable device: {0}")]
    Unavailable(String),
    /// A device API call failed.
    #[error("{backend}: {call} failed: {reason}")]
    Device {
        /// The backend.
        backend: String,
        /// The call.
        call: String,
        /// The driver's message.
        reason: String,
    },
}

impl From<KernelError> for BackendError {
    fn from(source: KernelError) -> BackendError {
        BackendError::Kernel {
            context: "backend".into(),
            source,
        }
    }
}
