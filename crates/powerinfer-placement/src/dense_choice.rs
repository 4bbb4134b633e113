//! Choice of the dense items by a small knapsack DP, for the greedy's second attempt.
//!
//! Why: dense items (attention, output head) are few but large, and usually all read on
//! every token, so they tie at the top of the greedy order; taking them first-come can leave a
//! gap that only colder neurons fill, and a better *subset* of them would have filled it with
//! full-value bytes (a subset-sum effect worth several percent at tight budgets). Neurons are
//! many and small, so past the greedy's margin a freed byte is worth about the marginal
//! neuron density `t`; the best dense subset then maximises `Σ (a_j − t)·B_j` within the
//! budget, a 0/1 knapsack over a few hundred items that a DP over a coarse byte grid solves.

use crate::problem::PlacementProblem;

/// Cells in the DP's byte grid; sizes are rounded *up* to cells, so a chosen subset always
/// fits in real bytes.
const GRID_CELLS: u64 = 16_384;

/// The dense subset maximising `Σ (access − t)·bytes` within the available bytes, or `None`
/// when no dense item is worth more than the marginal neuron density `t`.
pub(crate) fn choose(problem: &PlacementProblem, t: f64) -> Option<Vec<bool>> {
    let available = problem.available_bytes();
    // Sizes often share a large factor (quantisation blocks); a cell that is a multiple of it
    // loses nothing to rounding when the budget is small enough in those units.
    let common = problem.dense.iter().map(|d| d.bytes).fold(0, gcd).max(1);
    let cell = common * (available / common).div_ceil(GRID_CELLS).max(1);
    // Fits in usize: at most GRID_CELLS + 1 (or `available + 1` when the cell is 1 byte).
    let width = (available / cell) as usize + 1;
    let items: Vec<(usize, usize, f64)> = problem
        .dense
        .iter()
        .enumerate()
        .filter(|(_, d)| d.access > t)
        .filter_map(|(j, d)| {
            let size = d.bytes.div_ceil(cell);
            (size < width as u64).then_some((j, size as usize, (d.access - t) * d.bytes as f64))
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    let mut best = vec![0.0f64; width];
    let mut taken = vec![false; items.len() * width];
    for (i, &(_, size, value)) in items.iter().enumerate() {
        let row = &mut taken[i * width..(i + 1) * width];
        for c in (size..width).rev() {
            let v = best[c - size] + value;
            if v > best[c] {
                best[c] = v;
                row[c] = true;
            }
        }
    }
    let mut chosen = vec![false; problem.dense.len()];
    let mut c = width - 1;
    for (i, &(j, size, _)) in items.iter().enumerate().rev() {
        if taken[i * width + c] {
            chosen[j] = true;
            c -= size;
        }
    }
    Some(chosen)
}

/// Greatest common divisor (with `gcd(0, x) = x`).
pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
