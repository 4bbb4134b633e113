//! A sampled power-law activation trace: which FFN neurons "fire" at each position,
//! drawn from per-neuron frequencies with a hot/cold skew.
//!
//! Why: PowerInfer's speed claims are about 7B–70B ReLU models whose weights are not
//! reachable here. On a model with random weights (written by the `synth` example) the
//! activations mean nothing, so a speed run needs the active sets from elsewhere: this
//! trace gives each layer the density and the hot/cold skew of a real ReLU model, and
//! [`crate::FfnPolicy::Trace`] computes exactly those neurons. Figures from it are
//! speed only.
//!
//! Neuron `i` of layer `l` fires at each position with probability
//! `p_i = min(1, c · (r_i + 1)^(−skew))`, where `r_i` is the neuron's rank in a seeded
//! random order and `c` is fitted so the mean of `p` is the layer's density. A position's
//! set is drawn from a generator seeded by (seed, layer, position): the same position
//! always gets the same set, whatever was run before.

use crate::ModelError;
use crate::policy::check_density;

/// Per-layer firing frequencies and the seed that draws positions' sets from them.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationTrace {
    freqs: Vec<Vec<f64>>,
    seed: u64,
}

/// SplitMix64: a small, fast, seedable generator (enough for Bernoulli draws).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1).
fn unit(state: &mut u64) -> f64 {
    (splitmix(state) >> 11) as f64 / (1u64 << 53) as f64
}

impl ActivationTrace {
    /// A trace for `n_layers` layers of `n_ff` neurons: layer `l` fires `density[l]` of
    /// its neurons on average (one value for every layer, or one per layer), with
    /// `skew ≥ 0` (0: every neuron equally often; 1: Zipf-like, a few hot neurons fire
    /// almost always).
    pub fn power_law(
        n_layers: usize,
        n_ff: usize,
        density: &[f64],
        skew: f64,
        seed: u64,
    ) -> Result<ActivationTrace, ModelError> {
        if density.len() != 1 && density.len() != n_layers {
            return Err(ModelError::Policy(format!(
                "{} trace densities for {n_layers} layers (give one, or one per layer)",
                density.len()
            )));
        }
        density.iter().try_for_each(|&d| check_density(d))?;
        if !(skew.is_finite() && skew >= 0.0) {
            return Err(ModelError::Policy(format!(
                "trace skew {skew} must be finite and ≥ 0"
            )));
        }
        if n_ff == 0 {
            return Err(ModelError::Policy(
                "a trace needs at least one neuron".into(),
            ));
        }
        let freqs = (0..n_layers)
            .map(|l| {
                let d = density[l.min(density.len() - 1)];
                let mut state = seed ^ (l as u64).wrapping_mul(0xA24B_AED4_963E_E407);
                layer_frequencies(n_ff, d, skew, &mut state)
            })
            .collect();
        Ok(ActivationTrace { freqs, seed })
    }

    /// Layers.
    pub fn layers(&self) -> usize {
        self.freqs.len()
    }

    /// Neurons per layer.
    pub fn neurons(&self) -> usize {
        self.freqs.first().map_or(0, Vec::len)
    }

    /// Layer `layer`'s firing frequencies (what placement ranks neurons by).
    pub fn frequencies(&self, layer: usize) -> &[f64] {
        &self.freqs[layer]
    }

    /// The neurons of `layer` that fire at `position`, ascending, into `out`.
    pub fn sample(&self, layer: usize, position: usize, out: &mut Vec<u32>) {
        out.clear();
        let mut state = self.seed
            ^ (layer as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
            ^ (position as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(17);
        for (i, &p) in self.freqs[layer].iter().enumerate() {
            if unit(&mut state) < p {
                out.push(i as u32);
            }
        }
    }
}

/// Frequencies of one layer: a power law over a seeded random order of the neurons,
/// scaled (bisection on `c`) to a mean of `density`.
fn layer_frequencies(n_ff: usize, density: f64, skew: f64, state: &mut u64) -> Vec<f64> {
    let shape: Vec<f64> = (0..n_ff).map(|r| ((r + 1) as f64).powf(-skew)).collect();
    let mean = |c: f64| shape.iter().map(|&s| (c * s).min(1.0)).sum::<f64>() / n_ff as f64;
    // mean(c) rises from 0 to 1 as c goes from 0 to (n_ff)^skew.
    let (mut lo, mut hi) = (0.0, (n_ff as f64).powf(skew).max(1.0));
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if mean(mid) < density {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Which neuron gets which rank: a seeded Fisher–Yates shuffle.
    let mut order: Vec<usize> = (0..n_ff).collect();
    for i in (1..n_ff).rev() {
        let j = (splitmix(state) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut freqs = vec![0.0; n_ff];
    for (rank, &neuron) in order.iter().enumerate() {
        freqs[neuron] = (hi * shape[rank]).min(1.0);
    }
    freqs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_have_the_density_and_the_skew() {
        let t = ActivationTrace::power_law(2, 4096, &[0.1, 0.3], 1.0, 7).unwrap();
        for (l, want) in [(0, 0.1), (1, 0.3)] {
            let f = t.frequencies(l);
            let mean = f.iter().sum::<f64>() / f.len() as f64;
            assert!((mean - want).abs() < 1e-6, "layer {l}: mean {mean}");
            let mut sorted = f.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            // Zipf-like: the hottest tenth holds over three times its uniform share of
            // the firing (measured 53% at density 0.1, 33% — all of it saturated — at
            // 0.3), the hottest neurons always fire and the coldest rarely.
            let top: f64 = sorted[..410].iter().sum();
            let share = top / sorted.iter().sum::<f64>();
            assert!(share > 0.3, "layer {l}: hottest tenth holds {share}");
            assert_eq!(sorted[0], 1.0, "layer {l}");
            assert!(
                sorted[4095] < want / 3.0,
                "layer {l}: coldest {}",
                sorted[4095]
            );
        }
        // No skew: every neuron alike.
        let flat = ActivationTrace::power_law(1, 100, &[0.2], 0.0, 7).unwrap();
        assert!(flat.frequencies(0).iter().all(|&p| (p - 0.2).abs() < 1e-9));
    }

    #[test]
    fn samples_are_reproducible_and_hit_the_density() {
        let t = ActivationTrace::power_law(1, 2000, &[0.1], 1.0, 3).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut total = 0;
        for pos in 0..200 {
            t.sample(0, pos, &mut a);
            t.sample(0, pos, &mut b);
            assert_eq!(a, b);
            assert!(a.windows(2).all(|w| w[0] < w[1]));
            total += a.len();
        }
        let density = total as f64 / (200.0 * 2000.0);
        assert!((density - 0.1).abs() < 0.01, "{density}");
        t.sample(0, 1, &mut b);
        t.sample(0, 2, &mut a);
        assert_ne!(a, b, "positions differ");
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(ActivationTrace::power_law(2, 10, &[0.1, 0.2, 0.3], 1.0, 0).is_err());
        assert!(ActivationTrace::power_law(2, 10, &[0.0], 1.0, 0).is_err());
        assert!(ActivationTrace::power_law(2, 10, &[0.5], f64::NAN, 0).is_err());
        assert!(ActivationTrace::power_law(2, 0, &[0.5], 1.0, 0).is_err());
    }
}
