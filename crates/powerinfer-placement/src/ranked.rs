//! Per-layer ranking of neurons by frequency, shared by the greedy and the exact solver.
//!
//! Why it exists: all neurons of a layer have the same size (one weight type per layer), so
//! for any count `k` the best `k` neurons to put on the accelerator are the `k` hottest. Both
//! solvers therefore only choose a *count* per layer; this module turns counts into values,
//! costs and neuron indices, and knows which counts the group and minimum constraints allow.

use crate::problem::{Layer, PlacementProblem};

/// One layer's neurons ordered hottest first, with prefix sums of their frequencies.
#[derive(Debug, Clone)]
pub(crate) struct RankedLayer {
    /// Neuron indices, hottest first (ties: lower index first).
    pub(crate) order: Vec<u32>,
    /// `prefix[k]` is the sum of the `k` hottest frequencies; length `n + 1`.
    prefix: Vec<f64>,
    /// Bytes of one neuron.
    pub(crate) bytes: u64,
    /// Smallest non-zero count allowed when the minimum is enforced (0: no minimum).
    pub(crate) min_count: usize,
    /// Group granularity.
    group: usize,
}

impl RankedLayer {
    /// Ranks `layer` under the problem's group size and per-layer minimum.
    fn new(layer: &Layer, group: usize, min_neurons: usize) -> Self {
        let n = layer.frequencies.len();
        let order = hottest_first(&layer.frequencies);
        let mut prefix = Vec::with_capacity(n + 1);
        let mut sum = 0.0;
        prefix.push(sum);
        for &i in &order {
            sum += layer.frequencies[i as usize];
            prefix.push(sum);
        }
        let min_count = if min_neurons == 0 || n == 0 {
            0
        } else {
            min_neurons
                .min(n)
                .div_ceil(group)
                .saturating_mul(group)
                .min(n)
        };
        Self {
            order,
            prefix,
            bytes: layer.bytes_per_neuron,
            min_count,
            group,
        }
    }

    /// Number of neurons in the layer.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Objective value of putting the `k` hottest neurons on the accelerator.
    pub(crate) fn value(&self, k: usize) -> f64 {
        self.bytes as f64 * self.prefix[k]
    }

    /// Bytes taken by `k` neurons.
    pub(crate) fn cost(&self, k: usize) -> u64 {
        k as u64 * self.bytes
    }

    /// Value per byte of growing the layer from `from` to `to` neurons (their mean frequency).
    pub(crate) fn density(&self, from: usize, to: usize) -> f64 {
        (self.prefix[to] - self.prefix[from]) / (to - from) as f64
    }

    /// Whether `k` is a count the group size (and, if `respect_min`, the minimum) allows.
    pub(crate) fn is_valid(&self, k: usize, respect_min: bool) -> bool {
        let n = self.len();
        k == 0
            || (k <= n
                && (k.is_multiple_of(self.group) || k == n)
                && (!respect_min || k >= self.min_count))
    }

    /// The next allowed count above the allowed count `k`, if any.
    pub(crate) fn next_count(&self, k: usize, respect_min: bool) -> Option<usize> {
        let n = self.len();
        if k >= n {
            None
        } else if respect_min && k < self.min_count {
            Some(self.min_count)
        } else {
            Some((k + self.group).min(n))
        }
    }

    /// The allowed count below the allowed count `k` (minimum enforced): one group less, or 0
    /// when the layer is at its minimum; `None` if `k` is 0.
    pub(crate) fn shrink_count(&self, k: usize) -> Option<usize> {
        if k == 0 {
            None
        } else if k <= self.min_count {
            Some(0)
        } else {
            let rem = k % self.group;
            Some(if rem == 0 { k - self.group } else { k - rem })
        }
    }

    /// Every count allowed with the minimum enforced, ascending, starting with 0.
    pub(crate) fn valid_counts(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.len();
        std::iter::once(0)
            .chain((1..=n.div_ceil(self.group)).map(move |j| (j * self.group).min(n)))
            .filter(move |&k| k == 0 || k >= self.min_count)
    }
}

/// Neuron indices sorted by decreasing frequency, ties by increasing index.
///
/// Why a radix sort: ranking is the largest cost of a 70B-shaped solve (2.3 M neurons), and
/// a stable LSD radix sort on the frequency's bits is several times faster than a comparison
/// sort. Frequencies are validated to lie in `[0, 1]`; for non-negative floats the bit
/// pattern orders like the value (after folding -0.0 onto 0.0), so the complemented bits sort
/// ascending into hottest first, and stability keeps equal frequencies in index order.
/// Only the top `64 - LOW_BITS` bits are radix-sorted; the rare runs that agree on those
/// bits but not on the low ones (frequencies within ~1e-8 of each other) are then sorted
/// exactly, so the order is the same as a full comparison sort.
fn hottest_first(frequencies: &[f64]) -> Vec<u32> {
    const DIGIT_BITS: u32 = 11;
    const LOW_BITS: u32 = 20;
    const BUCKETS: usize = 1 << DIGIT_BITS;
    const SHIFTS: [u32; 4] = [LOW_BITS, LOW_BITS + 11, LOW_BITS + 22, LOW_BITS + 33];
    let n = frequencies.len();
    let mut keys: Vec<u64> = frequencies
        .iter()
        .map(|&f| !(if f > 0.0 { f.to_bits() } else { 0 }))
        .collect();
    // Layer sizes are validated to fit in u32.
    let mut order: Vec<u32> = (0..n as u32).collect();
    let digit = |k: u64, shift: u32| ((k >> shift) as usize) & (BUCKETS - 1);
    let mut histograms = vec![[0usize; BUCKETS]; SHIFTS.len()];
    for &k in &keys {
        for (h, &shift) in histograms.iter_mut().zip(&SHIFTS) {
            h[digit(k, shift)] += 1;
        }
    }
    let mut keys_out = vec![0u64; n];
    let mut order_out = vec![0u32; n];
    let mut offsets = [0usize; BUCKETS];
    for (h, &shift) in histograms.iter().zip(&SHIFTS) {
        if h.contains(&n) {
            continue; // every key has the same digit here: the pass would not move anything
        }
        let mut sum = 0;
        for (o, &c) in offsets.iter_mut().zip(h) {
            *o = sum;
            sum += c;
        }
        for (&k, &i) in keys.iter().zip(&order) {
            let b = digit(k, shift);
            keys_out[offsets[b]] = k;
            order_out[offsets[b]] = i;
            offsets[b] += 1;
        }
        std::mem::swap(&mut keys, &mut keys_out);
        std::mem::swap(&mut order, &mut order_out);
    }
    // Runs equal in the sorted bits: already right if their full keys ascend (equal keys are
    // in index order by stability), otherwise sort them by (key, index).
    let mut start = 0;
    while start < n {
        let high = keys[start] >> LOW_BITS;
        let end = keys[start..]
            .iter()
            .position(|&k| k >> LOW_BITS != high)
            .map_or(n, |p| start + p);
        if !keys[start..end].is_sorted() {
            let mut run: Vec<(u64, u32)> = keys[start..end]
                .iter()
                .copied()
                .zip(order[start..end].iter().copied())
                .collect();
            run.sort_unstable();
            for (j, (k, i)) in run.into_iter().enumerate() {
                keys[start + j] = k;
                order[start + j] = i;
            }
        }
        start = end;
    }
    order
}

/// Ranks every layer of `problem`.
pub(crate) fn rank(problem: &PlacementProblem) -> Vec<RankedLayer> {
    problem
        .layers
        .iter()
        .map(|l| RankedLayer::new(l, problem.group_size, problem.min_neurons_per_layer))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(freqs: &[f64], group: usize, min: usize) -> RankedLayer {
        RankedLayer::new(
            &Layer {
                bytes_per_neuron: 3,
                frequencies: freqs.to_vec(),
            },
            group,
            min,
        )
    }

    #[test]
    fn radix_order_matches_a_comparison_sort() {
        let freqs: Vec<f64> = (0..5000u64)
            .map(|i| ((i * 2_654_435_761) % 1000) as f64 / 999.0)
            .chain([0.0, -0.0, 1.0, 1e-300, 0.5])
            .chain((0..64).map(|j| 0.25 + j as f64 * 1e-17 * ((j * 7) % 5) as f64))
            .chain((0..64).map(|j| f64::from_bits(0.3f64.to_bits() + (j * 37) % 11)))
            .collect();
        let mut expected: Vec<u32> = (0..freqs.len() as u32).collect();
        expected.sort_by(|&a, &b| {
            let (fa, fb) = (freqs[a as usize] + 0.0, freqs[b as usize] + 0.0);
            fb.total_cmp(&fa).then(a.cmp(&b))
        });
        assert_eq!(hottest_first(&freqs), expected);
    }

    #[test]
    fn orders_hottest_first_with_index_tiebreak() {
        let r = layer(&[0.1, 0.9, 0.0, 0.9, -0.0, 0.5], 1, 0);
        assert_eq!(r.order, vec![1, 3, 5, 0, 2, 4]);
        assert!((r.value(2) - 3.0 * 1.8).abs() < 1e-12);
        assert_eq!(r.cost(2), 6);
    }

    #[test]
    fn counts_follow_groups_and_minimum() {
        // 10 neurons, groups of 4, minimum 5 -> allowed: 0, 8, 10.
        let r = layer(&[0.5; 10], 4, 5);
        assert_eq!(r.min_count, 8);
        assert_eq!(r.valid_counts().collect::<Vec<_>>(), vec![0, 8, 10]);
        assert_eq!(r.next_count(0, true), Some(8));
        assert_eq!(r.next_count(0, false), Some(4));
        assert_eq!(r.next_count(8, true), Some(10));
        assert_eq!(r.next_count(10, true), None);
        assert_eq!(r.shrink_count(10), Some(8));
        assert_eq!(r.shrink_count(8), Some(0));
        assert_eq!(r.shrink_count(0), None);
        let free = layer(&[0.5; 10], 4, 0);
        assert_eq!(free.shrink_count(10), Some(8));
        assert_eq!(free.shrink_count(4), Some(0));
        assert!(r.is_valid(4, false) && !r.is_valid(4, true) && !r.is_valid(5, false));
    }

    #[test]
    fn minimum_above_layer_size_means_all_or_nothing() {
        let r = layer(&[0.5; 3], 2, 100);
        assert_eq!(r.valid_counts().collect::<Vec<_>>(), vec![0, 3]);
    }
}
