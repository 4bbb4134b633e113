//! Broken, truncated, mismatched and hostile Hugging Face checkpoints: each is a typed
//! error naming the file and the tensor or field, never a panic.

use std::path::{Path, PathBuf};

use powerinfer_core::hf::{HfCheckpoint, HfError};
use powerinfer_core::{Model, ModelError};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde_json::Value;

fn source(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hf")
        .join(name)
}

/// A scratch copy of checkpoint `name`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn of(name: &str, tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "powerinfer-hf-hostile-{}-{name}-{tag}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(source(name)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let path = self.path("config.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(v.as_object_mut().unwrap());
        std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
    }

    /// Rewrites `file`'s tensors through `edit` (name, dtype, shape, bytes).
    fn edit_tensors(
        &self,
        file: &str,
        edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
    ) {
        let path = self.path(file);
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut ts: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
            .collect();
        edit(&mut ts);
        let views: Vec<(String, TensorView<'_>)> = ts
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    fn open(&self) -> Result<HfCheckpoint, HfError> {
        HfCheckpoint::open(&self.0)
    }

    /// Opens and converts (where tensor-level checks happen).
    fn load(&self) -> Result<Model, ModelError> {
        Model::open(&self.0)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn names(file: &str, path: &Path) -> bool {
    file == path.display().to_string()
}

/// A safetensors file from a raw JSON header and `data` bytes.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn broken_safetensors_headers_are_typed_errors_naming_the_file() {
    type Expect = fn(&SafeTensorError) -> bool;
    let cases: [(&str, Vec<u8>, Expect); 5] = [
        ("truncated header", vec![1, 2, 3, 4, 5], |e| {
            matches!(e, SafeTensorError::HeaderTooSmall)
        }),
        (
            "header length past the file",
            {
                let mut b = 1000u64.to_le_bytes().to_vec();
                b.extend_from_slice(b"{}");
                b
            },
            |e| matches!(e, SafeTensorError::InvalidHeaderLength),
        ),
        (
            "overlapping tensor ranges",
            raw_safetensors(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
                &[0; 24],
            ),
            |e| matches!(e, SafeTensorError::InvalidOffset(_)),
        ),
        (
            "unknown dtype",
            raw_safetensors(
                r#"{"a":{"dtype":"Q9","shape":[4],"data_offsets":[0,16]}}"#,
                &[0; 16],
            ),
            |e| matches!(e, SafeTensorError::InvalidHeaderDeserialization(_)),
        ),
        (
            "data shorter than the header says",
            raw_safetensors(
                r#"{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}"#,
                &[0; 16],
            ),
            |e| matches!(e, SafeTensorError::MetadataIncompleteBuffer),
        ),
    ];
    for (what, bytes, expected) in cases {
        let s = Scratch::of("falcon", "header");
        let weights = s.path("model.safetensors");
        std::fs::write(&weights, bytes).unwrap();
        match s.open() {
            Err(HfError::Safetensors { file, source }) => {
                assert!(names(&file, &weights), "{what}: {file}");
                assert!(expected(&source), "{what}: {source:?}");
                println!("{what}: {}", HfError::Safetensors { file, source });
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn unsupported_dtypes_wrong_shapes_and_missing_tensors_name_the_tensor() {
    let s = Scratch::of("falcon", "dtype");
    s.edit_tensors("model.safetensors", |ts| {
        let t = ts
            .iter_mut()
            .find(|t| t.0 == "transformer.h.1.mlp.dense_4h_to_h.weight")
            .unwrap();
        t.1 = Dtype::I32;
    });
    match s.load() {
        Err(ModelError::Hf(HfError::Dtype {
            file,
            tensor,
            dtype,
        })) => {
            assert!(names(&file, &s.path("model.safetensors")));
            assert_eq!(
                (tensor.as_str(), dtype.as_str()),
                ("transformer.h.1.mlp.dense_4h_to_h.weight", "I32")
            );
        }
        other => panic!("{other:?}"),
    }

    let s = Scratch::of("falcon", "shape");
    s.edit_config(|c| {
        c.insert("ffn_hidden_size".into(), 96.into());
    });
    match s.load() {
        Err(ModelError::Hf(HfError::Shape {
            tensor,
            expected,
            found,
            ..
        })) => {
            assert_eq!(tensor, "transformer.h.0.mlp.dense_h_to_4h.weight");
            assert_eq!((expected, found), (vec![96, 64], vec![128, 64]));
        }
        other => panic!("{other:?}"),
    }

    let s = Scratch::of("mistral", "missing");
    s.edit_tensors("model.safetensors", |ts| {
        ts.retain(|t| t.0 != "lm_head.weight")
    });
    match s.load() {
        Err(ModelError::Hf(HfError::MissingTensor { tensor, .. })) => {
            assert_eq!(tensor, "lm_head.weight")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_config_fields_are_typed_errors_naming_the_field() {
    type Edit = fn(&mut serde_json::Map<String, Value>);
    let cases: [(&str, Edit); 9] = [
        ("hidden_size", |c| {
            c.remove("hidden_size");
        }),
        ("num_hidden_layers", |c| {
            c.insert("num_hidden_layers".into(), 1_000_000_000_000u64.into());
        }),
        ("num_attention_heads", |c| {
            c.insert("num_attention_heads".into(), "four".into());
        }),
        ("max_position_embeddings", |c| {
            c.insert("max_position_embeddings".into(), 0.into());
        }),
        ("intermediate_size", |c| {
            c.insert("intermediate_size".into(), (-3).into());
        }),
        ("rope_theta", |c| {
            c.insert("rope_theta".into(), (-1.0).into());
        }),
        ("num_key_value_heads", |c| {
            c.insert("num_key_value_heads".into(), 3.into());
        }),
        ("hidden_act", |c| {
            c.insert("hidden_act".into(), "tanh".into());
        }),
        ("rope_scaling", |c| {
            c.insert(
                "rope_scaling".into(),
                serde_json::json!({"type": "linear", "factor": 2.0}),
            );
        }),
    ];
    for (key, edit) in cases {
        let s = Scratch::of("mistral", "config");
        s.edit_config(edit);
        match s.open() {
            Err(HfError::Config {
                file,
                key: k,
                problem,
            }) => {
                assert!(names(&file, &s.path("config.json")), "{file}");
                assert_eq!(k, key, "{problem}");
                println!("{key}: {problem}");
            }
            other => panic!("{key}: {other:?}"),
        }
    }
    let s = Scratch::of("mistral", "model-type");
    s.edit_config(|c| {
        c.insert("model_type".into(), "gpt_neox".into());
        c.insert(
            "architectures".into(),
            serde_json::json!(["GPTNeoXForCausalLM"]),
        );
    });
    assert!(matches!(s.open(), Err(HfError::UnsupportedModel { .. })));
    let s = Scratch::of("mistral", "not-json");
    std::fs::write(s.path("config.json"), "{\"model_type\": ").unwrap();
    assert!(matches!(s.open(), Err(HfError::Json { .. })));
    let s = Scratch::of("mistral", "no-config");
    std::fs::remove_file(s.path("config.json")).unwrap();
    assert!(matches!(s.open(), Err(HfError::Io { .. })));
}

#[test]
fn shard_and_index_problems_name_the_shard_and_tensor() {
    let index = "model.safetensors.index.json";
    let edit_index = |s: &Scratch, edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let path = s.path(index);
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(v["weight_map"].as_object_mut().unwrap());
        std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
    };

    let s = Scratch::of("llama", "missing-shard");
    let shard2 = s.path("model-00002-of-00002.safetensors");
    std::fs::remove_file(&shard2).unwrap();
    match s.open() {
        Err(HfError::Io { file, source }) => {
            assert!(names(&file, &shard2));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }

    let s = Scratch::of("llama", "not-in-shard");
    edit_index(&s, &|m| {
        m.insert(
            "model.layers.7.mlp.up_proj.weight".into(),
            "model-00001-of-00002.safetensors".into(),
        );
    });
    match s.open() {
        Err(HfError::NotInShard { tensor, shard, .. }) => {
            assert_eq!(tensor, "model.layers.7.mlp.up_proj.weight");
            assert_eq!(shard, "model-00001-of-00002.safetensors");
        }
        other => panic!("{other:?}"),
    }

    let s = Scratch::of("llama", "escape");
    edit_index(&s, &|m| {
        m.insert("model.norm.weight".into(), "../../etc/passwd".into());
    });
    assert!(matches!(s.open(), Err(HfError::Json { .. })));

    let s = Scratch::of("llama", "duplicate");
    // Shard 2 also carries a tensor of shard 1.
    let first = std::fs::read(s.path("model-00001-of-00002.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&first).unwrap();
    let emb = st.tensor("model.embed_tokens.weight").unwrap();
    let (shape, data) = (emb.shape().to_vec(), emb.data().to_vec());
    s.edit_tensors("model-00002-of-00002.safetensors", |ts| {
        ts.push(("model.embed_tokens.weight".into(), Dtype::F16, shape, data));
    });
    match s.open() {
        Err(HfError::DuplicateTensor { tensor, .. }) => {
            assert_eq!(tensor, "model.embed_tokens.weight")
        }
        other => panic!("{other:?}"),
    }

    let s = Scratch::of("llama", "no-weights");
    for f in [
        index,
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        std::fs::remove_file(s.path(f)).unwrap();
    }
    assert!(matches!(s.open(), Err(HfError::NoWeights { .. })));
}

#[test]
fn a_refused_tokenizer_json_keeps_the_weights_loadable_and_fails_the_engine() {
    use powerinfer_core::engine::{Engine, EngineError, EngineOptions};
    let s = Scratch::of("falcon", "tokenizer");
    std::fs::write(
        s.path("tokenizer.json"),
        r#"{"model": {"type": "WordPiece", "vocab": {"a": 0}}}"#,
    )
    .unwrap();
    let ck = s.open().unwrap();
    let err = ck.tokenizer_error().expect("refused").to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    assert!(!ck.has_tokenizer());
    // The weights alone still load and run.
    let model = s.load().unwrap();
    assert_eq!(model.config().n_layers, 2);
    match Engine::load(&s.0, &EngineOptions::default()) {
        Err(EngineError::Tokenizer(e)) => assert_eq!(e.to_string(), err),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("an engine without a tokenizer"),
    }
    // No tokenizer.json at all: also a tokenizer error from the engine.
    std::fs::remove_file(s.path("tokenizer.json")).unwrap();
    assert!(matches!(
        Engine::load(&s.0, &EngineOptions::default()),
        Err(EngineError::Tokenizer(_))
    ));
}
