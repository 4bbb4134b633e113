//! The forward pass over a KV cache: prompt prefill in one batched pass, then decode.

use powerinfer_kernels::{FfnScratch, KernelError, Kernels, Matrix, Skip};
use rayon::prelude::*;

use crate::config::Arch;
use crate::error::KernelContext;
use crate::gguf::TensorInfo;
use crate::kv_cache::KvCache;
use crate::model::{Layer, Model};
use crate::ops::{add_bias, attend_head, norm, rope};
use crate::{FfnPolicy, ModelError};

/// Neurons computed per layer since the last reset: the density a policy achieved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FfnStats {
    /// Per layer, the number of neurons whose output was used, summed over tokens.
    pub active: Vec<u64>,
    /// Tokens counted.
    pub tokens: u64,
    /// Neurons per layer.
    pub n_ff: usize,
}

impl FfnStats {
    /// Mean fraction of neurons computed, per layer.
    pub fn density_per_layer(&self) -> Vec<f64> {
        let denom = (self.tokens.max(1) * self.n_ff.max(1) as u64) as f64;
        self.active.iter().map(|&a| a as f64 / denom).collect()
    }

    /// Mean fraction of neurons computed over all layers.
    pub fn density(&self) -> f64 {
        let d = self.density_per_layer();
        d.iter().sum::<f64>() / d.len().max(1) as f64
    }
}

/// Called once per layer and token with the FFN input (normalised hidden state) and
/// the neurons that fired (nonzero activation, ascending). Why: activation statistics
/// and predictor training data come from exactly what the forward pass computed, with
/// no second pass.
pub type FfnObserver<'a> = dyn FnMut(usize, &[f32], &[u32]) + Send + 'a;

/// One running sequence on a model: the KV cache, scratch buffers and statistics.
pub struct Session<'m> {
    model: &'m Model,
    kernels: Kernels,
    cache: KvCache,
    scratch: FfnScratch,
    stats: FfnStats,
    all_neurons: Vec<u32>,
    /// Single-threaded kernels for work already split over the pool (attention heads).
    serial: Kernels,
    /// `0..ctx_len`, the index list of "every cached position".
    positions: Vec<u32>,
}

impl<'m> Session<'m> {
    /// A session with a context of `ctx_len` positions (capped at the model's) on
    /// `kernels`.
    pub fn new(model: &'m Model, kernels: Kernels, ctx_len: usize) -> Session<'m> {
        let cfg = model.config();
        let ctx = ctx_len.clamp(1, cfg.ctx_len);
        let serial = kernels.single_threaded();
        Session {
            model,
            kernels,
            cache: KvCache::new(cfg.n_layers, ctx, cfg.kv_dim()),
            scratch: FfnScratch::default(),
            stats: FfnStats {
                active: vec![0; cfg.n_layers],
                tokens: 0,
                n_ff: cfg.n_ff,
            },
            all_neurons: (0..cfg.n_ff as u32).collect(),
            serial,
            positions: (0..ctx as u32).collect(),
        }
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Positions already in the cache.
    pub fn pos(&self) -> usize {
        self.cache.len()
    }

    /// Context capacity.
    pub fn ctx_len(&self) -> usize {
        self.cache.ctx_len()
    }

    /// Forgets the sequence (and keeps the statistics).
    pub fn reset(&mut self) {
        self.cache.clear();
    }

    /// Drops cached positions from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
    }

    /// FFN density statistics since the last [`Session::reset_stats`].
    pub fn stats(&self) -> &FfnStats {
        &self.stats
    }

    /// Zeroes the statistics.
    pub fn reset_stats(&mut self) {
        self.stats.active.iter_mut().for_each(|a| *a = 0);
        self.stats.tokens = 0;
    }

    /// Feeds `tokens` at the next positions and returns the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32], policy: &FfnPolicy) -> Result<Vec<f32>, ModelError> {
        let mut all = self.forward_impl(tokens, policy, false, None)?;
        let vocab = self.model.config().vocab;
        Ok(all.split_off(all.len().saturating_sub(vocab)))
    }

    /// Feeds `tokens` and returns the logits of every position (`tokens.len() × vocab`).
    pub fn forward_all(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
    ) -> Result<Vec<f32>, ModelError> {
        self.forward_impl(tokens, policy, true, None)
    }

    /// [`Session::forward_all`] that also reports each layer's FFN input and active set.
    pub fn forward_observed(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        observer: &mut FfnObserver<'_>,
    ) -> Result<Vec<f32>, ModelError> {
        self.forward_impl(tokens, policy, true, Some(observer))
    }

    fn forward_impl(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        all_logits: bool,
        observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<Vec<f32>, ModelError> {
        // Enter the thread pool once per pass, not once per kernel call.
        let kernels = self.kernels.clone();
        kernels.install(|| self.forward_in_pool(tokens, policy, all_logits, observer))
    }

    fn forward_in_pool(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        all_logits: bool,
        mut observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<Vec<f32>, ModelError> {
        let model = self.model;
        let cfg = model.config();
        policy.validate(cfg.n_layers, cfg.n_ff)?;
        let (n, d, pos0) = (tokens.len(), cfg.dim, self.cache.len());
        if n == 0 {
            return Ok(Vec::new());
        }
        if pos0 + n > self.cache.ctx_len() {
            return Err(ModelError::ContextFull {
                needed: pos0 + n,
                ctx_len: self.cache.ctx_len(),
            });
        }
        let mut x = vec![0f32; n * d];
        let mut tmp = vec![0f32; d];
        for (b, (&t, row)) in tokens.iter().zip(x.chunks_exact_mut(d)).enumerate() {
            if t as usize >= cfg.vocab {
                return Err(ModelError::BadToken {
                    id: t,
                    vocab: cfg.vocab,
                });
            }
            model.embedding_row(&model.tok_embd, t as usize, row)?;
            if let Some(pe) = &model.pos_embd {
                model.embedding_row(pe, pos0 + b, &mut tmp)?;
                row.iter_mut().zip(&tmp).for_each(|(a, p)| *a += p);
            }
        }
        for (li, layer) in model.layers.iter().enumerate() {
            self.attention(li, layer, &mut x, pos0)?;
            self.ffn(li, layer, policy, &mut x, observer.as_deref_mut())?;
        }
        self.cache.set_len(pos0 + n);
        self.stats.tokens += n as u64;
        let rows: Vec<usize> = if all_logits {
            (0..n).collect()
        } else {
            vec![n - 1]
        };
        let out_m = model.matrix(&model.output)?;
        let mut hs = vec![0f32; rows.len() * d];
        for (&r, hr) in rows.iter().zip(hs.chunks_exact_mut(d)) {
            norm(&x[r * d..(r + 1) * d], &model.output_norm, cfg.norm_eps, hr);
        }
        let mut logits = vec![0f32; rows.len() * cfg.vocab];
        // Prompt logits go through the batched (f32) kernel even for one row: once per
        // prompt, the exact logits are worth the extra time.
        if n > 1 {
            self.kernels.gemm(&out_m, &hs, rows.len(), &mut logits)
        } else {
            self.kernels.gemv(&out_m, &hs, &mut logits)
        }
        .ctx(|| "output".into())?;
        Ok(logits)
    }

    /// `xs · Wᵀ (+ b)` for the `n` rows of `xs`.
    fn project(
        &self,
        lin: &crate::model::Linear,
        xs: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let m = self.model.matrix(&lin.t)?;
        let mut ys = vec![0f32; n * m.rows()];
        self.matmul(&m, xs, n, &mut ys).ctx(|| lin.t.name.clone())?;
        if lin.b.is_some() {
            ys.chunks_exact_mut(m.rows())
                .for_each(|y| add_bias(y, lin.b.as_ref()));
        }
        Ok(ys)
    }

    fn attention(
        &mut self,
        li: usize,
        layer: &Layer,
        x: &mut [f32],
        pos0: usize,
    ) -> Result<(), ModelError> {
        let cfg = self.model.config();
        let (d, kvd, hd) = (cfg.dim, cfg.kv_dim(), cfg.head_dim);
        let n = x.len() / d;
        let mut h = vec![0f32; n * d];
        for (xr, hr) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)) {
            norm(xr, &layer.attn_norm, cfg.norm_eps, hr);
        }
        let mut q = self.project(&layer.q, &h, n)?;
        let mut k = self.project(&layer.k, &h, n)?;
        let v = self.project(&layer.v, &h, n)?;
        for b in 0..n {
            if cfg.arch != Arch::Opt {
                rope(&mut q[b * d..(b + 1) * d], hd, pos0 + b, cfg.rope_base);
                rope(&mut k[b * kvd..(b + 1) * kvd], hd, pos0 + b, cfg.rope_base);
            }
            self.cache.store(
                li,
                pos0 + b,
                &k[b * kvd..(b + 1) * kvd],
                &v[b * kvd..(b + 1) * kvd],
            );
        }
        let (keys, values) = self.cache.layer(li, pos0 + n);
        let group = cfg.n_heads / cfg.n_kv_heads;
        let mut att = vec![0f32; n * d];
        let (serial, positions) = (&self.serial, &self.positions);
        // One (token, head) pair per task: token b sees positions 0..=pos0+b.
        let work = |(e, out): (usize, &mut [f32])| {
            let (b, head) = (e / cfg.n_heads, e % cfg.n_heads);
            let len = pos0 + b + 1;
            let qh = &q[b * d + head * hd..b * d + (head + 1) * hd];
            let mut scores = Vec::with_capacity(len);
            attend_head(
                serial,
                qh,
                &keys[..len * kvd],
                &values[..len * kvd],
                kvd,
                (head / group) * hd,
                positions,
                out,
                &mut scores,
            )
        };
        // Runs inside the kernels' pool (see `forward_impl`).
        if self.kernels.threads() > 1 && n * (pos0 + n) * d > 1 << 16 {
            att.par_chunks_mut(hd).enumerate().try_for_each(work)
        } else {
            att.chunks_mut(hd).enumerate().try_for_each(work)
        }
        .ctx(|| format!("blk.{li}: attention"))?;
        let o = self.project(&layer.o, &att, n)?;
        x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        Ok(())
    }

    fn ffn(
        &mut self,
        li: usize,
        layer: &Layer,
        policy: &FfnPolicy,
        x: &mut [f32],
        observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<(), ModelError> {
        let cfg = self.model.config();
        let d = cfg.dim;
        let n = x.len() / d;
        let mut h = vec![0f32; n * d];
        for (xr, hr) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)) {
            norm(xr, &layer.ffn_norm, cfg.norm_eps, hr);
        }
        let mut y = vec![0f32; n * d];
        match (policy, &layer.ffn.down) {
            (FfnPolicy::Dense, Some(down)) => {
                self.ffn_dense(li, layer, down, &h, &mut y, observer)?
            }
            _ if n == 1 => self.ffn_single(li, layer, policy, &h, &mut y, observer)?,
            _ => self.ffn_batch(li, layer, policy, &h, &mut y, observer)?,
        }
        for (xr, yr) in x.chunks_exact_mut(d).zip(y.chunks_exact_mut(d)) {
            add_bias(yr, layer.down_bias.as_ref());
            xr.iter_mut().zip(yr.iter()).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }

    /// `W·x` for one row of `xs` (GEMV) or several (GEMM).
    fn matmul(&self, m: &Matrix, xs: &[f32], n: usize, ys: &mut [f32]) -> Result<(), KernelError> {
        if n == 1 {
            self.kernels.gemv(m, xs, ys)
        } else {
            self.kernels.gemm(m, xs, n, ys)
        }
    }

    /// The baseline: every neuron, the down projection as a GEMV over the stored matrix.
    fn ffn_dense(
        &mut self,
        li: usize,
        layer: &Layer,
        down: &TensorInfo,
        h: &[f32],
        y: &mut [f32],
        observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<(), ModelError> {
        let (d, n_ff) = (self.model.config().dim, self.model.config().n_ff);
        let n = h.len() / d;
        let w = self.model.ffn_weights(layer)?;
        let ctx = || format!("blk.{li}: dense ffn");
        let mut g = vec![0f32; n * n_ff];
        self.matmul(&w.gate, h, n, &mut g).ctx(ctx)?;
        let mut u = vec![0f32; if w.up.is_some() { n * n_ff } else { 0 }];
        if let Some(up) = &w.up {
            self.matmul(up, h, n, &mut u).ctx(ctx)?;
        }
        for (k, v) in g.iter_mut().enumerate() {
            let i = k % n_ff;
            let a = w.act.gate(*v + w.gate_bias.map_or(0.0, |b| b[i]));
            *v = w.act.combine(a, u.get(k).copied().unwrap_or(0.0));
        }
        self.matmul(&self.model.matrix(down)?, &g, n, y).ctx(ctx)?;
        self.stats.active[li] += (n * n_ff) as u64;
        if let Some(obs) = observer {
            for (hb, gb) in h.chunks_exact(d).zip(g.chunks_exact(n_ff)) {
                let fired: Vec<u32> = (0..n_ff as u32)
                    .filter(|&i| gb[i as usize] != 0.0)
                    .collect();
                obs(li, hb, &fired);
            }
        }
        Ok(())
    }

    /// One token through the fused sparse kernel.
    fn ffn_single(
        &mut self,
        li: usize,
        layer: &Layer,
        policy: &FfnPolicy,
        h: &[f32],
        y: &mut [f32],
        observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<(), ModelError> {
        let (candidates, skip) = policy.layer(li);
        let active = self
            .kernels
            .ffn_sparse(
                &self.model.ffn_weights(layer)?,
                h,
                candidates,
                skip,
                y,
                &mut self.scratch,
            )
            .ctx(|| format!("blk.{li}: ffn"))?;
        self.stats.active[li] += active as u64;
        if let Some(obs) = observer {
            let fired: Vec<u32> = (self
                .scratch
                .active()
                .iter()
                .zip(self.scratch.active_values()))
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, _)| *i)
            .collect();
            obs(li, h, &fired);
        }
        Ok(())
    }

    /// Several tokens: gates of every candidate for every token, then up and down over
    /// the union of the neurons that any token keeps.
    fn ffn_batch(
        &mut self,
        li: usize,
        layer: &Layer,
        policy: &FfnPolicy,
        h: &[f32],
        y: &mut [f32],
        mut observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<(), ModelError> {
        let d = self.model.config().dim;
        let n = h.len() / d;
        let w = self.model.ffn_weights(layer)?;
        let (candidates, skip) = policy.layer(li);
        let ctx = || format!("blk.{li}: ffn");
        let cand = candidates.unwrap_or(&self.all_neurons);
        let m = cand.len();
        let mut g = vec![0f32; n * m];
        self.kernels
            .gemm_rows(&w.gate, h, n, cand, &mut g)
            .ctx(ctx)?;
        let threshold = match skip {
            Skip::None => f32::NEG_INFINITY,
            Skip::Below(t) => t,
        };
        for gb in g.chunks_exact_mut(m.max(1)) {
            for (v, &i) in gb.iter_mut().zip(cand) {
                *v = w.act.gate(*v + w.gate_bias.map_or(0.0, |b| b[i as usize]));
            }
        }
        let keep = |a: f32| a.abs() > threshold;
        // Positions (in `cand`) of the union of kept neurons, and the neurons themselves.
        let kept: Vec<usize> = (0..m)
            .filter(|&k| (0..n).any(|b| keep(g[b * m + k])))
            .collect();
        let union: Vec<u32> = kept.iter().map(|&k| cand[k]).collect();
        let u_n = union.len();
        let mut hs = vec![0f32; n * u_n];
        if let Some(up) = &w.up {
            self.kernels.gemm_rows(up, h, n, &union, &mut hs).ctx(ctx)?;
        }
        for b in 0..n {
            let mut fired = Vec::new();
            for (j, &k) in kept.iter().enumerate() {
                let a = g[b * m + k];
                let v = if keep(a) {
                    w.act.combine(a, hs[b * u_n + j])
                } else {
                    0.0
                };
                hs[b * u_n + j] = v;
                if v != 0.0 {
                    fired.push(union[j]);
                }
            }
            // Same accounting as the single-token kernel: without skipping, every
            // candidate's down row is read.
            self.stats.active[li] += if skip == Skip::None { u_n } else { fired.len() } as u64;
            if let Some(obs) = observer.as_deref_mut() {
                obs(li, &h[b * d..(b + 1) * d], &fired);
            }
        }
        self.kernels
            .axpy_rows_batch(&w.down_t, &hs, n, &union, y)
            .ctx(ctx)?;
        Ok(())
    }
}
