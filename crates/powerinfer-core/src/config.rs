//! Model hyper-parameters read from GGUF metadata.

use powerinfer_kernels::Activation;

use crate::ModelError;
use crate::gguf::GgufFile;

/// The architecture families we run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// LLaMA family: RMSNorm, RoPE, GQA, gated FFN (SwiGLU, or ReGLU for ReLU-LLaMA).
    Llama,
    /// Bamboo: LLaMA layout with dReLU.
    Bamboo,
    /// OPT: LayerNorm, biases, learned positions, fc1 → ReLU → fc2.
    Opt,
    /// Gemma 3: GeGLU FFN, RMSNorm before and after attention and FFN, QK-norm, NEOX
    /// RoPE, an embedding scaled by √dim, and sliding-window (local) layers between the
    /// global ones.
    Gemma3,
    /// Falcon: attention and MLP in parallel from one residual (`x + attn(ln(x)) +
    /// mlp(ln₂(x))`, with `ln₂ = ln` in Falcon-7B), LayerNorm, multi-query or grouped
    /// attention, NEOX RoPE, fc → GELU (or ReLU: ReLU-Falcon) → fc without biases.
    Falcon,
}

impl Arch {
    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Bamboo => "bamboo",
            Arch::Opt => "opt",
            Arch::Gemma3 => "gemma3",
            Arch::Falcon => "falcon",
        }
    }

    /// Whether the block adds attention and FFN to the same residual input (Falcon)
    /// rather than feeding the FFN the attention's output.
    pub fn parallel_ffn(self) -> bool {
        self == Arch::Falcon
    }

    /// Whether the FFN is one matrix → activation → down (OPT, Falcon), with no gate.
    pub fn ungated_ffn(self) -> bool {
        matches!(self, Arch::Opt | Arch::Falcon)
    }

    /// Whether norms are LayerNorm (weight and bias), not RMSNorm.
    pub fn layer_norm(self) -> bool {
        matches!(self, Arch::Opt | Arch::Falcon)
    }
}

/// How RoPE pairs the values of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i + 1)` (llama.cpp's NORM mode: LLaMA GGUFs, whose q/k rows
    /// the converter permuted for it).
    Adjacent,
    /// Pairs `(i, i + hd/2)` (llama.cpp's NEOX mode: Gemma, and Hugging Face's layout).
    Halves,
}

/// Sliding-window attention. Gemma 3: every layer is local except each `period`-th
/// (layers `period − 1, 2·period − 1, …` are global), as llama.cpp's
/// `set_swa_pattern(6)`. Mistral: every layer is local (`period` = `usize::MAX`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    /// A local layer's query at position `p` sees keys `p − window < j ≤ p`.
    pub window: usize,
    /// Every `period`-th layer is global.
    pub period: usize,
    /// RoPE base of the local layers (the global ones use [`ModelConfig::rope_base`]).
    pub rope_base: f32,
}

/// Everything the forward pass needs to know about shapes and numerics.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Architecture.
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Model (embedding) dimension.
    pub dim: usize,
    /// FFN neurons per layer.
    pub n_ff: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (GQA: fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Dimension per head.
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab: usize,
    /// Longest context the model was trained for.
    pub ctx_len: usize,
    /// Epsilon of RMSNorm/LayerNorm.
    pub norm_eps: f32,
    /// RoPE base (unused by OPT).
    pub rope_base: f32,
    /// FFN activation.
    pub activation: Activation,
    /// RoPE pairing (unused by OPT).
    pub rope_style: RopeStyle,
    /// Local attention layers, when the model has them (Gemma 3).
    pub sliding_window: Option<SlidingWindow>,
    /// Factor on the token embedding (Gemma: √dim; else 1).
    pub embed_scale: f32,
}

impl ModelConfig {
    /// Reads the config of `file`; `vocab` comes from the embedding tensor.
    pub fn from_gguf(file: &GgufFile) -> Result<ModelConfig, ModelError> {
        let fname = file.name().to_string();
        let arch_name = file.architecture()?;
        let arch = match arch_name {
            "llama" => Arch::Llama,
            "bamboo" => Arch::Bamboo,
            "opt" => Arch::Opt,
            "gemma3" => Arch::Gemma3,
            "falcon" => Arch::Falcon,
            other => {
                return Err(ModelError::UnsupportedArch {
                    file: fname,
                    arch: other.to_string(),
                });
            }
        };
        let p = arch.name();
        let get = |k: &str| file.get_usize(&format!("{p}.{k}"));
        let n_heads = get("attention.head_count")?;
        let n_kv_heads = match arch {
            Arch::Opt => n_heads,
            _ => file
                .get(&format!("{p}.attention.head_count_kv"))
                .map_or(Ok(n_heads), |_| get("attention.head_count_kv"))?,
        };
        let eps_key = match arch {
            Arch::Opt | Arch::Falcon => "attention.layer_norm_epsilon",
            _ => "attention.layer_norm_rms_epsilon",
        };
        let rope_key = format!("{p}.rope.freq_base");
        let activation = match file.get("powerinfer.ffn_activation") {
            None => match arch {
                Arch::Llama => Activation::SwiGlu,
                Arch::Bamboo => Activation::DRelu,
                Arch::Opt => Activation::Relu,
                Arch::Gemma3 => Activation::GeGlu,
                Arch::Falcon => Activation::Gelu,
            },
            Some(_) => match (arch, file.get_str("powerinfer.ffn_activation")?) {
                (Arch::Opt | Arch::Falcon, "relu") => Activation::Relu,
                (Arch::Falcon, "gelu") => Activation::Gelu,
                (Arch::Llama | Arch::Bamboo, "silu") => Activation::SwiGlu,
                (Arch::Llama | Arch::Bamboo, "relu") => Activation::ReGlu,
                (Arch::Llama | Arch::Bamboo, "drelu") => Activation::DRelu,
                (Arch::Gemma3, "gelu") => Activation::GeGlu,
                (_, other) => {
                    return Err(ModelError::Config {
                        file: fname,
                        key: "powerinfer.ffn_activation".into(),
                        problem: format!("{other:?} is not supported for {p}"),
                    });
                }
            },
        };
        let emb = file.require_tensor("token_embd.weight")?;
        let opt_usize = |k: &str| match file.get(&format!("{p}.{k}")) {
            Some(_) => get(k).map(Some),
            None => Ok(None),
        };
        let key_length = opt_usize("attention.key_length")?;
        if let Some(v) = opt_usize("attention.value_length")?
            && Some(v) != key_length
        {
            return Err(ModelError::Config {
                file: fname,
                key: format!("{p}.attention.value_length"),
                problem: format!("{v} differs from key_length {key_length:?}"),
            });
        }
        let dim = get("embedding_length")?;
        let rope_base = if file.get(&rope_key).is_some() {
            file.get_f32(&rope_key)?
        } else {
            10_000.0
        };
        // Gemma 3 (llama.cpp `LLM_ARCH_GEMMA3`): every sixth layer global, the local
        // ones with RoPE base 10 000 (neither is stored in the file). Mistral (a
        // `llama` file with a window): every layer local, one RoPE base.
        let sliding_window = match (arch, opt_usize("attention.sliding_window")?) {
            (Arch::Gemma3, Some(window)) => Some(SlidingWindow {
                window,
                period: 6,
                rope_base: 10_000.0,
            }),
            (Arch::Llama | Arch::Bamboo, Some(window)) => Some(SlidingWindow {
                window,
                period: usize::MAX,
                rope_base,
            }),
            _ => None,
        };
        let cfg = ModelConfig {
            arch,
            n_layers: get("block_count")?,
            dim,
            n_ff: get("feed_forward_length")?,
            n_heads,
            n_kv_heads,
            head_dim: key_length.unwrap_or(0),
            vocab: usize::try_from(emb.rows()).unwrap_or(usize::MAX),
            ctx_len: get("context_length")?,
            norm_eps: file.get_f32(&format!("{p}.{eps_key}"))?,
            rope_base,
            activation,
            rope_style: match arch {
                Arch::Gemma3 | Arch::Falcon => RopeStyle::Halves,
                _ => RopeStyle::Adjacent,
            },
            sliding_window,
            embed_scale: match arch {
                Arch::Gemma3 => (dim as f32).sqrt(),
                _ => 1.0,
            },
        };
        cfg.validated(&fname)
    }

    /// The checks every config gets (counts in range, heads dividing, positive finite
    /// numerics), with a head dimension derived where none was given.
    pub(crate) fn validated(mut self, file: &str) -> Result<ModelConfig, ModelError> {
        let bad = |key: &str, problem: String| ModelError::Config {
            file: file.to_string(),
            key: key.to_string(),
            problem,
        };
        for (key, v) in [
            ("block_count", self.n_layers),
            ("embedding_length", self.dim),
            ("feed_forward_length", self.n_ff),
            ("attention.head_count", self.n_heads),
            ("attention.head_count_kv", self.n_kv_heads),
            ("context_length", self.ctx_len),
            ("vocab", self.vocab),
        ] {
            if v == 0 || v > 1 << 24 {
                return Err(bad(key, format!("{v} is out of range")));
            }
        }
        if self.head_dim == 0 && !self.dim.is_multiple_of(self.n_heads) {
            return Err(bad(
                "attention.head_count",
                format!("{} does not divide dim {}", self.n_heads, self.dim),
            ));
        }
        if self.head_dim > 1 << 16 {
            return Err(bad(
                "attention.key_length",
                format!("{} is out of range", self.head_dim),
            ));
        }
        if let Some(w) = self.sliding_window
            && w.window == 0
        {
            return Err(bad("attention.sliding_window", "0 is out of range".into()));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(bad(
                "attention.head_count_kv",
                format!(
                    "{} does not divide head_count {}",
                    self.n_kv_heads, self.n_heads
                ),
            ));
        }
        if self.head_dim == 0 {
            self.head_dim = self.dim / self.n_heads;
        }
        if self.arch != Arch::Opt && !self.head_dim.is_multiple_of(2) {
            return Err(bad(
                "head_dim",
                format!("RoPE needs an even head dimension, got {}", self.head_dim),
            ));
        }
        let eps_ok = self.norm_eps.is_finite() && self.norm_eps >= 0.0;
        let base_ok = self.rope_base.is_finite() && self.rope_base > 0.0;
        if !eps_ok || !base_ok {
            return Err(bad(
                "norm_eps/rope.freq_base",
                "not a positive finite number".into(),
            ));
        }
        Ok(self)
    }

    /// Width of the key/value projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Width of the query projection and of the attention output (`dim`, except where
    /// the file's `attention.key_length` says otherwise: Gemma 3 270M has 4 × 256 for a
    /// dim of 640).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Factor on the attention scores: 1/√head_dim.
    pub fn attn_scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// The sliding window that applies to layer `layer`, when it is a local layer.
    fn local(&self, layer: usize) -> Option<&SlidingWindow> {
        self.sliding_window
            .as_ref()
            .filter(|s| !(layer + 1).is_multiple_of(s.period.max(1)))
    }

    /// The window of layer `layer` when it is a local (sliding-window) layer.
    pub fn window_of(&self, layer: usize) -> Option<usize> {
        self.local(layer).map(|s| s.window)
    }

    /// The RoPE base of layer `layer`.
    pub fn rope_base_of(&self, layer: usize) -> f32 {
        self.local(layer).map_or(self.rope_base, |s| s.rope_base)
    }
}
