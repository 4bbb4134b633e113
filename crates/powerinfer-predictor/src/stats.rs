//! Activation statistics: how often, and how strongly, each neuron of each layer is
//! active over a corpus — the offline profile that placement and the power-law report
//! are built on.

use std::path::Path;

use crate::container::{self, Reader, Writer};
use crate::error::{FileProblem, PredictorError};
use crate::{ActiveRule, ModelId};

const MAGIC: &[u8; 8] = b"PISTATS\x1a";
const VERSION: u32 = 1;
/// How errors name this kind of file.
const KIND: &str = "activation stats";

/// Per layer and neuron: the number of tokens in which it was active, and the sum of
/// `|a|` over all tokens (its *mass*).
///
/// Why both: placement wants event frequencies (how often a neuron's rows are read);
/// for SwiGLU models the mass tells which neurons carry the output, which is what the
/// predictor must not miss.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationStats {
    model: ModelId,
    rule: ActiveRule,
    /// Tokens recorded per layer.
    tokens: Vec<u64>,
    /// `n_layers × n_ff` active counts.
    counts: Vec<u64>,
    /// `n_layers × n_ff` sums of `|a|`.
    mass: Vec<f64>,
}

/// The power-law summary of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    /// Mean share of neurons active per token.
    pub mean_density: f64,
    /// Neurons never active.
    pub never_active: usize,
    /// Share of all active events held by the hottest [`TOP_SHARES`] of neurons
    /// (ranked by event count).
    pub event_share: Vec<f64>,
    /// Share of all `|a|` mass held by the hottest [`TOP_SHARES`] of neurons (ranked by
    /// mass).
    pub mass_share: Vec<f64>,
}

/// The neuron shares the summary reports: the hottest 1, 5, 10, 20 and 50%.
pub const TOP_SHARES: [f64; 5] = [0.01, 0.05, 0.10, 0.20, 0.50];

impl ActivationStats {
    /// Empty statistics for `model` under `rule`.
    pub fn new(model: ModelId, rule: ActiveRule) -> Result<ActivationStats, PredictorError> {
        rule.validate()?;
        let cells = model.n_layers as usize * model.n_ff as usize;
        Ok(ActivationStats {
            tokens: vec![0; model.n_layers as usize],
            counts: vec![0; cells],
            mass: vec![0.0; cells],
            model,
            rule,
        })
    }

    /// Records one token's activations `a` (length `n_ff`) in `layer`.
    pub fn record(&mut self, layer: usize, a: &[f32]) -> Result<(), PredictorError> {
        let n = self.model.n_ff as usize;
        if layer >= self.tokens.len() || a.len() != n {
            return Err(PredictorError::Shape(format!(
                "record: layer {layer} with {} activations, stats are {} layers × {n}",
                a.len(),
                self.tokens.len()
            )));
        }
        let cut = self.rule.cut(a, &mut Vec::new());
        let (counts, mass) = (
            &mut self.counts[layer * n..(layer + 1) * n],
            &mut self.mass[layer * n..(layer + 1) * n],
        );
        for ((c, m), &v) in counts.iter_mut().zip(mass.iter_mut()).zip(a) {
            *c += u64::from(v.abs() > cut);
            *m += f64::from(v.abs());
        }
        self.tokens[layer] += 1;
        Ok(())
    }

    /// The model the statistics were collected on.
    pub fn model(&self) -> &ModelId {
        &self.model
    }

    /// The definition of "active" used.
    pub fn rule(&self) -> ActiveRule {
        self.rule
    }

    /// Fails with [`PredictorError::WrongModel`] unless these statistics were recorded
    /// on `model`.
    pub fn check_model(&self, model: &ModelId, what: &str) -> Result<(), PredictorError> {
        self.model.check(model, what)
    }

    /// Layers.
    pub fn layers(&self) -> usize {
        self.tokens.len()
    }

    /// Tokens recorded in `layer`.
    pub fn tokens(&self, layer: usize) -> u64 {
        self.tokens.get(layer).copied().unwrap_or(0)
    }

    /// Active counts of `layer`'s neurons.
    pub fn counts(&self, layer: usize) -> &[u64] {
        let n = self.model.n_ff as usize;
        self.counts.get(layer * n..(layer + 1) * n).unwrap_or(&[])
    }

    /// Mass (Σ|a|) of `layer`'s neurons.
    pub fn mass(&self, layer: usize) -> &[f64] {
        let n = self.model.n_ff as usize;
        self.mass.get(layer * n..(layer + 1) * n).unwrap_or(&[])
    }

    /// Activation frequency (count / tokens) of `layer`'s neurons: the input of
    /// placement.
    pub fn frequencies(&self, layer: usize) -> Vec<f64> {
        let t = self.tokens(layer).max(1) as f64;
        self.counts(layer).iter().map(|&c| c as f64 / t).collect()
    }

    /// `layer`'s `keep` most frequently active neurons (ties broken by mass, then
    /// index), ascending by index: a static hot set, and what placement puts on the
    /// accelerator first.
    pub fn hottest(&self, layer: usize, keep: usize) -> Vec<u32> {
        let (counts, mass) = (self.counts(layer), self.mass(layer));
        let mut order: Vec<u32> = (0..counts.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (a_, b_) = (a as usize, b as usize);
            counts[b_]
                .cmp(&counts[a_])
                .then(mass[b_].total_cmp(&mass[a_]))
                .then(a.cmp(&b))
        });
        order.truncate(keep);
        order.sort_unstable();
        order
    }

    /// The power-law summary of `layer`.
    pub fn summary(&self, layer: usize) -> LayerSummary {
        let counts: Vec<f64> = self.counts(layer).iter().map(|&c| c as f64).collect();
        let n = counts.len().max(1);
        let tokens = self.tokens(layer).max(1) as f64;
        LayerSummary {
            mean_density: counts.iter().sum::<f64>() / (tokens * n as f64),
            never_active: counts.iter().filter(|&&c| c == 0.0).count(),
            event_share: top_shares(&counts),
            mass_share: top_shares(self.mass(layer)),
        }
    }

    /// Encodes the statistics in their file format (magic `PISTATS\x1a`, version 1,
    /// CRC-32; see the crate docs on the container format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.model.write(&mut w);
        let (code, d) = self.rule.code();
        w.u8(code);
        w.f32(d);
        w.len(self.tokens.len());
        self.tokens.iter().for_each(|&t| w.u64(t));
        self.counts.iter().for_each(|&c| w.u64(c));
        self.mass.iter().for_each(|&m| w.f64(m));
        container::seal(MAGIC, VERSION, &w.0)
    }

    /// Decodes [`ActivationStats::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<ActivationStats, PredictorError> {
        container::from_bytes(KIND, bytes, decode)
    }

    /// Writes the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PredictorError> {
        container::save(KIND, path.as_ref(), &self.to_bytes())
    }

    /// Reads a file written by [`ActivationStats::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<ActivationStats, PredictorError> {
        container::load(KIND, path.as_ref(), decode)
    }
}

fn decode(bytes: &[u8]) -> Result<ActivationStats, FileProblem> {
    let mut r = Reader::new(container::open(MAGIC, VERSION, bytes)?);
    let model = ModelId::read(&mut r)?;
    let code = r.u8("active rule")?;
    let d = r.f32("active rule density")?;
    let rule = ActiveRule::from_code(code, d)
        .ok_or_else(|| FileProblem::Malformed(format!("unknown active rule {code} ({d})")))?;
    let layers = r.count("layer count", 8)?;
    if layers != model.n_layers as usize {
        return Err(FileProblem::Malformed(format!(
            "{layers} layers of counts for a model of {} layers",
            model.n_layers
        )));
    }
    let tokens = (0..layers)
        .map(|_| r.u64("tokens"))
        .collect::<Result<Vec<_>, _>>()?;
    let cells = layers.saturating_mul(model.n_ff as usize);
    if cells.saturating_mul(16) != r.remaining() {
        return Err(FileProblem::Malformed(format!(
            "{} bytes of counts and mass for {layers} × {} neurons",
            r.remaining(),
            model.n_ff
        )));
    }
    let counts = (0..cells)
        .map(|_| r.u64("counts"))
        .collect::<Result<Vec<_>, _>>()?;
    let mass = (0..cells)
        .map(|_| r.f64("mass"))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    if let Some((l, _)) = counts
        .chunks(model.n_ff.max(1) as usize)
        .zip(&tokens)
        .enumerate()
        .find(|(_, (c, t))| c.iter().any(|v| v > t))
    {
        return Err(FileProblem::Malformed(format!(
            "layer {l}: a neuron is active in more tokens than were recorded"
        )));
    }
    if mass.iter().any(|m| !m.is_finite() || *m < 0.0) {
        return Err(FileProblem::Malformed("negative or non-finite mass".into()));
    }
    Ok(ActivationStats {
        model,
        rule,
        tokens,
        counts,
        mass,
    })
}

/// Share of the total held by the largest `TOP_SHARES` fractions of `values`.
fn top_shares<T: Copy + Into<f64>>(values: &[T]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().map(|&x| x.into()).collect();
    v.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = v.iter().sum();
    TOP_SHARES
        .iter()
        .map(|&s| {
            let k = ((v.len() as f64) * s).ceil() as usize;
            if total > 0.0 {
                v[..k.min(v.len())].iter().sum::<f64>() / total
            } else {
                0.0
            }
        })
        .collect()
}
