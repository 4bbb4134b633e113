//! Benchmarks of this machine: `cargo run --release --example bench -- <command>`.
//!
//! `kernels` times the GEMV/axpy/FFN kernels against the memory read bandwidth
//! measured in the same run (see `BENCHMARKS.md`).

mod kernels;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Kernels(args) => kernels::run(&args),
    }
}
