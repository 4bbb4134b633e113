//! Model loading errors, session limits and FFN policies on the small reference models.

use std::path::PathBuf;

use powerinfer_core::gguf::{GgufFile, GgufWriter, Value};
use powerinfer_core::{FfnPolicy, Model, ModelError, Session};
use powerinfer_kernels::Kernels;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Rewrites a reference model, letting `edit` change metadata and drop or reshape
/// tensors, and loads the result.
fn rewritten(
    src: &str,
    meta: impl Fn(&str, &Value) -> Option<Value>,
    tensor: impl Fn(&str, &[u64]) -> Option<Vec<u64>>,
) -> Result<Model, ModelError> {
    let f = GgufFile::open(data(src)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        if let Some(v) = meta(k, v) {
            w.add(k, v);
        }
    }
    for t in f.tensors() {
        if let Some(dims) = tensor(&t.name, &t.dims) {
            w.add_tensor(&t.name, &dims, t.wtype, f.tensor_data(t).to_vec())
                .unwrap();
        }
    }
    Model::from_gguf(GgufFile::from_bytes(&w.to_bytes().unwrap()).unwrap())
}

fn keep_meta(_: &str, v: &Value) -> Option<Value> {
    Some(v.clone())
}

fn keep_tensor(_: &str, d: &[u64]) -> Option<Vec<u64>> {
    Some(d.to_vec())
}

#[test]
fn a_faithful_rewrite_loads() {
    assert!(rewritten("ref_llama_f32.gguf", keep_meta, keep_tensor).is_ok());
}

#[test]
fn missing_tensor_is_named() {
    let e = rewritten("ref_opt.gguf", keep_meta, |n, d| {
        (n != "blk.1.ffn_up.bias").then(|| d.to_vec())
    })
    .unwrap_err();
    assert!(
        matches!(&e, ModelError::MissingTensor { tensor, .. } if tensor == "blk.1.ffn_up.bias"),
        "{e}"
    );
    let e = rewritten("ref_llama_q.gguf", keep_meta, |n, d| {
        (n != "blk.0.ffn_gate.weight").then(|| d.to_vec())
    })
    .unwrap_err();
    assert!(e.to_string().contains("blk.0.ffn_gate.weight"), "{e}");
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    // 64×64 q projection re-declared as 32×128 (same bytes, wrong shape).
    let e = rewritten("ref_llama_f32.gguf", keep_meta, |n, d| {
        Some(if n == "blk.0.attn_q.weight" {
            vec![32, 128]
        } else {
            d.to_vec()
        })
    })
    .unwrap_err();
    match e {
        ModelError::Shape {
            tensor,
            expected,
            found,
            ..
        } => {
            assert_eq!(tensor, "blk.0.attn_q.weight");
            assert_eq!((expected, found), (vec![64, 64], vec![32, 128]));
        }
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn bad_config_values_are_typed_errors() {
    let arch = rewritten(
        "ref_llama_f32.gguf",
        |k, v| {
            Some(if k == "general.architecture" {
                Value::from("gptj")
            } else {
                v.clone()
            })
        },
        keep_tensor,
    )
    .unwrap_err();
    assert!(
        matches!(arch, ModelError::UnsupportedArch { ref arch, .. } if arch == "gptj"),
        "{arch}"
    );
    let heads = rewritten(
        "ref_llama_f32.gguf",
        |k, v| {
            Some(if k == "llama.attention.head_count" {
                Value::U32(3)
            } else {
                v.clone()
            })
        },
        keep_tensor,
    )
    .unwrap_err();
    assert!(matches!(heads, ModelError::Config { .. }), "{heads}");
    let act = rewritten(
        "ref_relu_llama.gguf",
        |k, v| {
            Some(if k == "powerinfer.ffn_activation" {
                Value::from("gelu")
            } else {
                v.clone()
            })
        },
        keep_tensor,
    )
    .unwrap_err();
    assert!(act.to_string().contains("gelu"), "{act}");
    let missing = rewritten(
        "ref_llama_f32.gguf",
        |k, v| (k != "llama.block_count").then(|| v.clone()),
        keep_tensor,
    )
    .unwrap_err();
    assert!(
        missing.to_string().contains("llama.block_count"),
        "{missing}"
    );
}

#[test]
fn session_limits_are_errors_not_panics() {
    let model = Model::open(data("ref_llama_f32.gguf")).unwrap();
    let mut s = Session::new(&model, Kernels::new(), 8).unwrap();
    assert!(matches!(
        s.forward(&[1, 96], &FfnPolicy::Dense),
        Err(ModelError::BadToken { id: 96, vocab: 96 })
    ));
    assert_eq!(s.pos(), 0, "a failed call leaves the cache as it was");
    assert!(matches!(
        s.forward(&[1; 9], &FfnPolicy::Dense),
        Err(ModelError::ContextFull {
            needed: 9,
            ctx_len: 8
        })
    ));
    s.forward(&[1; 8], &FfnPolicy::Dense).unwrap();
    assert!(matches!(
        s.forward(&[1], &FfnPolicy::Dense),
        Err(ModelError::ContextFull { .. })
    ));
    s.truncate(4);
    assert_eq!(s.pos(), 4);
    assert!(s.forward(&[1], &FfnPolicy::Dense).is_ok());
}

#[test]
fn policies_are_validated_against_the_model() {
    let model = Model::open(data("ref_relu_llama.gguf")).unwrap();
    let mut s = Session::new(&model, Kernels::new(), 8).unwrap();
    let bad = [
        FfnPolicy::Threshold {
            per_layer: vec![0.1],
        },
        FfnPolicy::Oracle {
            threshold: f32::NAN,
        },
        FfnPolicy::StaticHot {
            per_layer: vec![vec![3, 2], vec![]],
        },
        FfnPolicy::StaticHot {
            per_layer: vec![vec![160], vec![]],
        },
    ];
    for p in bad {
        assert!(
            matches!(s.forward(&[1], &p), Err(ModelError::Policy(_))),
            "{p:?}"
        );
    }
}

#[test]
fn static_hot_with_every_neuron_equals_the_oracle_and_subsets_compute_less() {
    let model = Model::open(data("ref_relu_llama.gguf")).unwrap();
    let all: Vec<u32> = (0..160).collect();
    let half: Vec<u32> = (0..160).filter(|i| i % 2 == 0).collect();
    let toks = [1u32, 17, 42, 5, 88];
    let run = |p: &FfnPolicy| {
        let mut s = Session::new(&model, Kernels::new(), 8).unwrap();
        let l: Vec<f32> = toks
            .iter()
            .flat_map(|&t| s.forward(&[t], p).unwrap())
            .collect();
        (l, s.stats().density())
    };
    let (dense, _) = run(&FfnPolicy::Dense);
    let (oracle, _) = run(&FfnPolicy::Oracle { threshold: 0.0 });
    let (hot_all, d_all) = run(&FfnPolicy::StaticHot {
        per_layer: vec![all.clone(), all],
    });
    // Same fused kernel: adding the zero rows the oracle skips changes nothing.
    assert_eq!(oracle, hot_all);
    // Dense reads the stored down matrix (another summation order).
    let err = dense
        .iter()
        .zip(&hot_all)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-4, "dense vs all-hot: {err}");
    assert_eq!(d_all, 1.0);
    let (hot_half, d_half) = run(&FfnPolicy::StaticHot {
        per_layer: vec![half.clone(), half],
    });
    assert_eq!(d_half, 0.5);
    assert_ne!(
        dense, hot_half,
        "dropping half the neurons changes the output"
    );
}

/// Mutation test over valid model files: every byte of the header (metadata and tensor
/// table) of two reference models, set to 0x00, 0xFF and flipped in its low bit, gives a
/// model or a typed error naming the file; never a panic (a panic fails the test) and
/// never an allocation sized by an unchecked field (that would abort it).
#[test]
fn every_header_byte_mutation_gives_a_model_or_a_named_error() {
    for name in ["ref_llama_q.gguf", "ref_opt.gguf"] {
        let bytes = std::fs::read(data(name)).unwrap();
        let f = GgufFile::from_bytes(&bytes).unwrap();
        let header = f.data_start();
        let (mut loaded, mut refused) = (0, 0);
        for at in 0..header {
            for op in [|_: u8| 0x00, |_: u8| 0xFF, |b: u8| b ^ 1] {
                let mut m = bytes.clone();
                m[at] = op(m[at]);
                if m == bytes {
                    continue;
                }
                let result = GgufFile::from_bytes(&m)
                    .map_err(ModelError::from)
                    .and_then(Model::from_gguf);
                match result {
                    Ok(model) => {
                        // A model that loads must also run a token or refuse it cleanly.
                        let mut s = Session::new(&model, Kernels::new(), 4).unwrap();
                        let _ = s.forward(&[1], &FfnPolicy::Dense);
                        loaded += 1;
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(!msg.is_empty(), "{name} byte {at}");
                        refused += 1;
                    }
                }
            }
        }
        assert!(
            refused > header,
            "{name}: {refused} refused of {}",
            3 * header
        );
        eprintln!("{name}: {header} header bytes, {loaded} mutants loaded, {refused} refused");
    }
}
