//! A model's predictors, one per layer, with the operating point they were calibrated
//! for, and their file format.
//!
//! File layout (inside the envelope of [`crate::container`], magic `PIPRED\0\x1a`,
//! version 1, all integers little-endian):
//!
//! ```text
//! model id: arch (u32 len + UTF-8), n_layers u32, dim u32, n_ff u32, ffn_hash u32
//! active rule: code u8 (0 = a ≠ 0, 1 = top density), density f32
//! operating point: recall kind u8 (0 event, 1 mass), recall f64,
//!                  quality budget f64 (NaN = none), measured ppl ratio f64 (NaN = none)
//! layer count u32, then per layer:
//!   input u8 (0 FFN norm, 1 residual), dim u32, rank u32, n_ff u32,
//!   fc1 type u32 (ggml id), fc1 bytes (u64 len + bytes), b1 (u32 len + f32s),
//!   fc2 type u32, fc2 bytes, b2, tau f32,
//!   calibration: present u8, then event_recall, mass_recall, precision, density (f64)
//! ```

use std::path::Path;

use powerinfer_kernels::{Kernels, WType};

use crate::container::{self, Reader, Writer};
use crate::error::{FileProblem, PredictorError};
use crate::{
    ActiveRule, Calibration, LayerPredictor, ModelId, PredictorInput, RecallKind, Samples,
    calibrate,
};

const MAGIC: &[u8; 8] = b"PIPRED\0\x1a";
const VERSION: u32 = 1;
/// How errors name this kind of file.
const KIND: &str = "predictor";

/// The operating point a predictor set was calibrated for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OperatingPoint {
    /// Which recall the thresholds target.
    pub recall_kind: RecallKind,
    /// The recall target every layer's τ was set for on held-out tokens.
    pub recall: f64,
    /// The quality budget that chose `recall` (max perplexity increase, e.g. 0.05), if
    /// one did.
    pub quality_budget: Option<f64>,
    /// Perplexity of the sparse model over the dense one on the calibration text at
    /// this point, if measured.
    pub ppl_ratio: Option<f64>,
}

/// Per-layer predictors for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictorSet {
    /// The model they were trained for.
    pub model: ModelId,
    /// What their targets were.
    pub rule: ActiveRule,
    /// The calibrated operating point.
    pub point: OperatingPoint,
    /// One predictor per layer.
    pub layers: Vec<LayerPredictor>,
    /// Held-out results per layer at the operating point, where measured.
    pub calibration: Vec<Option<Calibration>>,
}

impl PredictorSet {
    /// Fails with [`PredictorError::WrongModel`] unless the set was made for `model`.
    pub fn check_model(&self, model: &ModelId, what: &str) -> Result<(), PredictorError> {
        self.model.check(model, what)?;
        if self.layers.len() == model.n_layers as usize {
            Ok(())
        } else {
            Err(PredictorError::WrongModel {
                what: what.to_string(),
                expected: Box::new(model.clone()),
                found: Box::new(self.model.clone()),
            })
        }
    }

    /// Weight bytes of all predictors (read once per token each).
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(LayerPredictor::bytes).sum()
    }

    /// Logits of layer `layer`'s predictor on the held-out tokens `held`, batched.
    pub fn held_out_logits(
        &self,
        kernels: &Kernels,
        layer: usize,
        held: &Samples,
    ) -> Result<Vec<f32>, PredictorError> {
        let p = self
            .layers
            .get(layer)
            .ok_or_else(|| PredictorError::Shape(format!("no predictor for layer {layer}")))?;
        held_out_logits(p, kernels, held)
    }

    /// Sets every layer's τ for `target` recall of `kind` on `held` (one sample buffer
    /// per layer), records the results and the new operating point (quality fields
    /// cleared: the caller measures them again).
    pub fn recalibrate(
        &mut self,
        kernels: &Kernels,
        held: &[Samples],
        kind: RecallKind,
        target: f64,
    ) -> Result<(), PredictorError> {
        if held.len() != self.layers.len() {
            return Err(PredictorError::Shape(format!(
                "{} held-out buffers for {} layers",
                held.len(),
                self.layers.len()
            )));
        }
        for ((p, c), h) in self.layers.iter_mut().zip(&mut self.calibration).zip(held) {
            *c = Some(calibrate_layer(p, kernels, h, kind, target)?);
        }
        self.point = OperatingPoint {
            recall_kind: kind,
            recall: target,
            quality_budget: None,
            ppl_ratio: None,
        };
        Ok(())
    }

    /// Encodes the set in its file format (module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.model.write(&mut w);
        let (code, d) = self.rule.code();
        w.u8(code);
        w.f32(d);
        w.u8(match self.point.recall_kind {
            RecallKind::Event => 0,
            RecallKind::Mass => 1,
        });
        w.f64(self.point.recall);
        w.f64(self.point.quality_budget.unwrap_or(f64::NAN));
        w.f64(self.point.ppl_ratio.unwrap_or(f64::NAN));
        w.len(self.layers.len());
        for (p, c) in self.layers.iter().zip(&self.calibration) {
            w.u8(match p.input {
                PredictorInput::FfnNorm => 0,
                PredictorInput::Residual => 1,
            });
            w.len(p.dim);
            w.len(p.rank);
            w.len(p.n_ff);
            w.u32(p.fc1_type.ggml_id());
            w.bytes(&p.fc1);
            w.f32s(&p.b1);
            w.u32(p.fc2_type.ggml_id());
            w.bytes(&p.fc2);
            w.f32s(&p.b2);
            w.f32(p.tau);
            match c {
                None => w.u8(0),
                Some(c) => {
                    w.u8(1);
                    [c.event_recall, c.mass_recall, c.precision, c.density]
                        .iter()
                        .for_each(|&v| w.f64(v));
                }
            }
        }
        container::seal(MAGIC, VERSION, &w.0)
    }

    /// Decodes [`PredictorSet::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<PredictorSet, PredictorError> {
        container::from_bytes(KIND, bytes, decode)
    }

    /// Writes the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PredictorError> {
        container::save(KIND, path.as_ref(), &self.to_bytes())
    }

    /// Reads a file written by [`PredictorSet::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<PredictorSet, PredictorError> {
        container::load(KIND, path.as_ref(), decode)
    }
}

/// Sets `p`'s τ for `target` recall of `kind` on `held` and returns what it gives there.
pub(crate) fn calibrate_layer(
    p: &mut LayerPredictor,
    kernels: &Kernels,
    held: &Samples,
    kind: RecallKind,
    target: f64,
) -> Result<Calibration, PredictorError> {
    let c = calibrate(&held_out_logits(p, kernels, held)?, held, kind, target)?;
    p.set_tau(c.tau);
    Ok(c)
}

/// Logits of `p` on the held-out tokens `held`, in batches of 512 tokens.
pub(crate) fn held_out_logits(
    p: &LayerPredictor,
    kernels: &Kernels,
    held: &Samples,
) -> Result<Vec<f32>, PredictorError> {
    let (n, f) = (held.len(), p.n_ff());
    let mut out = vec![0f32; n * f];
    for (c, o) in out.chunks_mut(512 * f.max(1)).enumerate() {
        let t0 = c * 512;
        let t1 = (t0 + 512).min(n);
        p.logits_batch(kernels, &held.xs_f32(t0, t1), t1 - t0, o)?;
    }
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<PredictorSet, FileProblem> {
    let mut r = Reader::new(container::open(MAGIC, VERSION, bytes)?);
    let model = ModelId::read(&mut r)?;
    let code = r.u8("active rule")?;
    let d = r.f32("active rule density")?;
    let rule = ActiveRule::from_code(code, d)
        .ok_or_else(|| FileProblem::Malformed(format!("unknown active rule {code} ({d})")))?;
    let recall_kind = match r.u8("recall kind")? {
        0 => RecallKind::Event,
        1 => RecallKind::Mass,
        k => return Err(FileProblem::Malformed(format!("unknown recall kind {k}"))),
    };
    let recall = r.f64("recall")?;
    let opt = |v: f64| (!v.is_nan()).then_some(v);
    let quality_budget = opt(r.f64("quality budget")?);
    let ppl_ratio = opt(r.f64("ppl ratio")?);
    let n = r.count("layer count", 20)?;
    if n != model.n_layers as usize {
        return Err(FileProblem::Malformed(format!(
            "{n} predictors for a model of {} layers",
            model.n_layers
        )));
    }
    let mut layers = Vec::with_capacity(n);
    let mut calibration = Vec::with_capacity(n);
    for l in 0..n {
        let malformed = |what: String| FileProblem::Malformed(format!("layer {l}: {what}"));
        let input = match r.u8("predictor input")? {
            0 => PredictorInput::FfnNorm,
            1 => PredictorInput::Residual,
            k => return Err(malformed(format!("unknown input kind {k}"))),
        };
        let dim = r.u32("dim")? as usize;
        let rank = r.u32("rank")? as usize;
        let n_ff = r.u32("n_ff")? as usize;
        if dim != model.dim as usize || n_ff != model.n_ff as usize {
            return Err(malformed(format!(
                "predictor of dim {dim} → {n_ff} in a file for dim {} → {}",
                model.dim, model.n_ff
            )));
        }
        let wtype = |id: u32| {
            WType::from_ggml_id(id).ok_or_else(|| malformed(format!("unknown weight type {id}")))
        };
        let t1 = wtype(r.u32("fc1 type")?)?;
        let fc1 = r.bytes("fc1")?.to_vec();
        let b1 = r.f32s("fc1 bias")?;
        let t2 = wtype(r.u32("fc2 type")?)?;
        let fc2 = r.bytes("fc2")?.to_vec();
        let b2 = r.f32s("fc2 bias")?;
        let tau = r.f32("tau")?;
        let p =
            LayerPredictor::assemble(input, [dim, rank, n_ff], (t1, fc1), b1, (t2, fc2), b2, tau)
                .map_err(|e| malformed(e.to_string()))?;
        layers.push(p);
        calibration.push(match r.u8("calibration flag")? {
            0 => None,
            1 => Some(Calibration {
                tau,
                event_recall: r.f64("event recall")?,
                mass_recall: r.f64("mass recall")?,
                precision: r.f64("precision")?,
                density: r.f64("density")?,
            }),
            k => return Err(malformed(format!("calibration flag {k}"))),
        });
    }
    r.finish()?;
    Ok(PredictorSet {
        model,
        rule,
        point: OperatingPoint {
            recall_kind,
            recall,
            quality_budget,
            ppl_ratio,
        },
        layers,
        calibration,
    })
}
