//! The host as a backend: copies of the weights, the CPU kernels, run at once.

use std::sync::Mutex;
use std::time::Instant;

use powerinfer_kernels::{FfnBatchScratch, FfnWeights, Kernels, Matrix, WType};

use super::store::{Store, op_link_bytes};
use super::{Backend, BackendError, LinkModel, Op, Ticket, WeightId};

/// The CPU kernels behind the [`Backend`] trait: each operation runs on the caller's
/// thread (in the kernels' pool) when it is submitted.
///
/// Why: the reference device the simulated and CUDA backends are checked against, a way
/// to run the executor's split with no second device at all, and the engine of
/// [`super::SimAccelerator`].
#[derive(Debug)]
pub struct CpuBackend {
    name: &'static str,
    kernels: Kernels,
    link: Option<LinkModel>,
    state: Mutex<(Store, FfnBatchScratch)>,
}

impl CpuBackend {
    /// A backend on `kernels`, with an optional byte budget.
    pub fn new(kernels: Kernels, budget: Option<u64>) -> CpuBackend {
        CpuBackend::device("cpu", kernels, budget, None)
    }

    /// A named device, each operation waiting for its copies over `link` if given.
    pub(crate) fn device(
        name: &'static str,
        kernels: Kernels,
        budget: Option<u64>,
        link: Option<LinkModel>,
    ) -> CpuBackend {
        CpuBackend {
            name,
            kernels,
            link,
            state: Mutex::new((Store::new(name.into(), budget), FfnBatchScratch::default())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (Store, FfnBatchScratch)> {
        // A panic while holding the lock left no half-written weights behind (uploads
        // insert whole sets), so the state is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        self.name.into()
    }

    fn budget(&self) -> Option<u64> {
        self.state().0.budget()
    }

    fn bytes_held(&self) -> u64 {
        self.state().0.held()
    }

    fn upload_matrix(&self, name: &str, m: &Matrix) -> Result<WeightId, BackendError> {
        self.state().0.upload_matrix(name, m)
    }

    fn upload_ffn(
        &self,
        name: &str,
        w: &FfnWeights,
        neurons: &[u32],
        down_type: WType,
    ) -> Result<WeightId, BackendError> {
        self.state().0.upload_ffn(name, w, neurons, down_type)
    }

    fn release_all(&self) {
        self.state().0.clear();
    }

    fn submit(&self, op: Op) -> Result<Ticket, BackendError> {
        let start = Instant::now();
        let in_bytes = op_link_bytes(&op, 0);
        if let Some(l) = self.link {
            std::thread::sleep(l.copy_time(in_bytes));
        }
        let mut state = self.state();
        let (store, scratch) = &mut *state;
        let done = self
            .kernels
            .install(|| store.run(&self.kernels, &op, scratch));
        drop(state);
        Ok(Ticket::ready(done.map(|mut d| {
            let out_bytes = 4 * d.ys.len() as u64;
            if let Some(l) = self.link {
                std::thread::sleep(l.copy_time(out_bytes));
            }
            d.link_bytes = in_bytes + out_bytes;
            d.device_time = start.elapsed();
            d
        })))
    }
}
