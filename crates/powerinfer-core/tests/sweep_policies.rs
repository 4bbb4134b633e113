//! The sweep's machinery on the small reference models: the mask logic of the oracle,
//! static, hot+cold and input-sparsity policies (each equals dense when it keeps
//! everything, and reaches its target density), and the metrics against dense.

use std::path::PathBuf;
use std::sync::Arc;

use powerinfer_core::eval::{
    Sparsity, compare, greedy_agreement, greedy_continuations, reference, score,
};
use powerinfer_core::input_sparsity::{InputProfile, InputRank};
use powerinfer_core::{ColdChoice, FfnPolicy, Model, ModelError, Prefill, Session};
use powerinfer_kernels::Kernels;

fn model(name: &str) -> Model {
    Model::open(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

const TOKENS: [u32; 12] = [1, 17, 42, 5, 88, 17, 60, 3, 95, 7, 7, 31];
/// Neurons per layer of the reference models.
const N_FF: usize = 160;

/// Logits of every position under `sparsity` (batched prefill, or one token at a
/// time), and the session's statistics. The batched pass is the exact (f32) prefill,
/// where the dense and the sparse products share one arithmetic.
fn run(m: &Model, sparsity: &Sparsity, batched: bool) -> (Vec<f32>, powerinfer_core::FfnStats) {
    let mut s = Session::new(m, Kernels::new(), 16).unwrap();
    s.set_input_sparsity(sparsity.input.clone());
    s.set_prefill(Prefill::Exact);
    let logits = if batched {
        s.forward_all(&TOKENS, &sparsity.ffn).unwrap()
    } else {
        TOKENS
            .iter()
            .flat_map(|&t| s.forward(&[t], &sparsity.ffn).unwrap())
            .collect()
    };
    (logits, s.stats().clone())
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Per layer, neurons `0..k` (any fixed set will do for the mask logic).
fn first(k: usize) -> Vec<Vec<u32>> {
    vec![(0..k as u32).collect(); 2]
}

#[test]
fn keeping_every_neuron_is_the_dense_path_exactly() {
    for name in ["ref_llama_f32.gguf", "ref_llama_q.gguf"] {
        let m = model(name);
        for batched in [true, false] {
            let (dense, _) = run(&m, &FfnPolicy::Dense.into(), batched);
            for policy in [
                FfnPolicy::TopK { density: 1.0 },
                FfnPolicy::HotCold {
                    hot: first(N_FF),
                    cold: ColdChoice::TopK { density: 1.0 },
                },
                FfnPolicy::HotCold {
                    hot: first(N_FF),
                    cold: ColdChoice::TopK { density: 0.2 },
                },
                FfnPolicy::HotCold {
                    hot: first(16),
                    cold: ColdChoice::TopK { density: 1.0 },
                },
            ] {
                let (got, stats) = run(&m, &policy.clone().into(), batched);
                assert_eq!(got, dense, "{name} batched {batched}: {policy:?}");
                assert_eq!(stats.density(), 1.0);
            }
            // The full static set runs the sparse kernels: the same sums in another
            // order, with one more difference in quantized decoding, where the dense
            // down GEMV rounds its input to 8 bits (as ggml does) and the sparse axpy
            // keeps it in f32.
            let policy = FfnPolicy::StaticHot {
                per_layer: first(N_FF),
            };
            let (got, stats) = run(&m, &policy.into(), batched);
            let err = rel_err(&got, &dense);
            let tol = if name.contains("_q") && !batched {
                0.03
            } else {
                1e-5
            };
            assert!(err < tol, "{name} batched {batched}: static full {err}");
            assert_eq!(stats.density(), 1.0);
        }
    }
}

#[test]
fn oracle_static_and_hot_cold_reach_their_target_density() {
    let m = model("ref_llama_f32.gguf");
    for batched in [true, false] {
        for target in [0.05f64, 0.3, 0.5, 0.77] {
            let keep = (N_FF as f64 * target).round();
            let want = keep / N_FF as f64;
            let (_, s) = run(
                &m,
                &FfnPolicy::TopK {
                    density: target as f32,
                }
                .into(),
                batched,
            );
            assert_eq!(s.density(), want, "oracle {target}");
            let (_, s) = run(
                &m,
                &FfnPolicy::StaticHot {
                    per_layer: first(keep as usize),
                }
                .into(),
                batched,
            );
            assert_eq!(s.density(), want, "static {target}");
            // h = 0.05 (8 neurons) always, the cold rest filling up to the target.
            let (_, s) = run(
                &m,
                &FfnPolicy::HotCold {
                    hot: first(8),
                    cold: ColdChoice::TopK {
                        density: target as f32,
                    },
                }
                .into(),
                batched,
            );
            assert_eq!(s.density(), want.max(8.0 / N_FF as f64), "hotcold {target}");
        }
    }
}

#[test]
fn hot_cold_keeps_the_hot_set_and_the_largest_cold_activations() {
    let m = model("ref_llama_f32.gguf");
    let hot: Vec<u32> = (0..N_FF as u32).step_by(5).collect(); // 32 neurons
    let policy = FfnPolicy::HotCold {
        hot: vec![hot.clone(); 2],
        cold: ColdChoice::TopK { density: 0.4 },
    };
    let mut s = Session::new(&m, Kernels::new(), 16).unwrap();
    let mut dense_a: Vec<Vec<f32>> = Vec::new();
    s.observe(&TOKENS[..4], &FfnPolicy::Dense, &mut |o| {
        if o.layer == 0 {
            dense_a.push(o.values.to_vec())
        }
    })
    .unwrap();
    s.reset();
    let mut kept: Vec<Vec<u32>> = Vec::new();
    s.observe(&TOKENS[..4], &policy, &mut |o| {
        if o.layer == 0 {
            kept.push(o.neurons.to_vec())
        }
    })
    .unwrap();
    for (a, set) in dense_a.iter().zip(&kept) {
        assert_eq!(set.len(), 64);
        assert!(hot.iter().all(|h| set.contains(h)));
        // Every kept cold neuron outweighs every dropped cold one.
        let hot = &hot;
        let cold = |keep: bool| {
            (0..N_FF as u32)
                .filter(move |i| !hot.contains(i) && set.contains(i) == keep)
                .map(|i| a[i as usize].abs())
        };
        let smallest_kept = cold(true).fold(f32::INFINITY, f32::min);
        let largest_dropped = cold(false).fold(0f32, f32::max);
        assert!(smallest_kept >= largest_dropped);
    }
}

#[test]
fn input_sparsity_keeping_all_is_dense_and_cuts_reach_the_share_on_calibration() {
    let m = model("ref_llama_f32.gguf");
    let k = Kernels::new();
    let (dense, _) = run(&m, &FfnPolicy::Dense.into(), true);
    for rank in [InputRank::Magnitude, InputRank::Weighted] {
        let profile = InputProfile::collect(&m, &k, &[&TOKENS], rank, 64).unwrap();
        let all = Sparsity {
            ffn: FfnPolicy::Dense,
            input: Some(Arc::new(profile.sparsity(1.0).unwrap())),
        };
        for batched in [true, false] {
            let (got, stats) = run(&m, &all, batched);
            assert_eq!(got, dense, "{rank:?} batched {batched}");
            assert_eq!(stats.input_density(), Some(1.0));
        }
        let half = Sparsity {
            ffn: FfnPolicy::Dense,
            input: Some(Arc::new(profile.sparsity(0.5).unwrap())),
        };
        let (got, stats) = run(&m, &half, true);
        assert_ne!(got, dense);
        // Later layers see inputs the sparsified earlier ones changed, so the share
        // kept on the calibration tokens is near, not at, the target.
        let d = stats.input_density().unwrap();
        assert!((0.35..0.65).contains(&d), "{rank:?}: {d}");
        // Input sparsity decides the FFN's sparsity: another FFN policy is refused.
        let mut s = Session::new(&m, k.clone(), 16).unwrap();
        s.set_input_sparsity(half.input.clone());
        let err = s
            .forward(&TOKENS, &FfnPolicy::TopK { density: 0.5 })
            .unwrap_err();
        assert!(matches!(err, ModelError::Policy(_)), "{err}");
    }
    assert!(profile_error(&m, &k).is_err());
}

fn profile_error(m: &Model, k: &Kernels) -> Result<InputProfile, ModelError> {
    InputProfile::collect(m, k, &[], InputRank::Magnitude, 64)
}

#[test]
fn dense_against_its_own_reference_scores_zero_kl_and_full_agreement() {
    let m = model("ref_llama_q.gguf");
    let k = Kernels::new();
    let items: Vec<(&[u32], usize)> = vec![(&TOKENS[..8], 1), (&TOKENS[2..], 4)];
    let r = reference(&m, &k, &items).unwrap();
    let dense = compare(&m, &k, &items, &FfnPolicy::Dense.into(), &r).unwrap();
    assert_eq!(dense.kl, 0.0);
    assert_eq!(dense.agree, 1.0);
    assert_eq!(dense.score, r.score);
    assert_eq!(dense.score.tokens, 7 + 6);
    // The same perplexity as `score`, up to the f32 rounding of the stored log-probs.
    let plain = score(&m, &k, &items, &FfnPolicy::Dense).unwrap();
    assert!((plain.ppl / dense.score.ppl - 1.0).abs() < 1e-5);
    let sparse = compare(&m, &k, &items, &FfnPolicy::TopK { density: 0.1 }.into(), &r).unwrap();
    assert!(sparse.kl > 0.0 && sparse.agree <= 1.0);
    // Items other than the reference's are refused.
    assert!(compare(&m, &k, &items[..1], &FfnPolicy::Dense.into(), &r).is_err());
}

#[test]
fn greedy_agreement_of_dense_is_its_continuation_length() {
    let m = model("ref_llama_f32.gguf");
    let k = Kernels::new();
    let prompts: Vec<&[u32]> = vec![&TOKENS[..4], &TOKENS[5..9]];
    let items = greedy_continuations(&m, &k, &prompts, 6).unwrap();
    for ((seq, first), p) in items.iter().zip(&prompts) {
        assert_eq!(&seq[..*first], *p);
        assert!(seq.len() <= first + 6);
    }
    let mean = items.iter().map(|(s, f)| s.len() - f).sum::<usize>() as f64 / 2.0;
    let dense = greedy_agreement(&m, &k, &items, &FfnPolicy::Dense.into()).unwrap();
    assert_eq!(dense, mean);
    let sparse =
        greedy_agreement(&m, &k, &items, &FfnPolicy::TopK { density: 0.05 }.into()).unwrap();
    assert!(sparse <= mean);
}
