//! Writes a seed corpus for every target under `fuzz/corpus/<target>/`: valid files of
//! each format (small reference models, a plan, a predictor set, stats) for the fuzzer to
//! mutate, so it starts deep inside the parsers rather than at the magic number.

use std::path::{Path, PathBuf};

use powerinfer_core::gguf::{GgufWriter, Value};
use powerinfer_placement::{PlacementInput, PlacementProblem, SyntheticModel, solve_greedy};
use powerinfer_predictor::{
    ActivationStats, ActiveRule, LayerPredictor, ModelId, OperatingPoint, PredictorInput,
    PredictorSet, RecallKind,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");

    // GGUF: the reference models the test suite checks against numpy, and a tokenizer.
    let data = root.join("../crates/powerinfer-core/tests/data");
    for entry in std::fs::read_dir(&data).expect("core test data") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "gguf") {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            write(
                &corpus.join("gguf"),
                &name,
                &std::fs::read(&path).expect("model"),
            );
        }
    }
    let mut w = GgufWriter::new();
    w.add("tokenizer.ggml.model", "gpt2");
    w.add(
        "tokenizer.ggml.tokens",
        Value::string_array(["a", "b", "ab", "<|im_start|>"]),
    );
    w.add("tokenizer.ggml.merges", Value::string_array(["a b"]));
    write(
        &corpus.join("gguf"),
        "tokenizer.gguf",
        &w.to_bytes().expect("gguf"),
    );

    // A plan for a small synthetic model.
    let model = SyntheticModel {
        layers: 3,
        neurons: 64,
        hidden: 32,
        kv_dim: 16,
        vocab: 100,
        skew: (0.8, 1.2),
        seed: 7,
    };
    let (activity, bytes_per_neuron, dense) = model.profile();
    let total: u64 = bytes_per_neuron.iter().sum::<u64>() * 64;
    let problem = PlacementProblem::new(PlacementInput {
        activity,
        bytes_per_neuron,
        dense,
        accelerator_bytes: total / 2,
        reservations: Vec::new(),
        min_neurons_per_layer: 8,
        group_size: 4,
    })
    .expect("problem");
    let plan = solve_greedy(&problem).to_bytes();
    for control in [0u8, 1] {
        write(
            &corpus.join("plan"),
            &format!("synthetic{control}.plan"),
            &[[control].as_slice(), &plan].concat(),
        );
    }

    // A predictor set and activation stats (the target's first byte picks the format).
    let id = ModelId {
        arch: "llama".into(),
        n_layers: 2,
        dim: 16,
        n_ff: 24,
        ffn_hash: 0xDEAD_BEEF,
    };
    let layer = |rank: usize| {
        let w1: Vec<f32> = (0..rank * 16).map(|i| (i % 7) as f32 / 7.0 - 0.5).collect();
        let w2: Vec<f32> = (0..24 * rank).map(|i| (i % 5) as f32 / 5.0 - 0.5).collect();
        LayerPredictor::from_f32(
            PredictorInput::FfnNorm,
            16,
            rank,
            24,
            &w1,
            vec![0.1; rank],
            &w2,
            vec![-0.2; 24],
            0.5,
        )
        .expect("layer")
    };
    let set = PredictorSet {
        model: id.clone(),
        rule: ActiveRule::TopDensity(0.5),
        point: OperatingPoint {
            recall_kind: RecallKind::Mass,
            recall: 0.95,
            quality_budget: None,
            ppl_ratio: None,
        },
        layers: vec![layer(8), layer(4)],
        calibration: vec![None, None],
    };
    for control in [0u8, 2] {
        write(
            &corpus.join("predictor"),
            &format!("set{control}"),
            &[[control].as_slice(), &set.to_bytes()].concat(),
        );
    }
    let mut stats = ActivationStats::new(id, ActiveRule::NonZero).expect("stats");
    for t in 0..20 {
        for l in 0..2 {
            let a: Vec<f32> = (0..24)
                .map(|i| ((t * 3 + i + l) % 4) as f32 - 1.5)
                .collect();
            stats.record(l, &a).expect("record");
        }
    }
    for control in [1u8, 3] {
        write(
            &corpus.join("predictor"),
            &format!("stats{control}"),
            &[[control].as_slice(), &stats.to_bytes()].concat(),
        );
    }

    // Tokenizer: text with specials, CJK, emoji, a long identifier.
    for (i, text) in [
        "Hello world",
        "<|im_start|>user\nhi<|im_end|>",
        "日本語のテキスト 🇫🇷 😀",
        "a_very_long_identifier_without_any_breaks_at_all_123456",
    ]
    .iter()
    .enumerate()
    {
        write(
            &corpus.join("tokenizer"),
            &format!("text{i}"),
            text.as_bytes(),
        );
    }
    println!("seeds written under {}", corpus.display());
}
