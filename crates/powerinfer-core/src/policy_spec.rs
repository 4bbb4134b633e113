//! FFN policies written as short strings (`dense`, `threshold:0.3`, `predictor:gate=0.5`),
//! as command lines and request bodies give them.
//!
//! Why two steps: [`PolicySpec::parse`] only reads the string, and opens nothing; turning
//! a spec into an [`FfnPolicy`] ([`PolicySpec::resolve`]) calibrates on tokens the caller
//! chooses and takes the predictor set the caller loaded. A server can thus accept specs
//! from requests without letting a request name a file.

use std::sync::Arc;

use powerinfer_kernels::Kernels;
use powerinfer_predictor::PredictorSet;

use crate::calibrate::{hot_neurons_for_density, thresholds_for_density};
use crate::policy::check_density;
use crate::{FfnPolicy, Model, ModelError};

/// A parsed policy string.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySpec {
    /// `dense`: every neuron.
    Dense,
    /// `oracle` or `oracle:<threshold>`: exact gates, skip `|a| ≤ threshold` (default 0).
    Oracle(f32),
    /// `threshold:<density>`: per-layer cuts calibrated to that density.
    Threshold(f64),
    /// `static:<density>`: the calibrated hottest share of neurons, always.
    Static(f64),
    /// `predictor[:<file>][:gate=<density>]`: a predictor set, optionally with gate cuts
    /// calibrated to a density. The file, if written, is only reported: the caller loads it
    /// (or refuses to) and passes the set to [`PolicySpec::resolve`].
    Predictor {
        /// The file named in the spec, if any.
        file: Option<String>,
        /// Density of the gate-check cuts, if any.
        gate: Option<f64>,
    },
}

/// The policy names [`PolicySpec::parse`] accepts, for error messages and help texts.
pub const POLICY_SPECS: &str =
    "dense, oracle[:T], threshold:<density>, static:<density>, predictor[:<file>][:gate=<density>]";

impl PolicySpec {
    /// Parses one of [`POLICY_SPECS`]; a typed error names the spec and what is wrong.
    pub fn parse(spec: &str) -> Result<PolicySpec, ModelError> {
        let bad = |problem: String| ModelError::Policy(format!("policy {spec:?}: {problem}"));
        let (name, arg) = spec
            .split_once(':')
            .map_or((spec, None), |(a, b)| (a, Some(b)));
        let num = |s: Option<&str>| -> Result<f64, ModelError> {
            let s = s.ok_or_else(|| bad(format!("{name} needs a value")))?;
            let v: f64 = s
                .parse()
                .map_err(|_| bad(format!("{s:?} is not a number")))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad(format!("{s:?} is not finite")))
            }
        };
        let density = |s: Option<&str>| -> Result<f64, ModelError> {
            let d = num(s)?;
            check_density(d).map_err(|_| bad(format!("density {d} must be in (0, 1]")))?;
            Ok(d)
        };
        Ok(match name {
            "dense" if arg.is_none() => PolicySpec::Dense,
            "oracle" => {
                let t = arg.map_or(Ok(0.0), |a| num(Some(a)))?;
                if t < 0.0 {
                    return Err(bad(format!("threshold {t} is negative")));
                }
                PolicySpec::Oracle(t as f32)
            }
            "threshold" => PolicySpec::Threshold(density(arg)?),
            "static" => PolicySpec::Static(density(arg)?),
            "predictor" => {
                let (file, gate) = match arg {
                    None => (None, None),
                    Some(a) => match (a.strip_prefix("gate="), a.rsplit_once(":gate=")) {
                        (Some(d), _) => (None, Some(density(Some(d))?)),
                        (None, Some((f, d))) => (Some(f.to_string()), Some(density(Some(d))?)),
                        (None, None) => (Some(a.to_string()), None),
                    },
                };
                PolicySpec::Predictor { file, gate }
            }
            _ => return Err(bad(format!("unknown policy (one of {POLICY_SPECS})"))),
        })
    }

    /// Whether resolving needs calibration tokens (thresholds or hot sets).
    pub fn needs_calibration(&self) -> bool {
        matches!(
            self,
            PolicySpec::Threshold(_)
                | PolicySpec::Static(_)
                | PolicySpec::Predictor { gate: Some(_), .. }
        )
    }

    /// The policy for `model`: calibrated on `calibration` tokens where the spec needs it,
    /// with `predictor` (checked against the model) for a predictor spec.
    pub fn resolve(
        &self,
        model: &Model,
        kernels: &Kernels,
        calibration: &[u32],
        predictor: Option<&Arc<PredictorSet>>,
    ) -> Result<FfnPolicy, ModelError> {
        if self.needs_calibration() && calibration.is_empty() {
            return Err(ModelError::Policy(format!(
                "{self:?} needs calibration tokens"
            )));
        }
        Ok(match self {
            PolicySpec::Dense => FfnPolicy::Dense,
            PolicySpec::Oracle(threshold) => FfnPolicy::Oracle {
                threshold: *threshold,
            },
            PolicySpec::Threshold(d) => FfnPolicy::Threshold {
                per_layer: thresholds_for_density(model, kernels, calibration, *d)?,
            },
            PolicySpec::Static(d) => FfnPolicy::StaticHot {
                per_layer: hot_neurons_for_density(model, kernels, calibration, *d)?,
            },
            PolicySpec::Predictor { gate, .. } => {
                let set = predictor.ok_or_else(|| {
                    ModelError::Policy("a predictor policy needs a predictor set".into())
                })?;
                set.check_model(model.predictor_id(), "predictor set")?;
                let gate_check = match gate {
                    Some(d) => Some(thresholds_for_density(model, kernels, calibration, *d)?),
                    None => None,
                };
                FfnPolicy::Predictor {
                    set: Arc::clone(set),
                    gate_check,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        assert_eq!(PolicySpec::parse("dense").unwrap(), PolicySpec::Dense);
        assert_eq!(
            PolicySpec::parse("oracle").unwrap(),
            PolicySpec::Oracle(0.0)
        );
        assert_eq!(
            PolicySpec::parse("oracle:0.5").unwrap(),
            PolicySpec::Oracle(0.5)
        );
        assert_eq!(
            PolicySpec::parse("threshold:0.3").unwrap(),
            PolicySpec::Threshold(0.3)
        );
        assert_eq!(
            PolicySpec::parse("static:1").unwrap(),
            PolicySpec::Static(1.0)
        );
        assert_eq!(
            PolicySpec::parse("predictor").unwrap(),
            PolicySpec::Predictor {
                file: None,
                gate: None
            }
        );
        assert_eq!(
            PolicySpec::parse("predictor:gate=0.4").unwrap(),
            PolicySpec::Predictor {
                file: None,
                gate: Some(0.4)
            }
        );
        assert_eq!(
            PolicySpec::parse("predictor:m.predictor:gate=0.4").unwrap(),
            PolicySpec::Predictor {
                file: Some("m.predictor".into()),
                gate: Some(0.4)
            }
        );
        for bad in [
            "",
            "sparse",
            "dense:1",
            "threshold",
            "threshold:x",
            "threshold:0",
            "threshold:1.5",
            "threshold:NaN",
            "oracle:-1",
            "static:inf",
            "predictor:gate=2",
        ] {
            let e = PolicySpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(PolicySpec::Threshold(0.3).needs_calibration());
        assert!(!PolicySpec::Dense.needs_calibration());
    }
}
