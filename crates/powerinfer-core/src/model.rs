//! A loaded model: config plus validated weights, ready for the forward pass.
//!
//! Why this shape: attention and embedding matrices stay in the memory-mapped file
//! (zero copy); each layer's FFN is re-laid out once at load time as a neuron bundle
//! (gate, up and down rows of a neuron side by side) because that is what the sparse
//! kernels read.

use std::path::Path;

use powerinfer_kernels::{Activation, BundledFfn, Matrix, WType, dequantize_row, transpose};

use crate::ModelError;
use crate::config::{Arch, ModelConfig};
use crate::error::KernelContext;
use crate::gguf::{GgufFile, TensorInfo};

/// A norm's weight and optional bias (LayerNorm has one, RMSNorm not).
#[derive(Clone, Debug)]
pub(crate) struct Norm {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
}

/// A projection in the mapped file, with an optional bias.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    pub t: TensorInfo,
    pub b: Option<Vec<f32>>,
}

/// One transformer block.
#[derive(Debug)]
pub(crate) struct Layer {
    pub attn_norm: Norm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Norm,
    pub ffn: BundledFfn,
    /// The down projection as stored (`dim × n_ff`), for dense decoding: a dot-product
    /// GEMV over it reads fewer bytes, faster, than the transposed bundle's axpy.
    /// Absent in PowerInfer files, which store only `ffn_down_t`.
    pub down: Option<TensorInfo>,
    pub down_bias: Option<Vec<f32>>,
}

/// A model ready to run: weights validated against the config.
pub struct Model {
    pub(crate) file: GgufFile,
    pub(crate) config: ModelConfig,
    pub(crate) tok_embd: TensorInfo,
    pub(crate) pos_embd: Option<TensorInfo>,
    pub(crate) output: TensorInfo,
    pub(crate) output_norm: Norm,
    pub(crate) layers: Vec<Layer>,
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
    /// Opens and validates a GGUF model.
    pub fn open(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        Model::from_gguf(GgufFile::open(path)?)
    }

    /// Validates an already opened GGUF file as a model.
    pub fn from_gguf(file: GgufFile) -> Result<Model, ModelError> {
        let config = ModelConfig::from_gguf(&file)?;
        let l = Loader {
            file: &file,
            cfg: &config,
        };
        let (d, kv, v) = (
            config.dim as u64,
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
        let output_norm = l.norm("output_norm")?;
        let layers = (0..config.n_layers)
            .map(|i| {
                let p = format!("blk.{i}");
                Ok(Layer {
                    attn_norm: l.norm(&format!("{p}.attn_norm"))?,
                    q: l.linear(&format!("{p}.attn_q"), d, d)?,
                    k: l.linear(&format!("{p}.attn_k"), d, kv)?,
                    v: l.linear(&format!("{p}.attn_v"), d, kv)?,
                    o: l.linear(&format!("{p}.attn_output"), d, d)?,
                    ffn_norm: l.norm(&format!("{p}.ffn_norm"))?,
                    ffn: l.ffn(&p)?,
                    down: file.tensor(&format!("{p}.ffn_down.weight")).cloned(),
                    down_bias: l.bias(&format!("{p}.ffn_down"), d)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Model {
            file,
            config,
            tok_embd,
            pos_embd,
            output,
            output_norm,
            layers,
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
        let ffn: usize = self.layers.iter().map(|l| l.ffn.bytes()).sum();
        usize::try_from(attn + self.output.n_bytes).unwrap_or(usize::MAX) + ffn
    }

    /// Bytes of one FFN neuron (gate + up + down rows) in layer `layer`.
    pub fn ffn_neuron_bytes(&self, layer: usize) -> Option<usize> {
        self.layers.get(layer).map(|l| l.ffn.neuron_bytes())
    }

    /// The kernel view of a tensor validated at load time.
    pub(crate) fn matrix(&self, t: &TensorInfo) -> Result<Matrix<'_>, ModelError> {
        Matrix::new(
            t.wtype,
            t.rows() as usize,
            t.cols() as usize,
            self.file.tensor_data(t),
        )
        .ctx(|| format!("{}: {}", self.file.name(), t.name))
    }

    /// Row `row` of an embedding-like tensor, decoded into `out`.
    pub(crate) fn embedding_row(
        &self,
        t: &TensorInfo,
        row: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let m = self.matrix(t)?;
        if row >= m.rows() {
            return Err(ModelError::BadToken {
                id: u32::try_from(row).unwrap_or(u32::MAX),
                vocab: m.rows(),
            });
        }
        dequantize_row(t.wtype, m.row(row), out).ctx(|| t.name.clone())
    }
}

/// Looks tensors up and checks them against the config.
struct Loader<'a> {
    file: &'a GgufFile,
    cfg: &'a ModelConfig,
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
        let d = self.cfg.dim as u64;
        let b = self.optional_vector(&format!("{prefix}.bias"), d)?;
        if self.cfg.arch == Arch::Opt && b.is_none() {
            return Err(self.missing(&format!("{prefix}.bias")));
        }
        Ok(Norm {
            w: self.vector(&format!("{prefix}.weight"), d)?,
            b,
        })
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
        })
    }

    fn matrix(&self, t: &TensorInfo) -> Result<Matrix<'_>, ModelError> {
        Matrix::new(
            t.wtype,
            t.rows() as usize,
            t.cols() as usize,
            self.file.tensor_data(t),
        )
        .ctx(|| format!("{}: {}", self.file.name(), t.name))
    }

    /// Gate/up/down of layer `p`, bundled per neuron. The down projection is used as
    /// `ffn_down_t` when the file has it (PowerInfer's layout), else transposed here:
    /// exactly for float types, re-quantized to Q8_0 for quantized ones.
    fn ffn(&self, p: &str) -> Result<BundledFfn, ModelError> {
        let (d, n) = (self.cfg.dim as u64, self.cfg.n_ff as u64);
        let act = self.cfg.activation;
        let (gate_name, up_name) = match self.cfg.arch {
            Arch::Opt => (format!("{p}.ffn_up"), None),
            _ => (format!("{p}.ffn_gate"), Some(format!("{p}.ffn_up"))),
        };
        let gate = self.tensor(&format!("{gate_name}.weight"), &[d, n])?;
        let gate_bias = self.bias(&gate_name, n)?;
        let up = match &up_name {
            Some(u) => Some(self.tensor(&format!("{u}.weight"), &[d, n])?),
            None => None,
        };
        let down_t_owned;
        let down_t = match self.file.tensor(&format!("{p}.ffn_down_t.weight")) {
            Some(_) => {
                let t = self.tensor(&format!("{p}.ffn_down_t.weight"), &[d, n])?;
                self.matrix(&t)?
            }
            None => {
                let t = self.tensor(&format!("{p}.ffn_down.weight"), &[n, d])?;
                let out = match t.wtype {
                    WType::F32 | WType::F16 | WType::BF16 => t.wtype,
                    WType::Q8_0 | WType::Q4_0 | WType::Q4_1 => WType::Q8_0,
                };
                down_t_owned = transpose(&self.matrix(&t)?, out).ctx(|| t.name.clone())?;
                Matrix::new(out, n as usize, d as usize, &down_t_owned).ctx(|| t.name.clone())?
            }
        };
        let gate_m = self.matrix(&gate)?;
        let up_m = up.as_ref().map(|u| self.matrix(u)).transpose()?;
        let up_m = if act == Activation::Relu { None } else { up_m };
        BundledFfn::pack(&gate_m, up_m.as_ref(), &down_t, gate_bias, act)
            .ctx(|| format!("{p}: bundling the FFN"))
    }
}
