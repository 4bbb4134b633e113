//! Small per-vector operations of the forward pass (norms, RoPE, attention, softmax).
//!
//! Why scalar Rust: these touch O(dim) or O(context) values per token, next to the
//! O(dim²) weight streaming in the kernels; clarity wins here.

use powerinfer_kernels::{HeadRows, KernelError, Kernels};

use crate::config::RopeStyle;
use crate::model::Norm;

/// RMSNorm (`b` absent) or LayerNorm (`b` present) of `x` into `out`.
pub(crate) fn norm(x: &[f32], n: &Norm, eps: f32, out: &mut [f32]) {
    let len = x.len() as f32;
    match &n.b {
        None => {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / len;
            let s = 1.0 / (ms + eps).sqrt();
            for ((o, v), w) in out.iter_mut().zip(x).zip(&n.w) {
                *o = v * s * w;
            }
        }
        Some(b) => {
            let mean = x.iter().sum::<f32>() / len;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / len;
            let s = 1.0 / (var + eps).sqrt();
            for (((o, v), w), b) in out.iter_mut().zip(x).zip(&n.w).zip(b) {
                *o = (v - mean) * s * w + b;
            }
        }
    }
}

/// The `(sin, cos)` of position `pos`'s rotation angle for each pair of a head of
/// `head_dim` values (llama.cpp's NORM RoPE), into `out`. Why apart from [`rope`]: the
/// angles depend only on the position, so a token computes them once for every head
/// of q and k in every layer, not once per head.
pub(crate) fn rope_angles(head_dim: usize, pos: usize, base: f32, out: &mut Vec<(f32, f32)>) {
    out.clear();
    out.extend((0..head_dim / 2).map(|i| {
        let theta = pos as f32 * base.powf(-2.0 * i as f32 / head_dim as f32);
        theta.sin_cos()
    }));
}

/// Rotates the pairs of every head of `x` (heads of `2·angles.len()` values) by the
/// [`rope_angles`] of one position: adjacent pairs `(2i, 2i + 1)`, or `(i, i + hd/2)`
/// in [`RopeStyle::Halves`].
pub(crate) fn rope(x: &mut [f32], angles: &[(f32, f32)], style: RopeStyle) {
    let half = angles.len().max(1);
    for head in x.chunks_exact_mut(2 * half) {
        for (i, &(s, c)) in angles.iter().enumerate() {
            let (ia, ib) = match style {
                RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                RopeStyle::Halves => (i, i + half),
            };
            let (a, b) = (head[ia], head[ib]);
            head[ia] = a * c - b * s;
            head[ib] = a * s + b * c;
        }
    }
}

/// Normalizes each `n.w.len()`-wide row of `x` in place with [`norm`] (Gemma's QK-norm
/// per head, and its norms on the attention and FFN outputs before their residual adds).
pub(crate) fn norm_rows(x: &mut [f32], n: &Norm, eps: f32) {
    let mut tmp = vec![0f32; n.w.len()];
    for row in x.chunks_exact_mut(n.w.len().max(1)) {
        norm(row, n, eps, &mut tmp);
        row.copy_from_slice(&tmp);
    }
}

/// In-place softmax.
pub(crate) fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// One query head against the cached keys/values it sees, in its KV head:
/// `out = softmax(scale·q·Kᵀ)·V`, with `K`, `V` read in place from the cache rows
/// (`kv_dim` floats apart, this head's slice at `kv_off`) by the head kernels.
pub(crate) fn attend_head(
    kernels: &Kernels,
    q: &[f32],
    (keys, values): (&[f32], &[f32]),
    (kv_dim, kv_off): (usize, usize),
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) -> Result<(), KernelError> {
    let hd = q.len();
    let len = keys.len() / kv_dim;
    scores.resize(len, 0.0);
    kernels.head_scores(&HeadRows::new(keys, kv_dim, kv_off, hd, len)?, q, scores)?;
    scores.iter_mut().for_each(|s| *s *= scale);
    softmax(scores);
    kernels.head_mix(
        &HeadRows::new(values, kv_dim, kv_off, hd, len)?,
        scores,
        out,
    )
}

/// `y += b` elementwise when a bias is present.
pub(crate) fn add_bias(y: &mut [f32], b: Option<&Vec<f32>>) {
    if let Some(b) = b {
        for (o, v) in y.iter_mut().zip(b) {
            *o += v;
        }
    }
}
