//! The kernel context: which ISA, how many threads, and the shared checks.

use std::sync::Arc;

use rayon::prelude::*;

use crate::isa::Supported;
use crate::q8::{Act, ActBuf, quantize_q8};
use crate::q8k::quantize_q8k;
use crate::types::ActKind;
use crate::{Isa, KernelError, WType};

/// Below this many weight bytes an operation runs on the calling thread: waking
/// workers costs more than the work.
pub(crate) const PAR_MIN_BYTES: usize = 48 * 1024;

/// How the kernels run: instruction set and thread pool.
///
/// Why a value and not globals: an engine may run the GPU-side and CPU-side halves of
/// a layer on different pools, and tests force every ISA in one process.
#[derive(Clone, Debug)]
pub struct Kernels {
    isa: Supported,
    threads: Threads,
}

/// Where the operations' parallel work runs.
#[derive(Clone, Debug)]
enum Threads {
    /// rayon's global pool.
    Global,
    /// A private pool.
    Pool(Arc<rayon::ThreadPool>),
    /// The calling thread only.
    Caller,
}

impl Default for Kernels {
    fn default() -> Self {
        Kernels::new()
    }
}

/// The most threads [`Kernels::with_threads`] accepts (more than any one machine has
/// cores; beyond it thread creation fails or exhausts memory).
pub const MAX_THREADS: usize = 1024;

impl Kernels {
    /// The best ISA of this CPU, on rayon's global pool.
    pub fn new() -> Kernels {
        Kernels {
            isa: Supported::best(),
            threads: Threads::Global,
        }
    }

    /// Forces an ISA level; errors if this CPU lacks it.
    pub fn with_isa(mut self, isa: Isa) -> Result<Kernels, KernelError> {
        self.isa = isa.supported()?;
        Ok(self)
    }

    /// Runs on a private pool of `threads` threads (deterministic results for a given
    /// count). `threads` must be in `1..=`[`MAX_THREADS`]: a count past what any machine
    /// runs would make the OS refuse thread stacks (an abort inside rayon), so it is a
    /// [`KernelError::Threads`] here instead.
    pub fn with_threads(mut self, threads: usize) -> Result<Kernels, KernelError> {
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(KernelError::Threads {
                threads,
                max: MAX_THREADS,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| KernelError::ThreadPool(e.to_string()))?;
        self.threads = Threads::Pool(Arc::new(pool));
        Ok(self)
    }

    /// The same context restricted to the calling thread (no pool, no thread spawned).
    /// Why: work that is already split over the pool (attention heads, say) calls
    /// kernels from inside each task and must not fork again.
    pub fn single_threaded(&self) -> Kernels {
        Kernels {
            isa: self.isa,
            threads: Threads::Caller,
        }
    }

    /// The ISA in use.
    pub fn isa(&self) -> Isa {
        self.isa.isa()
    }

    /// The ISA in use with its proof of support, for the dispatch functions.
    pub(crate) fn level(&self) -> Supported {
        self.isa
    }

    /// Threads the operations spread over.
    pub fn threads(&self) -> usize {
        match &self.threads {
            Threads::Global => rayon::current_num_threads(),
            Threads::Pool(p) => p.current_num_threads(),
            Threads::Caller => 1,
        }
    }

    /// Runs `f` inside this context's pool. Why public: a caller that makes many
    /// kernel calls (a whole forward pass) enters the pool once; the calls inside then
    /// run without a hand-off per call, and the caller's own rayon work (attention
    /// heads) shares the same threads.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.threads {
            Threads::Pool(p) => p.install(f),
            Threads::Global | Threads::Caller => f(),
        }
    }

    /// How many of `items` (each `bytes_per_item` of weights) one parallel task takes:
    /// all of them when the work is too small to share.
    pub(crate) fn rows_per_task(&self, items: usize, bytes_per_item: usize) -> usize {
        let threads = self.threads();
        if threads <= 1 || items.saturating_mul(bytes_per_item) < PAR_MIN_BYTES {
            items.max(1)
        } else {
            items.div_ceil(threads * 4).max(1)
        }
    }

    /// Runs `f(c0, tile)` over column tiles of `y` (tiles are multiples of `align`
    /// values), in parallel when the work (`bytes` in all) is large enough. No two
    /// threads write one element, and each element sees the same order of updates.
    pub(crate) fn par_tiles<F>(&self, y: &mut [f32], align: usize, bytes: usize, f: F)
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let threads = self.threads();
        if threads <= 1 || bytes < PAR_MIN_BYTES || y.len() <= align {
            f(0, y);
            return;
        }
        let tile = y.len().div_ceil(threads).div_ceil(align).max(1) * align;
        self.install(|| {
            y.par_chunks_mut(tile)
                .enumerate()
                .for_each(|(t, ys)| f(t * tile, ys))
        });
    }
}

/// `got == expected` or a [`KernelError::Length`] naming the operand.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), KernelError> {
    if expected == got {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            got,
        })
    }
}

/// The index list is strictly increasing and every entry is `< rows`.
pub(crate) fn check_idx(idx: &[u32], rows: usize) -> Result<(), KernelError> {
    let mut prev: Option<u32> = None;
    for (position, &index) in idx.iter().enumerate() {
        if index as usize >= rows || prev.is_some_and(|p| p >= index) {
            return Err(KernelError::BadIndex {
                position,
                index,
                rows,
            });
        }
        prev = Some(index);
    }
    Ok(())
}

/// Prepares `x` for dot products with `wtype` rows: quantizes it into `buf` when the
/// type is quantized.
pub(crate) fn prepare<'x>(wtype: WType, x: &'x [f32], buf: &'x mut ActBuf) -> Act<'x> {
    buf.q.clear();
    buf.k.clear();
    match wtype.kernels().act() {
        ActKind::Q8 => quantize_q8(x, &mut buf.q),
        ActKind::Q8K => quantize_q8k(x, &mut buf.k),
        ActKind::F32 => {}
    }
    Act {
        f: x,
        q: &buf.q,
        k: &buf.k,
    }
}

/// Asks the CPU to start loading `bytes` into cache (a hint; no effect on results).
///
/// Why: sparse kernels read scattered rows of a few KiB; the hardware prefetcher only
/// ramps up inside a row, so each new row would start with a full memory latency.
/// Prefetching the next row while computing this one hides it.
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: prefetch never faults and reads nothing architecturally; the address
        // is inside a live slice anyway. SSE is part of the x86-64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}
