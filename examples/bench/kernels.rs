//! `bench kernels`: kernel throughput as a share of this machine's read bandwidth.
//!
//! Each point rotates over enough copies of the weights that they exceed the
//! last-level cache, and over 64 random active sets, so every call streams its weights
//! from DRAM as a decode step would. Time is the median of the calls.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use powerinfer_kernels::{
    Activation, BundledFfn, FfnScratch, Isa, Kernels, Matrix, PackedMatrix, Skip, WType,
    quantize_matrix,
};

/// Random active sets cycled through at each point.
const SETS: usize = 64;

/// Options of `bench kernels`.
#[derive(clap::Args)]
pub struct Args {
    /// Thread counts to run (comma separated; default: 1 and all cores).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Instruction set (scalar, avx2; default: the best this CPU has).
    #[arg(long, value_parser = parse_isa)]
    isa: Option<Isa>,
    /// Weight types (comma separated; default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_wtype)]
    types: Vec<WType>,
    /// Operations (comma separated; default: all).
    #[arg(long, value_delimiter = ',')]
    ops: Vec<Op>,
    /// FFN shapes as DIMxN_FF; matrices are N_FF rows × DIM columns.
    #[arg(long, value_delimiter = ',', value_parser = parse_shape, default_value = "4096x11008")]
    shape: Vec<(usize, usize)>,
    /// Densities in percent of the neurons.
    #[arg(long, value_delimiter = ',', default_value = "100,50,20,10,5")]
    density: Vec<f64>,
    /// Size of the bandwidth probe buffer in MiB.
    #[arg(long, default_value_t = 1024)]
    bw_mib: usize,
    /// Minimum weights per rotation in MiB (keep it well above the last-level cache).
    #[arg(long, default_value_t = 128)]
    working_set_mib: usize,
    /// Seconds of timed calls per point.
    #[arg(long, default_value_t = 0.3)]
    secs: f64,
}

/// A benchmarked operation.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    /// Dense `y = W·x`.
    Gemv,
    /// Dense `y = W·x` over the packed (row-interleaved) copy (Q8_0, Q4_0, Q4_1).
    #[value(name = "gemv_packed")]
    GemvPacked,
    /// `y[k] = W[idx[k]]·x`.
    #[value(name = "gemv_rows")]
    GemvRows,
    /// `y += Σ h[k]·Wt[idx[k]]`.
    #[value(name = "axpy_rows")]
    AxpyRows,
    /// Fused `ffn_sparse` (SwiGLU, bundled gate/up/down) over the active set.
    Ffn,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Gemv => "gemv",
            Op::GemvPacked => "gemv_packed",
            Op::GemvRows => "gemv_rows",
            Op::AxpyRows => "axpy_rows",
            Op::Ffn => "ffn",
        }
    }
}

fn parse_isa(s: &str) -> Result<Isa, String> {
    Isa::from_name(s).ok_or_else(|| format!("unknown ISA {s:?}"))
}

fn parse_wtype(s: &str) -> Result<WType, String> {
    WType::from_name(s).ok_or_else(|| format!("unknown weight type {s:?}"))
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (d, n) = s.split_once('x').ok_or("shape must be DIMxN_FF")?;
    let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    Ok((num(d)?, num(n)?))
}

/// One measured point.
struct Point {
    op: Op,
    density: f64,
    secs: f64,
    bytes: usize,
}

/// Runs the sweep and prints it.
pub fn run(args: &Args) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut threads = args.threads.clone();
    if threads.is_empty() {
        threads = vec![1, cores];
        threads.dedup();
    }
    let isa = args.isa.unwrap_or_else(|| Kernels::new().isa());
    let types = if args.types.is_empty() {
        WType::ALL.to_vec()
    } else {
        args.types.clone()
    };
    let ops = if args.ops.is_empty() {
        Op::value_variants().to_vec()
    } else {
        args.ops.clone()
    };
    if args.density.iter().any(|d| !(*d > 0.0 && *d <= 100.0)) {
        bail!("densities must be in (0, 100]");
    }
    let bw = measure_bandwidth(args.bw_mib, &threads);
    let note = |line: String| {
        if args.json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };
    for (&t, g) in threads.iter().zip(&bw) {
        note(format!(
            "# read bandwidth, {t} thread(s): {g:.1} GB/s (best of 5 streaming reads of {} MiB)",
            args.bw_mib
        ));
    }
    note(format!(
        "# isa {isa}; each point rotates over copies of the weights totalling >= {} MiB and \
         {SETS} random active sets; time = median per call; GB/s = weight bytes read / time; \
         'vs dense' = time of dense gemv (ffn: ffn at 100%) of the same type / time",
        args.working_set_mib
    ));
    if !args.json {
        println!(
            "{:<10} {:<5} {:>11} {:>7} {:>3} {:>10} {:>7} {:>6} {:>8}",
            "op", "type", "shape", "density", "thr", "time_us", "GB/s", "%bw", "vs_dense"
        );
    }
    for &(dim, n_ff) in &args.shape {
        let values = random_values(dim * n_ff);
        for &wtype in &types {
            let bench = Bench::new(wtype, dim, n_ff, &values, &ops, args.working_set_mib << 20)?;
            note(format!(
                "# {wtype} {n_ff}x{dim}: {} matrix copies of {:.1} MB, {} ffn bundle copies",
                bench.mats.len(),
                bench.mats[0].len() as f64 / 1e6,
                bench.bundles.len()
            ));
            for (&t, &bw_t) in threads.iter().zip(&bw) {
                let k = Kernels::new().with_isa(isa)?.with_threads(t)?;
                let points = bench.sweep(&k, &ops, &args.density, args.secs)?;
                for p in &points {
                    print_point(args.json, &bench, t, bw_t, p, &points, isa);
                }
            }
        }
    }
    Ok(())
}

fn print_point(json: bool, b: &Bench, threads: usize, bw: f64, p: &Point, all: &[Point], isa: Isa) {
    let gbps = p.bytes as f64 / p.secs / 1e9;
    let dense_op = if p.op == Op::Ffn { Op::Ffn } else { Op::Gemv };
    let dense = all.iter().find(|q| q.op == dense_op && q.density == 100.0);
    if json {
        let line = serde_json::json!({
            "op": p.op.name(), "wtype": b.wtype.name(), "rows": b.n_ff, "cols": b.dim,
            "density": p.density / 100.0, "threads": threads, "secs": p.secs, "gbps": gbps,
            "bw_gbps": bw, "isa": isa.name(),
        });
        println!("{line}");
    } else {
        let speedup = dense.map_or("-".to_string(), |d| format!("{:.2}x", d.secs / p.secs));
        println!(
            "{:<10} {:<5} {:>11} {:>6}% {:>3} {:>10.1} {:>7.2} {:>5.0}% {:>8}",
            p.op.name(),
            b.wtype.name(),
            format!("{}x{}", b.n_ff, b.dim),
            p.density,
            threads,
            p.secs * 1e6,
            gbps,
            100.0 * gbps / bw,
            speedup
        );
    }
}

/// The weights of one type and shape, copied enough times to exceed the caches.
struct Bench {
    wtype: WType,
    dim: usize,
    n_ff: usize,
    mats: Vec<Vec<u8>>,
    bundles: Vec<BundledFfn>,
    packed: Vec<PackedMatrix>,
}

impl Bench {
    fn new(
        wtype: WType,
        dim: usize,
        n_ff: usize,
        values: &[f32],
        ops: &[Op],
        working_set: usize,
    ) -> Result<Bench> {
        let bytes = quantize_matrix(wtype, values, n_ff, dim).context("quantize")?;
        let copies = working_set.div_ceil(bytes.len()).max(1);
        let mut bundles = Vec::new();
        if ops.contains(&Op::Ffn) {
            let m = Matrix::new(wtype, n_ff, dim, &bytes)?;
            let bundle = BundledFfn::pack(&m, Some(&m), &m, None, Activation::SwiGlu)?;
            let n = working_set.div_ceil(bundle.bytes()).max(1);
            bundles = vec![bundle; n];
        }
        let mut packed = Vec::new();
        if ops.contains(&Op::GemvPacked) && PackedMatrix::supports(wtype) {
            let p = PackedMatrix::pack(&Matrix::new(wtype, n_ff, dim, &bytes)?)?;
            packed = vec![p; copies];
        }
        Ok(Bench {
            wtype,
            dim,
            n_ff,
            mats: vec![bytes; copies],
            bundles,
            packed,
        })
    }

    /// Measures every op at every density (plus the dense references) with `k`.
    fn sweep(&self, k: &Kernels, ops: &[Op], densities: &[f64], secs: f64) -> Result<Vec<Point>> {
        let mats = self
            .mats
            .iter()
            .map(|b| Matrix::new(self.wtype, self.n_ff, self.dim, b))
            .collect::<Result<Vec<_>, _>>()?;
        let row_bytes = mats[0].row_bytes();
        let x = random_values(self.dim);
        let h = vec![0.5f32; self.n_ff];
        let mut y = vec![0f32; self.n_ff.max(self.dim)];
        let mut scratch = FfnScratch::default();
        let mut points = Vec::new();
        let mut dens: Vec<f64> = densities.to_vec();
        if !dens.contains(&100.0) {
            dens.insert(0, 100.0);
        }
        let mut seed = 1u64;
        for &op in ops {
            for &d in &dens {
                if matches!(op, Op::Gemv | Op::GemvPacked) && d != 100.0
                    || op == Op::GemvPacked && self.packed.is_empty()
                {
                    continue;
                }
                let sets = active_sets(self.n_ff, d, &mut seed);
                let n = sets[0].len();
                let (calls, bytes) = match op {
                    Op::Ffn => (self.bundles.len(), n * self.bundles[0].neuron_bytes()),
                    _ => (mats.len(), n * row_bytes),
                };
                let t = median_secs(secs, calls, |j| {
                    let (m, idx) = (&mats[j % mats.len()], &sets[j % SETS]);
                    match op {
                        Op::Gemv => k.gemv(m, &x, &mut y[..self.n_ff]),
                        Op::GemvPacked => k.gemv_packed(
                            &self.packed[j % self.packed.len()],
                            &x,
                            &mut y[..self.n_ff],
                        ),
                        Op::GemvRows => k.gemv_rows(m, &x, idx, &mut y[..n]),
                        Op::AxpyRows => k.axpy_rows(m, &h[..n], idx, &mut y[..self.dim]),
                        Op::Ffn => {
                            let w = self.bundles[j % self.bundles.len()].weights();
                            k.ffn_sparse(
                                &w,
                                &x,
                                Some(idx),
                                Skip::None,
                                &mut y[..self.dim],
                                &mut scratch,
                            )
                            .map(drop)
                        }
                    }
                })?;
                black_box(&y);
                points.push(Point {
                    op,
                    density: d,
                    secs: t,
                    bytes,
                });
            }
        }
        Ok(points)
    }
}

/// Runs `f(j)` for `warm` calls, then for at least `secs` (and 5 calls); the median.
fn median_secs<E>(secs: f64, warm: usize, mut f: impl FnMut(usize) -> Result<(), E>) -> Result<f64>
where
    E: std::error::Error + Send + Sync + 'static,
{
    for j in 0..warm {
        f(j)?;
    }
    let start = Instant::now();
    let mut times = Vec::new();
    let mut j = warm;
    while times.len() < 5 || start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f(j)?;
        times.push(t.elapsed().as_secs_f64());
        j += 1;
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// `SETS` random sorted subsets of `0..n` with `density`% of the entries each.
fn active_sets(n: usize, density: f64, seed: &mut u64) -> Vec<Vec<u32>> {
    let take = ((n as f64 * density / 100.0).round() as usize).clamp(1, n);
    (0..SETS)
        .map(|_| {
            let mut all: Vec<u32> = (0..n as u32).collect();
            // Partial Fisher–Yates: the first `take` entries become a uniform sample.
            for i in 0..take {
                let j = i + (splitmix(seed) % (n - i) as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(take);
            all.sort_unstable();
            all
        })
        .collect()
}

/// Deterministic values in [-1, 1).
fn random_values(n: usize) -> Vec<f32> {
    let mut seed = 0x5eed;
    (0..n)
        .map(|_| (splitmix(&mut seed) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Best-of-5 streaming read bandwidth (GB/s) of a `mib` MiB buffer, per thread count.
pub fn measure_bandwidth(mib: usize, threads: &[usize]) -> Vec<f64> {
    let buf: Vec<u64> = (0..(mib << 20) / 8).map(|i| i as u64).collect();
    threads
        .iter()
        .map(|&t| {
            let chunk = buf.len().div_ceil(t.max(1)).max(1);
            (0..5)
                .map(|_| {
                    let start = Instant::now();
                    let sum: u64 = std::thread::scope(|s| {
                        let hs: Vec<_> = buf
                            .chunks(chunk)
                            .map(|c| s.spawn(move || sum_words(c)))
                            .collect();
                        hs.into_iter()
                            .map(|h| h.join().unwrap_or(0))
                            .fold(0, u64::wrapping_add)
                    });
                    black_box(sum);
                    (buf.len() * 8) as f64 / start.elapsed().as_secs_f64() / 1e9
                })
                .fold(0.0, f64::max)
        })
        .collect()
}

/// Wrapping sum of `words`, read as four concurrent streams (one stream per thread
/// would understate what a kernel reading several rows at once can get).
fn sum_words(words: &[u64]) -> u64 {
    let quarter = words.len() / 4;
    let (a, rest) = words.split_at(quarter);
    let (b, rest) = rest.split_at(quarter);
    let (c, d) = rest.split_at(quarter);
    let mut acc = [0u64; 16];
    for (((wa, wb), wc), wd) in a
        .chunks_exact(4)
        .zip(b.chunks_exact(4))
        .zip(c.chunks_exact(4))
        .zip(d.chunks_exact(4))
    {
        for k in 0..4 {
            acc[k] = acc[k].wrapping_add(wa[k]);
            acc[4 + k] = acc[4 + k].wrapping_add(wb[k]);
            acc[8 + k] = acc[8 + k].wrapping_add(wc[k]);
            acc[12 + k] = acc[12 + k].wrapping_add(wd[k]);
        }
    }
    acc.iter().fold(0, |s, &a| s.wrapping_add(a))
}
