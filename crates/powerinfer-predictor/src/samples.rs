//! Training and calibration samples of one layer: the FFN input `x` of each token and
//! which neurons were active, with their magnitudes where calibration needs them.
//!
//! Why this shape: a (x, target) pair is the whole training signal, and at 50k tokens ×
//! 30 layers it must stay small: `x` is kept in f16, the target as a bit set, and the
//! `n_ff` magnitudes (needed only to measure mass recall) only for held-out samples.

use half::f16;

use crate::{ActiveRule, PredictorError};

/// The samples of one layer.
#[derive(Clone, Debug)]
pub struct Samples {
    dim: usize,
    n_ff: usize,
    rule: ActiveRule,
    xs: Vec<f16>,
    /// One bit per neuron and token, `words()` u64s per token.
    targets: Vec<u64>,
    /// `|a|` per neuron and token (held-out samples only).
    mags: Option<Vec<f16>>,
    scratch: Vec<f32>,
}

impl Samples {
    /// An empty buffer for inputs of `dim` and `n_ff` neurons; `keep_magnitudes` for
    /// held-out samples (mass recall, calibration).
    pub fn new(
        dim: usize,
        n_ff: usize,
        rule: ActiveRule,
        keep_magnitudes: bool,
    ) -> Result<Samples, PredictorError> {
        rule.validate()?;
        Ok(Samples {
            dim,
            n_ff,
            rule,
            xs: Vec::new(),
            targets: Vec::new(),
            mags: keep_magnitudes.then(Vec::new),
            scratch: Vec::new(),
        })
    }

    /// Adds one token: its predictor input `x` and the layer's activations `a`.
    pub fn push(&mut self, x: &[f32], a: &[f32]) -> Result<(), PredictorError> {
        if x.len() != self.dim || a.len() != self.n_ff {
            return Err(PredictorError::Shape(format!(
                "sample with x of {} and a of {} for a layer of dim {} and {} neurons",
                x.len(),
                a.len(),
                self.dim,
                self.n_ff
            )));
        }
        self.xs.extend(x.iter().map(|&v| f16::from_f32(v)));
        let cut = self.rule.cut(a, &mut self.scratch);
        let words = self.words();
        let base = self.targets.len();
        self.targets.resize(base + words, 0);
        for (i, v) in a.iter().enumerate() {
            if v.abs() > cut {
                self.targets[base + i / 64] |= 1 << (i % 64);
            }
        }
        if let Some(m) = &mut self.mags {
            m.extend(a.iter().map(|&v| f16::from_f32(v.abs())));
        }
        Ok(())
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.xs.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Input length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Neurons.
    pub fn n_ff(&self) -> usize {
        self.n_ff
    }

    /// The rule the targets follow.
    pub fn rule(&self) -> ActiveRule {
        self.rule
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        2 * self.xs.len() + 8 * self.targets.len() + 2 * self.mags.as_ref().map_or(0, Vec::len)
    }

    /// Whether magnitudes are kept.
    pub fn has_magnitudes(&self) -> bool {
        self.mags.is_some()
    }

    pub(crate) fn words(&self) -> usize {
        self.n_ff.div_ceil(64)
    }

    /// Token `t`'s input, as f32 into `out`.
    pub(crate) fn x_into(&self, t: usize, out: &mut [f32]) {
        let src = &self.xs[t * self.dim..(t + 1) * self.dim];
        out.iter_mut().zip(src).for_each(|(o, s)| *o = s.to_f32());
    }

    /// Inputs of tokens `t0..t1` as one row-major f32 block.
    pub fn xs_f32(&self, t0: usize, t1: usize) -> Vec<f32> {
        self.xs[t0 * self.dim..t1 * self.dim]
            .iter()
            .map(|v| v.to_f32())
            .collect()
    }

    /// Whether neuron `i` is a target of token `t`.
    #[inline]
    pub fn is_target(&self, t: usize, i: usize) -> bool {
        self.targets[t * self.words() + i / 64] >> (i % 64) & 1 == 1
    }

    /// `|a|` of token `t` (held-out samples only).
    pub(crate) fn mags(&self, t: usize) -> Option<&[f16]> {
        self.mags
            .as_ref()
            .map(|m| &m[t * self.n_ff..(t + 1) * self.n_ff])
    }

    /// Mean share of neurons that are targets.
    pub fn target_density(&self) -> f64 {
        let ones: u64 = self.targets.iter().map(|w| u64::from(w.count_ones())).sum();
        ones as f64 / (self.len().max(1) * self.n_ff.max(1)) as f64
    }

    /// The first `n` tokens (or all), as a new buffer.
    pub fn head(&self, n: usize) -> Samples {
        let n = n.min(self.len());
        Samples {
            dim: self.dim,
            n_ff: self.n_ff,
            rule: self.rule,
            xs: self.xs[..n * self.dim].to_vec(),
            targets: self.targets[..n * self.words()].to_vec(),
            mags: self.mags.as_ref().map(|m| m[..n * self.n_ff].to_vec()),
            scratch: Vec::new(),
        }
    }
}
