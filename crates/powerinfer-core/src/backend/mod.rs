//! Devices the forward pass can hand work to: the `Backend` trait and its CPU, simulated
//! and CUDA implementations.
//!
//! Why a trait: PowerInfer's executor splits every FFN layer between a fast device with
//! little memory (the GPU, holding the hot neurons) and the host (holding the cold
//! ones), and runs both halves at once. The executor ([`crate::hybrid`]) is written
//! once against this trait; what differs between devices is where the weights live and
//! how work is queued. A backend owns copies of the weights it was given (the bytes count
//! against its budget), queues operations without blocking the caller, and hands back
//! results through a [`Ticket`].
//!
//! - [`CpuBackend`]: the host kernels, run at once on the caller's thread. A reference
//!   device (and the degenerate "accelerator" of tests).
//! - [`SimAccelerator`]: a stand-in accelerator with its own worker thread, a byte budget
//!   and an optional modelled link, so splitting, concurrency, merging and budget
//!   enforcement run (and are tested) on machines without a GPU.
//! - `CudaBackend` (feature `cuda`): NVIDIA GPUs through the driver API and NVRTC, both
//!   loaded at run time.

mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
mod sim;
mod store;
mod threaded;

use std::time::Duration;

use powerinfer_kernels::{FfnWeights, Matrix, Skip, WType};

pub use cpu::CpuBackend;
pub use error::BackendError;
pub use sim::{LinkModel, SimAccelerator};
pub use threaded::Threaded;

/// A weight set a backend holds (a whole matrix, or some of a layer's FFN neurons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WeightId(pub(crate) usize);

/// Which neurons of an uploaded FFN to compute, in the upload's own numbering
/// (`0..neurons.len()` of [`Backend::upload_ffn`]).
#[derive(Clone, Debug, PartialEq)]
pub enum FfnSelect {
    /// Every uploaded neuron.
    All,
    /// These, for every token (sorted).
    Shared(Vec<u32>),
    /// One sorted list per token.
    PerToken(Vec<Vec<u32>>),
}

/// An operation queued on a backend. Inputs are moved in (the copy "to the device").
#[derive(Clone, Debug)]
pub enum Op {
    /// `ys = xs · Wᵀ` for `n` rows of `xs` (an uploaded matrix).
    MatMul {
        /// The matrix.
        w: WeightId,
        /// `n × cols` inputs.
        xs: Vec<f32>,
        /// Rows.
        n: usize,
    },
    /// The sparse FFN over an uploaded neuron subset: `ys_b = Σ_{i selected, i fires}
    /// h_i · down_i` for each of `n` tokens.
    Ffn {
        /// The uploaded neurons.
        w: WeightId,
        /// `n × dim` normalised inputs.
        xs: Vec<f32>,
        /// Tokens.
        n: usize,
        /// Which uploaded neurons each token may use.
        select: FfnSelect,
        /// The skip rule (as [`powerinfer_kernels::Kernels::ffn_sparse`]).
        skip: Skip,
    },
}

/// A finished operation: its outputs and what it cost.
#[derive(Clone, Debug, Default)]
pub struct Done {
    /// `n × rows` (matmul) or `n × dim` (FFN) outputs, row-major.
    pub ys: Vec<f32>,
    /// FFN: neurons computed per token (their output was added). Empty for a matmul.
    pub active: Vec<usize>,
    /// Time the device spent on the operation (compute and modelled link time).
    pub device_time: Duration,
    /// Bytes moved across the link (inputs in plus outputs out).
    pub link_bytes: u64,
}

/// A queued operation; [`Ticket::wait`] blocks until it is done.
///
/// Why a ticket and not a blocking call: the executor queues the accelerator's half of
/// a layer, computes the host's half meanwhile, and only then waits.
pub struct Ticket(Box<dyn FnOnce() -> Result<Done, BackendError> + Send>);

impl Ticket {
    /// A ticket for a result that is already there.
    pub(crate) fn ready(done: Result<Done, BackendError>) -> Ticket {
        Ticket(Box::new(move || done))
    }

    /// A ticket that runs `wait` to get its result.
    pub(crate) fn later(
        wait: impl FnOnce() -> Result<Done, BackendError> + Send + 'static,
    ) -> Ticket {
        Ticket(Box::new(wait))
    }

    /// Blocks until the operation has finished, then returns its outputs.
    pub fn wait(self) -> Result<Done, BackendError> {
        (self.0)()
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket")
    }
}

/// A device that holds weights and runs the executor's operations on them.
///
/// Uploads copy the given rows into the device's memory and count them against its
/// budget: an upload past the budget fails with [`BackendError::Budget`] and holds
/// nothing. Operations are queued in order; a backend may run them on another thread
/// or device, so [`Backend::submit`] returns before the work is done.
pub trait Backend: Send + Sync {
    /// A short name for reports (`cpu`, `sim`, `cuda:0 NVIDIA H200`).
    fn name(&self) -> String;

    /// The byte budget, if the device has one.
    fn budget(&self) -> Option<u64>;

    /// Bytes of weights held now.
    fn bytes_held(&self) -> u64;

    /// Copies a whole matrix onto the device.
    fn upload_matrix(&self, name: &str, m: &Matrix) -> Result<WeightId, BackendError>;

    /// Copies the rows of `neurons` (sorted, unique) of one FFN onto the device: gate,
    /// up and down rows, and the gate bias. Down rows are kept in their type when `w`'s
    /// down projection is a row matrix, and re-encoded as `down_type` otherwise (an
    /// exactly transposed 4-bit layout cannot be split by neuron).
    fn upload_ffn(
        &self,
        name: &str,
        w: &FfnWeights,
        neurons: &[u32],
        down_type: WType,
    ) -> Result<WeightId, BackendError>;

    /// Frees everything this backend holds.
    fn release_all(&self);

    /// Queues `op`; the result comes through the ticket.
    fn submit(&self, op: Op) -> Result<Ticket, BackendError>;
}

/// Bytes one neuron takes on a device after [`Backend::upload_ffn`] (gate, up and down
/// rows, and its gate bias if any). Why public: placement sizes its problem with it, so
/// a plan's bytes are exactly what the device will hold.
pub fn ffn_neuron_bytes(w: &FfnWeights, down_type: WType) -> Result<u64, BackendError> {
    let down = match w.down_t {
        powerinfer_kernels::DownRows::Matrix(m) => m.row_bytes(),
        powerinfer_kernels::DownRows::ColQ4(c) => down_type.row_bytes(c.dim())?,
    };
    let bias = if w.gate_bias.is_some() { 4 } else { 0 };
    Ok((w.gate.row_bytes() + w.up.map_or(0, |u| u.row_bytes()) + down + bias) as u64)
}
