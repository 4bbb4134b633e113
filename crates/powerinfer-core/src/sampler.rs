//! Turning logits into the next token.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sampling settings. `temperature == 0` is greedy (argmax).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// Softmax temperature; 0 = greedy.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this
    /// (1 = off), as llama.cpp does.
    pub repetition_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// RNG seed: the same seed and inputs give the same tokens.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// A seeded sampler.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded from `params.seed`.
    pub fn new(params: SamplerParams) -> Sampler {
        let rng = StdRng::seed_from_u64(params.seed);
        Sampler { params, rng }
    }

    /// Picks the next token from `logits` given the tokens so far (for the penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let p = &self.params;
        // A copy only when the penalty changes some logits.
        let mut l = std::borrow::Cow::Borrowed(logits);
        if p.repetition_penalty != 1.0 {
            let l = l.to_mut();
            let start = history.len().saturating_sub(p.repeat_last_n);
            let mut seen: Vec<u32> = history[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(v) = l.get_mut(t as usize) {
                    *v = if *v > 0.0 {
                        *v / p.repetition_penalty
                    } else {
                        *v * p.repetition_penalty
                    };
                }
            }
        }
        if p.temperature <= 0.0 || l.len() <= 1 {
            return argmax(&l);
        }
        let mut cand: Vec<(u32, f32)> = l
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, v / p.temperature))
            .collect();
        // Highest first, ties by id: a total order, so partitioning out the top k and
        // sorting only those gives exactly the full sort's first k (not n log n over
        // the whole vocabulary for k = 40).
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.select_nth_unstable_by(p.top_k - 1, order);
            cand.truncate(p.top_k);
        }
        cand.sort_by(order);
        let max = cand[0].1;
        let mut probs: Vec<f32> = cand.iter().map(|c| (c.1 - max).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|v| *v /= sum);
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = probs
                .iter()
                .position(|&v| {
                    acc += v;
                    acc >= p.top_p
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            cand.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let mut r = self.rng.random::<f32>() * total;
        for (c, pr) in cand.iter().zip(&probs) {
            if r < *pr {
                return c.0;
            }
            r -= pr;
        }
        cand[cand.len() - 1].0
    }
}

/// The log-probability of token `id` under `logits` (a log-softmax over all of them),
/// and the `top` most likely tokens with theirs, most likely first (ties: lower id).
///
/// Why here: OpenAI-style `logprobs` and log-likelihood evaluation report the model's own
/// distribution, before temperature, top-k/p or penalties; computed in f64 so that a
/// 49k-entry softmax loses nothing. `None` if `id` is out of range.
pub fn logprobs(logits: &[f32], id: u32, top: usize) -> Option<Logprobs> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = f64::from(max)
        + logits
            .iter()
            .map(|&l| (f64::from(l) - f64::from(max)).exp())
            .sum::<f64>()
            .ln();
    let lp = |l: f32| (f64::from(l) - lse) as f32;
    let own = lp(*logits.get(id as usize)?);
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if best.len() == top && best.last().is_some_and(|&(_, b)| l <= b) {
                continue;
            }
            let at = best.partition_point(|&(_, b)| b >= l);
            best.insert(at, (i as u32, l));
            best.truncate(top);
        }
    }
    Some(Logprobs {
        logprob: own,
        top: best.into_iter().map(|(i, l)| (i, lp(l))).collect(),
    })
}

/// A token's log-probability and the most likely alternatives at its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Logprobs {
    /// Log-probability of the token.
    pub logprob: f32,
    /// The most likely tokens with theirs, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_log_softmax_with_its_top_entries() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let Logprobs { logprob: lp, top } = logprobs(&logits, 2, 3).unwrap();
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        assert!((f64::from(lp) - (2.0 - z.ln())).abs() < 1e-6);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, [1, 3, 2]);
        let total: f64 = logits.iter().map(|&l| (f64::from(l) - z.ln()).exp()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(logprobs(&logits, 5, 1).is_none());
        assert!(logprobs(&logits, 0, 0).unwrap().top.is_empty());
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut s = Sampler::new(SamplerParams::default());
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_is_respected() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = SamplerParams {
            temperature: 1.0,
            top_k: 5,
            top_p: 1.0,
            seed: 42,
            ..Default::default()
        };
        let run = |p: &SamplerParams| {
            let mut s = Sampler::new(p.clone());
            (0..200).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = run(&params);
        assert_eq!(a, run(&params));
        let mut top5: Vec<u32> = (0..50).collect();
        top5.sort_by(|&x, &y| logits[y as usize].total_cmp(&logits[x as usize]));
        top5.truncate(5);
        assert!(
            a.iter().all(|t| top5.contains(t)),
            "only the top 5 may be drawn"
        );
        assert!(
            top5.iter().filter(|t| a.contains(t)).count() >= 3,
            "sampling spreads over several"
        );
        let other = run(&SamplerParams { seed: 43, ..params });
        assert_ne!(a, other, "another seed gives another sequence");
    }

    #[test]
    fn top_k_breaks_ties_by_id_as_a_full_sort_would() {
        // 100 equal logits: the top 3 are ids 0, 1, 2 (the full sort's order), and
        // each is drawn.
        let mut s = Sampler::new(SamplerParams {
            temperature: 1.0,
            top_k: 3,
            top_p: 1.0,
            seed: 7,
            ..Default::default()
        });
        let logits = vec![0.5f32; 100];
        let drawn: Vec<u32> = (0..300).map(|_| s.sample(&logits, &[])).collect();
        assert!(drawn.iter().all(|&t| t < 3), "{drawn:?}");
        assert!((0..3).all(|t| drawn.contains(&t)));
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // probabilities ≈ 0.64, 0.24, 0.09, 0.03: top_p 0.8 keeps the first two.
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let mut s = Sampler::new(SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.8,
            seed: 1,
            ..Default::default()
        });
        let drawn: Vec<u32> = (0..300).map(|_| s.sample(&logits, &[])).collect();
        assert!(drawn.iter().all(|&t| t < 2));
        assert!(drawn.contains(&0) && drawn.contains(&1));
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplerParams {
            repetition_penalty: 2.0,
            ..Default::default()
        });
        // token 0 (3.0) penalised to 1.5 < token 1 (2.0).
        assert_eq!(s.sample(&[3.0, 2.0, 0.0], &[0]), 1);
        assert_eq!(s.sample(&[3.0, 2.0, 0.0], &[2]), 0);
    }
}
