//! A loaded model: config plus validated weights, ready for the forward pass.
//!
//! Why this shape: attention, embedding and FFN gate/up matrices stay in the
//! memory-mapped file (zero copy, row-major as stored: the sparse kernels gather their
//! rows); the down projection is transposed once at load time, so that a neuron's
//! output column is one contiguous row for the sparse axpy; and the dense products get
//! a packed (row-interleaved) copy by default ([`Packing`]), which their kernels read at
//! about twice the speed.

use std::path::Path;
use std::sync::OnceLock;

use powerinfer_kernels::{
    Activation, ColQ4, FfnWeights, Matrix, PackedMatrix, WType, dequantize_row, transpose,
};

use crate::ModelError;
use crate::config::{Arch, ModelConfig};
use crate::error::KernelContext;
use crate::gguf::{GgufFile, TensorInfo};
use crate::hf::{ConvertOptions, HfCheckpoint};
use powerinfer_predictor::ModelId;

/// A norm's weight and optional bias (LayerNorm has one, RMSNorm not).
#[derive(Clone, Debug)]
pub(crate) struct Norm {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
}

/// A projection in the mapped file, with an optional bias and the packed copy the
/// dense kernels read (see [`Packing`]).
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    pub t: TensorInfo,
    pub b: Option<Vec<f32>>,
    pub packed: Option<PackedMatrix>,
}

impl Linear {
    /// Adds the bias, when there is one, to every output row of `ys` (rows as wide as
    /// the bias).
    pub(crate) fn add_bias_rows(&self, ys: &mut [f32]) {
        if let Some(b) = &self.b {
            ys.chunks_exact_mut(b.len().max(1))
                .for_each(|y| crate::ops::add_bias(y, Some(b)));
        }
    }
}

/// One transformer block.
#[derive(Debug)]
pub(crate) struct Layer {
    pub attn_norm: Norm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// q, k and v stacked and packed (q rows, then k, then v): one product for the
    /// three when they share a packable type (else each `Linear` has its own).
    pub qkv: Option<PackedMatrix>,
    pub ffn_norm: Norm,
    pub ffn: Ffn,
    pub down_bias: Option<Vec<f32>>,
    /// Gemma 3's extra norms: per head on q and k (before RoPE), and on the attention
    /// and FFN outputs (before their residual adds).
    pub extra: Option<ExtraNorms>,
}

/// The norms Gemma 3 adds to a LLaMA block (weights as stored: the converter has
/// already folded Gemma's `1 + w` into them).
#[derive(Debug)]
pub(crate) struct ExtraNorms {
    pub q: Norm,
    pub k: Norm,
    pub post_attn: Norm,
    pub post_ffn: Norm,
}

/// A layer's FFN weights. Gate and up stay contiguous in the mapped file: the oracle
/// and threshold policies compute every gate, and a row-major matrix streams at full
/// bandwidth where a neuron-bundled one would be read at a stride (measured 7× slower
/// on SmolLM2). Only the transposed down projection is built at load time.
#[derive(Debug)]
pub(crate) struct Ffn {
    pub gate: TensorInfo,
    pub gate_bias: Option<Vec<f32>>,
    pub up: Option<TensorInfo>,
    /// The down projection as stored (`dim × n_ff`), for dense decoding: a dot-product
    /// GEMV over it reads fewer bytes, faster, than an axpy over its transpose.
    /// Absent in PowerInfer files, which store only `ffn_down_t`.
    pub down: Option<TensorInfo>,
    pub down_t: DownT,
    pub act: Activation,
    /// Packed copies of gate, up and the stored down for the dense policy
    /// ([`Packing::All`]).
    pub packed: FfnPacked,
}

/// The packed FFN matrices (each present when packing is on and its types have a
/// packed layout).
#[derive(Debug, Default)]
pub(crate) struct FfnPacked {
    /// Gate and up stacked (gate rows first): one product for both.
    pub gate_up: Option<PackedMatrix>,
    pub down: Option<PackedMatrix>,
}

/// The down projection with one row per neuron (`n_ff × dim`), for sparse axpy.
#[derive(Debug)]
pub(crate) enum DownT {
    /// PowerInfer's `ffn_down_t` from the file.
    Mapped(TensorInfo),
    /// Transposed at load into a weight type (see [`LoadOptions::down_t`]).
    Owned { wtype: WType, data: Vec<u8> },
    /// A Q4_0/Q4_1 source transposed exactly.
    Exact(ColQ4),
}

/// How to lay a model out at load time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Weight type of the transposed down projection built for the sparse path (files
    /// with PowerInfer's `ffn_down_t` use theirs as is). `None` (the default): 4-bit
    /// sources are transposed exactly ([`ColQ4`]: the stored values, 4 bits per weight
    /// plus the source's block scales, 5.0 bits per weight for Q4_1, 4.5 for Q4_0);
    /// Q8_0 stays Q8_0; float types keep their type. `Some(t)` re-quantizes to `t`
    /// (measured on SmolLM2 Q4_1: Q8_0 costs +0.25% perplexity at 8.5 bits per weight,
    /// Q4_0 +9.7% at 4.5).
    pub down_t: Option<WType>,
    /// Which matrices also get a packed (row-interleaved) copy for the dense kernels.
    pub packing: Packing,
    /// For a Hugging Face checkpoint directory: re-encode its weight matrices into this
    /// type while loading (see [`ConvertOptions::quantize`]). GGUF files keep the types
    /// they store.
    pub quantize: Option<WType>,
}

/// Which matrices get a packed copy ([`PackedMatrix`]) at load time, for Q8_0, Q4_0 and
/// Q4_1 weights (other types run row-major).
///
/// Why a choice: the packed kernels are about twice as fast per byte where the
/// row-major ones are compute bound (SmolLM2 dense decode at 1 thread: 37.9 tok/s
/// row-major, 65.8 packed; BENCHMARKS.md), but the sparse kernels gather rows and need
/// the row-major layout, which stays mapped from the file; packing the FFN thus adds its
/// size again in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Packing {
    /// Attention projections, the output head and the FFN (gate, up and stored down,
    /// read by the dense FFN policy): the fastest dense decode, about the model's size
    /// again in memory (the mapped file pages of packed matrices are read once, at
    /// load, and stay only as reclaimable page cache while the sparse paths leave them
    /// alone).
    #[default]
    All,
    /// Attention projections and the output head only (always dense in every
    /// policy): the FFN stays row-major for sparse policies without the extra copy.
    Attention,
    /// Nothing packed: every product reads the file's row-major layout.
    None,
}

/// A model ready to run: weights validated against the config.
pub struct Model {
    pub(crate) file: GgufFile,
    pub(crate) config: ModelConfig,
    pub(crate) tok_embd: TensorInfo,
    pub(crate) pos_embd: Option<TensorInfo>,
    pub(crate) output: TensorInfo,
    pub(crate) output_packed: Option<PackedMatrix>,
    pub(crate) output_norm: Norm,
    pub(crate) layers: Vec<Layer>,
    id: OnceLock<ModelId>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("file", &self.file.name())
            .field("config", &self.config)
            .finish()
    }
}

impl Model {
    /// Opens and validates a model: a GGUF file, or a Hugging Face checkpoint
    /// directory (`config.json` + safetensors, see [`crate::hf`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        Model::open_with(path, &LoadOptions::default())
    }

    /// [`Model::open`] with non-default layout options.
    pub fn open_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model, ModelError> {
        let path = path.as_ref();
        if path.is_dir() {
            let convert = ConvertOptions {
                quantize: opts.quantize,
                progress: None,
            };
            return Model::from_hf(&HfCheckpoint::open(path)?, &convert, opts);
        }
        Model::from_gguf_with(GgufFile::open(path)?, opts)
    }

    /// Converts an opened Hugging Face checkpoint (in memory) and loads it.
    pub fn from_hf(
        checkpoint: &HfCheckpoint,
        convert: &ConvertOptions<'_>,
        opts: &LoadOptions,
    ) -> Result<Model, ModelError> {
        Model::from_gguf_with(checkpoint.to_gguf_file(convert)?, opts)
    }

    /// Validates an already opened GGUF file as a model.
    pub fn from_gguf(file: GgufFile) -> Result<Model, ModelError> {
        Model::from_gguf_with(file, &LoadOptions::default())
    }

    /// [`Model::from_gguf`] with layout options.
    pub fn from_gguf_with(file: GgufFile, opts: &LoadOptions) -> Result<Model, ModelError> {
        let config = ModelConfig::from_gguf(&file)?;
        let l = Loader {
            file: &file,
            cfg: &config,
            opts,
        };
        let (d, qd, kv, v) = (
            config.dim as u64,
            config.q_dim() as u64,
            config.kv_dim() as u64,
            config.vocab as u64,
        );
        let tok_embd = l.tensor("token_embd.weight", &[d, v])?;
        let pos_embd = match config.arch {
            Arch::Opt => Some(l.tensor("position_embd.weight", &[d, config.ctx_len as u64])?),
            _ => None,
        };
        let output = match file.tensor("output.weight") {
            Some(_) => l.tensor("output.weight", &[d, v])?,
            None => tok_embd.clone(),
        };
        let output_packed = l.pack(&[&output], Packing::Attention)?;
        let output_norm = l.norm("output_norm")?;
        let layers = (0..config.n_layers)
            .map(|i| {
                let p = format!("blk.{i}");
                let mut q = l.linear(&format!("{p}.attn_q"), d, qd)?;
                let mut k = l.linear(&format!("{p}.attn_k"), d, kv)?;
                let mut v = l.linear(&format!("{p}.attn_v"), d, kv)?;
                let mut o = l.linear(&format!("{p}.attn_output"), qd, d)?;
                o.packed = l.pack(&[&o.t], Packing::Attention)?;
                let qkv = l.pack(&[&q.t, &k.t, &v.t], Packing::Attention)?;
                if qkv.is_none() {
                    for lin in [&mut q, &mut k, &mut v] {
                        lin.packed = l.pack(&[&lin.t], Packing::Attention)?;
                    }
                }
                Ok(Layer {
                    attn_norm: l.norm(&format!("{p}.attn_norm"))?,
                    q,
                    k,
                    v,
                    o,
                    qkv,
                    ffn_norm: l.ffn_norm(&p)?,
                    ffn: l.ffn(&p)?,
                    down_bias: l.bias(&format!("{p}.ffn_down"), d)?,
                    extra: match config.arch {
                        Arch::Gemma3 => Some(ExtraNorms {
                            q: l.norm_of(&format!("{p}.attn_q_norm"), config.head_dim)?,
                            k: l.norm_of(&format!("{p}.attn_k_norm"), config.head_dim)?,
                            post_attn: l.norm(&format!("{p}.post_attention_norm"))?,
                            post_ffn: l.norm(&format!("{p}.post_ffw_norm"))?,
                        }),
                        _ => None,
                    },
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Model {
            file,
            config,
            tok_embd,
            pos_embd,
            output,
            output_packed,
            output_norm,
            layers,
            id: OnceLock::new(),
        })
    }

    /// What ties a predictor or stats file to this model: architecture, shape and a
    /// CRC-32 over the FFN tensors (names, shapes, types and bytes as stored), computed
    /// once on first use (a few milliseconds per 50 MB).
    pub fn predictor_id(&self) -> &ModelId {
        self.id.get_or_init(|| {
            let mut h = crc32fast::Hasher::new();
            for l in &self.layers {
                let f = &l.ffn;
                let down = match (&f.down, &f.down_t) {
                    (Some(d), _) | (None, DownT::Mapped(d)) => Some(d),
                    (None, DownT::Owned { .. } | DownT::Exact(_)) => None,
                };
                for t in [Some(&f.gate), f.up.as_ref(), down].into_iter().flatten() {
                    h.update(t.name.as_bytes());
                    t.dims.iter().for_each(|d| h.update(&d.to_le_bytes()));
                    h.update(&t.wtype.ggml_id().to_le_bytes());
                    h.update(self.file.tensor_data(t));
                }
            }
            ModelId {
                arch: self.config.arch.name().to_string(),
                n_layers: u32::try_from(self.config.n_layers).unwrap_or(u32::MAX),
                dim: u32::try_from(self.config.dim).unwrap_or(u32::MAX),
                n_ff: u32::try_from(self.config.n_ff).unwrap_or(u32::MAX),
                ffn_hash: h.finalize(),
            }
        })
    }

    /// Weight type of the FFN gate as stored (the model's quantization, in practice).
    pub fn ffn_wtype(&self) -> Option<WType> {
        self.layers.first().map(|l| l.ffn.gate.wtype)
    }

    /// The layout of the transposed down projection the sparse path reads: a weight
    /// type's name, or `q4-exact` for [`ColQ4`].
    pub fn down_t_layout(&self) -> &'static str {
        self.layers.first().map_or("none", |l| match &l.ffn.down_t {
            DownT::Mapped(t) => t.wtype.name(),
            DownT::Owned { wtype, .. } => wtype.name(),
            DownT::Exact(_) => "q4-exact",
        })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The GGUF file the model came from (metadata, tokenizer).
    pub fn gguf(&self) -> &GgufFile {
        &self.file
    }

    /// Weight bytes one decode step reads with a dense FFN: every matrix once (the
    /// embedding row is negligible). The bandwidth bound of decoding is this divided by
    /// the memory bandwidth.
    pub fn dense_bytes_per_token(&self) -> usize {
        let attn: u64 = self
            .layers
            .iter()
            .map(|l| l.q.t.n_bytes + l.k.t.n_bytes + l.v.t.n_bytes + l.o.t.n_bytes)
            .sum();
        let ffn = self.ffn_bytes();
        usize::try_from(attn + ffn + self.output.n_bytes).unwrap_or(usize::MAX)
    }

    /// Bytes of every layer's FFN as stored (gate, up and down): what a dense decode
    /// step reads for the FFN, and what a predictor budget is a share of.
    pub fn ffn_bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| {
                let f = &l.ffn;
                let down = f
                    .down
                    .as_ref()
                    .map_or(f.down_t_bytes() as u64, |t| t.n_bytes);
                f.gate_up_bytes() + down
            })
            .sum()
    }

    /// Bytes of one FFN neuron (gate + up + down rows) in layer `layer`.
    pub fn ffn_neuron_bytes(&self, layer: usize) -> Option<usize> {
        let f = &self.layers.get(layer)?.ffn;
        let rows = self.config.n_ff.max(1) as u64;
        let bytes = f.gate_up_bytes() + f.down_t_bytes() as u64;
        usize::try_from(bytes / rows).ok()
    }

    /// The kernel view of layer `layer`'s FFN.
    pub(crate) fn ffn_weights<'a>(
        &'a self,
        layer: &'a Layer,
    ) -> Result<FfnWeights<'a>, ModelError> {
        let f = &layer.ffn;
        let (n, d) = (self.config.n_ff, self.config.dim);
        let down_t = match &f.down_t {
            DownT::Mapped(t) => self.matrix(t)?.into(),
            DownT::Owned { wtype, data } => Matrix::new(*wtype, n, d, data)
                .ctx(|| format!("{}: ffn_down_t", f.gate.name))?
                .into(),
            DownT::Exact(c) => c.into(),
        };
        Ok(FfnWeights {
            gate: self.matrix(&f.gate)?,
            up: f.up.as_ref().map(|u| self.matrix(u)).transpose()?,
            down_t,
            gate_bias: f.gate_bias.as_deref(),
            act: f.act,
        })
    }

    /// The kernel view of a tensor validated at load time.
    pub(crate) fn matrix(&self, t: &TensorInfo) -> Result<Matrix<'_>, ModelError> {
        tensor_matrix(&self.file, t)
    }

    /// Row `row` of an embedding-like tensor, decoded into `out`.
    pub(crate) fn embedding_row(
        &self,
        t: &TensorInfo,
        row: usize,
        out: &mut [f32],
        out_of_range: impl FnOnce(usize) -> ModelError,
    ) -> Result<(), ModelError> {
        let m = self.matrix(t)?;
        if row >= m.rows() {
            return Err(out_of_range(m.rows()));
        }
        dequantize_row(t.wtype, m.row(row), out).ctx(|| t.name.clone())
    }
}

/// A tensor of `file` as a kernel matrix (rows = `dims[1..]`, cols = `dims[0]`).
fn tensor_matrix<'f>(file: &'f GgufFile, t: &TensorInfo) -> Result<Matrix<'f>, ModelError> {
    Matrix::new(
        t.wtype,
        t.rows() as usize,
        t.cols() as usize,
        file.tensor_data(t),
    )
    .ctx(|| format!("{}: {}", file.name(), t.name))
}

/// Looks tensors up and checks them against the config.
struct Loader<'a> {
    file: &'a GgufFile,
    cfg: &'a ModelConfig,
    opts: &'a LoadOptions,
}

impl Loader<'_> {
    fn missing(&self, name: &str) -> ModelError {
        ModelError::MissingTensor {
            file: self.file.name().to_string(),
            tensor: name.to_string(),
        }
    }

    fn tensor(&self, name: &str, dims: &[u64]) -> Result<TensorInfo, ModelError> {
        let t = self.file.tensor(name).ok_or_else(|| self.missing(name))?;
        if t.dims != dims {
            return Err(ModelError::Shape {
                file: self.file.name().to_string(),
                tensor: name.to_string(),
                expected: dims.to_vec(),
                found: t.dims.clone(),
            });
        }
        Ok(t.clone())
    }

    fn vector(&self, name: &str, len: u64) -> Result<Vec<f32>, ModelError> {
        let t = self.tensor(name, &[len])?;
        let mut out = vec![0f32; len as usize];
        dequantize_row(t.wtype, self.file.tensor_data(&t), &mut out).ctx(|| name.to_string())?;
        Ok(out)
    }

    fn optional_vector(&self, name: &str, len: u64) -> Result<Option<Vec<f32>>, ModelError> {
        match self.file.tensor(name) {
            Some(_) => self.vector(name, len).map(Some),
            None => Ok(None),
        }
    }

    fn norm(&self, prefix: &str) -> Result<Norm, ModelError> {
        self.norm_of(prefix, self.cfg.dim)
    }

    /// A norm over `len` values (`dim`, or a head for QK-norm).
    fn norm_of(&self, prefix: &str, len: usize) -> Result<Norm, ModelError> {
        let d = len as u64;
        let b = self.optional_vector(&format!("{prefix}.bias"), d)?;
        // A LayerNorm without its bias would run as RMSNorm: a silent wrong answer.
        if self.cfg.arch.layer_norm() && b.is_none() {
            return Err(self.missing(&format!("{prefix}.bias")));
        }
        Ok(Norm {
            w: self.vector(&format!("{prefix}.weight"), d)?,
            b,
        })
    }

    /// The norm before layer `p`'s FFN: `ffn_norm`, or Falcon's second parallel norm
    /// (`attn_norm_2`, Falcon-40B and later), or its one shared norm (`attn_norm`,
    /// Falcon-7B).
    fn ffn_norm(&self, p: &str) -> Result<Norm, ModelError> {
        match self.cfg.arch {
            Arch::Falcon
                if self
                    .file
                    .tensor(&format!("{p}.attn_norm_2.weight"))
                    .is_some() =>
            {
                self.norm(&format!("{p}.attn_norm_2"))
            }
            Arch::Falcon => self.norm(&format!("{p}.attn_norm")),
            _ => self.norm(&format!("{p}.ffn_norm")),
        }
    }

    fn bias(&self, prefix: &str, len: u64) -> Result<Option<Vec<f32>>, ModelError> {
        let b = self.optional_vector(&format!("{prefix}.bias"), len)?;
        if self.cfg.arch == Arch::Opt && b.is_none() {
            return Err(self.missing(&format!("{prefix}.bias")));
        }
        Ok(b)
    }

    fn linear(&self, prefix: &str, cols: u64, rows: u64) -> Result<Linear, ModelError> {
        Ok(Linear {
            t: self.tensor(&format!("{prefix}.weight"), &[cols, rows])?,
            b: self.bias(prefix, rows)?,
            packed: None,
        })
    }

    /// The tensors `ts` stacked into one packed matrix, when the options pack at least
    /// `level` (`Attention` for the always-dense matrices, `All` for the FFN's) and
    /// they share one type with a packed layout (`None` otherwise).
    fn pack(&self, ts: &[&TensorInfo], level: Packing) -> Result<Option<PackedMatrix>, ModelError> {
        let wanted = match self.opts.packing {
            Packing::All => true,
            Packing::Attention => level == Packing::Attention,
            Packing::None => false,
        };
        let Some(first) = ts.first() else {
            return Ok(None);
        };
        let same = ts
            .iter()
            .all(|t| t.wtype == first.wtype && t.cols() == first.cols());
        if !wanted || !same || !PackedMatrix::supports(first.wtype) {
            return Ok(None);
        }
        let ms = ts
            .iter()
            .map(|t| self.matrix(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(PackedMatrix::stack(&ms).ctx(|| first.name.clone())?))
    }

    fn matrix(&self, t: &TensorInfo) -> Result<Matrix<'_>, ModelError> {
        tensor_matrix(self.file, t)
    }

    /// Gate/up/down of layer `p`. The down projection is used as `ffn_down_t` when the
    /// file has it (PowerInfer's layout), else transposed here into
    /// [`LoadOptions::down_t`] (default: exact for float and 4-bit types, Q8_0 for
    /// Q8_0).
    fn ffn(&self, p: &str) -> Result<Ffn, ModelError> {
        let (d, n) = (self.cfg.dim as u64, self.cfg.n_ff as u64);
        let act = self.cfg.activation;
        let (gate_name, up_name) = if self.cfg.arch.ungated_ffn() {
            (format!("{p}.ffn_up"), None)
        } else {
            (format!("{p}.ffn_gate"), Some(format!("{p}.ffn_up")))
        };
        let up = match &up_name {
            Some(u) if act.has_up() => Some(self.tensor(&format!("{u}.weight"), &[d, n])?),
            _ => None,
        };
        let down = match self.file.tensor(&format!("{p}.ffn_down.weight")) {
            Some(_) => Some(self.tensor(&format!("{p}.ffn_down.weight"), &[n, d])?),
            None => None,
        };
        let down_t = match (&down, self.file.tensor(&format!("{p}.ffn_down_t.weight"))) {
            (_, Some(_)) => DownT::Mapped(self.tensor(&format!("{p}.ffn_down_t.weight"), &[d, n])?),
            (Some(t), None) => match (self.opts.down_t, t.wtype) {
                (None, WType::Q4_0 | WType::Q4_1) if self.cfg.dim.is_multiple_of(32) => {
                    DownT::Exact(ColQ4::from_matrix(&self.matrix(t)?).ctx(|| t.name.clone())?)
                }
                (choice, source) => {
                    // A neuron's row holds `dim` values, rarely a whole number of
                    // K-quant super-blocks: every quantized source goes to Q8_0.
                    let wtype = choice.unwrap_or(match source {
                        WType::F32 | WType::F16 | WType::BF16 => source,
                        _ => WType::Q8_0,
                    });
                    let data = transpose(&self.matrix(t)?, wtype).ctx(|| t.name.clone())?;
                    DownT::Owned { wtype, data }
                }
            },
            (None, None) => return Err(self.missing(&format!("{p}.ffn_down.weight"))),
        };
        let gate = self.tensor(&format!("{gate_name}.weight"), &[d, n])?;
        let gate_up: Vec<&TensorInfo> = std::iter::once(&gate).chain(&up).collect();
        let packed = FfnPacked {
            gate_up: self.pack(&gate_up, Packing::All)?,
            down: match &down {
                Some(t) => self.pack(&[t], Packing::All)?,
                None => None,
            },
        };
        Ok(Ffn {
            gate,
            gate_bias: self.bias(&gate_name, n)?,
            up,
            down,
            down_t,
            act,
            packed,
        })
    }
}

impl Ffn {
    /// Bytes of the gate and up projections.
    pub(crate) fn gate_up_bytes(&self) -> u64 {
        self.gate.n_bytes + self.up.as_ref().map_or(0, |u| u.n_bytes)
    }

    /// Bytes of the transposed down projection.
    pub(crate) fn down_t_bytes(&self) -> usize {
        match &self.down_t {
            DownT::Mapped(t) => usize::try_from(t.n_bytes).unwrap_or(usize::MAX),
            DownT::Owned { data, .. } => data.len(),
            DownT::Exact(c) => c.bytes(),
        }
    }
}
