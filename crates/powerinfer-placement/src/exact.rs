//! Exact reference solver: dynamic programming over the budget.
//!
//! Why it exists: to measure how far the greedy is from optimal. It is exact because (a) in a
//! layer every neuron has the same size, so for a given count the hottest neurons are best and
//! each layer reduces to a choice among its allowed counts, and (b) a multiple-choice knapsack
//! over integer sizes is solved exactly by a DP over capacity. Sizes are divided by their
//! greatest common divisor first, so byte-sized instances with round sizes stay small.
//! Its table has `(layers + dense items) × (capacity + 1)` cells: use it on small instances.

use crate::dense_choice::gcd;
use crate::error::PlacementError;
use crate::plan::PlacementPlan;
use crate::problem::PlacementProblem;
use crate::ranked::rank;

/// Solves `problem` optimally, refusing instances whose DP table would exceed `max_cells`.
///
/// The minimum per layer and the group size are enforced exactly as the greedy enforces them.
pub fn solve_exact(
    problem: &PlacementProblem,
    max_cells: u128,
) -> Result<PlacementPlan, PlacementError> {
    let ranked = rank(problem);
    let unit = ranked
        .iter()
        .filter(|r| r.len() > 0)
        .map(|r| r.bytes)
        .chain(problem.dense.iter().map(|d| d.bytes))
        .fold(0, gcd);
    let unit = unit.max(1);
    let capacity = problem.available_bytes() / unit;
    let stages = ranked.len() + problem.dense.len();
    let cells = stages as u128 * (u128::from(capacity) + 1);
    if cells > max_cells {
        return Err(PlacementError::ExactTooLarge {
            cells,
            limit: max_cells,
        });
    }
    // `cells <= max_cells` and the table fits in memory, so capacity fits in usize.
    let width = usize::try_from(capacity).map_err(|_| PlacementError::ExactTooLarge {
        cells,
        limit: max_cells,
    })? + 1;

    // Each stage offers options (size in units, value, label); label = count or 0/1.
    let layer_options = ranked.iter().map(|r| {
        r.valid_counts()
            .map(|k| (r.cost(k) / unit, r.value(k), k))
            .collect::<Vec<_>>()
    });
    let dense_options = problem
        .dense
        .iter()
        .map(|d| vec![(0, 0.0, 0), (d.bytes / unit, d.access * d.bytes as f64, 1)]);
    let stage_options: Vec<Vec<(u64, f64, usize)>> = layer_options.chain(dense_options).collect();

    // best[c]: best value using at most c units over the stages so far.
    let mut best = vec![0.0f64; width];
    let mut choice = vec![0usize; stages * width];
    for (s, options) in stage_options.iter().enumerate() {
        let mut next = vec![f64::NEG_INFINITY; width];
        let row = &mut choice[s * width..(s + 1) * width];
        for &(size, value, label) in options {
            let Ok(size) = usize::try_from(size) else {
                continue;
            };
            for c in size..width {
                let v = best[c - size] + value;
                if v > next[c] {
                    next[c] = v;
                    row[c] = label;
                }
            }
        }
        best = next;
    }

    let mut c = width - 1;
    let mut counts = vec![0usize; ranked.len()];
    let mut dense_on = vec![false; problem.dense.len()];
    for s in (0..stages).rev() {
        let label = choice[s * width + c];
        let size = if s < ranked.len() {
            counts[s] = label;
            ranked[s].cost(label) / unit
        } else {
            let d = s - ranked.len();
            dense_on[d] = label == 1;
            if label == 1 {
                problem.dense[d].bytes / unit
            } else {
                0
            }
        };
        // `size <= c` by construction of the table.
        c -= size as usize;
    }
    Ok(PlacementPlan::from_counts(
        problem, &ranked, &counts, &dense_on,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Activity, DenseItem, PlacementInput};

    fn problem(budget: u64, min: usize, group: usize) -> PlacementProblem {
        PlacementProblem::new(PlacementInput {
            activity: Activity::Frequencies(vec![vec![0.9, 0.1, 0.5, 0.4], vec![0.6, 0.55]]),
            bytes_per_neuron: vec![1 << 20, 2 << 20],
            dense: vec![DenseItem {
                name: "attn".into(),
                bytes: 3 << 20,
                access: 0.7,
            }],
            accelerator_bytes: budget,
            reservations: vec![],
            min_neurons_per_layer: min,
            group_size: group,
        })
        .expect("valid test problem")
    }

    #[test]
    fn megabyte_sizes_are_scaled_by_their_gcd() {
        // Unit 1 MiB: capacity 5 units, 3 stages -> 18 cells.
        let plan = solve_exact(&problem(5 << 20, 0, 1), 18).expect("fits the limit");
        // Best: the 3 MiB item (0.7·3 = 2.1) + neurons 0.9 and 0.5 (1.4) = 3.5 MiB-units,
        // over e.g. all of layer 0 (1.9) + one of layer 1 (1.2) = 3.1.
        assert!((plan.objective() - 3.5 * (1 << 20) as f64).abs() < 1e-6);
        assert_eq!(plan.layers()[0].accelerator_neurons(), &[0, 2]);
    }

    #[test]
    fn minimum_and_groups_are_respected() {
        // Minimum 3 in layer 0 (size 4); groups of 2 -> allowed counts 0 and 4 there, and 0
        // and 2 in layer 1. Budget 6 MiB: layer 0 whole (1.9) + ... vs layer 1 + item.
        let plan = solve_exact(&problem(6 << 20, 3, 2), 1_000).expect("small");
        let counts: Vec<usize> = plan
            .layers()
            .iter()
            .map(|l| l.accelerator_neurons().len())
            .collect();
        assert!(
            matches!(counts[0], 0 | 4) && matches!(counts[1], 0 | 2),
            "{counts:?}"
        );
        assert!(plan.accelerator_bytes() <= 6 << 20);
    }

    #[test]
    fn refuses_tables_above_the_limit() {
        assert!(matches!(
            solve_exact(&problem(5 << 20, 0, 1), 17),
            Err(PlacementError::ExactTooLarge {
                cells: 18,
                limit: 17
            })
        ));
    }
}
