//! Any backend behind its own worker thread, so `submit` returns at once.

use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use powerinfer_kernels::{FfnWeights, Matrix, WType};

use super::{Backend, BackendError, Done, Op, Ticket, WeightId};

type Job = (Op, Sender<Result<Done, BackendError>>);

/// Runs `inner`'s operations in order on a worker thread. Why: a device whose calls
/// block (a CUDA stream's copy back, say) must not hold up the host's half of a layer.
/// Uploads go straight to `inner` on the caller's thread.
pub struct Threaded<B: Backend + 'static> {
    inner: Arc<B>,
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl<B: Backend + 'static> std::fmt::Debug for Threaded<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threaded")
            .field("device", &self.inner.name())
            .field("held", &self.inner.bytes_held())
            .finish()
    }
}

impl<B: Backend + 'static> Threaded<B> {
    /// Starts the worker.
    pub fn new(inner: B) -> Result<Threaded<B>, BackendError> {
        let inner = Arc::new(inner);
        let (tx, rx) = mpsc::channel::<Job>();
        let dev = Arc::clone(&inner);
        let worker = std::thread::Builder::new()
            .name(format!("{}-worker", inner.name()))
            .spawn(move || {
                while let Ok((op, reply)) = rx.recv() {
                    let done = dev.submit(op).and_then(Ticket::wait);
                    // The caller may have dropped its ticket; nothing to do then.
                    let _ = reply.send(done);
                }
            })
            .map_err(|e| BackendError::Unavailable(format!("worker thread: {e}")))?;
        Ok(Threaded {
            inner,
            jobs: Some(tx),
            worker: Some(worker),
        })
    }
}

impl<B: Backend + 'static> Backend for Threaded<B> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn budget(&self) -> Option<u64> {
        self.inner.budget()
    }

    fn bytes_held(&self) -> u64 {
        self.inner.bytes_held()
    }

    fn upload_matrix(&self, name: &str, m: &Matrix) -> Result<WeightId, BackendError> {
        self.inner.upload_matrix(name, m)
    }

    fn upload_ffn(
        &self,
        name: &str,
        w: &FfnWeights,
        neurons: &[u32],
        down_type: WType,
    ) -> Result<WeightId, BackendError> {
        self.inner.upload_ffn(name, w, neurons, down_type)
    }

    fn release_all(&self) {
        self.inner.release_all();
    }

    fn submit(&self, op: Op) -> Result<Ticket, BackendError> {
        let lost = |reason: &str| BackendError::Lost {
            backend: self.inner.name(),
            reason: reason.into(),
        };
        let (tx, rx) = mpsc::channel();
        self.jobs
            .as_ref()
            .ok_or_else(|| lost("shut down"))?
            .send((op, tx))
            .map_err(|_| lost("worker thread ended"))?;
        let name = self.inner.name();
        Ok(Ticket::later(move || {
            rx.recv().unwrap_or_else(|_| {
                Err(BackendError::Lost {
                    backend: name,
                    reason: "worker thread ended before replying".into(),
                })
            })
        }))
    }
}

impl<B: Backend + 'static> Drop for Threaded<B> {
    fn drop(&mut self) {
        // Closing the queue ends the worker once it has drained it.
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
