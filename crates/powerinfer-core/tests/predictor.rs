//! The `Predictor` FFN policy: PowerInfer's predictor tensors read from GGUF, the
//! machinery checked against the other sparse paths, and a small training run on the
//! real model.

mod common;

use common::{data, rel_err, with_powerinfer_predictors};
use std::sync::Arc;

use half::f16;
use powerinfer_assets as assets;
use powerinfer_core::eval::observe_dense;
use powerinfer_core::gguf::{GgufFile, GgufWriter};
use powerinfer_core::powerinfer_predictors::read_powerinfer_predictors;
use powerinfer_core::sampler::argmax;
use powerinfer_core::tokenizer::Tokenizer;
use powerinfer_core::{FfnObservation, FfnPolicy, Model, ModelError, Session, corpus};
use powerinfer_kernels::{Kernels, WType};
use powerinfer_predictor::{
    ActiveRule, FitOptions, PredictorError, PredictorInput, PredictorSet, RecallKind, Samples,
    TrainOptions, fit,
};

/// Logits of every position of `tokens` under `policy`: batched prefill, or one token
/// at a time (decode); and the FFN density reached.
fn logits_of(model: &Model, tokens: &[u32], policy: &FfnPolicy, batched: bool) -> (Vec<f32>, f64) {
    let mut s = Session::new(model, Kernels::new(), 16).unwrap();
    let logits = if batched {
        s.forward_all(tokens, policy).unwrap()
    } else {
        tokens
            .iter()
            .flat_map(|&t| s.forward(&[t], policy).unwrap())
            .collect()
    };
    (logits, s.stats().density())
}

#[test]
fn powerinfer_predictor_tensors_are_read_and_evaluated_as_powerinfer_does() {
    let bytes = with_powerinfer_predictors(8, 0.5, 0.25, None);
    let file = GgufFile::from_bytes(&bytes).unwrap();
    let model = Model::from_gguf(GgufFile::from_bytes(&bytes).unwrap()).unwrap();
    let set = read_powerinfer_predictors(&file, &model).unwrap();
    assert_eq!(set.layers.len(), 2);
    let p = &set.layers[1];
    assert_eq!(
        (p.rank(), p.tau(), p.input()),
        (8, 0.25, PredictorInput::Residual)
    );
    assert_eq!(p.types(), (WType::F16, WType::F16));
    // Logits = fc2 · relu(fc1 · x), from the raw f16 tensors in f64.
    let t = |name: &str| -> Vec<f64> {
        let info = file.tensor(name).unwrap();
        file.tensor_data(info)
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect()
    };
    let (w1, w2) = (t("blk.1.fc1.weight"), t("blk.1.fc2.weight"));
    let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let hidden: Vec<f64> = (0..8)
        .map(|j| {
            (0..64)
                .map(|i| w1[j * 64 + i] * x[i] as f64)
                .sum::<f64>()
                .max(0.0)
        })
        .collect();
    let want: Vec<f64> = (0..160)
        .map(|n| (0..8).map(|j| w2[n * 8 + j] * hidden[j]).sum())
        .collect();
    let mut got = vec![0f32; 160];
    p.logits(&Kernels::new(), &x, &mut Vec::new(), &mut got)
        .unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-3 * (1.0 + w.abs()), "{g} vs {w}");
    }
    // It runs as a policy, and computes fewer neurons than the model has.
    let policy = FfnPolicy::Predictor {
        set: Arc::new(set),
        gate_check: Some(vec![0.0; 2]),
    };
    let mut s = Session::new(&model, Kernels::new(), 16).unwrap();
    s.forward(&[1, 2, 3, 4, 5], &policy).unwrap();
    let d = s.stats().density();
    assert!(d > 0.0 && d < 1.0, "density {d}");
}

#[test]
fn a_predictor_that_keeps_every_neuron_equals_the_dense_model() {
    // fc2 = 0 and threshold 0: every logit is 0 ≥ 0, so every neuron is predicted.
    let bytes = with_powerinfer_predictors(8, 0.0, 0.0, None);
    let model = Model::from_gguf(GgufFile::from_bytes(&bytes).unwrap()).unwrap();
    let set = read_powerinfer_predictors(&GgufFile::from_bytes(&bytes).unwrap(), &model).unwrap();
    let policy = FfnPolicy::Predictor {
        set: Arc::new(set),
        gate_check: None,
    };
    let all = FfnPolicy::StaticHot {
        per_layer: vec![(0..160).collect(); 2],
    };
    let tokens = [3u32, 1, 4, 1, 5, 9, 2, 6];
    for batched in [false, true] {
        let run = |p: &FfnPolicy| logits_of(&model, &tokens, p, batched).0;
        let (pred, sparse_all, dense) = (run(&policy), run(&all), run(&FfnPolicy::Dense));
        // The same sparse kernels over the same neurons: bit for bit.
        assert_eq!(pred, sparse_all, "batched {batched}");
        let err = rel_err(&pred, &dense);
        assert!(
            err <= 1e-4,
            "batched {batched}: max |Δ| {err} of the largest logit"
        );
    }
}

#[test]
fn missing_or_misshaped_predictor_tensors_are_named() {
    let bytes = with_powerinfer_predictors(8, 0.5, 0.0, Some("blk.1.fc2.weight"));
    let model = Model::from_gguf(GgufFile::from_bytes(&bytes).unwrap()).unwrap();
    let err =
        read_powerinfer_predictors(&GgufFile::from_bytes(&bytes).unwrap(), &model).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { tensor, .. } if tensor == "blk.1.fc2.weight"),
        "{err}"
    );
    // fc1 of another model's dim.
    let f = GgufFile::open(data("ref_relu_llama.gguf")).unwrap();
    let mut w = GgufWriter::new();
    f.metadata().iter().for_each(|(k, v)| {
        w.add(k, v.clone());
    });
    for t in f.tensors() {
        w.add_tensor(&t.name, &t.dims, t.wtype, f.tensor_data(t).to_vec())
            .unwrap();
    }
    w.add_tensor(
        "blk.0.fc1.weight",
        &[32, 8],
        WType::F32,
        vec![0; 32 * 8 * 4],
    )
    .unwrap();
    let bytes = w.to_bytes().unwrap();
    let model = Model::from_gguf(GgufFile::from_bytes(&bytes).unwrap()).unwrap();
    let err =
        read_powerinfer_predictors(&GgufFile::from_bytes(&bytes).unwrap(), &model).unwrap_err();
    assert!(
        matches!(&err, ModelError::Shape { tensor, .. } if tensor == "blk.0.fc1.weight"),
        "{err}"
    );
}

/// Samples of every layer over `tokens` of the dense model.
fn samples(model: &Model, k: &Kernels, tokens: &[u32], mags: bool) -> Vec<Samples> {
    let cfg = model.config();
    let mut s: Vec<Samples> = (0..cfg.n_layers)
        .map(|_| Samples::new(cfg.dim, cfg.n_ff, ActiveRule::TopDensity(0.5), mags).unwrap())
        .collect();
    let mut observe = |o: &FfnObservation| s[o.layer].push(o.input, o.values).unwrap();
    observe_dense(model, k, tokens, 256, &mut observe, &mut |_| {}).unwrap();
    s
}

#[test]
fn a_predictor_trained_on_the_real_model_runs_decodes_and_refuses_other_models() {
    assets::ensure_assets().expect("assets");
    let model = Model::open(assets::default_model_path()).unwrap();
    let tok = Tokenizer::from_gguf(model.gguf()).unwrap();
    let text = std::fs::read_to_string(assets::data_path("botchan.txt")).unwrap();
    let ids = tok.encode(&text, false).unwrap();
    let (train_t, held_t) = corpus::split_calibration(corpus::split(&ids).0);
    let k = Kernels::new();
    // A cheap run: 1,024 training and 256 held-out tokens, rank 32, 2 epochs.
    let (train_s, held_s) = (
        samples(&model, &k, &train_t[..1024], false),
        samples(&model, &k, &held_t[..256], true),
    );
    let opts = FitOptions {
        ladder: vec![32],
        search_tokens: 1024,
        search_epochs: 2,
        recall_kind: RecallKind::Mass,
        recall: 0.999,
        train: TrainOptions {
            epochs: 2,
            ..TrainOptions::default()
        },
        ..FitOptions::default()
    };
    let (set, _) = fit(
        model.predictor_id().clone(),
        &train_s,
        &held_s,
        &opts,
        &k,
        &|_| {},
    )
    .unwrap();
    let set = PredictorSet::from_bytes(&set.to_bytes()).unwrap();
    let density: f64 = set
        .calibration
        .iter()
        .flatten()
        .map(|c| c.density)
        .sum::<f64>()
        / 30.0;
    println!("held-out predicted density at mass recall 0.999: {density:.3}");
    assert!(density < 1.0);

    let prompt = tok.encode("The capital of France is", false).unwrap();
    let greedy = |policy: &FfnPolicy, n: usize| -> (Vec<u32>, f64) {
        let mut s = Session::new(&model, k.clone(), 64).unwrap();
        let mut logits = s.forward(&prompt, policy).unwrap();
        s.reset_stats();
        let mut out = Vec::new();
        for _ in 0..n {
            let t = argmax(&logits);
            out.push(t);
            logits = s.forward(&[t], policy).unwrap();
        }
        (out, s.stats().density())
    };
    let policy = FfnPolicy::Predictor {
        set: Arc::new(set.clone()),
        gate_check: None,
    };
    // Keeping every neuron: bitwise the sparse path over all neurons, close to dense.
    let mut keep_all = set.clone();
    keep_all.layers.iter_mut().for_each(|p| p.set_tau(f32::MIN));
    let keep_all = FfnPolicy::Predictor {
        set: Arc::new(keep_all),
        gate_check: None,
    };
    let every = FfnPolicy::StaticHot {
        per_layer: vec![(0..1536).collect(); 30],
    };
    let logits = |p: &FfnPolicy| {
        Session::new(&model, k.clone(), 64)
            .unwrap()
            .forward_all(&prompt, p)
            .unwrap()
    };
    assert_eq!(logits(&keep_all), logits(&every));

    let (dense, _) = greedy(&FfnPolicy::Dense, 12);
    let (all, _) = greedy(&keep_all, 12);
    let (sparse, d) = greedy(&policy, 12);
    let prefix = |a: &[u32], b: &[u32]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    println!(
        "greedy tokens equal to dense: predictor {} of 12 at decode density {d:.3}; the sparse path over every neuron {} of 12; predictor vs that path {} of 12",
        prefix(&dense, &sparse),
        prefix(&dense, &all),
        prefix(&all, &sparse)
    );
    // Measured: " Paris.\n\nThe" (5 tokens) match dense, and so does the sparse path
    // over every neuron, which diverges at the same 6th token (small margin).
    assert!(
        prefix(&dense, &sparse) >= 5,
        "dense {dense:?} vs predictor {sparse:?}"
    );
    // The predictor itself adds no divergence: all 12 tokens equal that path's.
    assert_eq!(
        prefix(&all, &sparse),
        12,
        "every-neuron path {all:?} vs predictor {sparse:?}"
    );
    assert!(d < 1.0);

    // A predictor for other weights is refused with a typed error naming both models.
    let mut other = set;
    other.model.ffn_hash ^= 1;
    let policy = FfnPolicy::Predictor {
        set: Arc::new(other),
        gate_check: None,
    };
    let err = Session::new(&model, k.clone(), 64)
        .unwrap()
        .forward(&prompt, &policy)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Predictor(PredictorError::WrongModel { .. })
        ),
        "{err}"
    );
}

#[test]
fn the_top_k_oracle_keeps_exactly_its_share_and_equals_dense_when_keeping_all() {
    let model = Model::open(data("ref_llama_f32.gguf")).unwrap();
    let tokens = [3u32, 1, 4, 1, 5, 9, 2, 6];
    for batched in [false, true] {
        let run = |p: &FfnPolicy| logits_of(&model, &tokens, p, batched);
        let (dense, _) = run(&FfnPolicy::Dense);
        let (all, d) = run(&FfnPolicy::TopK { density: 1.0 });
        assert_eq!(d, 1.0);
        let err = rel_err(&all, &dense);
        assert!(err <= 1e-4, "batched {batched}: {err}");
        // 160 neurons: 40 per token at 25%, 80 at 50%.
        for target in [0.25f32, 0.5] {
            let (_, d) = run(&FfnPolicy::TopK { density: target });
            assert_eq!(d, f64::from(target), "batched {batched}");
        }
    }
    assert!(FfnPolicy::TopK { density: 0.0 }.validate(2, 160).is_err());
    assert!(FfnPolicy::TopK { density: 1.5 }.validate(2, 160).is_err());
}
