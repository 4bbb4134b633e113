//! Model-wide input sparsity, the training-free anchors TEAL and WINA: the input entries
//! of every projection (q/k/v/o, gate/up/down) that rank lowest are zeroed before the
//! projection, with one cut per matrix calibrated to a target share of entries kept.
//!
//! Why here and not in [`crate::FfnPolicy`]: it reaches beyond the FFN (attention and
//! its output projection hold half the bytes of a SmolLM2 decode step), and it tells
//! whether sparse kernels beyond the FFN would pay on a model.

use std::sync::Arc;

use powerinfer_kernels::{Kernels, Matrix, dequantize_row};

use crate::error::KernelContext;
use crate::policy::check_density;
use crate::{FfnPolicy, Model, ModelError, Session};
use powerinfer_predictor::ActiveRule;

/// The projections of a layer whose input can be sparsified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proj {
    /// Attention query.
    Q,
    /// Attention key.
    K,
    /// Attention value.
    V,
    /// Attention output.
    O,
    /// FFN gate (`fc1` in ungated FFNs).
    Gate,
    /// FFN up.
    Up,
    /// FFN down (its input is the activation `a`).
    Down,
}

impl Proj {
    /// Every projection, in index order.
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// How the entries of a projection's input are ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRank {
    /// TEAL (Liu et al., ICLR 2025): `|x_i|`.
    Magnitude,
    /// WINA (Microsoft, 2025): `|x_i|·‖W_{:,i}‖₂`, the entry's size times the norm of
    /// the weight column it multiplies.
    Weighted,
}

/// Per layer and projection, the column norms `‖W_{:,i}‖₂` (WINA's weights).
type Norms = Vec<[Vec<f32>; 7]>;

/// Calibrated cuts: entry `i` of projection `p`'s input in layer `l` is kept iff its
/// score is above `cuts[l][p]`.
#[derive(Clone, Debug)]
pub struct InputSparsity {
    rank: InputRank,
    cuts: Vec<[f32; 7]>,
    norms: Option<Arc<Norms>>,
}

impl InputSparsity {
    /// The ranking.
    pub fn rank(&self) -> InputRank {
        self.rank
    }

    /// Layers covered.
    pub fn layers(&self) -> usize {
        self.cuts.len()
    }

    /// Zeroes the entries of `xs` (rows of `width` entries) whose score is not above
    /// the cut; returns how many entries were kept.
    pub(crate) fn apply(&self, layer: usize, proj: Proj, xs: &mut [f32], width: usize) -> usize {
        let cut = self.cuts[layer][proj.index()];
        let norms = self
            .norms
            .as_ref()
            .map(|n| n[layer][proj.index()].as_slice());
        let mut kept = 0;
        for row in xs.chunks_exact_mut(width.max(1)) {
            for (i, v) in row.iter_mut().enumerate() {
                if score(*v, norms, i) > cut {
                    kept += 1;
                } else {
                    *v = 0.0;
                }
            }
        }
        kept
    }
}

fn score(v: f32, norms: Option<&[f32]>, i: usize) -> f32 {
    v.abs() * norms.map_or(1.0, |n| n[i])
}

/// Scores of projection inputs seen on calibration tokens, from which the cuts for any
/// density follow (one pass, any number of densities).
pub struct InputProfile {
    rank: InputRank,
    samples: Vec<[Vec<f32>; 7]>,
    norms: Option<Arc<Norms>>,
}

/// What [`Session`] does with projection inputs when input sparsity is on.
pub(crate) enum InputMode {
    /// Sparsify with calibrated cuts.
    Apply(Arc<InputSparsity>),
    /// Record scores for calibration, up to `left` more tokens.
    Record {
        samples: Vec<[Vec<f32>; 7]>,
        norms: Option<Arc<Norms>>,
        left: usize,
    },
}

impl InputMode {
    /// Sparsifies (or records) `xs`, the input rows (`width` entries each) of `proj` in
    /// `layer`; returns the entries kept.
    pub(crate) fn process(
        &mut self,
        layer: usize,
        proj: Proj,
        xs: &mut [f32],
        width: usize,
    ) -> usize {
        match self {
            InputMode::Apply(s) => s.apply(layer, proj, xs, width),
            InputMode::Record {
                samples,
                norms,
                left,
            } => {
                if *left > 0 {
                    let norms = norms.as_ref().map(|n| n[layer][proj.index()].as_slice());
                    let width = width.max(1);
                    let take = (xs.len() / width).min(*left) * width;
                    samples[layer][proj.index()].extend(
                        xs[..take]
                            .iter()
                            .enumerate()
                            .map(|(k, &v)| score(v, norms, k % width)),
                    );
                }
                xs.len()
            }
        }
    }

    /// Called once per forward pass of `n` tokens, after the last layer.
    pub(crate) fn end_pass(&mut self, n: usize) {
        if let InputMode::Record { left, .. } = self {
            *left = left.saturating_sub(n);
        }
    }
}

impl InputProfile {
    /// Runs the dense model over `chunks` (each a fresh sequence) and records the
    /// scores of every projection input of the first `max_tokens` tokens.
    pub fn collect(
        model: &Model,
        kernels: &Kernels,
        chunks: &[&[u32]],
        rank: InputRank,
        max_tokens: usize,
    ) -> Result<InputProfile, ModelError> {
        let longest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        if longest == 0 || max_tokens == 0 {
            return Err(ModelError::Policy(
                "input-sparsity calibration needs at least one token".into(),
            ));
        }
        let norms = match rank {
            InputRank::Magnitude => None,
            InputRank::Weighted => Some(Arc::new(column_norms(model)?)),
        };
        let n_layers = model.config().n_layers;
        let mut session = Session::new(model, kernels.clone(), longest)?;
        session.set_input_mode(Some(InputMode::Record {
            samples: (0..n_layers).map(|_| Default::default()).collect(),
            norms: norms.clone(),
            left: max_tokens,
        }));
        let mut left = max_tokens;
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            if left == 0 {
                break;
            }
            session.reset();
            session.observe(&c[..c.len().min(left)], &FfnPolicy::Dense, &mut |_| {})?;
            left = left.saturating_sub(c.len());
        }
        match session.set_input_mode(None) {
            Some(InputMode::Record { samples, .. }) => Ok(InputProfile {
                rank,
                samples,
                norms,
            }),
            _ => Err(ModelError::Policy(
                "input-sparsity calibration lost its recorder".into(),
            )),
        }
    }

    /// Cuts that keep the `density` share of each projection's input entries seen.
    pub fn sparsity(&self, density: f64) -> Result<InputSparsity, ModelError> {
        check_density(density)?;
        // Scores are ≥ 0, so the top-|a| rule's cut is the score quantile.
        let rule = ActiveRule::TopDensity(density as f32);
        let mut scratch = Vec::new();
        let cuts = self
            .samples
            .iter()
            .map(|layer| {
                let mut cuts = [0f32; 7];
                for (c, s) in cuts.iter_mut().zip(layer) {
                    *c = rule.cut(s, &mut scratch);
                }
                cuts
            })
            .collect();
        Ok(InputSparsity {
            rank: self.rank,
            cuts,
            norms: self.norms.clone(),
        })
    }
}

/// `‖W_{:,i}‖₂` of every projection of every layer.
fn column_norms(model: &Model) -> Result<Norms, ModelError> {
    model
        .layers
        .iter()
        .enumerate()
        .map(|(li, l)| {
            let down = l.ffn.down.as_ref().ok_or_else(|| {
                ModelError::Policy(format!(
                    "blk.{li}: input sparsity needs the stored ffn_down (this file has only ffn_down_t)"
                ))
            })?;
            let gate = model.matrix(&l.ffn.gate)?;
            let up = match &l.ffn.up {
                Some(u) => norms_of(&model.matrix(u)?, &u.name)?,
                None => vec![1.0; gate.cols()],
            };
            Ok([
                norms_of(&model.matrix(&l.q.t)?, &l.q.t.name)?,
                norms_of(&model.matrix(&l.k.t)?, &l.k.t.name)?,
                norms_of(&model.matrix(&l.v.t)?, &l.v.t.name)?,
                norms_of(&model.matrix(&l.o.t)?, &l.o.t.name)?,
                norms_of(&gate, &l.ffn.gate.name)?,
                up,
                norms_of(&model.matrix(down)?, &down.name)?,
            ])
        })
        .collect()
}

fn norms_of(m: &Matrix, name: &str) -> Result<Vec<f32>, ModelError> {
    let mut sq = vec![0f64; m.cols()];
    let mut row = vec![0f32; m.cols()];
    for r in 0..m.rows() {
        dequantize_row(m.wtype(), m.row(r), &mut row).ctx(|| format!("{name}: column norms"))?;
        sq.iter_mut()
            .zip(&row)
            .for_each(|(s, &v)| *s += f64::from(v) * f64::from(v));
    }
    Ok(sq.into_iter().map(|s| s.sqrt() as f32).collect())
}
