//! The sweep's policies: what each name means, and how each is calibrated to a target
//! density from one set of calibration tokens (never the evaluation tokens).

use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use powerinfer::core::calibrate::GateMagnitudes;
use powerinfer::core::eval::Sparsity;
use powerinfer::core::input_sparsity::{InputProfile, InputRank};
use powerinfer::core::{ColdChoice, FfnObservation, FfnPolicy, Model, Session};
use powerinfer::kernels::{Activation, Kernels};
use powerinfer::predictor::{ActivationStats, ActiveRule, PredictorInput, PredictorSet};

/// One policy of the sweep, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Spec {
    /// `dense`: the reference.
    Dense,
    /// `oracle`: exact per-token top-k by |a|.
    Oracle,
    /// `gate`: a per-layer cut on |act(gate·x)| (CATS).
    Gate,
    /// `static`: only the most frequently active neurons of the profile.
    Static,
    /// `hotcold:h` (cold choice exact) or `hotcold-predictor:h` (cold choice by the
    /// predictor): the hottest share `h` always, plus the chosen cold neurons.
    HotCold { hot: f64, predictor: bool },
    /// `predictor`: the trained predictor, τ set per layer for the density.
    Predictor,
    /// `teal`: model-wide input sparsity by |x|.
    Teal,
    /// `wina`: model-wide input sparsity by |x|·‖W_{:,i}‖.
    Wina,
}

/// The default policy list.
pub const DEFAULT: &str = "dense,oracle,gate,static,hotcold:0.1,hotcold:0.2,hotcold:0.3,predictor,hotcold-predictor:0.2,teal,wina";
/// The `--quick` policy list.
pub const QUICK: &str = "dense,oracle,gate,static,hotcold:0.2,predictor,teal,wina";

impl Spec {
    /// Parses `name` or `name:h`.
    pub fn parse(s: &str) -> Result<Spec> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(n, a)| (n, Some(a)));
        let hot = || -> Result<f64> {
            let h: f64 = arg
                .with_context(|| format!("{name} needs a hot share, as in {name}:0.2"))?
                .parse()
                .with_context(|| format!("{s}: the hot share is not a number"))?;
            ensure!(h > 0.0 && h <= 1.0, "{s}: the hot share must be in (0, 1]");
            Ok(h)
        };
        let plain = |spec: Spec| -> Result<Spec> {
            ensure!(arg.is_none(), "{name} takes no parameter (got {s:?})");
            Ok(spec)
        };
        match name {
            "dense" => plain(Spec::Dense),
            "oracle" => plain(Spec::Oracle),
            "gate" => plain(Spec::Gate),
            "static" => plain(Spec::Static),
            "hotcold" => Ok(Spec::HotCold {
                hot: hot()?,
                predictor: false,
            }),
            "hotcold-predictor" => Ok(Spec::HotCold {
                hot: hot()?,
                predictor: true,
            }),
            "predictor" => plain(Spec::Predictor),
            "teal" => plain(Spec::Teal),
            "wina" => plain(Spec::Wina),
            _ => bail!(
                "unknown policy {s:?} (dense, oracle, gate, static, hotcold:H, \
                 hotcold-predictor:H, predictor, teal, wina)"
            ),
        }
    }

    /// The CSV `policy` name.
    pub fn name(&self) -> &'static str {
        match self {
            Spec::Dense => "dense",
            Spec::Oracle => "oracle",
            Spec::Gate => "gate",
            Spec::Static => "static",
            Spec::HotCold {
                predictor: false, ..
            } => "hotcold",
            Spec::HotCold {
                predictor: true, ..
            } => "hotcold-predictor",
            Spec::Predictor => "predictor",
            Spec::Teal => "teal",
            Spec::Wina => "wina",
        }
    }

    /// The CSV `param` (h for hot+cold, else empty).
    pub fn param(&self) -> String {
        match self {
            Spec::HotCold { hot, .. } => format!("{hot}"),
            _ => String::new(),
        }
    }

    /// Whether the policy needs the trained predictor.
    pub fn needs_predictor(&self) -> bool {
        matches!(
            self,
            Spec::Predictor
                | Spec::HotCold {
                    predictor: true,
                    ..
                }
        )
    }

    /// Whether it is swept at `density` (hot+cold only at or above its hot share;
    /// dense once).
    pub fn applies(&self, density: f64) -> bool {
        match self {
            Spec::Dense => false,
            Spec::HotCold { hot, .. } => density + 1e-9 >= *hot,
            _ => true,
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::HotCold { hot, .. } => write!(f, "{} h={hot}", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// Everything the policies are calibrated from, collected once from the calibration
/// tokens with the dense model.
pub struct Calibration {
    /// The activation profile (counts and mass per neuron).
    pub stats: ActivationStats,
    gates: GateMagnitudes,
    teal: Option<InputProfile>,
    wina: Option<InputProfile>,
    predictor: Option<PredictorCalibration>,
}

/// The trained predictor and its logits on the calibration tokens, per layer
/// (`tokens × n_ff`), from which τ for any density follows.
struct PredictorCalibration {
    set: Arc<PredictorSet>,
    logits: Vec<Vec<f32>>,
}

/// Projection-input scores are recorded for at most this many calibration tokens
/// (TEAL's cuts are quantiles; 512 tokens give ~300k samples per matrix).
const INPUT_TOKENS: usize = 512;

impl Calibration {
    /// Profiles `chunks` (each a fresh sequence) once per need of `specs`.
    pub fn collect(
        model: &Model,
        kernels: &Kernels,
        chunks: &[&[u32]],
        specs: &[Spec],
        predictor: Option<Arc<PredictorSet>>,
        active_share: f32,
    ) -> Result<Calibration> {
        let cfg = model.config();
        let rule = match cfg.activation {
            Activation::SwiGlu | Activation::GeGlu => ActiveRule::TopDensity(active_share),
            _ => ActiveRule::NonZero,
        };
        let mut stats = ActivationStats::new(model.predictor_id().clone(), rule)?;
        let inputs_of = predictor.as_ref().map(|s| {
            s.layers
                .iter()
                .map(|p| p.input())
                .collect::<Vec<PredictorInput>>()
        });
        let mut inputs: Vec<Vec<f32>> = vec![Vec::new(); cfg.n_layers];
        let mut err = None;
        {
            let mut observe = |o: &FfnObservation| {
                if err.is_none() {
                    err = stats.record(o.layer, o.values).err();
                }
                if let Some(kinds) = &inputs_of {
                    inputs[o.layer].extend_from_slice(match kinds[o.layer] {
                        PredictorInput::FfnNorm => o.input,
                        PredictorInput::Residual => o.residual,
                    });
                }
            };
            let longest = chunks.iter().map(|c| c.len()).max().unwrap_or(1);
            let mut session = Session::new(model, kernels.clone(), longest)?;
            for c in chunks {
                session.reset();
                session.observe(c, &FfnPolicy::Dense, &mut observe)?;
            }
        }
        if let Some(e) = err {
            return Err(e.into());
        }
        let predictor = match predictor {
            Some(set) => {
                let logits = set
                    .layers
                    .iter()
                    .zip(&inputs)
                    .map(|(p, x)| {
                        let n = x.len() / p.dim();
                        let mut z = vec![0f32; n * p.n_ff()];
                        p.logits_batch(kernels, x, n, &mut z)?;
                        Ok(z)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(PredictorCalibration { set, logits })
            }
            None => None,
        };
        let wants = |f: fn(&Spec) -> bool| specs.iter().any(f);
        let input = |rank| InputProfile::collect(model, kernels, chunks, rank, INPUT_TOKENS);
        Ok(Calibration {
            stats,
            gates: GateMagnitudes::collect(model, kernels, chunks)?,
            teal: wants(|s| *s == Spec::Teal)
                .then(|| input(InputRank::Magnitude))
                .transpose()?,
            wina: wants(|s| *s == Spec::Wina)
                .then(|| input(InputRank::Weighted))
                .transpose()?,
            predictor,
        })
    }

    /// The predictor as loaded, at the operating point it was calibrated for.
    pub fn predictor(&self) -> Option<&Arc<PredictorSet>> {
        self.predictor.as_ref().map(|p| &p.set)
    }

    /// `spec` calibrated to `density`.
    pub fn build(&self, spec: Spec, density: f64, n_ff: usize) -> Result<Sparsity> {
        let hottest = |share: f64| -> Vec<Vec<u32>> {
            let keep = ((n_ff as f64) * share).round().max(1.0) as usize;
            (0..self.stats.layers())
                .map(|l| self.stats.hottest(l, keep))
                .collect()
        };
        let ffn = |p: FfnPolicy| Ok(Sparsity::from(p));
        match spec {
            Spec::Dense => ffn(FfnPolicy::Dense),
            Spec::Oracle => ffn(FfnPolicy::TopK {
                density: density as f32,
            }),
            Spec::Gate => ffn(FfnPolicy::Threshold {
                per_layer: self.gates.thresholds(density)?,
            }),
            Spec::Static => ffn(FfnPolicy::StaticHot {
                per_layer: hottest(density),
            }),
            Spec::HotCold {
                hot,
                predictor: false,
            } => ffn(FfnPolicy::HotCold {
                hot: hottest(hot),
                cold: ColdChoice::TopK {
                    density: density as f32,
                },
            }),
            Spec::HotCold {
                hot,
                predictor: true,
            } => {
                let hot = hottest(hot);
                let set = self.predictor_at(density, Some(&hot))?;
                ffn(FfnPolicy::HotCold {
                    hot,
                    cold: ColdChoice::Predictor { set },
                })
            }
            Spec::Predictor => ffn(FfnPolicy::Predictor {
                set: self.predictor_at(density, None)?,
                gate_check: None,
            }),
            Spec::Teal | Spec::Wina => {
                let profile = if spec == Spec::Teal {
                    &self.teal
                } else {
                    &self.wina
                };
                let profile = profile
                    .as_ref()
                    .with_context(|| format!("{spec} was not calibrated"))?;
                Ok(Sparsity {
                    ffn: FfnPolicy::Dense,
                    input: Some(Arc::new(profile.sparsity(density)?)),
                })
            }
        }
    }

    /// The predictor with τ set per layer so that it picks the `density` share of the
    /// calibration tokens' neurons — or, with `hot` sets, the share of the cold
    /// neurons that fills each layer up to `density` in all.
    fn predictor_at(&self, density: f64, hot: Option<&[Vec<u32>]>) -> Result<Arc<PredictorSet>> {
        let p = self.predictor.as_ref().context(
            "no predictor (train one with `cargo run --release --example train_predictor`)",
        )?;
        let mut set = (*p.set).clone();
        for (l, (layer, z)) in set.layers.iter_mut().zip(&p.logits).enumerate() {
            let n_ff = layer.n_ff();
            let mut cold = vec![true; n_ff];
            let mut share = density;
            if let Some(hot) = hot {
                hot[l].iter().for_each(|&i| cold[i as usize] = false);
                let h = hot[l].len() as f64 / n_ff as f64;
                share = ((density - h) / (1.0 - h).max(1e-9)).clamp(0.0, 1.0);
            }
            let mut scores: Vec<f32> = z
                .iter()
                .enumerate()
                .filter(|(k, _)| cold[k % n_ff])
                .map(|(_, &v)| v)
                .collect();
            layer.set_tau(tau_for_share(&mut scores, share));
        }
        Ok(Arc::new(set))
    }
}

/// The τ at which `logit ≥ τ` holds for the `share` of `scores` (+∞: none, −∞: all).
fn tau_for_share(scores: &mut [f32], share: f64) -> f32 {
    let n = scores.len();
    let keep = ((n as f64) * share).round() as usize;
    if keep >= n {
        return f32::NEG_INFINITY;
    }
    if keep == 0 {
        return f32::INFINITY;
    }
    let (_, t, _) = scores.select_nth_unstable_by(n - keep, f32::total_cmp);
    *t
}
