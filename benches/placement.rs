//! Greedy placement of a 70B-shaped instance (80 layers × 28672 neurons, Q4_0 sizes).
//!
//! Why: the scale target is < 200 ms single-threaded for this shape; this bench is
//! the number BENCHMARKS.md quotes. Run: `cargo bench --bench placement`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use powerinfer::placement::{
    PlacementInput, PlacementProblem, Reservation, SyntheticModel, solve_greedy,
};

fn problem(min_neurons_per_layer: usize, group_size: usize) -> PlacementProblem {
    let shape = SyntheticModel::LLAMA_70B;
    let (activity, bytes_per_neuron, dense) = shape.profile();
    let input = PlacementInput {
        activity,
        bytes_per_neuron,
        dense,
        accelerator_bytes: 24 << 30,
        reservations: vec![
            Reservation {
                name: "kv cache (4096 ctx, f16)".into(),
                bytes: shape.kv_cache_bytes(4_096),
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
