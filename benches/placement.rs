//! Greedy placement of a 70B-shaped instance (80 layers × 28672 neurons, Q4_0 sizes).
//!
//! Why: the scale target is < 200 ms single-threaded for this shape; this bench is
//! the number BENCHMARKS.md quotes. Run: `cargo bench --bench placement`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use powerinfer::placement::{
    Activity, DenseItem, PlacementInput, PlacementProblem, Reservation, solve_greedy,
};

const LAYERS: usize = 80;
const NEURONS: usize = 28_672;
const HIDDEN: u64 = 8_192;
const KV_DIM: u64 = 1_024;
const VOCAB: u64 = 32_000;
/// Bytes of `n` Q4_0 weights (18-byte blocks of 32).
const fn q4_0(n: u64) -> u64 {
    n / 32 * 18
}

/// A deterministic power-law profile: per layer, rank `r` fires with probability
/// `0.9 · (r + 1)^-s`, `s` from 0.5 to 1.2 across layers, shuffled by a fixed xorshift.
fn frequencies() -> Vec<Vec<f64>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..LAYERS)
        .map(|l| {
            let s = 0.5 + 0.7 * l as f64 / (LAYERS - 1) as f64;
            let mut f: Vec<f64> = (0..NEURONS)
                .map(|r| 0.9 * ((r + 1) as f64).powf(-s))
                .collect();
            for i in (1..f.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                f.swap(i, (state % (i as u64 + 1)) as usize);
            }
            f
        })
        .collect()
}

fn problem(min_neurons_per_layer: usize, group_size: usize) -> PlacementProblem {
    let mut dense: Vec<DenseItem> = (0..LAYERS)
        .map(|l| DenseItem {
            name: format!("blk.{l}.attn"),
            bytes: q4_0(2 * HIDDEN * HIDDEN + 2 * HIDDEN * KV_DIM),
            access: 1.0,
        })
        .collect();
    dense.push(DenseItem {
        name: "output".into(),
        bytes: q4_0(HIDDEN * VOCAB),
        access: 1.0,
    });
    dense.push(DenseItem {
        name: "token_embd".into(),
        bytes: q4_0(HIDDEN * VOCAB),
        access: 1.0 / VOCAB as f64,
    });
    let input = PlacementInput {
        activity: Activity::Frequencies(frequencies()),
        bytes_per_neuron: vec![q4_0(3 * HIDDEN); LAYERS],
        dense,
        accelerator_bytes: 24 << 30,
        reservations: vec![
            Reservation {
                name: "kv cache (4096 ctx, f16)".into(),
                bytes: 2 * LAYERS as u64 * 4_096 * KV_DIM * 2,
            },
            Reservation {
                name: "scratch".into(),
                bytes: 512 << 20,
            },
        ],
        min_neurons_per_layer,
        group_size,
    };
    match PlacementProblem::new(input) {
        Ok(p) => p,
        Err(e) => panic!("benchmark instance is invalid: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("placement_70b_24GiB");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, min, g) in [("g1_nomin", 0, 1), ("g32_min256", 256, 32)] {
        let p = problem(min, g);
        let plan = solve_greedy(&p);
        eprintln!(
            "{name}: hit ratio {:.4}, accelerator {:.2} GiB, host {:.2} GiB",
            plan.overall_hit_ratio(),
            plan.accelerator_bytes() as f64 / (1u64 << 30) as f64,
            plan.host_bytes() as f64 / (1u64 << 30) as f64
        );
        group.bench_function(name, |b| b.iter(|| solve_greedy(black_box(&p))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
