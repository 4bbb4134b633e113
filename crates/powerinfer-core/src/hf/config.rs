//! `config.json`: which architecture a checkpoint is and its hyper-parameters.
//!
//! Why our own reader over a JSON value: the configs of different `transformers`
//! versions name and default fields differently (Falcon's `n_head` / `num_attention_heads`,
//! its `multi_query` / `num_kv_heads`), and every missing, mistyped or absurd field
//! must come back as an error naming it, not a panic or a silent default.

use serde_json::{Map, Value as Json};

use powerinfer_kernels::Activation;

use super::HfError;
use crate::ModelError;
use crate::config::{Arch, ModelConfig, RopeStyle, SlidingWindow};

/// Largest count a config may give (layers, heads, dims, vocab, context): 2²⁴.
const MAX_COUNT: u64 = 1 << 24;

/// How a Falcon block splits its fused `query_key_value` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QkvLayout {
    /// `new_decoder_architecture`: per KV group, its query heads, then k, then v.
    Grouped,
    /// Falcon-7B's `multi_query`: all query heads, then one k head, then one v head.
    MultiQuery,
    /// Old architecture without `multi_query`: per head, its q, k and v.
    Interleaved,
}

/// The architecture-specific parts of a checkpoint's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// `model.layers.N.{self_attn,mlp}` (LLaMA, ReLU-LLaMA, Mistral, Bamboo): q and k
    /// need llama.cpp's rotary permutation for our adjacent-pair RoPE.
    Llama {
        /// q/k/v carry biases (`attention_bias`).
        attn_bias: bool,
    },
    /// `model.decoder.layers.N` (OPT).
    Opt,
    /// `transformer.h.N` (Falcon).
    Falcon {
        /// Split of the fused qkv rows.
        qkv: QkvLayout,
        /// Separate norms for attention and MLP (`ln_attn`, `ln_mlp`).
        two_norms: bool,
        /// Projections carry biases (`bias`).
        bias: bool,
    },
}

/// What the converter needs from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HfConfig {
    /// The file (for errors).
    pub file: String,
    /// Tensor layout.
    pub family: Family,
    /// `model_type` as written.
    pub model_type: String,
    /// The hyper-parameters, as the converted GGUF states them.
    pub model: ModelConfig,
    /// The output head is the embedding (no `lm_head.weight` is read).
    pub tied: bool,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
}

/// Field access with errors naming the file and field.
struct Fields<'a> {
    file: &'a str,
    map: &'a Map<String, Json>,
}

impl Fields<'_> {
    fn err(&self, key: &str, problem: impl Into<String>) -> HfError {
        HfError::Config {
            file: self.file.to_string(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// The first of `keys` that is present and not null.
    fn find<'k>(&self, keys: &[&'k str]) -> Option<(&'k str, &Json)> {
        keys.iter()
            .find_map(|k| self.map.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
    }

    /// A count in `1..=2²⁴` under one of `keys`, or `default` when none is given.
    fn count_or(&self, keys: &[&str], default: Option<usize>) -> Result<usize, HfError> {
        let Some((key, v)) = self.find(keys) else {
            return default.ok_or_else(|| self.err(keys.join("|").as_str(), "missing"));
        };
        match v.as_u64() {
            Some(n) if (1..=MAX_COUNT).contains(&n) => Ok(n as usize),
            Some(n) => Err(self.err(key, format!("{n} is out of range 1..={MAX_COUNT}"))),
            None => Err(self.err(key, format!("{v} is not a positive integer"))),
        }
    }

    fn count(&self, keys: &[&str]) -> Result<usize, HfError> {
        self.count_or(keys, None)
    }

    /// A positive finite number under `key`, or `default`.
    fn positive(&self, key: &str, default: f64) -> Result<f32, HfError> {
        let Some((_, v)) = self.find(&[key]) else {
            return Ok(default as f32);
        };
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 && x < f64::from(f32::MAX) => Ok(x as f32),
            _ => Err(self.err(key, format!("{v} is not a positive finite number"))),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, HfError> {
        match self.find(&[key]) {
            None => Ok(default),
            Some((_, v)) => v
                .as_bool()
                .ok_or_else(|| self.err(key, format!("{v} is not true or false"))),
        }
    }

    fn string(&self, key: &str, default: &'static str) -> Result<String, HfError> {
        match self.find(&[key]) {
            None => Ok(default.to_string()),
            Some((_, v)) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| self.err(key, format!("{v} is not a string"))),
        }
    }

    /// Fails unless `key` is absent, null, or `ok`.
    fn require(&self, key: &str, ok: &Json, why: &str) -> Result<(), HfError> {
        match self.find(&[key]) {
            Some((_, v)) if v != ok => Err(self.err(key, format!("{v}: {why}"))),
            _ => Ok(()),
        }
    }

    /// A token id (`bos_token_id`; a list takes its first).
    fn token(&self, key: &str) -> Result<Option<u32>, HfError> {
        let v = match self.find(&[key]) {
            None => return Ok(None),
            Some((_, Json::Array(a))) => match a.first() {
                None => return Ok(None),
                Some(v) => v,
            },
            Some((_, v)) => v,
        };
        v.as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .map(Some)
            .ok_or_else(|| self.err(key, format!("{v} is not a token id")))
    }
}

impl HfConfig {
    /// Parses the text of `config.json` (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<HfConfig, HfError> {
        let json: Json = serde_json::from_str(text).map_err(|e| HfError::Json {
            file: file.to_string(),
            problem: format!("not JSON: {e}"),
        })?;
        let map = json.as_object().ok_or_else(|| HfError::Json {
            file: file.to_string(),
            problem: "not a JSON object".into(),
        })?;
        let f = Fields { file, map };
        let model_type = f.string("model_type", "")?;
        let architectures: Vec<&str> = map
            .get("architectures")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let bamboo = model_type == "bamboo" || architectures.contains(&"BambooForCausalLM");
        let cfg = match model_type.as_str() {
            _ if bamboo => llama_like(&f, Arch::Bamboo)?,
            "llama" | "mistral" => llama_like(&f, Arch::Llama)?,
            "opt" => opt(&f)?,
            "falcon" | "RefinedWeb" | "RefinedWebModel" => falcon(&f)?,
            _ => {
                return Err(HfError::UnsupportedModel {
                    file: file.to_string(),
                    model: format!("{model_type} {architectures:?}"),
                });
            }
        };
        cfg.checked()
    }

    /// Cross-field checks in `config.json`'s terms (KV heads divide the heads, an even
    /// head dimension), then the checks every model config gets.
    fn checked(self) -> Result<HfConfig, HfError> {
        let err = |key: &str, problem: String| HfError::Config {
            file: self.file.clone(),
            key: key.to_string(),
            problem,
        };
        let m = &self.model;
        if !m.n_heads.is_multiple_of(m.n_kv_heads) {
            return Err(err(
                "num_key_value_heads",
                format!(
                    "{} does not divide the {} attention heads",
                    m.n_kv_heads, m.n_heads
                ),
            ));
        }
        if !m.head_dim.is_multiple_of(2) && m.arch != Arch::Opt {
            return Err(err(
                "head_dim",
                format!("RoPE needs an even head dimension, got {}", m.head_dim),
            ));
        }
        let model = self
            .model
            .clone()
            .validated(&self.file)
            .map_err(|e| match e {
                ModelError::Config { key, problem, .. } => err(&key, problem),
                other => err("config", other.to_string()),
            })?;
        Ok(HfConfig { model, ..self })
    }
}

/// The head dimension: `head_dim` when given, else `hidden_size / heads` (which must
/// divide).
fn head_dim(f: &Fields<'_>, dim: usize, n_heads: usize) -> Result<usize, HfError> {
    if f.find(&["head_dim"]).is_some() {
        return f.count(&["head_dim"]);
    }
    if !dim.is_multiple_of(n_heads) {
        return Err(f.err(
            "num_attention_heads",
            format!("{n_heads} does not divide hidden_size {dim}"),
        ));
    }
    Ok(dim / n_heads)
}

/// LLaMA, ReLU-LLaMA, Mistral and Bamboo.
fn llama_like(f: &Fields<'_>, arch: Arch) -> Result<HfConfig, HfError> {
    let dim = f.count(&["hidden_size"])?;
    let n_heads = f.count(&["num_attention_heads"])?;
    let ctx_len = f.count(&["max_position_embeddings"])?;
    f.require("rope_scaling", &Json::Null, "RoPE scaling is not supported")?;
    f.require(
        "mlp_bias",
        &Json::Bool(false),
        "biases on the MLP are not supported",
    )?;
    let act = f.string("hidden_act", "silu")?;
    let activation = match (arch, act.as_str()) {
        (Arch::Bamboo, "relu") => Activation::DRelu,
        (Arch::Llama, "silu") => Activation::SwiGlu,
        (Arch::Llama, "relu") => Activation::ReGlu,
        _ => {
            return Err(f.err(
                "hidden_act",
                format!("{act:?} is not supported for {}", arch.name()),
            ));
        }
    };
    let sliding_window = match f.find(&["sliding_window"]) {
        None => None,
        Some(_) => Some(f.count(&["sliding_window"])?).filter(|&w| w < ctx_len),
    };
    let rope_base = f.positive("rope_theta", 10_000.0)?;
    Ok(HfConfig {
        file: f.file.to_string(),
        family: Family::Llama {
            attn_bias: f.flag("attention_bias", false)?,
        },
        model_type: f.string("model_type", "")?,
        tied: f.flag("tie_word_embeddings", false)?,
        bos: f.token("bos_token_id")?,
        eos: f.token("eos_token_id")?,
        model: ModelConfig {
            arch,
            n_layers: f.count(&["num_hidden_layers"])?,
            dim,
            n_ff: f.count(&["intermediate_size"])?,
            n_heads,
            n_kv_heads: f.count_or(&["num_key_value_heads"], Some(n_heads))?,
            head_dim: head_dim(f, dim, n_heads)?,
            vocab: f.count(&["vocab_size"])?,
            ctx_len,
            norm_eps: f.positive("rms_norm_eps", 1e-6)?,
            rope_base,
            activation,
            // HF's q/k rows are permuted for adjacent pairs when converted.
            rope_style: RopeStyle::Adjacent,
            sliding_window: sliding_window.map(|window| SlidingWindow {
                window,
                period: usize::MAX,
                rope_base,
            }),
            embed_scale: 1.0,
        },
    })
}

/// OPT (pre-LayerNorm, `word_embed_proj_dim` = `hidden_size`, biased).
fn opt(f: &Fields<'_>) -> Result<HfConfig, HfError> {
    let dim = f.count(&["hidden_size"])?;
    let n_heads = f.count(&["num_attention_heads"])?;
    f.require(
        "do_layer_norm_before",
        &Json::Bool(true),
        "post-LayerNorm OPT (350m) is not supported",
    )?;
    f.require(
        "enable_bias",
        &Json::Bool(true),
        "OPT without biases is not supported",
    )?;
    f.require(
        "layer_norm_elementwise_affine",
        &Json::Bool(true),
        "LayerNorm without weights is not supported",
    )?;
    if f.count_or(&["word_embed_proj_dim"], Some(dim))? != dim {
        return Err(f.err(
            "word_embed_proj_dim",
            "an embedding projection (word_embed_proj_dim ≠ hidden_size) is not supported",
        ));
    }
    let act = f.string("activation_function", "relu")?;
    if act != "relu" {
        return Err(f.err(
            "activation_function",
            format!("{act:?} is not supported for opt"),
        ));
    }
    Ok(HfConfig {
        file: f.file.to_string(),
        family: Family::Opt,
        model_type: "opt".into(),
        tied: f.flag("tie_word_embeddings", true)?,
        bos: f.token("bos_token_id")?,
        eos: f.token("eos_token_id")?,
        model: ModelConfig {
            arch: Arch::Opt,
            n_layers: f.count(&["num_hidden_layers"])?,
            dim,
            n_ff: f.count(&["ffn_dim"])?,
            n_heads,
            n_kv_heads: n_heads,
            head_dim: head_dim(f, dim, n_heads)?,
            vocab: f.count(&["vocab_size"])?,
            ctx_len: f.count(&["max_position_embeddings"])?,
            // `nn.LayerNorm`'s default: OPT's config has no epsilon.
            norm_eps: 1e-5,
            rope_base: 10_000.0,
            activation: Activation::Relu,
            rope_style: RopeStyle::Adjacent,
            sliding_window: None,
            embed_scale: 1.0,
        },
    })
}

/// Falcon (7B's multi-query layout, 40B's grouped one, ReLU-Falcon).
fn falcon(f: &Fields<'_>) -> Result<HfConfig, HfError> {
    let dim = f.count(&["hidden_size"])?;
    let n_heads = f.count(&["num_attention_heads", "n_head"])?;
    f.require("alibi", &Json::Bool(false), "ALiBi Falcon is not supported")?;
    f.require(
        "parallel_attn",
        &Json::Bool(true),
        "sequential attention/MLP Falcon is not supported",
    )?;
    f.require("rope_scaling", &Json::Null, "RoPE scaling is not supported")?;
    let new_arch = f.flag("new_decoder_architecture", false)?;
    let multi_query = f.flag("multi_query", true)?;
    // transformers writes `num_kv_heads` (defaulting to the head count) even where it
    // does not apply: old-architecture multi-query Falcon has one KV head whatever it
    // says.
    let (qkv, n_kv_heads) = match (new_arch, multi_query) {
        (true, _) => (
            QkvLayout::Grouped,
            f.count_or(&["num_kv_heads", "n_head_kv"], Some(n_heads))?,
        ),
        (false, true) => (QkvLayout::MultiQuery, 1),
        (false, false) => (QkvLayout::Interleaved, n_heads),
    };
    let two_norms = new_arch && f.count_or(&["num_ln_in_parallel_attn"], Some(2))? == 2;
    let act = f.string("activation", "gelu")?;
    let activation = match act.as_str() {
        "gelu" => Activation::Gelu,
        "relu" => Activation::Relu,
        _ => {
            return Err(f.err("activation", format!("{act:?} is not supported for falcon")));
        }
    };
    Ok(HfConfig {
        file: f.file.to_string(),
        family: Family::Falcon {
            qkv,
            two_norms,
            bias: f.flag("bias", false)?,
        },
        model_type: f.string("model_type", "falcon")?,
        tied: f.flag("tie_word_embeddings", true)?,
        bos: f.token("bos_token_id")?,
        eos: f.token("eos_token_id")?,
        model: ModelConfig {
            arch: Arch::Falcon,
            n_layers: f.count(&["num_hidden_layers", "n_layer"])?,
            dim,
            n_ff: f.count_or(&["ffn_hidden_size"], Some(4 * dim))?,
            n_heads,
            n_kv_heads,
            head_dim: head_dim(f, dim, n_heads)?,
            vocab: f.count(&["vocab_size"])?,
            ctx_len: f.count_or(&["max_position_embeddings"], Some(2048))?,
            norm_eps: f.positive("layer_norm_epsilon", 1e-5)?,
            rope_base: f.positive("rope_theta", 10_000.0)?,
            activation,
            // Falcon rotates halves, as HF stores it: no permutation.
            rope_style: RopeStyle::Halves,
            sliding_window: None,
            embed_scale: 1.0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<HfConfig, HfError> {
        let text = format!(
            r#"{{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 128, "ffn_hidden_size": 128, "ffn_dim": 128,
                "vocab_size": 100, "max_position_embeddings": 64, {extra}}}"#
        );
        HfConfig::parse(&text, "config.json")
    }

    #[test]
    fn mistral_windows_shorter_than_the_context_make_every_layer_local() {
        let c = parse(r#""model_type": "mistral", "sliding_window": 16"#).unwrap();
        let w = c.model.sliding_window.unwrap();
        assert_eq!((w.window, w.period), (16, usize::MAX));
        assert!((0..2).all(|l| c.model.window_of(l) == Some(16)));
        // A window as long as the context is no window.
        let c = parse(r#""model_type": "mistral", "sliding_window": 64"#).unwrap();
        assert_eq!(c.model.sliding_window, None);
    }

    #[test]
    fn falcon_kv_heads_follow_the_layout_not_num_kv_heads() {
        let kv = |extra: &str| parse(extra).unwrap().model.n_kv_heads;
        // transformers writes num_kv_heads = heads even for multi-query Falcon.
        assert_eq!(kv(r#""model_type": "falcon", "num_kv_heads": 4"#), 1);
        assert_eq!(kv(r#""model_type": "falcon", "multi_query": false"#), 4);
        assert_eq!(
            kv(r#""model_type": "falcon", "new_decoder_architecture": true, "num_kv_heads": 2"#),
            2
        );
        let c = parse(r#""model_type": "RefinedWebModel", "n_head": 4, "alibi": true"#);
        assert!(matches!(c, Err(HfError::Config { key, .. }) if key == "alibi"));
    }

    #[test]
    fn bamboo_is_recognised_by_its_architecture_and_runs_drelu() {
        let c = parse(
            r#""model_type": "mistral", "architectures": ["BambooForCausalLM"], "hidden_act": "relu""#,
        )
        .unwrap();
        assert_eq!(
            (c.model.arch, c.model.activation),
            (Arch::Bamboo, Activation::DRelu)
        );
        let c = parse(r#""model_type": "bamboo", "hidden_act": "silu""#);
        assert!(matches!(c, Err(HfError::Config { key, .. }) if key == "hidden_act"));
    }
}
