//! Decide which FFN neurons and dense tensors live on the accelerator under a byte budget.
//!
//! ```text
//! cargo run --release --example place -- --stats profile.txt --budget 4GiB \
//!     [--min-per-layer 256] [--group 32] [--reserve 1.5GiB] [--out model.plan]
//! cargo run --release --example place -- --budget 4GiB      # synthetic 7B-shaped demo
//! ```
//!
//! Prints a per-layer table (neurons on the accelerator, bytes per device, expected hit ratio)
//! and totals; `--out` writes the plan file and reads it back to check it.
//!
//! # Stats file (text, until the predictor crate owns the activation-stats format)
//! One record per line; `#` starts a comment; sizes are plain byte counts.
//!
//! ```text
//! tokens 100000                      # profiled tokens (required, before any layer)
//! dense blk.0.attn 37748736 1.0      # name, bytes, accesses per token (any number of these)
//! layer 6912 51234 0 17 ...          # bytes per neuron, then one firing count per neuron
//! ```
//!
//! Without `--stats` the example builds a synthetic profile shaped like a 7B ReLU-LLaMA in
//! Q4_0 (32 layers × 11008 neurons, Zipf-like frequencies) and says so: it shows the solver,
//! not a real model.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

#[path = "common/size.rs"]
mod size;
use clap::Parser;
use powerinfer::placement::{
    Activity, DenseItem, PlacementInput, PlacementPlan, PlacementProblem, Reservation,
    SyntheticModel, solve_greedy,
};
use size::parse_size;

#[derive(Parser)]
#[command(about = "Greedy neuron placement under an accelerator byte budget")]
struct Args {
    /// Activation stats file (text format in the example's documentation); without it a
    /// synthetic 7B-shaped power-law profile is used.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Accelerator budget, e.g. `4GiB`, `6000MB`, `1.5GiB`, `123456` (bytes).
    #[arg(long, value_parser = parse_size)]
    budget: u64,
    /// Bytes reserved inside the budget (KV cache, scratch). Default: 0 with --stats; for the
    /// synthetic demo, a 7B f16 KV cache for 4096 tokens (2 GiB) plus 256 MiB scratch.
    #[arg(long, value_parser = parse_size)]
    reserve: Option<u64>,
    /// A layer gets 0 or at least this many neurons on the accelerator (0 = no minimum).
    #[arg(long, default_value_t = 0)]
    min_per_layer: usize,
    /// Neurons move in groups of this many.
    #[arg(long, default_value_t = 1)]
    group: usize,
    /// Write the plan to this file (then read it back to check it).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Reads the text stats format described in the module documentation.
fn read_stats(path: &Path) -> Result<(Activity, Vec<u64>, Vec<DenseItem>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading stats file `{}`", path.display()))?;
    let mut tokens = None;
    let mut counts = Vec::new();
    let mut bytes_per_neuron = Vec::new();
    let mut dense = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), number + 1);
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(kind) = fields.next() else {
            continue;
        };
        let int = |f: Option<&str>, what: &str| -> Result<u64> {
            let f = f.with_context(|| format!("{}: missing {what}", at()))?;
            f.parse()
                .with_context(|| format!("{}: {what} `{f}` is not a whole number", at()))
        };
        match kind {
            "tokens" => tokens = Some(int(fields.next(), "token count")?),
            "dense" => {
                let name = fields
                    .next()
                    .with_context(|| format!("{}: missing dense item name", at()))?;
                let bytes = int(fields.next(), "dense item bytes")?;
                let access = fields
                    .next()
                    .with_context(|| format!("{}: missing access count", at()))?;
                let access: f64 = access
                    .parse()
                    .with_context(|| format!("{}: access `{access}` is not a number", at()))?;
                dense.push(DenseItem {
                    name: name.to_string(),
                    bytes,
                    access,
                });
            }
            "layer" => {
                if tokens.is_none() {
                    bail!("{}: `tokens` must come before the first layer", at());
                }
                bytes_per_neuron.push(int(fields.next(), "bytes per neuron")?);
                let layer: Result<Vec<u64>> =
                    fields.map(|f| int(Some(f), "firing count")).collect();
                counts.push(layer?);
            }
            other => bail!("{}: unknown record `{other}`", at()),
        }
    }
    let tokens = tokens.with_context(|| format!("{}: no `tokens` line", path.display()))?;
    Ok((Activity::Counts { counts, tokens }, bytes_per_neuron, dense))
}

/// Bytes in the largest binary unit that keeps the number at or above 1.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn print_plan(out: &mut impl Write, plan: &PlacementPlan) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>5} {:>8} {:>8} {:>11} {:>11} {:>9}",
        "layer", "neurons", "on acc", "acc bytes", "host bytes", "hit ratio"
    )?;
    for (l, layer) in plan.layers().iter().enumerate() {
        writeln!(
            out,
            "{:>5} {:>8} {:>8} {:>11} {:>11} {:>8.1}%",
            l,
            layer.neuron_count(),
            layer.accelerator_neurons().len(),
            human(layer.accelerator_bytes()),
            human(layer.host_bytes()),
            100.0 * layer.hit_ratio()
        )?;
    }
    let (on, off): (Vec<_>, Vec<_>) = plan.dense().iter().partition(|d| d.on_accelerator);
    let on_bytes: u64 = on.iter().map(|d| d.bytes).sum();
    let off_bytes: u64 = off.iter().map(|d| d.bytes).sum();
    writeln!(out)?;
    writeln!(
        out,
        "dense items:        {} on accelerator ({}), {} on host ({})",
        on.len(),
        human(on_bytes),
        off.len(),
        human(off_bytes)
    )?;
    if !off.is_empty() {
        let names: Vec<&str> = off.iter().take(8).map(|d| d.name.as_str()).collect();
        let more = off.len().saturating_sub(names.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        writeln!(out, "  on host: {}{tail}", names.join(", "))?;
    }
    writeln!(
        out,
        "accelerator:        {} used of {} ({} reserved, {} weights)",
        human(plan.accelerator_bytes()),
        human(plan.accelerator_budget()),
        human(plan.reserved_bytes()),
        human(plan.accelerator_weight_bytes())
    )?;
    writeln!(
        out,
        "host:               {} of weights",
        human(plan.host_bytes())
    )?;
    writeln!(
        out,
        "neuron hit ratio:   {:.2}% of expected activations served by the accelerator",
        100.0 * plan.overall_hit_ratio()
    )?;
    let max = plan.max_objective();
    if max > 0.0 {
        writeln!(
            out,
            "bytes per token:    {:.2}% of expected weight reads served by the accelerator \
             ({} of {} per token)",
            100.0 * plan.objective() / max,
            human(plan.objective() as u64),
            human(max as u64)
        )?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Errors (a closed pipe, say) end the program with a message, not a panic.
    let mut stdout = std::io::stdout().lock();
    let (activity, bytes_per_neuron, dense, reservations) = match &args.stats {
        Some(path) => {
            let (a, b, d) = read_stats(path)?;
            writeln!(stdout, "profile: {}", path.display())?;
            let reserve = args.reserve.unwrap_or(0);
            let r = vec![Reservation {
                name: "--reserve".into(),
                bytes: reserve,
            }];
            (a, b, d, r)
        }
        None => {
            writeln!(
                stdout,
                "no --stats file: demonstrating on a SYNTHETIC 7B-shaped profile (32 layers × \
                 11008 neurons, Q4_0, Zipf-like frequencies), not on a real model"
            )?;
            let (a, b, d) = SyntheticModel::LLAMA_7B.profile();
            let r = match args.reserve {
                Some(bytes) => vec![Reservation {
                    name: "--reserve".into(),
                    bytes,
                }],
                None => vec![
                    Reservation {
                        name: "kv cache (7B, 4096 tokens, f16)".into(),
                        bytes: SyntheticModel::LLAMA_7B.kv_cache_bytes(4_096),
                    },
                    Reservation {
                        name: "scratch".into(),
                        bytes: 256 << 20,
                    },
                ],
            };
            (a, b, d, r)
        }
    };
    let problem = PlacementProblem::new(PlacementInput {
        activity,
        bytes_per_neuron,
        dense,
        accelerator_bytes: args.budget,
        reservations,
        min_neurons_per_layer: args.min_per_layer,
        group_size: args.group,
    })
    .context("invalid placement problem")?;
    let start = Instant::now();
    let plan = solve_greedy(&problem);
    let elapsed = start.elapsed();
    writeln!(
        stdout,
        "budget {}, minimum per layer {}, group {}: solved in {:.1} ms\n",
        human(args.budget),
        args.min_per_layer,
        args.group,
        elapsed.as_secs_f64() * 1e3
    )?;
    print_plan(&mut stdout, &plan)?;
    if let Some(out) = &args.out {
        plan.write_to(out)?;
        let back = PlacementPlan::read_from(out)?;
        if back != plan {
            bail!(
                "plan read back from `{}` differs from the one written",
                out.display()
            );
        }
        let size = std::fs::metadata(out)
            .with_context(|| format!("stat `{}`", out.display()))?
            .len();
        writeln!(
            stdout,
            "plan written to {} ({size} bytes) and read back intact",
            out.display()
        )?;
    }
    Ok(())
}
