//! `bench device`: the accelerator's sparse FFN operation alone, as weight bytes read
//! per second, at several densities: one 7B-shaped FFN layer (11008 × 4096, Q4_0 by
//! default) uploaded to `sim` or `cuda`, random weights (speed only).

use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Parser;
use powerinfer::core::backend::{FfnSelect, Op, ffn_neuron_bytes};
use powerinfer::kernels::{Activation, FfnWeights, Matrix, Skip, WType, quantize_matrix};

/// Options of `bench device`.
#[derive(Parser, Debug)]
pub struct Args {
    /// `sim` (the stand-in thread) or `cuda` (needs `--features cuda` and a GPU).
    #[arg(long, default_value = "sim")]
    device: String,
    /// Worker threads of `sim`.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Neurons of the layer.
    #[arg(long, default_value_t = 11008)]
    neurons: usize,
    /// Model dimension.
    #[arg(long, default_value_t = 4096)]
    dim: usize,
    /// Weight type.
    #[arg(long, default_value = "q4_0")]
    wtype: String,
    /// Densities (share of the uploaded neurons computed), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,0.5,0.1")]
    densities: Vec<f64>,
    /// Timed operations per density.
    #[arg(long, default_value_t = 20)]
    reps: usize,
}

/// Runs the benchmark and prints the table.
pub fn run(args: &Args) -> Result<()> {
    let wtype = WType::from_name(&args.wtype)
        .ok_or_else(|| anyhow::anyhow!("unknown weight type {:?}", args.wtype))?;
    ensure!(
        args.dim.is_multiple_of(32),
        "--dim must be a multiple of 32"
    );
    let (n, d) = (args.neurons, args.dim);
    let values: Vec<f32> = (0..n * d)
        .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let bytes = quantize_matrix(wtype, &values, n, d)?;
    let m = Matrix::new(wtype, n, d, &bytes)?;
    let w = FfnWeights {
        gate: m,
        up: Some(m),
        down_t: m.into(),
        gate_bias: None,
        act: Activation::ReGlu,
    };
    let per = ffn_neuron_bytes(&w, wtype)?;
    let Some(device) = crate::hybrid::device(&args.device, 0, None, args.threads)? else {
        anyhow::bail!("--device cpu has no accelerator to time");
    };
    let all: Vec<u32> = (0..n as u32).collect();
    let id = device.upload_ffn("layer", &w, &all, wtype)?;
    println!(
        "{}: one {n} × {d} {wtype} FFN layer ({:.1} MB), random weights (speed only)",
        device.name(),
        (per * n as u64) as f64 / 1e6
    );
    println!(
        "{:>8} {:>10} {:>10} {:>9}",
        "density", "neurons", "ms/op", "GB/s"
    );
    let x: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
    for &density in &args.densities {
        let step = (1.0 / density.clamp(1e-6, 1.0)).round().max(1.0) as usize;
        let set: Vec<u32> = (0..n as u32).step_by(step).collect();
        let op = || Op::Ffn {
            w: id,
            xs: x.clone(),
            n: 1,
            select: FfnSelect::Shared(set.clone()),
            skip: Skip::None,
        };
        device.submit(op())?.wait()?; // warm-up
        let start = Instant::now();
        for _ in 0..args.reps {
            device.submit(op())?.wait()?;
        }
        let secs = start.elapsed().as_secs_f64() / args.reps as f64;
        let read = (per * set.len() as u64) as f64;
        println!(
            "{density:>8} {:>10} {:>10.3} {:>9.1}",
            set.len(),
            secs * 1e3,
            read / secs / 1e9
        );
    }
    Ok(())
}
