//! Benchmarks of this machine: `cargo run --release --example bench -- <command>`.
//!
//! `kernels` times the GEMV/axpy/FFN kernels and `decode` a real model's prefill and
//! decode, each against the memory read bandwidth measured in the same run (see
//! `BENCHMARKS.md`).

mod decode;
mod device;
#[path = "../common/hybrid.rs"]
mod hybrid;
mod kernels;
mod prefill;
#[path = "../common/size.rs"]
mod size;
mod synthetic;

use clap::{Parser, Subcommand};

/// powerinfer-rs benchmarks.
#[derive(Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to benchmark.
#[derive(Subcommand)]
enum Command {
    /// Kernels (gemv, gemv_rows, axpy_rows, fused FFN) per type and density, as a
    /// share of the measured memory read bandwidth.
    Kernels(kernels::Args),
    /// Prompt prefill and decode tokens/s of a real model, dense and at calibrated FFN
    /// densities, against the memory-bandwidth bound.
    Decode(decode::Args),
    /// The int8 prefill against the exact one on held-out text: speed, KL and top-1
    /// agreement, next to the decode path's own distance from exact.
    Prefill(prefill::Args),
    /// The accelerator's sparse FFN operation alone (sim or cuda): weight GB/s at
    /// several densities on one 7B-shaped layer.
    Device(device::Args),
    /// Decode at PowerInfer's scale on a random-weight model from the `synth` example
    /// (synthetic weights, speed only): dense, trace-sparse, and split per budget.
    Synthetic(synthetic::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Kernels(args) => kernels::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Prefill(args) => prefill::run(&args),
        Command::Synthetic(args) => synthetic::run(&args),
        Command::Device(args) => device::run(&args),
    }
}
