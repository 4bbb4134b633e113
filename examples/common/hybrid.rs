//! `--hybrid cpu|sim|cuda --budget <size>`: the example tools' switch for PowerInfer's
//! host + accelerator split (see `powerinfer_core::hybrid`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use powerinfer::core::backend::{Backend, LinkModel, SimAccelerator};
use powerinfer::core::{Hybrid, HybridOptions, HybridSpec, PlanSource};
use powerinfer::kernels::Kernels;

use crate::size::parse_size;

/// Command-line options of the hybrid split.
#[derive(clap::Args, Debug, Clone)]
pub struct HybridArgs {
    /// Where the plan's hot neurons run: `cpu` (no split: everything on the host), `sim`
    /// (a stand-in accelerator thread with a byte budget), `cuda` (an NVIDIA GPU; needs
    /// the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub hybrid: String,
    /// Accelerator budget: `40MiB`, `2GiB`, `123456` (bytes).
    #[arg(long, value_parser = parse_size, default_value = "0")]
    pub budget: u64,
    /// A plan file from the `place` example (default: one computed for --budget).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// An activation-stats file from the `profile` example to compute the plan from
    /// (default: a quick profile on the first 256 calibration tokens).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// `sim`: model a host–device link of this many GB/s (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub link_gbps: f64,
    /// `sim`: the link's latency per copy, in microseconds.
    #[arg(long, default_value_t = 10.0)]
    pub link_latency_us: f64,
    /// `sim`: worker threads of the stand-in device (the host keeps its own).
    #[arg(long, default_value_t = 1)]
    pub device_threads: usize,
}

impl HybridArgs {
    /// The accelerator asked for, or `None` for `cpu`.
    pub fn backend(&self) -> Result<Option<Arc<dyn Backend>>> {
        if self.hybrid == "sim" && self.budget == 0 && self.plan.is_none() {
            bail!("--hybrid sim needs --budget (e.g. 40MiB)");
        }
        let link = (self.link_gbps > 0.0).then(|| LinkModel {
            gb_per_s: self.link_gbps,
            latency: Duration::from_secs_f64(self.link_latency_us * 1e-6),
        });
        device(&self.hybrid, self.budget, link, self.device_threads)
    }

    /// The split to enable, or `None` for `cpu`; `calibration` gives the profile
    /// tokens when neither a plan nor a stats file is given.
    pub fn spec(
        &self,
        calibration: impl FnOnce() -> Result<Vec<u32>>,
    ) -> Result<Option<HybridSpec>> {
        let Some(backend) = self.backend()? else {
            return Ok(None);
        };
        let source = match (&self.plan, &self.stats) {
            (Some(p), _) => PlanSource::File(p.clone()),
            (None, Some(s)) => PlanSource::Stats(s.clone()),
            (None, None) => PlanSource::Profile(calibration()?),
        };
        Ok(Some(HybridSpec {
            backend,
            source,
            budget: self.budget,
            options: HybridOptions::default(),
        }))
    }
}

/// The device `kind` names (`cpu`: none; `sim` with `threads` worker threads and an
/// optional link; `cuda`), holding at most `budget` bytes (0: no limit for `sim`, the
/// free memory for `cuda`).
pub fn device(
    kind: &str,
    budget: u64,
    link: Option<LinkModel>,
    threads: usize,
) -> Result<Option<Arc<dyn Backend>>> {
    match kind {
        "cpu" => Ok(None),
        "sim" => {
            let kernels = Kernels::new().with_threads(threads)?;
            let budget = if budget == 0 { u64::MAX } else { budget };
            Ok(Some(Arc::new(SimAccelerator::new(kernels, budget, link)?)))
        }
        "cuda" => cuda_backend(budget),
        other => bail!("unknown device {other:?} (cpu, sim, cuda)"),
    }
}

#[cfg(feature = "cuda")]
fn cuda_backend(budget: u64) -> Result<Option<Arc<dyn Backend>>> {
    let budget = (budget > 0).then_some(budget);
    use anyhow::Context as _;
    let b = powerinfer::core::backend::cuda::open(0, budget).context("opening CUDA device 0")?;
    Ok(Some(Arc::new(b)))
}

#[cfg(not(feature = "cuda"))]
fn cuda_backend(_budget: u64) -> Result<Option<Arc<dyn Backend>>> {
    bail!("--hybrid cuda needs a build with `--features cuda`")
}

/// One line on the split: devices, bytes, neurons.
pub fn describe(h: &Hybrid) -> String {
    let b = h.backend();
    let mib = |x: u64| x as f64 / (1u64 << 20) as f64;
    format!(
        "hybrid {}: {:.1} MiB held{}; {} neurons on the device, {} on the host; dense tensors on the device: {}",
        b.name(),
        mib(b.bytes_held()),
        b.budget()
            .filter(|&x| x < u64::MAX)
            .map_or(String::new(), |x| format!(" of {:.1} MiB", mib(x))),
        h.accelerator_neurons(),
        h.host_neurons(),
        h.accelerator_tensors().len()
    )
}
