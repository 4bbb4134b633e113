//! Hugging Face tensors → our GGUF layout: names, the rotary permutation of q/k,
//! Falcon's fused qkv split, OPT's position offset, and quantization at load.
//!
//! Why through GGUF: the converted model is an ordinary [`GgufFile`] (built in memory,
//! or written by the `convert` example), so a checkpoint and its GGUF run the same
//! loader and forward pass, and give the same logits.

use powerinfer_kernels::{WType, dequantize_row, quantize_matrix};
use safetensors::Dtype;

use super::HfError;
use super::config::{Family, HfConfig, QkvLayout};
use super::shards::{Shards, Stored};
use crate::config::Arch;
use crate::gguf::{GgufWriter, Value};

/// How to convert a checkpoint.
#[derive(Clone, Copy, Default)]
pub struct ConvertOptions<'a> {
    /// Re-encode every weight matrix into this type (e.g. Q8_0, Q4_0, Q4_1) as it is
    /// read, so a bf16 checkpoint runs in the quantized kernels without a conversion
    /// step. Matrices whose rows are not a whole number of its blocks, norms and
    /// biases keep a float type. `None`: weights keep their stored type (F32, F16,
    /// BF16); norms and biases are F32.
    pub quantize: Option<WType>,
    /// Called after each tensor with (source bytes done, source bytes in all), for a
    /// progress bar on large models.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

impl std::fmt::Debug for ConvertOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvertOptions")
            .field("quantize", &self.quantize)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// One GGUF tensor to write: its source, the source shape `config.json` implies, and
/// which source rows (in order) it takes.
struct Plan {
    gguf: String,
    hf: String,
    /// Outermost first, as safetensors stores it.
    shape: Vec<usize>,
    /// Source rows (of a matrix) or elements (of a vector) in output order; `None`:
    /// all, in order.
    rows: Option<Vec<usize>>,
    /// Absent in the checkpoint is fine (an optional bias).
    optional: bool,
}

impl Plan {
    fn new(gguf: impl Into<String>, hf: impl Into<String>, shape: &[usize]) -> Plan {
        Plan {
            gguf: gguf.into(),
            hf: hf.into(),
            shape: shape.to_vec(),
            rows: None,
            optional: false,
        }
    }

    fn rows(mut self, rows: Vec<usize>) -> Plan {
        self.rows = Some(rows);
        self
    }

    fn optional(mut self) -> Plan {
        self.optional = true;
        self
    }
}

/// The output rows of llama.cpp's `permute(w, n_head)` for HF's q/k: within each head,
/// HF rotates the pairs `(i, i + hd/2)` (rotate_half); our adjacent-pair RoPE wants
/// them at `(2i, 2i + 1)`. Output row `h·hd + 2i + s` takes source row
/// `h·hd + s·hd/2 + i`.
pub(crate) fn rotary_rows(n_head: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    (0..n_head)
        .flat_map(|h| (0..half).flat_map(move |i| (0..2).map(move |s| h * head_dim + s * half + i)))
        .collect()
}

/// The source rows of q, k and v in Falcon's fused `query_key_value`.
fn falcon_qkv_rows(layout: QkvLayout, n_head: usize, n_kv: usize, hd: usize) -> [Vec<usize>; 3] {
    let head = |h: usize| (h * hd..(h + 1) * hd).collect::<Vec<_>>();
    match layout {
        QkvLayout::MultiQuery => [(0..n_head * hd).collect(), head(n_head), head(n_head + 1)],
        QkvLayout::Interleaved => [
            (0..n_head).flat_map(|h| head(3 * h)).collect(),
            (0..n_head).flat_map(|h| head(3 * h + 1)).collect(),
            (0..n_head).flat_map(|h| head(3 * h + 2)).collect(),
        ],
        QkvLayout::Grouped => {
            let r = n_head / n_kv;
            let group = |g: usize| g * (r + 2);
            [
                (0..n_kv)
                    .flat_map(|g| (0..r).flat_map(move |j| group(g) + j..group(g) + j + 1))
                    .flat_map(head)
                    .collect(),
                (0..n_kv).flat_map(|g| head(group(g) + r)).collect(),
                (0..n_kv).flat_map(|g| head(group(g) + r + 1)).collect(),
            ]
        }
    }
}

/// Every tensor of the model, in GGUF names.
fn plans(c: &HfConfig) -> Vec<Plan> {
    let (d, f, v, hd) = (c.model.dim, c.model.n_ff, c.model.vocab, c.model.head_dim);
    let (qd, kvd) = (c.model.n_heads * hd, c.model.n_kv_heads * hd);
    let mut out = Vec::new();
    let (root, layer) = match c.family {
        Family::Llama { .. } => ("model.", "model.layers"),
        Family::Opt => ("model.decoder.", "model.decoder.layers"),
        Family::Falcon { .. } => ("transformer.", "transformer.h"),
    };
    let embed = match c.family {
        Family::Falcon { .. } => "word_embeddings",
        _ => "embed_tokens",
    };
    out.push(Plan::new(
        "token_embd.weight",
        format!("{root}{embed}.weight"),
        &[v, d],
    ));
    if c.family == Family::Opt {
        // OPT's learned positions start at row 2 (`OPTLearnedPositionalEmbedding`).
        out.push(
            Plan::new(
                "position_embd.weight",
                format!("{root}embed_positions.weight"),
                &[c.model.ctx_len + 2, d],
            )
            .rows((2..c.model.ctx_len + 2).collect()),
        );
    }
    let norm = |gguf: &str, hf: &str, out: &mut Vec<Plan>, bias: bool| {
        out.push(Plan::new(
            format!("{gguf}.weight"),
            format!("{hf}.weight"),
            &[d],
        ));
        if bias {
            out.push(Plan::new(
                format!("{gguf}.bias"),
                format!("{hf}.bias"),
                &[d],
            ));
        }
    };
    for i in 0..c.model.n_layers {
        let (b, h) = (format!("blk.{i}"), format!("{layer}.{i}"));
        let lin = |out: &mut Vec<Plan>,
                   gguf: &str,
                   hf: &str,
                   rows: usize,
                   cols: usize,
                   bias: Option<bool>,
                   perm: Option<Vec<usize>>| {
            let mut w = Plan::new(
                format!("{b}.{gguf}.weight"),
                format!("{h}.{hf}.weight"),
                &[rows, cols],
            );
            if let Some(p) = &perm {
                w = w.rows(p.clone());
            }
            out.push(w);
            if let Some(required) = bias {
                let mut p = Plan::new(
                    format!("{b}.{gguf}.bias"),
                    format!("{h}.{hf}.bias"),
                    &[rows],
                );
                if let Some(perm) = perm {
                    p = p.rows(perm);
                }
                out.push(if required { p } else { p.optional() });
            }
        };
        match c.family {
            Family::Llama { attn_bias } => {
                let bias = attn_bias.then_some(true);
                norm(
                    &format!("{b}.attn_norm"),
                    &format!("{h}.input_layernorm"),
                    &mut out,
                    false,
                );
                lin(
                    &mut out,
                    "attn_q",
                    "self_attn.q_proj",
                    qd,
                    d,
                    bias,
                    Some(rotary_rows(c.model.n_heads, hd)),
                );
                lin(
                    &mut out,
                    "attn_k",
                    "self_attn.k_proj",
                    kvd,
                    d,
                    bias,
                    Some(rotary_rows(c.model.n_kv_heads, hd)),
                );
                lin(&mut out, "attn_v", "self_attn.v_proj", kvd, d, bias, None);
                lin(
                    &mut out,
                    "attn_output",
                    "self_attn.o_proj",
                    d,
                    qd,
                    None,
                    None,
                );
                norm(
                    &format!("{b}.ffn_norm"),
                    &format!("{h}.post_attention_layernorm"),
                    &mut out,
                    false,
                );
                lin(&mut out, "ffn_gate", "mlp.gate_proj", f, d, None, None);
                lin(&mut out, "ffn_up", "mlp.up_proj", f, d, None, None);
                lin(&mut out, "ffn_down", "mlp.down_proj", d, f, None, None);
            }
            Family::Opt => {
                norm(
                    &format!("{b}.attn_norm"),
                    &format!("{h}.self_attn_layer_norm"),
                    &mut out,
                    true,
                );
                lin(
                    &mut out,
                    "attn_q",
                    "self_attn.q_proj",
                    qd,
                    d,
                    Some(true),
                    None,
                );
                lin(
                    &mut out,
                    "attn_k",
                    "self_attn.k_proj",
                    kvd,
                    d,
                    Some(true),
                    None,
                );
                lin(
                    &mut out,
                    "attn_v",
                    "self_attn.v_proj",
                    kvd,
                    d,
                    Some(true),
                    None,
                );
                lin(
                    &mut out,
                    "attn_output",
                    "self_attn.out_proj",
                    d,
                    qd,
                    Some(true),
                    None,
                );
                norm(
                    &format!("{b}.ffn_norm"),
                    &format!("{h}.final_layer_norm"),
                    &mut out,
                    true,
                );
                lin(&mut out, "ffn_up", "fc1", f, d, Some(true), None);
                lin(&mut out, "ffn_down", "fc2", d, f, Some(true), None);
            }
            Family::Falcon {
                qkv,
                two_norms,
                bias,
            } => {
                if two_norms {
                    norm(
                        &format!("{b}.attn_norm"),
                        &format!("{h}.ln_attn"),
                        &mut out,
                        true,
                    );
                    norm(
                        &format!("{b}.attn_norm_2"),
                        &format!("{h}.ln_mlp"),
                        &mut out,
                        true,
                    );
                } else {
                    norm(
                        &format!("{b}.attn_norm"),
                        &format!("{h}.input_layernorm"),
                        &mut out,
                        true,
                    );
                }
                let fused = qd + 2 * kvd;
                let bias = bias.then_some(true);
                for (name, rows) in ["attn_q", "attn_k", "attn_v"]
                    .into_iter()
                    .zip(falcon_qkv_rows(
                        qkv,
                        c.model.n_heads,
                        c.model.n_kv_heads,
                        hd,
                    ))
                {
                    lin(
                        &mut out,
                        name,
                        "self_attention.query_key_value",
                        fused,
                        d,
                        bias,
                        Some(rows),
                    );
                }
                lin(
                    &mut out,
                    "attn_output",
                    "self_attention.dense",
                    d,
                    qd,
                    bias,
                    None,
                );
                lin(&mut out, "ffn_up", "mlp.dense_h_to_4h", f, d, bias, None);
                lin(&mut out, "ffn_down", "mlp.dense_4h_to_h", d, f, bias, None);
            }
        }
    }
    let final_norm = match c.family {
        Family::Llama { .. } => "model.norm",
        Family::Opt => "model.decoder.final_layer_norm",
        Family::Falcon { .. } => "transformer.ln_f",
    };
    norm(
        "output_norm",
        final_norm,
        &mut out,
        c.model.arch != Arch::Llama && c.model.arch != Arch::Bamboo,
    );
    if !c.tied {
        out.push(Plan::new("output.weight", "lm_head.weight", &[v, d]));
    }
    out
}

/// Our weight type for a safetensors dtype, when we read it.
fn stored_wtype(dtype: Dtype) -> Option<WType> {
    match dtype {
        Dtype::F32 => Some(WType::F32),
        Dtype::F16 => Some(WType::F16),
        Dtype::BF16 => Some(WType::BF16),
        _ => None,
    }
}

/// The GGUF metadata of the model (without the tokenizer's).
fn metadata(c: &HfConfig, name: &str) -> Vec<(String, Value)> {
    let p = c.model.arch.name();
    let u = |n: usize| Value::U32(u32::try_from(n).unwrap_or(u32::MAX));
    let eps_key = match c.model.arch {
        Arch::Opt | Arch::Falcon => "attention.layer_norm_epsilon",
        _ => "attention.layer_norm_rms_epsilon",
    };
    let act = match c.model.activation {
        powerinfer_kernels::Activation::SwiGlu => "silu",
        powerinfer_kernels::Activation::ReGlu | powerinfer_kernels::Activation::Relu => "relu",
        powerinfer_kernels::Activation::DRelu => "drelu",
        powerinfer_kernels::Activation::Gelu | powerinfer_kernels::Activation::GeGlu => "gelu",
    };
    let mut m = vec![
        ("general.architecture".to_string(), Value::from(p)),
        ("general.name".to_string(), Value::from(name)),
        (
            "general.source.model_type".to_string(),
            Value::from(c.model_type.as_str()),
        ),
        (format!("{p}.block_count"), u(c.model.n_layers)),
        (format!("{p}.embedding_length"), u(c.model.dim)),
        (format!("{p}.feed_forward_length"), u(c.model.n_ff)),
        (format!("{p}.attention.head_count"), u(c.model.n_heads)),
        (
            format!("{p}.attention.head_count_kv"),
            u(c.model.n_kv_heads),
        ),
        (format!("{p}.attention.key_length"), u(c.model.head_dim)),
        (format!("{p}.attention.value_length"), u(c.model.head_dim)),
        (format!("{p}.context_length"), u(c.model.ctx_len)),
        (format!("{p}.{eps_key}"), Value::F32(c.model.norm_eps)),
        (format!("{p}.rope.freq_base"), Value::F32(c.model.rope_base)),
        ("powerinfer.ffn_activation".to_string(), Value::from(act)),
    ];
    if let Some(w) = c.model.sliding_window {
        m.push((format!("{p}.attention.sliding_window"), u(w.window)));
    }
    m
}

/// Converts the checkpoint's tensors (and `extra` metadata, the tokenizer's) into a
/// GGUF writer.
pub(crate) fn to_writer(
    c: &HfConfig,
    shards: &Shards,
    dir: &str,
    name: &str,
    extra: &[(String, Value)],
    opts: &ConvertOptions<'_>,
) -> Result<GgufWriter, HfError> {
    let mut w = GgufWriter::new();
    for (k, v) in metadata(c, name).into_iter().chain(extra.iter().cloned()) {
        w.add(&k, v);
    }
    let total = shards.data_bytes();
    let mut done = 0u64;
    // A fused tensor (Falcon's qkv) feeds several plans: its bytes count once.
    let mut counted = std::collections::HashSet::new();
    for plan in plans(c) {
        let Some(src) = shards.get(&plan.hf) else {
            if plan.optional {
                continue;
            }
            return Err(HfError::MissingTensor {
                dir: dir.to_string(),
                tensor: plan.hf,
            });
        };
        let (dims, wtype, data) = convert(&plan, &src, opts.quantize)?;
        w.add_tensor(&plan.gguf, &dims, wtype, data)?;
        if counted.insert(plan.hf) {
            done += src.bytes.len() as u64;
        }
        if let Some(report) = opts.progress {
            report(done, total);
        }
    }
    if let Some(report) = opts.progress {
        report(total, total);
    }
    Ok(w)
}

/// One planned tensor: checked, its rows selected, re-encoded. Returns ggml dims
/// (columns first), type and bytes.
fn convert(
    plan: &Plan,
    src: &Stored<'_>,
    quantize: Option<WType>,
) -> Result<(Vec<u64>, WType, Vec<u8>), HfError> {
    let stored = stored_wtype(src.dtype).ok_or_else(|| HfError::Dtype {
        file: src.file.to_string(),
        tensor: plan.hf.clone(),
        dtype: format!("{:?}", src.dtype),
    })?;
    if src.shape != plan.shape.as_slice() {
        return Err(HfError::Shape {
            file: src.file.to_string(),
            tensor: plan.hf.clone(),
            expected: plan.shape.clone(),
            found: src.shape.to_vec(),
        });
    }
    let matrix = plan.shape.len() == 2;
    let (n_rows, cols) = if matrix {
        (plan.shape[0], plan.shape[1])
    } else {
        (plan.shape[0], 1)
    };
    let kernel = |source| HfError::Kernel {
        tensor: plan.hf.clone(),
        source,
    };
    let row_bytes = stored.row_bytes(cols).map_err(kernel)?;
    let all: Vec<usize>;
    let rows = match &plan.rows {
        Some(r) => r.as_slice(),
        None => {
            all = (0..n_rows).collect();
            &all
        }
    };
    // Rows planned from config.json lie inside the shape checked above.
    let row = |r: usize| {
        src.bytes
            .get(r * row_bytes..(r + 1) * row_bytes)
            .unwrap_or_default()
    };
    let target = match quantize {
        Some(q) if matrix && q.row_bytes(cols).is_ok() => q,
        _ if matrix => stored,
        _ => WType::F32,
    };
    let data = if target == stored {
        rows.iter().flat_map(|&r| row(r).iter().copied()).collect()
    } else {
        let mut values = vec![0f32; rows.len() * cols];
        for (&r, out) in rows.iter().zip(values.chunks_exact_mut(cols)) {
            dequantize_row(stored, row(r), out).map_err(kernel)?;
        }
        quantize_matrix(target, &values, rows.len(), cols).map_err(kernel)?
    };
    let dims = if matrix {
        vec![cols as u64, rows.len() as u64]
    } else {
        vec![rows.len() as u64]
    };
    Ok((dims, target, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotary_rows_match_llama_cpp_permute() {
        // llama.cpp: w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(w.shape):
        // for hd = 4 and two heads, rows [0, 2, 1, 3, 4, 6, 5, 7].
        assert_eq!(rotary_rows(2, 4), vec![0, 2, 1, 3, 4, 6, 5, 7]);
        let r = rotary_rows(3, 8);
        let mut sorted = r.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..24).collect::<Vec<_>>(), "a permutation");
    }

    #[test]
    fn falcon_qkv_splits_cover_the_fused_rows_once() {
        for (layout, n_head, n_kv) in [
            (QkvLayout::MultiQuery, 4, 1),
            (QkvLayout::Interleaved, 4, 4),
            (QkvLayout::Grouped, 4, 2),
            (QkvLayout::Grouped, 8, 1),
        ] {
            let hd = 3;
            let [q, k, v] = falcon_qkv_rows(layout, n_head, n_kv, hd);
            assert_eq!(
                (q.len(), k.len(), v.len()),
                (n_head * hd, n_kv * hd, n_kv * hd)
            );
            let mut all: Vec<usize> = q.iter().chain(&k).chain(&v).copied().collect();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..(n_head + 2 * n_kv) * hd).collect::<Vec<_>>(),
                "{layout:?}"
            );
        }
        // Grouped, 4 heads in 2 groups: [q0 q1 k0 v0 | q2 q3 k1 v1] (head_dim 1).
        let [q, k, v] = falcon_qkv_rows(QkvLayout::Grouped, 4, 2, 1);
        assert_eq!((q, k, v), (vec![0, 1, 4, 5], vec![2, 6], vec![3, 7]));
    }

    #[test]
    fn permuted_rows_under_adjacent_rope_equal_hf_rows_under_rotate_half() {
        use crate::config::RopeStyle;
        use crate::ops::{rope, rope_angles};
        let (n_head, hd) = (3, 8);
        let x: Vec<f32> = (0..n_head * hd).map(|i| (i as f32 * 0.37).sin()).collect();
        let perm = rotary_rows(n_head, hd);
        let mut angles = Vec::new();
        rope_angles(hd, 5, 10_000.0, &mut angles);
        // HF: rotate_half on the rows as stored.
        let mut hf = x.clone();
        rope(&mut hf, &angles, RopeStyle::Halves);
        // Ours: adjacent pairs on the permuted rows.
        let mut ours: Vec<f32> = perm.iter().map(|&r| x[r]).collect();
        rope(&mut ours, &angles, RopeStyle::Adjacent);
        let hf_permuted: Vec<f32> = perm.iter().map(|&r| hf[r]).collect();
        assert_eq!(ours, hf_permuted);
    }
}
