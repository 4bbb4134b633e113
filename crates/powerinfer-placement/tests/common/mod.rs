//! Seeded generators of placement instances and a feasibility checker, shared by the tests.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use powerinfer_placement::{
    Activity, DenseItem, PlacementInput, PlacementPlan, PlacementProblem, Reservation,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Shape knobs for one random instance.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub layers: (usize, usize),
    pub neurons: (usize, usize),
    pub dense: (usize, usize),
    /// Size unit in bytes (everything is a multiple of it, so the exact DP stays small).
    pub unit: u64,
}

/// Power-law frequencies: the `r`-th hottest fires with probability `top · (r + 1)^-skew`,
/// shuffled over the layer.
pub fn power_law(rng: &mut StdRng, n: usize, skew: f64, top: f64) -> Vec<f64> {
    let mut f: Vec<f64> = (0..n)
        .map(|r| (top * ((r + 1) as f64).powf(-skew)).clamp(0.0, 1.0))
        .collect();
    f.shuffle(rng);
    f
}

/// An arbitrary random instance: power-law skew in [0.2, 2.0], dense items of any size up to
/// an eighth of everything, budget tight (5–25% of all bytes) or loose (25–80%), minimum up
/// to half a layer or off, group size 1, 2, 4 or 8. Single items can be a large share of the
/// budget here, which no greedy handles within a constant factor.
pub fn arbitrary_input(rng: &mut StdRng, shape: Shape) -> PlacementInput {
    let layers = rng.random_range(shape.layers.0..=shape.layers.1);
    let mut frequencies = Vec::with_capacity(layers);
    let mut bytes_per_neuron = Vec::with_capacity(layers);
    let mut total = 0u64;
    let mut max_n = 0;
    for _ in 0..layers {
        let n = rng.random_range(shape.neurons.0..=shape.neurons.1);
        max_n = max_n.max(n);
        let skew = rng.random_range(0.2..2.0);
        let top = rng.random_range(0.2..1.0);
        frequencies.push(power_law(rng, n, skew, top));
        let b = shape.unit * rng.random_range(1..=4);
        bytes_per_neuron.push(b);
        total += n as u64 * b;
    }
    let dense_count = rng.random_range(shape.dense.0..=shape.dense.1);
    let dense: Vec<DenseItem> = (0..dense_count)
        .map(|j| {
            let bytes = shape.unit * rng.random_range(1..=(total / shape.unit / 8).max(1));
            let access = if rng.random_bool(0.7) {
                1.0
            } else {
                rng.random_range(0.0..1.0)
            };
            DenseItem {
                name: format!("dense{j}"),
                bytes,
                access,
            }
        })
        .collect();
    total += dense.iter().map(|d| d.bytes).sum::<u64>();
    let fraction = if rng.random_bool(0.5) {
        rng.random_range(0.05..0.25)
    } else {
        rng.random_range(0.25..0.8)
    };
    let reserved = shape.unit * rng.random_range(0..=3);
    let accelerator_bytes = (total as f64 * fraction) as u64 + reserved;
    let min_neurons_per_layer = if rng.random_bool(0.5) {
        0
    } else {
        rng.random_range(1..=max_n.div_ceil(2))
    };
    let group_size = [1, 1, 2, 4, 8][rng.random_range(0..5)];
    PlacementInput {
        activity: Activity::Frequencies(frequencies),
        bytes_per_neuron,
        dense,
        accelerator_bytes,
        reservations: vec![Reservation {
            name: "kv cache".into(),
            bytes: reserved,
        }],
        min_neurons_per_layer,
        group_size,
    }
}

/// A model-shaped random instance: `layers` layers of `neurons` neurons (bytes per neuron 2–4
/// units, as mixed weight types), per layer an attention item of 30–60% of the layer's FFN
/// bytes read every token, an output head (every token) and an embedding table (rarely read)
/// of about one layer each; power-law skew in [0.2, 2.0] per layer; budget tight (10–25% of
/// all bytes) or loose (25–80%); minimum up to an eighth of a layer, or off; group 1–8.
pub fn model_input(
    rng: &mut StdRng,
    layers: (usize, usize),
    neurons: (usize, usize),
    unit: u64,
) -> PlacementInput {
    let layer_count = rng.random_range(layers.0..=layers.1);
    let n = rng.random_range(neurons.0..=neurons.1);
    let mut frequencies = Vec::with_capacity(layer_count);
    let mut bytes_per_neuron = Vec::with_capacity(layer_count);
    let mut dense = Vec::new();
    let mut total = 0u64;
    let round = |x: f64| unit * ((x / unit as f64).round() as u64).max(1);
    for l in 0..layer_count {
        let skew = rng.random_range(0.2..2.0);
        let top = rng.random_range(0.2..1.0);
        frequencies.push(power_law(rng, n, skew, top));
        let b = unit * rng.random_range(2..=4);
        bytes_per_neuron.push(b);
        let ffn = n as u64 * b;
        dense.push(DenseItem {
            name: format!("blk.{l}.attn"),
            bytes: round(ffn as f64 * rng.random_range(0.3..0.6)),
            access: 1.0,
        });
        total += ffn;
    }
    let layer_bytes = (total / layer_count as u64) as f64;
    dense.push(DenseItem {
        name: "output".into(),
        bytes: round(layer_bytes * rng.random_range(0.5..1.5)),
        access: 1.0,
    });
    dense.push(DenseItem {
        name: "token_embd".into(),
        bytes: round(layer_bytes * rng.random_range(0.5..1.5)),
        access: rng.random_range(0.0..0.05),
    });
    total += dense.iter().map(|d| d.bytes).sum::<u64>();
    let fraction = if rng.random_bool(0.5) {
        rng.random_range(0.10..0.25)
    } else {
        rng.random_range(0.25..0.8)
    };
    let reserved = unit * rng.random_range(0..=8);
    let min_neurons_per_layer = if rng.random_bool(0.5) {
        0
    } else {
        rng.random_range(1..=(n / 8).max(1))
    };
    PlacementInput {
        activity: Activity::Frequencies(frequencies),
        bytes_per_neuron,
        dense,
        accelerator_bytes: (total as f64 * fraction) as u64 + reserved,
        reservations: vec![Reservation {
            name: "kv cache".into(),
            bytes: reserved,
        }],
        min_neurons_per_layer,
        group_size: [1, 1, 2, 4, 8][rng.random_range(0..5)],
    }
}

/// A seeded RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Panics with a description if `plan` breaks any constraint of `problem`.
pub fn assert_feasible(problem: &PlacementProblem, plan: &PlacementPlan) {
    assert!(
        plan.accelerator_bytes() <= problem.accelerator_bytes(),
        "plan uses {} of {} bytes",
        plan.accelerator_bytes(),
        problem.accelerator_bytes()
    );
    let g = problem.group_size();
    for (l, (layer, placed)) in problem.layers().iter().zip(plan.layers()).enumerate() {
        let n = layer.frequencies().len();
        let k = placed.accelerator_neurons().len();
        let min = if problem.min_neurons_per_layer() == 0 {
            0
        } else {
            (problem.min_neurons_per_layer().min(n).div_ceil(g) * g).min(n)
        };
        assert!(
            k == 0 || (k >= min && (k.is_multiple_of(g) || k == n)),
            "layer {l}: {k} neurons (n {n}, min {min}, group {g})"
        );
        let f = layer.frequencies();
        let coldest_hot = placed
            .accelerator_neurons()
            .iter()
            .map(|&i| f[i as usize])
            .fold(f64::INFINITY, f64::min);
        let hottest_cold = (0..n)
            .filter(|&i| !placed.mask()[i])
            .map(|i| f[i])
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            coldest_hot >= hottest_cold,
            "layer {l}: a cold neuron ({hottest_cold}) is hotter than a hot one ({coldest_hot})"
        );
    }
}
