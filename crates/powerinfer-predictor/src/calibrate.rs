//! Choosing a layer's threshold τ on held-out tokens for a target recall, and
//! measuring what a threshold gives.

use crate::{PredictorError, Samples};

/// Which recall a target refers to.
///
/// Why two: for the ReLU family every missed firing is an error of the same kind
/// (event recall); in SwiGLU models the misses that hurt are the few large `|a|`, so
/// the share of the target set's `Σ|a|` that is caught (mass recall) is what tracks
/// perplexity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecallKind {
    /// Share of target neurons predicted.
    Event,
    /// Share of the target neurons' `Σ|a|` predicted.
    Mass,
}

impl std::fmt::Display for RecallKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecallKind::Event => "event",
            RecallKind::Mass => "mass",
        })
    }
}

/// What a threshold gives on held-out tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// The threshold: neuron predicted active iff its logit ≥ τ.
    pub tau: f32,
    /// Share of target neurons predicted.
    pub event_recall: f64,
    /// Share of the targets' `Σ|a|` predicted.
    pub mass_recall: f64,
    /// Share of predicted neurons that are targets.
    pub precision: f64,
    /// Mean share of neurons predicted per token.
    pub density: f64,
}

/// The largest τ whose recall of kind `kind` on `held` reaches `target`, given the
/// predictor's `logits` (`held.len() × n_ff`) on those tokens.
pub fn calibrate(
    logits: &[f32],
    held: &Samples,
    kind: RecallKind,
    target: f64,
) -> Result<Calibration, PredictorError> {
    check(logits, held)?;
    if !(0.0..=1.0).contains(&target) {
        return Err(PredictorError::Invalid(format!(
            "recall target {target} must be in [0, 1]"
        )));
    }
    let f = held.n_ff();
    // (logit, weight) of every target neuron.
    let mut pairs: Vec<(f32, f32)> = Vec::new();
    for (t, z) in logits.chunks_exact(f).enumerate() {
        let mags = held.mags(t);
        for (i, &zi) in z.iter().enumerate() {
            if held.is_target(t, i) {
                let w = match (kind, mags) {
                    (RecallKind::Event, _) => 1.0,
                    (RecallKind::Mass, Some(m)) => m[i].to_f32(),
                    (RecallKind::Mass, None) => {
                        return Err(PredictorError::Invalid(
                            "mass recall needs held-out samples with magnitudes".into(),
                        ));
                    }
                };
                pairs.push((zi, w));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total: f64 = pairs.iter().map(|p| f64::from(p.1)).sum();
    let mut tau = f32::MAX;
    let mut acc = 0f64;
    for &(z, w) in &pairs {
        if total <= 0.0 || acc >= target * total {
            break;
        }
        acc += f64::from(w);
        tau = z;
    }
    evaluate(logits, held, tau)
}

/// Recalls, precision and density of threshold `tau` on `held`.
pub fn evaluate(logits: &[f32], held: &Samples, tau: f32) -> Result<Calibration, PredictorError> {
    check(logits, held)?;
    let f = held.n_ff();
    let (mut targets, mut caught, mut predicted) = (0u64, 0u64, 0u64);
    let (mut mass, mut mass_caught) = (0f64, 0f64);
    for (t, z) in logits.chunks_exact(f).enumerate() {
        let mags = held.mags(t);
        for (i, &zi) in z.iter().enumerate() {
            let hit = zi >= tau;
            predicted += u64::from(hit);
            if held.is_target(t, i) {
                let m = mags.map_or(1.0, |m| f64::from(m[i].to_f32()));
                targets += 1;
                mass += m;
                if hit {
                    caught += 1;
                    mass_caught += m;
                }
            }
        }
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 1.0 };
    Ok(Calibration {
        tau,
        event_recall: ratio(caught as f64, targets as f64),
        mass_recall: ratio(mass_caught, mass),
        precision: ratio(caught as f64, predicted as f64),
        density: predicted as f64 / (held.len() * f).max(1) as f64,
    })
}

fn check(logits: &[f32], held: &Samples) -> Result<(), PredictorError> {
    if held.is_empty() || logits.len() != held.len() * held.n_ff() {
        return Err(PredictorError::Shape(format!(
            "{} logits for {} held-out tokens of {} neurons",
            logits.len(),
            held.len(),
            held.n_ff()
        )));
    }
    Ok(())
}
