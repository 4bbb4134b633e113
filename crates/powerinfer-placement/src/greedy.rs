//! The production solver: greedy by value per byte, then repair of the per-layer minimum.
//!
//! Why greedy: the problem is a multiple-choice knapsack, and with millions of small items
//! (neurons or groups of them) against a budget of gigabytes, filling in order of value per
//! byte leaves at most one unit's worth of bytes unused per layer; the exact solver and the
//! randomized tests bound the remaining gap. It runs in `O(N log N)` with no solver library.

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
    heap.extend(
        problem
            .dense
            .iter()
            .enumerate()
            .filter(|(d, _)| !state.dense_on[*d])
            .map(|(d, item)| Unit {
                density: item.access,
                source: Source::Dense(d),
            }),
    );
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
    candidates.extend(
        problem
            .dense
            .iter()
            .enumerate()
            .filter(|(d, _)| !state.dense_on[*d])
            .map(|(d, item)| Unit {
                density: item.access,
                source: Source::Dense(d),
            }),
    );
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    let mut changed = false;
    for unit in candidates {
        let (cost, gain, keep): (u64, f64, &[usize]) = match unit.source {
            Source::Dense(d) => {
                let item = &problem.dense[d];
                (item.bytes, item.access * item.bytes as f64, &[])
            }
            Source::Layer(l) => {
                let r = &ranked[l];
                let k = state.counts[l];
                let Some(to) = r.next_count(k, true) else {
                    continue;
                };
                (r.cost(to) - r.cost(k), r.value(to) - r.value(k), &[l])
            }
        };
        let next = if cost <= state.free {
            Some((state.clone(), 0.0))
        } else {
            evict(problem, ranked, state, keep, cost - state.free)
        };
        let Some((mut next, lost)) = next else {
            continue;
        };
        if gain <= lost * (1.0 + 1e-12) {
            continue;
        }
        match unit.source {
            Source::Dense(d) => next.dense_on[d] = true,
            Source::Layer(l) => {
                next.counts[l] = ranked[l].next_count(next.counts[l], true).unwrap_or(0);
            }
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
