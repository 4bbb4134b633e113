//! The forward pass over a KV cache: prompt prefill in one batched pass, then decode.

use powerinfer_kernels::{FfnBatchScratch, FfnWeights, KernelError, Kernels, Matrix, PackedMatrix};
use powerinfer_predictor::{PredictScratch, PredictorInput};
use rayon::prelude::*;

use std::ops::Range;
use std::sync::Arc;

use crate::config::Arch;
use crate::error::KernelContext;
use crate::gguf::TensorInfo;
use crate::handle::Handle;
use crate::hybrid::Hybrid;
use crate::input_sparsity::{InputMode, InputSparsity, Proj};
use crate::kv_cache::KvCache;
use crate::model::{FfnPacked, Layer, Model};
use crate::ops::{add_bias, attend_head, norm, norm_rows, rope, rope_angles};
use crate::policy::ColdChoice;
use crate::{FfnPolicy, ModelError};

mod split;

pub use split::HybridStats;

/// Neurons computed per layer since the last reset: the density a policy achieved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FfnStats {
    /// Per layer, the number of neurons whose output was used, summed over tokens.
    pub active: Vec<u64>,
    /// Tokens counted.
    pub tokens: u64,
    /// Neurons per layer.
    pub n_ff: usize,
    /// FFN weight bytes read, summed over tokens and layers, predictors included, as a
    /// one-token decode step reads them (gate rows of every candidate, up and down rows
    /// of the neurons kept; the dense path reads whole matrices).
    pub bytes: u64,
    /// Time spent in predictors.
    pub predictor_time: std::time::Duration,
    /// Time spent in the FFN kernels (after prediction; norms excluded).
    pub ffn_time: std::time::Duration,
    /// With input sparsity: projection input entries kept, summed over projections,
    /// layers and tokens.
    pub input_kept: u64,
    /// With input sparsity: projection input entries seen.
    pub input_entries: u64,
    /// With a hybrid split: the work on each side.
    pub hybrid: HybridStats,
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

    /// Mean FFN weight bytes read per token (all layers, predictors included).
    pub fn bytes_per_token(&self) -> f64 {
        self.bytes as f64 / self.tokens.max(1) as f64
    }

    /// Share of projection input entries kept, when input sparsity was on.
    pub fn input_density(&self) -> Option<f64> {
        (self.input_entries > 0).then(|| self.input_kept as f64 / self.input_entries as f64)
    }
}

/// What one layer's FFN computed for one token.
#[derive(Clone, Copy, Debug)]
pub struct FfnObservation<'a> {
    /// The layer.
    pub layer: usize,
    /// The FFN input (normalised hidden state: what gate and up read).
    pub input: &'a [f32],
    /// The residual stream before the FFN norm (what PowerInfer's predictors read).
    pub residual: &'a [f32],
    /// The neurons computed, ascending (every neuron on the dense path).
    pub neurons: &'a [u32],
    /// Their activations `a = act(gate·x)·(up·x)` (or `act(fc1·x)`), parallel to
    /// `neurons`; 0 where a neuron was skipped after its gate.
    pub values: &'a [f32],
}

/// Called once per layer and token with what the FFN computed. Why: activation
/// statistics and predictor training data come from exactly what the forward pass
/// computed, with no second pass.
pub type FfnObserver<'a> = dyn FnMut(&FfnObservation) + Send + 'a;

/// How a session holds its model: borrowed (the usual case) or shared (a session that
/// owns what it uses, to move into a task).
type ModelRef<'m> = Handle<'m, Model>;

impl Session<'static> {
    /// A session that shares ownership of `model`: it borrows nothing, so it can move
    /// into another thread or an async task (see [`Engine::generate_shared`](crate::Engine::generate_shared)).
    pub fn shared(
        model: Arc<Model>,
        kernels: Kernels,
        ctx_len: usize,
    ) -> Result<Session<'static>, ModelError> {
        Session::with_model(Handle::Shared(model), kernels, ctx_len)
    }
}

/// One running sequence on a model: the KV cache, scratch buffers and statistics.
pub struct Session<'m> {
    model: ModelRef<'m>,
    kernels: Kernels,
    cache: KvCache,
    scratch: FfnBatchScratch,
    stats: FfnStats,
    all_neurons: Vec<u32>,
    /// Single-threaded kernels for work already split over the pool (attention heads).
    serial: Kernels,
    predict: PredictScratch,
    input: Option<InputMode>,
    hybrid: Option<Arc<Hybrid>>,
    /// The token of every cached position, and whether it was computed in a batch of two
    /// or more (the prefill arithmetic, which a fresh prefill reproduces exactly).
    history: Vec<(u32, bool)>,
    prefill: Prefill,
}

/// How a batch of tokens (a prompt's prefill) computes its products over Q8_0/Q4
/// weights that have a packed copy ([`crate::Packing`]; other weights always take the
/// exact path).
///
/// Measured on SmolLM2-135M Q4_1, 16 held-out sequences of 128 tokens (`bench
/// prefill`): the int8 prefill's mean KL from the exact one is 4.0e-3 nats/token with
/// 95.8% top-1 agreement, inside the decode path's own distance from exact (4.9e-3,
/// 95.0%) — it is the decode step's arithmetic — and it runs 1.3–1.6× faster. It is
/// not the default: on the default chat prompt ("What is the capital of France?") it
/// turns the greedy answer from "The capital of France is Paris." into another one, and
/// one such flip on the project's own demo outweighs the speed until a larger
/// evaluation says otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prefill {
    /// f32 activations dotted with the weights decoded to f32: the reference, as exact
    /// as the stored weights allow (tested against the float64 reference; the default).
    #[default]
    Exact,
    /// Activations quantized to 8-bit blocks, integer dots over the packed layout, as
    /// every decode step does.
    Int8,
}

impl<'m> Session<'m> {
    /// A session with a context of `ctx_len` positions (capped at the model's) on
    /// `kernels`. Its KV cache takes [`Session::kv_cache_bytes`]; when that cannot be
    /// allocated the error is [`ModelError::Alloc`], not an abort.
    pub fn new(
        model: &'m Model,
        kernels: Kernels,
        ctx_len: usize,
    ) -> Result<Session<'m>, ModelError> {
        Session::with_model(Handle::Borrowed(model), kernels, ctx_len)
    }

    fn with_model(
        model: ModelRef<'m>,
        kernels: Kernels,
        ctx_len: usize,
    ) -> Result<Session<'m>, ModelError> {
        let cfg = model.config().clone();
        let ctx = ctx_len.clamp(1, cfg.ctx_len);
        let serial = kernels.single_threaded();
        Ok(Session {
            model,
            kernels,
            cache: KvCache::new(cfg.n_layers, ctx, cfg.kv_dim())?,
            scratch: FfnBatchScratch::default(),
            stats: FfnStats {
                active: vec![0; cfg.n_layers],
                tokens: 0,
                n_ff: cfg.n_ff,
                ..FfnStats::default()
            },
            all_neurons: (0..cfg.n_ff as u32).collect(),
            serial,
            predict: PredictScratch::default(),
            input: None,
            hybrid: None,
            history: Vec::new(),
            prefill: Prefill::default(),
        })
    }

    /// Chooses the prefill arithmetic for the batches that follow.
    pub fn set_prefill(&mut self, prefill: Prefill) {
        self.prefill = prefill;
    }

    /// The prefill arithmetic in use.
    pub fn prefill(&self) -> Prefill {
        self.prefill
    }

    /// Bytes of the KV cache a session of `ctx_len` positions on `model` allocates
    /// (`None`: more than `usize::MAX`), to check before asking for a long context.
    pub fn kv_cache_bytes(model: &Model, ctx_len: usize) -> Option<usize> {
        let cfg = model.config();
        KvCache::bytes_for(cfg.n_layers, ctx_len.clamp(1, cfg.ctx_len), cfg.kv_dim())
    }

    /// Runs the FFN split (and the dense tensors) of `hybrid` on its accelerator from
    /// now on, or everything on the host with `None`. The hybrid must have been loaded
    /// for this session's model.
    pub fn set_hybrid(&mut self, hybrid: Option<Arc<Hybrid>>) -> Result<(), ModelError> {
        if let Some(h) = hybrid
            .as_ref()
            .filter(|h| h.layers.len() != self.model.config().n_layers)
        {
            return Err(ModelError::Plan {
                plan: "hybrid".into(),
                problem: format!(
                    "{} layers, the session's model has {}",
                    h.layers.len(),
                    self.model.config().n_layers
                ),
            });
        }
        self.hybrid = hybrid;
        Ok(())
    }

    /// The hybrid split in use, if any.
    pub fn hybrid(&self) -> Option<&Arc<Hybrid>> {
        self.hybrid.as_ref()
    }

    /// Turns model-wide input sparsity (TEAL/WINA cuts) on or off. While on, the FFN
    /// policy must be [`FfnPolicy::Dense`]: the cuts decide the FFN's sparsity.
    pub fn set_input_sparsity(&mut self, sparsity: Option<Arc<InputSparsity>>) {
        self.input = sparsity.map(InputMode::Apply);
    }

    /// Replaces the input mode, returning the previous one.
    pub(crate) fn set_input_mode(&mut self, mode: Option<InputMode>) -> Option<InputMode> {
        std::mem::replace(&mut self.input, mode)
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
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
        self.history.clear();
    }

    /// Drops cached positions from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
        self.history.truncate(len);
    }

    /// The token ids of the cached positions, in order.
    pub fn tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.history.iter().map(|&(t, _)| t)
    }

    /// How many leading positions of `tokens` this session can keep so that feeding
    /// the rest gives exactly what a fresh prefill of all of `tokens` gives: the common
    /// prefix, limited to positions computed in batches (decode steps use other
    /// arithmetic) and leaving at least two tokens to feed (a batch, as a fresh prefill
    /// would), or 0.
    pub fn reusable_prefix(&self, tokens: &[u32]) -> usize {
        let common = self
            .history
            .iter()
            .zip(tokens)
            .take_while(|((cached, batched), t)| cached == *t && *batched)
            .count();
        common.min(tokens.len().saturating_sub(2))
    }

    /// FFN density statistics since the last [`Session::reset_stats`].
    pub fn stats(&self) -> &FfnStats {
        &self.stats
    }

    /// Zeroes the statistics.
    pub fn reset_stats(&mut self) {
        let n_ff = self.stats.n_ff;
        self.stats = FfnStats {
            active: vec![0; self.stats.active.len()],
            n_ff,
            ..FfnStats::default()
        };
    }

    /// Feeds `tokens` at the next positions and returns the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32], policy: &FfnPolicy) -> Result<Vec<f32>, ModelError> {
        let mut all = self.forward_impl(tokens, policy, Logits::Last, None)?;
        let vocab = self.model.config().vocab;
        Ok(all.split_off(all.len().saturating_sub(vocab)))
    }

    /// Feeds `tokens` and returns the logits of positions `rows` only
    /// (`rows.len() × vocab`): scoring needs the positions that predict scored tokens,
    /// and the output head is a fifth of SmolLM2's prefill work.
    pub fn forward_rows(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        rows: Range<usize>,
    ) -> Result<Vec<f32>, ModelError> {
        if rows.end > tokens.len() {
            return Err(ModelError::Policy(format!(
                "logit rows {rows:?} past the {} tokens fed",
                tokens.len()
            )));
        }
        self.forward_impl(tokens, policy, Logits::Rows(rows), None)
    }

    /// Feeds `tokens` and returns the logits of every position (`tokens.len() × vocab`).
    pub fn forward_all(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
    ) -> Result<Vec<f32>, ModelError> {
        self.forward_impl(tokens, policy, Logits::All, None)
    }

    /// [`Session::forward_all`] that also reports each layer's FFN input and active set.
    pub fn forward_observed(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        observer: &mut FfnObserver<'_>,
    ) -> Result<Vec<f32>, ModelError> {
        self.forward_impl(tokens, policy, Logits::All, Some(observer))
    }

    /// Feeds `tokens` reporting each layer's FFN, without computing logits (the output
    /// head is a fifth of SmolLM2's prefill work): how profiles and training data are
    /// collected.
    pub fn observe(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        observer: &mut FfnObserver<'_>,
    ) -> Result<(), ModelError> {
        self.forward_impl(tokens, policy, Logits::None, Some(observer))
            .map(drop)
    }

    fn forward_impl(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        logits: Logits,
        observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<Vec<f32>, ModelError> {
        // Enter the thread pool once per pass, not once per kernel call.
        let kernels = self.kernels.clone();
        kernels.install(|| self.forward_in_pool(tokens, policy, logits, observer))
    }

    fn forward_in_pool(
        &mut self,
        tokens: &[u32],
        policy: &FfnPolicy,
        which: Logits,
        mut observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<Vec<f32>, ModelError> {
        let model = self.model.clone();
        let model = &*model;
        let cfg = model.config();
        policy.validate(cfg.n_layers, cfg.n_ff)?;
        match policy {
            FfnPolicy::Predictor { set, .. }
            | FfnPolicy::HotCold {
                cold: ColdChoice::Predictor { set },
                ..
            } => set.check_model(model.predictor_id(), "predictor")?,
            _ => {}
        }
        match &self.input {
            Some(_) if *policy != FfnPolicy::Dense => {
                return Err(ModelError::Policy(
                    "input sparsity composes with the dense FFN policy only".into(),
                ));
            }
            Some(InputMode::Apply(s)) if s.layers() != cfg.n_layers => {
                return Err(ModelError::Policy(format!(
                    "input-sparsity cuts for {} layers, the model has {}",
                    s.layers(),
                    cfg.n_layers
                )));
            }
            _ => {}
        }
        if self.hybrid.is_some() && (self.input.is_some() || observer.is_some()) {
            return Err(ModelError::Policy(
                "the hybrid executor runs FFN policies without input sparsity or observers \
                 (profile and calibrate on the host)"
                    .into(),
            ));
        }
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
            let bad_token = |vocab| ModelError::BadToken { id: t, vocab };
            if t as usize >= cfg.vocab {
                return Err(bad_token(cfg.vocab));
            }
            model.embedding_row(&model.tok_embd, t as usize, row, bad_token)?;
            if cfg.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= cfg.embed_scale);
            }
            if let Some(pe) = &model.pos_embd {
                let pos = pos0 + b;
                model.embedding_row(pe, pos, &mut tmp, |max| ModelError::BadPosition {
                    pos,
                    max,
                })?;
                row.iter_mut().zip(&tmp).for_each(|(a, p)| *a += p);
            }
        }
        for (li, layer) in model.layers.iter().enumerate() {
            let y = if cfg.arch.parallel_ffn() {
                // Falcon: the FFN reads the block's input, not the attention's output.
                let y = self.ffn(li, layer, policy, &x, observer.as_deref_mut())?;
                self.attention(li, layer, &mut x, pos0)?;
                y
            } else {
                self.attention(li, layer, &mut x, pos0)?;
                self.ffn(li, layer, policy, &x, observer.as_deref_mut())?
            };
            x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
        }
        self.cache.set_len(pos0 + n);
        self.history.truncate(pos0);
        self.history.extend(tokens.iter().map(|&t| (t, n >= 2)));
        self.stats.tokens += n as u64;
        if let Some(mode) = &mut self.input {
            mode.end_pass(n);
        }
        let rows: Vec<usize> = match which {
            Logits::All => (0..n).collect(),
            Logits::Last => vec![n - 1],
            Logits::Rows(ref r) => r.clone().collect(),
            Logits::None => return Ok(Vec::new()),
        };
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let out_m = model.matrix(&model.output)?;
        let mut hs = vec![0f32; rows.len() * d];
        for (&r, hr) in rows.iter().zip(hs.chunks_exact_mut(d)) {
            norm(&x[r * d..(r + 1) * d], &model.output_norm, cfg.norm_eps, hr);
        }
        if let Some(ys) = self.on_device(&model.output, &hs, rows.len())? {
            return Ok(ys);
        }
        let mut logits = vec![0f32; rows.len() * cfg.vocab];
        // Prompt logits go through the batched (f32) kernel even for one row: once per
        // prompt, the exact logits are worth the extra time.
        match &model.output_packed {
            _ if n > 1 || matches!(which, Logits::Rows(_)) => {
                self.kernels.gemm(&out_m, &hs, rows.len(), &mut logits)
            }
            Some(p) => self.kernels.gemv_packed(p, &hs, &mut logits),
            None => self.kernels.gemv(&out_m, &hs, &mut logits),
        }
        .ctx(|| "output".into())?;
        Ok(logits)
    }

    /// `xs · Wᵀ (+ b)` for the `n` rows of `xs` (input-sparsified first when on).
    fn project(
        &mut self,
        (li, proj): (usize, Proj),
        lin: &crate::model::Linear,
        xs: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let model = self.model.clone();
        let m = model.matrix(&lin.t)?;
        let sparse = self.sparsify(li, proj, xs);
        let xs = sparse.as_deref().unwrap_or(xs);
        let mut ys = match self.on_device(&lin.t, xs, n)? {
            Some(ys) => ys,
            None => {
                let mut ys = vec![0f32; n * m.rows()];
                self.matmul(&m, lin.packed.as_ref(), xs, n, &mut ys)
                    .ctx(|| lin.t.name.clone())?;
                ys
            }
        };
        lin.add_bias_rows(&mut ys);
        Ok(ys)
    }

    /// With input sparsity on, a copy of `xs` (rows of the projection's input width)
    /// with the dropped entries zeroed (or recorded, when calibrating).
    fn sparsify(&mut self, li: usize, proj: Proj, xs: &[f32]) -> Option<Vec<f32>> {
        let mode = self.input.as_mut()?;
        let cfg = self.model.config();
        let width = match proj {
            Proj::Down => cfg.n_ff,
            Proj::O => cfg.q_dim(),
            _ => cfg.dim,
        };
        let mut out = xs.to_vec();
        self.stats.input_kept += mode.process(li, proj, &mut out, width) as u64;
        self.stats.input_entries += xs.len() as u64;
        Some(out)
    }

    fn attention(
        &mut self,
        li: usize,
        layer: &Layer,
        x: &mut [f32],
        pos0: usize,
    ) -> Result<(), ModelError> {
        let model = self.model.clone();
        let cfg = model.config();
        let (d, qd, kvd, hd) = (cfg.dim, cfg.q_dim(), cfg.kv_dim(), cfg.head_dim);
        let n = x.len() / d;
        let mut h = vec![0f32; n * d];
        for (xr, hr) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)) {
            norm(xr, &layer.attn_norm, cfg.norm_eps, hr);
        }
        let (mut q, mut k, v) = match self.stacked(
            layer.qkv.as_ref(),
            &[&layer.q.t, &layer.k.t, &layer.v.t],
            &h,
            n,
        )? {
            Some(qkv) => {
                let (mut q, mut k, mut v) = (
                    Vec::with_capacity(n * qd),
                    Vec::with_capacity(n * kvd),
                    Vec::with_capacity(n * kvd),
                );
                for row in qkv.chunks_exact(qd + 2 * kvd) {
                    let (rq, rest) = row.split_at(qd);
                    let (rk, rv) = rest.split_at(kvd);
                    q.extend_from_slice(rq);
                    k.extend_from_slice(rk);
                    v.extend_from_slice(rv);
                }
                layer.q.add_bias_rows(&mut q);
                layer.k.add_bias_rows(&mut k);
                layer.v.add_bias_rows(&mut v);
                (q, k, v)
            }
            None => (
                self.project((li, Proj::Q), &layer.q, &h, n)?,
                self.project((li, Proj::K), &layer.k, &h, n)?,
                self.project((li, Proj::V), &layer.v, &h, n)?,
            ),
        };
        if let Some(extra) = &layer.extra {
            // QK-norm: each head of q and k RMS-normed on its own, before RoPE.
            norm_rows(&mut q, &extra.q, cfg.norm_eps);
            norm_rows(&mut k, &extra.k, cfg.norm_eps);
        }
        let mut angles = Vec::new();
        let base = cfg.rope_base_of(li);
        for b in 0..n {
            if cfg.arch != Arch::Opt {
                rope_angles(hd, pos0 + b, base, &mut angles);
                rope(&mut q[b * qd..(b + 1) * qd], &angles, cfg.rope_style);
                rope(&mut k[b * kvd..(b + 1) * kvd], &angles, cfg.rope_style);
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
        let mut att = vec![0f32; n * qd];
        let serial = &self.serial;
        let window = cfg.window_of(li);
        // One (token, head) pair per task: token b sees positions 0..=pos0+b, or the
        // last `window` of them in a local layer.
        let work = |(e, out): (usize, &mut [f32])| {
            let (b, head) = (e / cfg.n_heads, e % cfg.n_heads);
            let end = pos0 + b + 1;
            let start = window.map_or(0, |w| end.saturating_sub(w));
            let qh = &q[b * qd + head * hd..b * qd + (head + 1) * hd];
            let mut scores = Vec::with_capacity(end - start);
            attend_head(
                serial,
                qh,
                (
                    &keys[start * kvd..end * kvd],
                    &values[start * kvd..end * kvd],
                ),
                (kvd, (head / group) * hd),
                cfg.attn_scale(),
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
        let mut o = self.project((li, Proj::O), &layer.o, &att, n)?;
        if let Some(extra) = &layer.extra {
            norm_rows(&mut o, &extra.post_attn, cfg.norm_eps);
        }
        x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Layer `li`'s FFN output for the residual rows `x` (normed here; the caller adds
    /// the result to the residual).
    fn ffn(
        &mut self,
        li: usize,
        layer: &Layer,
        policy: &FfnPolicy,
        x: &[f32],
        observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<Vec<f32>, ModelError> {
        let model = self.model.clone();
        let cfg = model.config();
        let d = cfg.dim;
        let n = x.len() / d;
        let mut h = vec![0f32; n * d];
        for (xr, hr) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)) {
            norm(xr, &layer.ffn_norm, cfg.norm_eps, hr);
        }
        let mut y = vec![0f32; n * d];
        let io = FfnIo {
            li,
            h: &h,
            residual: x,
        };
        let start = std::time::Instant::now();
        let mut predicting = std::time::Duration::ZERO;
        let split = self
            .hybrid
            .as_ref()
            .is_some_and(|h| h.layers[li].id.is_some());
        if self.input.is_some() {
            self.ffn_input_sparse(layer, io, &mut y)?;
        } else if split {
            predicting = self.ffn_hybrid(layer, policy, io, &mut y)?;
        } else if let (FfnPolicy::Dense, Some(down)) = (policy, &layer.ffn.down) {
            self.ffn_dense(layer, down, io, &mut y, observer)?;
        } else if let Some(keep) = Keep::of(policy, li) {
            self.ffn_oracle(layer, keep, io, &mut y, observer)?;
        } else {
            let sets = self.token_sets(li, policy, io)?;
            if let Some((_, t)) = &sets {
                predicting = *t;
            }
            let sets = sets.as_ref().map(|(s, _)| s.as_slice());
            self.ffn_sparse(layer, policy, io, sets, &mut y, observer)?;
        }
        self.stats.ffn_time += start.elapsed().saturating_sub(predicting);
        for yr in y.chunks_exact_mut(d) {
            add_bias(yr, layer.down_bias.as_ref());
        }
        if let Some(extra) = &layer.extra {
            norm_rows(&mut y, &extra.post_ffn, cfg.norm_eps);
        }
        Ok(y)
    }

    /// Per token, the candidates of a policy that picks them per token in layer `li` —
    /// a predictor's (with `HotCold`'s hot neurons merged in) or a trace's — and the
    /// time predicting took (also added to the stats); `None` for the other policies.
    fn token_sets(
        &mut self,
        li: usize,
        policy: &FfnPolicy,
        io: FfnIo,
    ) -> Result<Option<(TokenSets, std::time::Duration)>, ModelError> {
        if let FfnPolicy::Trace { trace } = policy {
            // The cache grows after the pass: its length is this pass's first position.
            let (n, pos0) = (io.h.len() / self.model.config().dim, self.cache.len());
            let sets = (0..n)
                .map(|b| {
                    let mut s = Vec::new();
                    trace.sample(li, pos0 + b, &mut s);
                    s
                })
                .collect();
            return Ok(Some((sets, std::time::Duration::ZERO)));
        }
        let set = match policy {
            FfnPolicy::Predictor { set, .. }
            | FfnPolicy::HotCold {
                cold: ColdChoice::Predictor { set },
                ..
            } => set,
            _ => return Ok(None),
        };
        let start = std::time::Instant::now();
        let mut sets = self.predicted(li, set, io)?;
        if let FfnPolicy::HotCold { hot, .. } = policy {
            sets.iter_mut().for_each(|s| *s = merge(&hot[li], s));
        }
        let took = start.elapsed();
        self.stats.predictor_time += took;
        Ok(Some((sets, took)))
    }

    /// Per token, the neurons layer `li`'s predictor picks (its bytes counted).
    fn predicted(
        &mut self,
        li: usize,
        set: &powerinfer_predictor::PredictorSet,
        io: FfnIo,
    ) -> Result<Vec<Vec<u32>>, ModelError> {
        let n_ff = self.model.config().n_ff;
        let n = io.h.len() / self.model.config().dim;
        let p = &set.layers[li];
        let input = match p.input() {
            PredictorInput::FfnNorm => io.h,
            PredictorInput::Residual => io.residual,
        };
        let mut sets = vec![Vec::new(); n];
        if n == 1 {
            p.predict(&self.serial, input, &mut self.predict, &mut sets[0])?;
        } else {
            // Prefill: one batched pass (f32 activations, like the rest of prefill;
            // decode quantizes x to 8 bits as ggml does).
            let mut logits = vec![0f32; n * n_ff];
            p.logits_batch(&self.kernels, input, n, &mut logits)?;
            for (set, z) in sets.iter_mut().zip(logits.chunks_exact(n_ff)) {
                powerinfer_predictor::select(z, p.tau(), set);
            }
        }
        self.stats.bytes += (n * p.bytes()) as u64;
        Ok(sets)
    }

    /// The product of the `n` rows of `xs` with a stack of packed projections that read
    /// the same input (q/k/v, gate/up), as one call: `Some(n × stack rows)` when the
    /// stack exists and applies (decode, or an int8 prefill; no input sparsity, and
    /// none of the stacked `tensors` on the accelerator: those run one by one), else
    /// `None`.
    fn stacked(
        &self,
        stack: Option<&PackedMatrix>,
        tensors: &[&TensorInfo],
        xs: &[f32],
        n: usize,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        let Some(p) = stack else {
            return Ok(None);
        };
        let on_device = |t: &&TensorInfo| {
            self.hybrid
                .as_ref()
                .is_some_and(|h| h.dense.contains_key(&t.name))
        };
        if self.input.is_some()
            || (n > 1 && self.prefill == Prefill::Exact)
            || tensors.iter().any(on_device)
        {
            return Ok(None);
        }
        let mut ys = vec![0f32; n * p.rows()];
        if n == 1 {
            self.kernels.gemv_packed(p, xs, &mut ys)
        } else {
            self.kernels.gemm_packed(p, xs, n, &mut ys)
        }
        .ctx(|| "stacked projections".into())?;
        Ok(Some(ys))
    }

    /// `W·x` for one row of `xs` (GEMV) or several (GEMM), over `m`'s packed copy
    /// where there is one: always for a single row (decode), for a batch only under
    /// [`Prefill::Int8`] (the exact prefill dots f32 activations with the row-major
    /// weights decoded to f32).
    fn matmul(
        &self,
        m: &Matrix,
        packed: Option<&PackedMatrix>,
        xs: &[f32],
        n: usize,
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        match (packed, n, self.prefill) {
            (Some(p), 1, _) => self.kernels.gemv_packed(p, xs, ys),
            (None, 1, _) => self.kernels.gemv(m, xs, ys),
            (Some(p), _, Prefill::Int8) => self.kernels.gemm_packed(p, xs, n, ys),
            _ => self.kernels.gemm(m, xs, n, ys),
        }
    }

    /// Every neuron's activation `a = act(gate·x (+ bias))·(up·x)` for the `n` rows of
    /// `h` (`n × n_ff`).
    fn activations(
        &self,
        li: usize,
        (w, packed): (&FfnWeights, &FfnPacked),
        h: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, ModelError> {
        self.activations_of(li, (w, packed), (h, h), n)
    }

    /// [`Session::activations`] with gate and up reading their own inputs (the same
    /// `h` except under input sparsity, which masks each projection's input apart).
    fn activations_of(
        &self,
        li: usize,
        (w, packed): (&FfnWeights, &FfnPacked),
        (h_gate, h_up): (&[f32], &[f32]),
        n: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let n_ff = w.neurons();
        let ctx = || format!("blk.{li}: ffn gate/up");
        let has_up = w.up.is_some();
        let same_input = std::ptr::eq(h_gate, h_up);
        let stacked = match packed.gate_up.as_ref() {
            Some(p) if same_input => self.stacked(Some(p), &[], h_gate, n)?,
            _ => None,
        };
        let (mut g, u) = match stacked {
            // Rows of [gate | up] per token.
            Some(gu) => {
                let width = if has_up { 2 * n_ff } else { n_ff };
                let (mut g, mut u) = (Vec::with_capacity(n * n_ff), Vec::new());
                for row in gu.chunks_exact(width.max(1)) {
                    g.extend_from_slice(&row[..n_ff]);
                    u.extend_from_slice(&row[n_ff..]);
                }
                (g, u)
            }
            None => {
                let mut g = vec![0f32; n * n_ff];
                self.matmul(&w.gate, None, h_gate, n, &mut g).ctx(ctx)?;
                let mut u = vec![0f32; if has_up { n * n_ff } else { 0 }];
                if let Some(up) = &w.up {
                    self.matmul(up, None, h_up, n, &mut u).ctx(ctx)?;
                }
                (g, u)
            }
        };
        // One token per task for a batch (an exp per neuron is a prefill's largest
        // serial part otherwise); runs inside the kernels' pool (see `forward_impl`).
        let combine = |(t, gt): (usize, &mut [f32])| {
            for (i, v) in gt.iter_mut().enumerate() {
                let a = w.activated_gate(i, *v);
                *v = w
                    .act
                    .combine(a, u.get(t * n_ff + i).copied().unwrap_or(0.0));
            }
        };
        if n > 1 && self.kernels.threads() > 1 {
            g.par_chunks_mut(n_ff.max(1)).enumerate().for_each(combine);
        } else {
            g.chunks_mut(n_ff.max(1)).enumerate().for_each(combine);
        }
        Ok(g)
    }

    /// The baseline: every neuron, the down projection as a GEMV over the stored matrix.
    fn ffn_dense(
        &mut self,
        layer: &Layer,
        down: &TensorInfo,
        io: FfnIo,
        y: &mut [f32],
        observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<(), ModelError> {
        let (d, n_ff) = (self.model.config().dim, self.model.config().n_ff);
        let (li, h) = (io.li, io.h);
        let n = h.len() / d;
        let model = self.model.clone();
        let w = model.ffn_weights(layer)?;
        let ctx = || format!("blk.{li}: dense ffn");
        let packed = &layer.ffn.packed;
        let g = self.activations(li, (&w, packed), h, n)?;
        self.matmul(&model.matrix(down)?, packed.down.as_ref(), &g, n, y)
            .ctx(ctx)?;
        self.stats.active[li] += (n * n_ff) as u64;
        self.stats.bytes += n as u64 * (layer.ffn.gate_up_bytes() + down.n_bytes);
        if let Some(obs) = observer {
            for b in 0..n {
                obs(&FfnObservation {
                    layer: li,
                    input: &h[b * d..(b + 1) * d],
                    residual: &io.residual[b * d..(b + 1) * d],
                    neurons: &self.all_neurons,
                    values: &g[b * n_ff..(b + 1) * n_ff],
                });
            }
        }
        Ok(())
    }

    /// The exact oracles (top-k, hot + top-k cold): every neuron's activation, a
    /// per-token mask, then the down projection over the masked activations — the
    /// dense GEMM/GEMV over the stored down matrix where there is one, so a mask that
    /// keeps every neuron is the dense path exactly.
    fn ffn_oracle(
        &mut self,
        layer: &Layer,
        keep: Keep,
        io: FfnIo,
        y: &mut [f32],
        mut observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<(), ModelError> {
        let (d, n_ff) = (self.model.config().dim, self.model.config().n_ff);
        let (li, h) = (io.li, io.h);
        let n = h.len() / d;
        let model = self.model.clone();
        let w = model.ffn_weights(layer)?;
        let ctx = || format!("blk.{li}: oracle ffn");
        let packed = &layer.ffn.packed;
        let mut all = self.activations(li, (&w, packed), h, n)?;
        let sets = oracle_mask(n_ff, keep, &mut all);
        for (b, idx) in sets.iter().enumerate() {
            Self::count(&mut self.stats, li, &w, idx.len(), idx.len());
            if let Some(obs) = observer.as_deref_mut() {
                let a = &all[b * n_ff..(b + 1) * n_ff];
                let vals: Vec<f32> = idx.iter().map(|&i| a[i as usize]).collect();
                obs(&FfnObservation {
                    layer: li,
                    input: &h[b * d..(b + 1) * d],
                    residual: &io.residual[b * d..(b + 1) * d],
                    neurons: idx,
                    values: &vals,
                });
            }
        }
        match &layer.ffn.down {
            Some(down) => self.matmul(&model.matrix(down)?, packed.down.as_ref(), &all, n, y),
            None => self
                .kernels
                .axpy_down_batch(&w.down_t, &all, n, &self.all_neurons, y),
        }
        .ctx(ctx)
    }

    /// Model-wide input sparsity in the FFN: gate and up read their sparsified input,
    /// down its sparsified activations, each as a dense product (the accuracy of the
    /// cuts is the question; the bytes counted are the kept columns').
    fn ffn_input_sparse(
        &mut self,
        layer: &Layer,
        io: FfnIo,
        y: &mut [f32],
    ) -> Result<(), ModelError> {
        let (d, n_ff) = (self.model.config().dim, self.model.config().n_ff);
        let (li, h) = (io.li, io.h);
        let n = h.len() / d;
        let model = self.model.clone();
        let w = model.ffn_weights(layer)?;
        let down = layer.ffn.down.as_ref().ok_or_else(|| {
            ModelError::Policy(format!(
                "blk.{li}: input sparsity needs the stored ffn_down (this file has only ffn_down_t)"
            ))
        })?;
        let ctx = || format!("blk.{li}: input-sparse ffn");
        let before = self.stats.input_kept;
        let hg = self
            .sparsify(li, Proj::Gate, h)
            .unwrap_or_else(|| h.to_vec());
        let gate_kept = self.stats.input_kept - before;
        let (mut hu, mut up_bytes) = (Vec::new(), 0f64);
        if let Some(up) = &w.up {
            let before = self.stats.input_kept;
            hu = self.sparsify(li, Proj::Up, h).unwrap_or_else(|| h.to_vec());
            let kept = (self.stats.input_kept - before) as f64;
            up_bytes = kept / d as f64 * (up.rows() * up.row_bytes()) as f64;
        }
        let packed = &layer.ffn.packed;
        let g = self.activations_of(li, (&w, packed), (&hg, &hu), n)?;
        let before = self.stats.input_kept;
        let a = self.sparsify(li, Proj::Down, &g).unwrap_or(g);
        let down_kept = self.stats.input_kept - before;
        self.matmul(&model.matrix(down)?, packed.down.as_ref(), &a, n, y)
            .ctx(ctx)?;
        self.stats.active[li] += down_kept;
        let gate_bytes = (w.gate.rows() * w.gate.row_bytes()) as f64;
        self.stats.bytes += (gate_kept as f64 / d as f64 * gate_bytes
            + up_bytes
            + down_kept as f64 / n_ff as f64 * down.n_bytes as f64)
            .round() as u64;
        Ok(())
    }

    /// The sparse path ([`Kernels::ffn_sparse_batch`]: one token through the fused
    /// kernel, several batched). `sets` are per-token candidate lists (a predictor's),
    /// else the policy's candidates apply.
    fn ffn_sparse(
        &mut self,
        layer: &Layer,
        policy: &FfnPolicy,
        io: FfnIo,
        sets: Option<&[Vec<u32>]>,
        y: &mut [f32],
        mut observer: Option<&mut FfnObserver<'_>>,
    ) -> Result<(), ModelError> {
        let (li, h) = (io.li, io.h);
        let model = self.model.clone();
        let w = model.ffn_weights(layer)?;
        let d = w.dim();
        let n = h.len() / d;
        let (candidates, skip) = policy.layer(li);
        self.kernels
            .ffn_sparse_batch(&w, h, n, candidates, sets, skip, y, &mut self.scratch)
            .ctx(|| format!("blk.{li}: ffn"))?;
        for b in 0..n {
            let gates = sets.map_or(candidates.map_or(w.neurons(), <[u32]>::len), |s| s[b].len());
            Self::count(&mut self.stats, li, &w, gates, self.scratch.active(b).len());
            if let Some(obs) = observer.as_deref_mut() {
                obs(&FfnObservation {
                    layer: li,
                    input: &h[b * d..(b + 1) * d],
                    residual: &io.residual[b * d..(b + 1) * d],
                    neurons: self.scratch.active(b),
                    values: self.scratch.values(b),
                });
            }
        }
        Ok(())
    }

    /// Density and bytes of one token: `gates` gate rows read, `kept` neurons' up and
    /// down rows.
    fn count(stats: &mut FfnStats, li: usize, w: &FfnWeights, gates: usize, kept: usize) {
        let up = w.up.map_or(0, |u| u.row_bytes());
        stats.active[li] += kept as u64;
        stats.bytes +=
            (gates * w.gate.row_bytes() + kept * (up + w.down_t.bytes_per_neuron())) as u64;
    }
}

/// Which positions' logits a forward pass computes.
#[derive(Clone)]
enum Logits {
    All,
    Last,
    Rows(Range<usize>),
    None,
}

/// Per token, a sorted list of neurons.
type TokenSets = Vec<Vec<u32>>;

/// Which neurons an exact oracle keeps per token.
#[derive(Clone, Copy)]
enum Keep<'a> {
    /// The `density` share of largest `|a|`.
    TopK(f32),
    /// `hot`, then the cold neurons of largest `|a|` up to `density` in all.
    HotCold { hot: &'a [u32], density: f32 },
}

impl Keep<'_> {
    /// The exact oracle `policy` runs in layer `li`, if it is one.
    fn of(policy: &FfnPolicy, li: usize) -> Option<Keep<'_>> {
        match policy {
            FfnPolicy::TopK { density } => Some(Keep::TopK(*density)),
            FfnPolicy::HotCold {
                hot,
                cold: ColdChoice::TopK { density },
            } => Some(Keep::HotCold {
                hot: &hot[li],
                density: *density,
            }),
            _ => None,
        }
    }
}

/// Per token of `all` (`n × n_ff` activations), the neurons `keep` keeps, ascending;
/// the other activations are zeroed.
fn oracle_mask(n_ff: usize, keep: Keep, all: &mut [f32]) -> Vec<Vec<u32>> {
    let (mut scratch, mut is_hot) = (Vec::new(), vec![false; n_ff]);
    if let Keep::HotCold { hot, .. } = keep {
        hot.iter().for_each(|&i| is_hot[i as usize] = true);
    }
    let mut sets = Vec::with_capacity(all.len() / n_ff.max(1));
    for a in all.chunks_exact_mut(n_ff) {
        let cut = match keep {
            Keep::TopK(density) => {
                powerinfer_predictor::ActiveRule::TopDensity(density).cut(a, &mut scratch)
            }
            Keep::HotCold { hot, density } => {
                // The cold share that fills the layer up to `density` in all.
                let total = (n_ff as f64 * f64::from(density)).round() as usize;
                let cold: Vec<f32> = (0..n_ff).filter(|&i| !is_hot[i]).map(|i| a[i]).collect();
                let share = total.saturating_sub(hot.len()) as f64 / cold.len().max(1) as f64;
                powerinfer_predictor::ActiveRule::TopDensity(share.min(1.0) as f32)
                    .cut(&cold, &mut scratch)
            }
        };
        let mut idx = Vec::new();
        for (i, v) in a.iter_mut().enumerate() {
            if is_hot[i] || v.abs() > cut {
                idx.push(i as u32);
            } else {
                *v = 0.0;
            }
        }
        sets.push(idx);
    }
    sets
}

/// One FFN call's inputs: the layer, the normalised input and the residual stream
/// (`n × dim` each).
#[derive(Clone, Copy)]
struct FfnIo<'a> {
    li: usize,
    h: &'a [f32],
    residual: &'a [f32],
}

/// The sorted union of two sorted index lists.
fn merge(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let next = a[i].min(b[j]);
        i += usize::from(a[i] == next);
        j += usize::from(b[j] == next);
        out.push(next);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
