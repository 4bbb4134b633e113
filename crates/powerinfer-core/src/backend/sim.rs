//! A stand-in accelerator: its own worker thread, a byte budget, a modelled link.

use std::time::Duration;

use powerinfer_kernels::{FfnWeights, Kernels, Matrix, WType};

use super::threaded::Threaded;
use super::{Backend, BackendError, CpuBackend, Op, Ticket, WeightId};

/// A host–device link: each copy costs `latency` plus its bytes at `gb_per_s`.
///
/// Why modelled: on a machine without a GPU the split's transfer cost still has to be
/// reported (a PCIe 4.0 ×16 link is about 25 GB/s with ~10 µs per copy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkModel {
    /// Bandwidth in GB/s (10⁹ bytes per second).
    pub gb_per_s: f64,
    /// Fixed cost of one copy.
    pub latency: Duration,
}

impl LinkModel {
    /// The modelled time of one copy of `bytes`.
    pub fn copy_time(&self, bytes: u64) -> Duration {
        let secs = bytes as f64 / (self.gb_per_s.max(1e-9) * 1e9);
        self.latency + Duration::from_secs_f64(secs)
    }
}

/// An in-process accelerator: operations run on its own worker thread, on the CPU
/// kernels, over copies of the weights it was given, and uploads past its budget are
/// refused. With a [`LinkModel`] each operation also waits for its modelled copies in
/// and out, and reports them.
///
/// Why: PowerInfer's hybrid executor (split, concurrent halves, merge, budget) must run
/// and be tested where there is no GPU. The results equal the CPU kernels' on the same
/// rows; the timings are the CPU's, not a GPU's.
#[derive(Debug)]
pub struct SimAccelerator(Threaded<CpuBackend>);

impl SimAccelerator {
    /// A simulated device of `budget` bytes whose worker runs `kernels` (give it its own
    /// threads: the host's half runs at the same time), optionally behind `link`.
    pub fn new(
        kernels: Kernels,
        budget: u64,
        link: Option<LinkModel>,
    ) -> Result<SimAccelerator, BackendError> {
        let device = CpuBackend::device("sim", kernels, Some(budget), link);
        Ok(SimAccelerator(Threaded::new(device)?))
    }
}

impl Backend for SimAccelerator {
    fn name(&self) -> String {
        self.0.name()
    }

    fn budget(&self) -> Option<u64> {
        self.0.budget()
    }

    fn bytes_held(&self) -> u64 {
        self.0.bytes_held()
    }

    fn upload_matrix(&self, name: &str, m: &Matrix) -> Result<WeightId, BackendError> {
        self.0.upload_matrix(name, m)
    }

    fn upload_ffn(
        &self,
        name: &str,
        w: &FfnWeights,
        neurons: &[u32],
        down_type: WType,
    ) -> Result<WeightId, BackendError> {
        self.0.upload_ffn(name, w, neurons, down_type)
    }

    fn release_all(&self) {
        self.0.release_all();
    }

    fn submit(&self, op: Op) -> Result<Ticket, BackendError> {
        self.0.submit(op)
    }
}
