//! Stats and predictor files: round trips, and damaged or foreign files refused with
//! typed errors.

mod common;

use common::{DIM, N_FF, Rule, model_id};
use powerinfer_predictor::{
    ActivationStats, ActiveRule, Calibration, FileProblem, LayerPredictor, OperatingPoint,
    PredictorError, PredictorInput, PredictorSet, RecallKind,
};
use proptest::prelude::*;

fn stats() -> ActivationStats {
    let mut s = ActivationStats::new(model_id(2), ActiveRule::TopDensity(0.25)).unwrap();
    for t in 0..50 {
        for l in 0..2 {
            let a: Vec<f32> = (0..N_FF)
                .map(|i| (t as f32 * 0.7 + i as f32 * 1.3 + l as f32).sin())
                .collect();
            s.record(l, &a).unwrap();
        }
    }
    s
}

fn set() -> PredictorSet {
    let layer = |rank: usize, seed: usize| {
        let w1: Vec<f32> = (0..rank * DIM)
            .map(|i| ((i * 7 + seed) % 13) as f32 / 13.0 - 0.5)
            .collect();
        let w2: Vec<f32> = (0..N_FF * rank)
            .map(|i| ((i * 5 + seed) % 11) as f32 / 11.0 - 0.5)
            .collect();
        LayerPredictor::from_f32(
            PredictorInput::FfnNorm,
            DIM,
            rank,
            N_FF,
            &w1,
            vec![0.1; rank],
            &w2,
            vec![-0.2; N_FF],
            0.5,
        )
        .unwrap()
    };
    PredictorSet {
        model: model_id(2),
        rule: ActiveRule::TopDensity(0.5),
        point: OperatingPoint {
            recall_kind: RecallKind::Mass,
            recall: 0.97,
            quality_budget: Some(0.05),
            ppl_ratio: None,
        },
        layers: vec![layer(32, 1), layer(16, 2)],
        calibration: vec![
            Some(Calibration {
                tau: 0.5,
                event_recall: 0.9,
                mass_recall: 0.97,
                precision: 0.6,
                density: 0.7,
            }),
            None,
        ],
    }
}

#[test]
fn stats_round_trip_and_summary() {
    let s = stats();
    let back = ActivationStats::from_bytes(&s.to_bytes()).unwrap();
    assert_eq!(s, back);
    let sum = s.summary(0);
    assert!((sum.mean_density - 0.25).abs() < 0.02, "{sum:?}");
    assert!(sum.event_share.windows(2).all(|w| w[0] <= w[1]));
    assert!(sum.mass_share[4] >= 0.5 && sum.mass_share[4] <= 1.0);
    let path = std::env::temp_dir().join(format!("pistats-{}.bin", std::process::id()));
    s.save(&path).unwrap();
    assert_eq!(ActivationStats::load(&path).unwrap(), s);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn predictor_round_trip_and_prediction_survive_the_file() {
    let p = set();
    let back = PredictorSet::from_bytes(&p.to_bytes()).unwrap();
    assert_eq!(p, back);
    let x: Vec<f32> = (0..DIM).map(|i| (i as f32 * 0.3).sin()).collect();
    let k = powerinfer_kernels::Kernels::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    p.layers[0]
        .predict(&k, &x, &mut Default::default(), &mut a)
        .unwrap();
    back.layers[0]
        .predict(&k, &x, &mut Default::default(), &mut b)
        .unwrap();
    assert_eq!(a, b);
}

fn assert_file_error(r: Result<impl std::fmt::Debug, PredictorError>, what: &str) {
    match r {
        Err(PredictorError::File { .. }) => {}
        other => panic!("{what}: expected a file error, got {other:?}"),
    }
}

#[test]
fn every_truncation_is_refused() {
    for bytes in [stats().to_bytes(), set().to_bytes()] {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            assert_file_error(ActivationStats::from_bytes(cut), "stats");
            assert_file_error(PredictorSet::from_bytes(cut), "predictor");
        }
    }
}

#[test]
fn every_bit_flip_is_refused() {
    let bytes = set().to_bytes();
    // Every bit of the header, and a stride of bits through the payload.
    let bits = (0..24 * 8).chain((24 * 8..bytes.len() * 8).step_by(97));
    for bit in bits {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert_file_error(PredictorSet::from_bytes(&b), "predictor");
    }
    let bytes = stats().to_bytes();
    for bit in (0..bytes.len() * 8).step_by(61) {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert_file_error(ActivationStats::from_bytes(&b), "stats");
    }
}

#[test]
fn a_stats_file_is_not_a_predictor_file() {
    match PredictorSet::from_bytes(&stats().to_bytes()) {
        Err(PredictorError::File {
            problem: FileProblem::BadMagic,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_predictor_for_another_model_is_refused_naming_both() {
    let p = set();
    let mut other = model_id(2);
    other.ffn_hash ^= 1;
    let err = p.check_model(&other, "x.predictor").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PredictorError::WrongModel { .. }));
    assert!(
        msg.contains("x.predictor") && msg.contains("12345678") && msg.contains("12345679"),
        "{msg}"
    );
    let mut shape = model_id(2);
    shape.n_ff += 1;
    assert!(p.check_model(&shape, "x").is_err());
    assert!(p.check_model(&model_id(3), "x").is_err());
    p.check_model(&model_id(2), "x").unwrap();
}

#[test]
fn a_synthetic_layer_trains_into_a_file_that_loads() {
    // End to end on real training output (a small run).
    let rule = Rule::new(3);
    let data = rule.samples(300, 1, false);
    let net = powerinfer_predictor::train(
        &data,
        &powerinfer_predictor::TrainOptions {
            rank: 16,
            epochs: 2,
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let mut s = set();
    s.layers[1] = net.deploy(PredictorInput::FfnNorm, 0.1).unwrap();
    assert_eq!(PredictorSet::from_bytes(&s.to_bytes()).unwrap(), s);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn mutated_files_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        for bytes in [stats().to_bytes(), set().to_bytes()] {
            let mut b = bytes.clone();
            let i = pos.index(b.len());
            b[i] = byte;
            b.truncate(cut.index(b.len() + 1).max(i));
            let _ = PredictorSet::from_bytes(&b);
            let _ = ActivationStats::from_bytes(&b);
        }
    }
}
