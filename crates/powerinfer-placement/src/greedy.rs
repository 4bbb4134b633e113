//! The production solver: greedy by value per byte, then repair of the per-layer minimum.
//!
//! Why greedy: the problem is a multiple-choice knapsack, and with millions of small items
//! (neurons or groups of them) against a budget of gigabytes, filling in order of value per
//! byte leaves at most one unit's worth of bytes unused per layer; the exact solver and the
//! randomized tests bound the remaining gap. It needs no solver library: ranking is a radix
//! sort, the bulk of the fill one bisection, the rest touches only a few units per layer.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::dense_choice::choose;
use crate::plan::PlacementPlan;
use crate::problem::PlacementProblem;
use crate::ranked::{RankedLayer, rank};

/// Solves `problem` greedily; always succeeds because an empty placement is feasible.
///
/// 1. Fill: all candidate units, dense items (value per byte = accesses per token) and each
///    layer's next group of hottest neurons (value per byte = their mean frequency), are taken
///    in one order of decreasing value per byte, skipping what does not fit; a layer whose next
///    group does not fit gets no colder group. Dense items with `access >= 1` (the usual case)
///    therefore come before every neuron, as PowerInfer does; a rarely read dense item (an
///    embedding table, `access` ≈ 1/vocab) waits its turn instead of displacing hot neurons.
/// 2. Repair: a layer left with fewer than the minimum is either dropped to zero or topped up
///    to the minimum (using free bytes, then evicting the coldest units elsewhere), whichever
///    loses less objective; cheapest layers first, so their freed bytes can serve later ones.
/// 3. Fill again with the minimum enforced: a layer at zero can only re-enter with its whole
///    minimum at once.
/// 4. Exchange: every unit still outside (a dense item, a layer's next group, or a dropped
///    layer's whole minimum), best value per byte first, is brought in if evicting the coldest
///    units elsewhere to make room loses less than it gains; then fill again. This repairs the
///    classic knapsack failure of step 1, where a large item that does not fit any more is
///    worth more than the smaller, denser items that took its place.
/// 5. Second attempt: when some dense items were left out, steps 1–4 run again starting from
///    the dense subset a small knapsack DP picks (see `dense_choice`), and the better of the
///    two results is kept. This removes the subset-sum gap left when several large per-token
///    items tie at the top of the order.
///
/// The wording is "dense items first, then neurons"; step 1's single order does that
/// for every dense item read at least once per token and differs only for rarely read ones.
pub fn solve_greedy(problem: &PlacementProblem) -> PlacementPlan {
    let ranked = rank(problem);
    let plain = run(problem, &ranked, vec![false; problem.dense.len()]);
    let best = match choose(problem, marginal_density(&ranked, &plain)) {
        Some(forced) if forced != plain.dense_on => {
            let alternative = run(problem, &ranked, forced);
            if objective(problem, &ranked, &alternative) > objective(problem, &ranked, &plain) {
                alternative
            } else {
                plain
            }
        }
        _ => plain,
    };
    debug_assert!(
        ranked
            .iter()
            .zip(&best.counts)
            .all(|(r, &k)| r.is_valid(k, true))
    );
    PlacementPlan::from_counts(problem, &ranked, &best.counts, &best.dense_on)
}

/// Steps 1–4 from a start where the dense items in `forced` are already placed.
fn run(problem: &PlacementProblem, ranked: &[RankedLayer], forced: Vec<bool>) -> State {
    let used: u64 = problem
        .dense
        .iter()
        .zip(&forced)
        .filter(|(_, on)| **on)
        .map(|(d, _)| d.bytes)
        .sum();
    let mut state = State {
        counts: vec![0; ranked.len()],
        dense_on: forced,
        // `forced` comes from `choose`, which never exceeds the available bytes.
        free: problem.available_bytes().saturating_sub(used),
    };
    fill(problem, ranked, &mut state, false);
    if ranked.iter().any(|r| r.min_count > 0) {
        repair(problem, ranked, &mut state);
        fill(problem, ranked, &mut state, true);
    }
    for _ in 0..EXCHANGE_PASSES {
        if !exchange(problem, ranked, &mut state) {
            break;
        }
        fill(problem, ranked, &mut state, true);
    }
    state
}

/// Value per byte of the best neuron unit left out: what one more byte would buy.
fn marginal_density(ranked: &[RankedLayer], state: &State) -> f64 {
    ranked
        .iter()
        .zip(&state.counts)
        .filter_map(|(r, &k)| r.next_count(k, true).map(|to| r.density(k, to)))
        .fold(0.0, f64::max)
}

/// The objective of a state, for comparing attempts.
fn objective(problem: &PlacementProblem, ranked: &[RankedLayer], state: &State) -> f64 {
    let neurons: f64 = ranked
        .iter()
        .zip(&state.counts)
        .map(|(r, &k)| r.value(k))
        .sum();
    let dense: f64 = problem
        .dense
        .iter()
        .zip(&state.dense_on)
        .filter(|(_, on)| **on)
        .map(|(d, _)| d.access * d.bytes as f64)
        .sum();
    neurons + dense
}

/// At most this many exchange passes (each followed by a fill); one usually suffices.
const EXCHANGE_PASSES: usize = 3;

/// The solver's working assignment.
#[derive(Debug, Clone)]
struct State {
    /// Neurons on the accelerator per layer (always the hottest ones).
    counts: Vec<usize>,
    /// Which dense items are on the accelerator.
    dense_on: Vec<bool>,
    /// Unused accelerator bytes.
    free: u64,
}

/// Where a candidate unit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Dense(usize),
    Layer(usize),
}

/// A candidate unit in a priority queue: by value per byte, dense items before neurons on
/// ties, lower index before higher (so the order, and the result, is deterministic).
#[derive(Debug, Clone, Copy)]
struct Unit {
    density: f64,
    source: Source,
}

impl Unit {
    fn key(&self) -> (u8, usize) {
        match self.source {
            Source::Dense(i) => (1, usize::MAX - i),
            Source::Layer(l) => (0, usize::MAX - l),
        }
    }
}

impl PartialEq for Unit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Unit {}
impl PartialOrd for Unit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Unit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.density
            .total_cmp(&other.density)
            .then_with(|| self.key().cmp(&other.key()))
    }
}

/// Adds units in decreasing value per byte while they fit (step 1 and 3).
/// One unit per dense item not yet on the accelerator (its value per byte is its access).
fn unplaced_dense<'a>(
    problem: &'a PlacementProblem,
    state: &'a State,
) -> impl Iterator<Item = Unit> + 'a {
    problem
        .dense
        .iter()
        .enumerate()
        .filter(|(d, _)| !state.dense_on[*d])
        .map(|(d, item)| Unit {
            density: item.access,
            source: Source::Dense(d),
        })
}

fn fill(problem: &PlacementProblem, ranked: &[RankedLayer], state: &mut State, respect_min: bool) {
    if !respect_min {
        take_prefix(problem, ranked, state);
    }
    let next_unit = |l: usize, k: usize| {
        ranked[l].next_count(k, respect_min).map(|to| Unit {
            density: ranked[l].density(k, to),
            source: Source::Layer(l),
        })
    };
    let mut heap: BinaryHeap<Unit> = (0..ranked.len())
        .filter_map(|l| next_unit(l, state.counts[l]))
        .collect();
    heap.extend(unplaced_dense(problem, state));
    while let Some(unit) = heap.pop() {
        match unit.source {
            Source::Dense(d) => {
                let bytes = problem.dense[d].bytes;
                if bytes <= state.free {
                    state.dense_on[d] = true;
                    state.free -= bytes;
                }
            }
            Source::Layer(l) => {
                let r = &ranked[l];
                let k = state.counts[l];
                let Some(to) = r.next_count(k, respect_min) else {
                    continue;
                };
                let cost = r.cost(to) - r.cost(k);
                if cost <= state.free {
                    state.counts[l] = to;
                    state.free -= cost;
                    heap.extend(next_unit(l, to));
                }
            }
        }
    }
}

/// Takes at once every unit that [`fill`] would take before its first rejection (minimum not
/// enforced): all units whose value per byte is at least the smallest threshold at which they
/// all fit, found by bisection on the threshold's bits.
///
/// Why: it gives the same result as popping them one by one, but a 70B-shaped solve would pop
/// 2.3 million units; here each probe is a binary search per layer. Units of a layer come in
/// non-increasing value per byte (neurons are ranked hottest first), which the search needs.
fn take_prefix(problem: &PlacementProblem, ranked: &[RankedLayer], state: &mut State) {
    let group = problem.group_size;
    // New count of layer `l` when taking all its next units with density >= tau.
    let layer_count = |l: usize, tau: f64| {
        let r = &ranked[l];
        let (k, n) = (state.counts[l], r.len());
        let unit_end = |j: usize| (k + (j + 1) * group).min(n);
        let unit_start = |j: usize| k + j * group;
        let units = (n - k).div_ceil(group);
        // First unit index whose density is below tau (densities are non-increasing).
        let (mut lo, mut hi) = (0, units);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if r.density(unit_start(mid), unit_end(mid)) >= tau {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 { k } else { unit_end(lo - 1) }
    };
    let dense_taken = |d: usize, tau: f64| !state.dense_on[d] && problem.dense[d].access >= tau;
    let cost = |tau: f64| -> u64 {
        let neurons: u64 = (0..ranked.len())
            .map(|l| ranked[l].cost(layer_count(l, tau)) - ranked[l].cost(state.counts[l]))
            .sum();
        let dense: u64 = (0..problem.dense.len())
            .filter(|&d| dense_taken(d, tau))
            .map(|d| problem.dense[d].bytes)
            .sum();
        neurons + dense
    };
    // Non-negative floats order like their bits; find the smallest bits whose cost fits.
    let tau = if cost(0.0) <= state.free {
        0.0
    } else {
        let (mut lo, mut hi) = (0u64, f64::INFINITY.to_bits());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if cost(f64::from_bits(mid)) <= state.free {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        f64::from_bits(hi)
    };
    let taken = cost(tau);
    let counts: Vec<usize> = (0..ranked.len()).map(|l| layer_count(l, tau)).collect();
    let dense_on: Vec<bool> = (0..problem.dense.len())
        .map(|d| state.dense_on[d] || dense_taken(d, tau))
        .collect();
    state.counts = counts;
    state.dense_on = dense_on;
    state.free -= taken;
}

/// Brings every layer under its minimum to zero or to the minimum (step 2).
fn repair(problem: &PlacementProblem, ranked: &[RankedLayer], state: &mut State) {
    let under = |r: &RankedLayer, k: usize| k > 0 && k < r.min_count;
    let mut pending: Vec<usize> = (0..ranked.len())
        .filter(|&l| under(&ranked[l], state.counts[l]))
        .collect();
    pending.sort_by(|&a, &b| {
        let (va, vb) = (
            ranked[a].value(state.counts[a]),
            ranked[b].value(state.counts[b]),
        );
        va.total_cmp(&vb).then(a.cmp(&b))
    });
    for (pos, &l) in pending.iter().enumerate() {
        let r = &ranked[l];
        let k = state.counts[l];
        let loss = r.value(k);
        let target = r.min_count;
        let extra = r.cost(target) - r.cost(k);
        let gain = r.value(target) - loss;
        if extra <= state.free {
            state.counts[l] = target;
            state.free -= extra;
            continue;
        }
        let still_pending = &pending[pos..];
        let topped = evict(problem, ranked, state, still_pending, extra - state.free);
        match topped {
            Some((mut next, lost)) if gain - lost > -loss => {
                // `evict` freed at least `extra - free`, so `next.free >= extra`.
                next.counts[l] = target;
                next.free -= extra;
                *state = next;
            }
            _ => {
                state.counts[l] = 0;
                state.free += r.cost(k);
            }
        }
    }
}

/// Brings in outside units worth more than what must be evicted for them (step 4); returns
/// whether anything changed.
fn exchange(problem: &PlacementProblem, ranked: &[RankedLayer], state: &mut State) -> bool {
    let mut candidates: Vec<Unit> = (0..ranked.len())
        .filter_map(|l| {
            let k = state.counts[l];
            ranked[l].next_count(k, true).map(|to| Unit {
                density: ranked[l].density(k, to),
                source: Source::Layer(l),
            })
        })
        .collect();
    candidates.extend(unplaced_dense(problem, state));
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    let mut changed = false;
    for unit in candidates {
        // What taking the unit means: its bytes, its value, the layer it grows (kept out of
        // eviction) and that layer's new count.
        let (cost, gain, grow): (u64, f64, Option<(usize, usize)>) = match unit.source {
            Source::Dense(d) => {
                let item = &problem.dense[d];
                (item.bytes, item.access * item.bytes as f64, None)
            }
            Source::Layer(l) => {
                let r = &ranked[l];
                let k = state.counts[l];
                let Some(to) = r.next_count(k, true) else {
                    continue;
                };
                (
                    r.cost(to) - r.cost(k),
                    r.value(to) - r.value(k),
                    Some((l, to)),
                )
            }
        };
        let next = if cost <= state.free {
            Some((state.clone(), 0.0))
        } else {
            let keep: &[usize] = match &grow {
                Some((l, _)) => std::slice::from_ref(l),
                None => &[],
            };
            evict(problem, ranked, state, keep, cost - state.free)
        };
        let Some((mut next, lost)) = next else {
            continue;
        };
        if gain <= lost * (1.0 + 1e-12) {
            continue;
        }
        match (unit.source, grow) {
            (_, Some((l, to))) => next.counts[l] = to,
            (Source::Dense(d), None) => next.dense_on[d] = true,
            (Source::Layer(_), None) => continue,
        }
        // `evict` freed at least `cost - free`, so `next.free >= cost`.
        next.free -= cost;
        *state = next;
        changed = true;
    }
    changed
}

/// A unit that may be evicted: lowest value per byte first, then the smallest (to free no
/// more than needed), then by position for determinism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Victim {
    unit: Unit,
    bytes: u64,
}

impl PartialOrd for Victim {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Victim {
    /// Reversed, so that `BinaryHeap` pops the victim to evict first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .unit
            .density
            .total_cmp(&self.unit.density)
            .then_with(|| other.bytes.cmp(&self.bytes))
            .then_with(|| other.unit.key().cmp(&self.unit.key()))
    }
}

/// Frees at least `need` bytes by removing the lowest value-per-byte units that can go
/// without breaking a minimum (tail groups, a layer's whole minimum, dense items), never
/// touching layers in `keep`; then puts back, best first, evicted units that the surplus can
/// hold. Returns the new state (its `free` includes the freed bytes) and the objective lost,
/// or `None` if not enough can be freed.
fn evict(
    problem: &PlacementProblem,
    ranked: &[RankedLayer],
    state: &State,
    keep: &[usize],
    need: u64,
) -> Option<(State, f64)> {
    let tail = |l: usize, k: usize| {
        let r = &ranked[l];
        r.shrink_count(k).map(|to| Victim {
            unit: Unit {
                density: r.density(to, k),
                source: Source::Layer(l),
            },
            bytes: r.cost(k) - r.cost(to),
        })
    };
    let mut heap: BinaryHeap<Victim> = (0..ranked.len())
        .filter(|l| !keep.contains(l))
        .filter_map(|l| tail(l, state.counts[l]))
        .collect();
    heap.extend(
        problem
            .dense
            .iter()
            .enumerate()
            .filter(|(d, _)| state.dense_on[*d])
            .map(|(d, item)| Victim {
                unit: Unit {
                    density: item.access,
                    source: Source::Dense(d),
                },
                bytes: item.bytes,
            }),
    );
    let mut next = state.clone();
    let mut freed = 0u64;
    // Evicted units with the count their layer had before (for putting back).
    let mut evicted: Vec<(Victim, usize)> = Vec::new();
    while freed < need {
        let victim = heap.pop()?;
        match victim.unit.source {
            Source::Dense(d) => {
                next.dense_on[d] = false;
                evicted.push((victim, 0));
            }
            Source::Layer(l) => {
                let k = next.counts[l];
                let to = ranked[l].shrink_count(k)?;
                next.counts[l] = to;
                evicted.push((victim, k));
                heap.extend(tail(l, to));
            }
        }
        freed += victim.bytes;
    }
    // Put back what the surplus allows, most recently evicted (most valuable) first; a layer's
    // units come back in reverse eviction order, so its neurons stay the hottest ones.
    let mut surplus = freed - need;
    let mut blocked = vec![false; ranked.len()];
    let mut lost = 0.0;
    for (victim, before) in evicted.into_iter().rev() {
        let value = victim.unit.density * victim.bytes as f64;
        match victim.unit.source {
            Source::Dense(d) if victim.bytes <= surplus => {
                next.dense_on[d] = true;
                surplus -= victim.bytes;
            }
            Source::Layer(l) if victim.bytes <= surplus && !blocked[l] => {
                next.counts[l] = before;
                surplus -= victim.bytes;
            }
            Source::Dense(_) => lost += value,
            Source::Layer(l) => {
                blocked[l] = true;
                lost += value;
            }
        }
    }
    next.free += need + surplus;
    Some((next, lost))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Activity, DenseItem, PlacementInput};

    fn problem(
        freqs: Vec<Vec<f64>>,
        bytes: Vec<u64>,
        dense: Vec<DenseItem>,
        budget: u64,
        min: usize,
    ) -> PlacementProblem {
        PlacementProblem::new(PlacementInput {
            activity: Activity::Frequencies(freqs),
            bytes_per_neuron: bytes,
            dense,
            accelerator_bytes: budget,
            reservations: vec![],
            min_neurons_per_layer: min,
            group_size: 1,
        })
        .expect("valid test problem")
    }

    fn item(name: &str, bytes: u64, access: f64) -> DenseItem {
        DenseItem {
            name: name.into(),
            bytes,
            access,
        }
    }

    fn hot(plan: &PlacementPlan) -> Vec<Vec<u32>> {
        plan.layers()
            .iter()
            .map(|l| l.accelerator_neurons().to_vec())
            .collect()
    }

    #[test]
    fn takes_hottest_neurons_across_layers() {
        let p = problem(
            vec![vec![0.1, 0.9, 0.5], vec![0.8, 0.2]],
            vec![10, 10],
            vec![],
            30,
            0,
        );
        let plan = solve_greedy(&p);
        assert_eq!(hot(&plan), vec![vec![1, 2], vec![0]]);
        assert_eq!(plan.accelerator_bytes(), 30);
        assert!((plan.objective() - 10.0 * (0.9 + 0.8 + 0.5)).abs() < 1e-12);
        assert!((plan.layers()[0].hit_ratio() - 1.4 / 1.5).abs() < 1e-12);
    }

    #[test]
    fn per_token_dense_items_go_first_and_rare_ones_wait() {
        let p = problem(
            vec![vec![0.9, 0.6]],
            vec![10],
            vec![item("embd", 20, 0.01), item("attn", 20, 1.0)],
            40,
            0,
        );
        let plan = solve_greedy(&p);
        let on: Vec<bool> = plan.dense().iter().map(|d| d.on_accelerator).collect();
        assert_eq!(on, vec![false, true]);
        assert_eq!(hot(&plan), vec![vec![0, 1]]);
    }

    #[test]
    fn empty_and_ample_budgets() {
        let freqs = vec![vec![0.3, 0.2], vec![0.7]];
        let dense = vec![item("attn", 5, 1.0)];
        let none = solve_greedy(&problem(freqs.clone(), vec![4, 8], dense.clone(), 3, 0));
        assert_eq!(none.objective(), 0.0);
        assert_eq!(none.accelerator_weight_bytes(), 0);
        let all = solve_greedy(&problem(freqs, vec![4, 8], dense, 1 << 20, 0));
        assert_eq!(all.objective(), all.max_objective());
        assert_eq!(all.host_bytes(), 0);
        assert_eq!(all.overall_hit_ratio(), 1.0);
    }

    #[test]
    fn layer_under_minimum_is_topped_up_when_that_loses_less() {
        // Budget 4 neurons; minimum 3. Plain greedy takes 0.9, 0.8 from layer 0 and 0.85,
        // 0.7 from layer 1; both are under the minimum. Topping up layer 0 (+0.75) and
        // dropping layer 1 beats the reverse; the freed byte then takes layer 0's last neuron.
        let p = problem(
            vec![vec![0.9, 0.8, 0.75, 0.05], vec![0.85, 0.7, 0.1]],
            vec![1, 1],
            vec![],
            4,
            3,
        );
        let plan = solve_greedy(&p);
        assert_eq!(hot(&plan), vec![vec![0, 1, 2, 3], vec![]]);
    }

    #[test]
    fn large_item_displaced_by_denser_small_one_is_exchanged_back() {
        // Budget 100: "small" (60 bytes, access 1.0) comes first in value per byte, after which
        // "large" (100 bytes, access 0.99) no longer fits; taking "large" alone is worth 99.
        let p = problem(
            vec![vec![0.05; 4]],
            vec![10],
            vec![item("small", 60, 1.0), item("large", 100, 0.99)],
            100,
            0,
        );
        let plan = solve_greedy(&p);
        let on: Vec<bool> = plan.dense().iter().map(|d| d.on_accelerator).collect();
        assert_eq!(on, vec![false, true]);
        assert!((plan.objective() - 99.0).abs() < 1e-9);
    }

    #[test]
    fn better_dense_subset_fills_the_budget() {
        // Three per-token items of 50, 40 and 30 bytes, budget 80: first come takes 50 and
        // leaves 30 for the other 30-byte item only if it is chosen; 50 + 30 = 80 fills it.
        let p = problem(
            vec![vec![0.1; 8]],
            vec![5],
            vec![item("a", 50, 1.0), item("b", 40, 1.0), item("c", 30, 1.0)],
            80,
            0,
        );
        let plan = solve_greedy(&p);
        assert_eq!(plan.accelerator_weight_bytes(), 80);
        assert!((plan.objective() - 80.0).abs() < 1e-9);
    }
}
