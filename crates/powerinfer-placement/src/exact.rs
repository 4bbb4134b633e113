//! Exact reference solver: dynamic programming over the budget.
//!
//! Why it exists: to measure how far the greedy is from optimal. It is exact because (a) in a
//! layer every neuron has the same size, so for a given count the hottest neurons are best and
//! each layer reduces to a choice among its allowed counts, and (b) a multiple-choice knapsack
//! over integer sizes is solved exactly by a DP over capacity. Sizes are divided by their
//! greatest common divisor first, so byte-sized instances with round sizes stay small.
//! Its table has `(layers + dense items) × (capacity + 1)` cells: use it on small instances.

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

/// Greatest common divisor (with `gcd(0, x) = x`).
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
