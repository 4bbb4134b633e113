//! The sparsity-vs-accuracy sweep: how text and code-generation accuracy degrade as
//! FFN neurons (or projection inputs) are pruned, policy by policy and density by
//! density, against the dense model on the same held-out tokens.
//!
//! ```text
//! cargo run --release --example sweep -- [--model M] [--policies LIST]
//!     [--densities LIST] [--out DIR] [--quick] [--text FILE] [--calib-text FILE]
//!     [--code FILE] [--pass-at-1]
//! ```
//! Writes `sweep.csv`, `sweep.md`, `layers.csv` and `dppl.png`, `kl.png`, `top1.png`
//! into `--out` (default: a new folder under `results/`). See FIDELITY.md for the
//! method and a full run's results.

#[path = "../common/data.rs"]
mod data;
mod pass_at_1;
#[path = "../common/plot.rs"]
mod plot;
mod policies;
mod report;
mod run;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = run::Args::parse();
    let out = run::sweep(&args)?;
    println!("results in {}", out.display());
    Ok(())
}
