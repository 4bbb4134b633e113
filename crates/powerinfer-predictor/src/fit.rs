//! Fitting a whole model's predictors: per layer the smallest rank of a ladder that
//! reaches the recall target at the lowest predicted density, within a total byte
//! budget, then training that rank on all samples and calibrating τ on held-out ones.

use rayon::prelude::*;

use powerinfer_kernels::Kernels;

use crate::set::calibrate_layer;
use crate::train::{Net, TrainProgress, train};
use crate::{
    Calibration, ModelId, OperatingPoint, PredictorError, PredictorInput, PredictorSet, RecallKind,
    Samples, TrainOptions,
};

/// How to fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Candidate ranks, ascending.
    pub ladder: Vec<usize>,
    /// Most bytes all predictors together may take.
    pub budget_bytes: usize,
    /// Tokens (the first of each layer's training samples) each ladder rank is tried on.
    pub search_tokens: usize,
    /// Epochs of each ladder trial.
    pub search_epochs: usize,
    /// A rank within this much predicted density of the ladder's best counts as "as
    /// good" (so the smaller one is taken).
    pub density_slack: f64,
    /// Recall kind and target of the thresholds (and of the ladder comparison).
    pub recall_kind: RecallKind,
    /// Recall target.
    pub recall: f64,
    /// The final training run (its `rank` is ignored: the ladder picks it).
    pub train: TrainOptions,
    /// What the predictors read.
    pub input: PredictorInput,
}

impl Default for FitOptions {
    fn default() -> FitOptions {
        FitOptions {
            ladder: vec![16, 32, 64, 128, 256],
            budget_bytes: usize::MAX,
            search_tokens: 8192,
            search_epochs: 2,
            density_slack: 0.01,
            recall_kind: RecallKind::Mass,
            recall: 0.95,
            train: TrainOptions::default(),
            input: PredictorInput::FfnNorm,
        }
    }
}

impl FitOptions {
    /// Minibatches [`fit`] will run for `layers` layers of `tokens` training samples
    /// each (for a progress bar).
    pub fn total_steps(&self, layers: usize, tokens: usize) -> usize {
        let b = self.train.batch.max(1);
        let search = self.search_tokens.min(tokens).div_ceil(b) * self.search_epochs;
        let full = if self.reuses_search(tokens) {
            0
        } else {
            tokens.div_ceil(b) * self.train.epochs
        };
        layers * (self.ladder.len() * search + full)
    }

    /// Whether the ladder trials already are the final training run.
    fn reuses_search(&self, tokens: usize) -> bool {
        self.search_tokens >= tokens && self.search_epochs == self.train.epochs
    }
}

/// One ladder rank tried on one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankTrial {
    /// The rank.
    pub rank: usize,
    /// Its deployed bytes.
    pub bytes: usize,
    /// Its held-out result at the recall target.
    pub calibration: Calibration,
}

/// What [`fit`] tried and chose.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Per layer, every ladder rank's trial.
    pub trials: Vec<Vec<RankTrial>>,
    /// Per layer, the chosen rank.
    pub chosen: Vec<usize>,
}

/// One minibatch done somewhere in [`fit`].
#[derive(Clone, Copy, Debug)]
pub struct FitProgress {
    /// Whether this is a ladder trial (else the final run).
    pub search: bool,
    /// Layer.
    pub layer: usize,
    /// Rank being trained.
    pub rank: usize,
    /// The minibatch's numbers.
    pub step: TrainProgress,
}

/// Fits predictors for every layer: `train[l]` and `held[l]` are layer `l`'s training
/// and held-out samples (held-out with magnitudes for mass recall). Layers run in
/// parallel on the current rayon pool; results do not depend on the thread count.
pub fn fit(
    model: ModelId,
    train_samples: &[Samples],
    held: &[Samples],
    opts: &FitOptions,
    kernels: &Kernels,
    progress: &(dyn Fn(FitProgress) + Sync),
) -> Result<(PredictorSet, FitReport), PredictorError> {
    let layers = model.n_layers as usize;
    if train_samples.len() != layers || held.len() != layers {
        return Err(PredictorError::Shape(format!(
            "{} training and {} held-out buffers for {layers} layers",
            train_samples.len(),
            held.len()
        )));
    }
    let rule = train_samples
        .first()
        .map(Samples::rule)
        .ok_or_else(|| PredictorError::Invalid("a model with no layers".into()))?;
    if opts.ladder.is_empty() || opts.ladder.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PredictorError::Invalid(format!(
            "rank ladder {:?} must be non-empty and ascending",
            opts.ladder
        )));
    }
    let serial = kernels.single_threaded();
    // 1. Every ladder rank on a subsample of every layer.
    let searched: Vec<Vec<(RankTrial, Option<Net>)>> = (0..layers)
        .into_par_iter()
        .map(|l| {
            let reuse = opts.reuses_search(train_samples[l].len());
            let sub = train_samples[l].head(opts.search_tokens);
            opts.ladder
                .iter()
                .map(|&rank| {
                    let t = TrainOptions {
                        rank,
                        epochs: opts.search_epochs,
                        seed: opts.train.seed ^ (l as u64) << 8,
                        ..opts.train.clone()
                    };
                    let net = train(&sub, &t, &mut |step| {
                        progress(FitProgress {
                            search: true,
                            layer: l,
                            rank,
                            step,
                        })
                    })?;
                    let mut p = net.deploy(opts.input, 0.0)?;
                    let calibration =
                        calibrate_layer(&mut p, &serial, &held[l], opts.recall_kind, opts.recall)?;
                    let trial = RankTrial {
                        rank,
                        bytes: p.bytes(),
                        calibration,
                    };
                    Ok((trial, reuse.then_some(net)))
                })
                .collect::<Result<Vec<_>, PredictorError>>()
        })
        .collect::<Result<_, _>>()?;
    let trials: Vec<Vec<RankTrial>> = searched
        .iter()
        .map(|t| t.iter().map(|(r, _)| *r).collect())
        .collect();
    // 2. Per layer the smallest rank close to the best density, then fit the budget.
    let choice = choose(&trials, opts.density_slack, opts.budget_bytes)?;
    // 3. The chosen rank on all samples (unless the trial was that run), τ on held-out.
    let mut nets: Vec<Option<Net>> = searched
        .into_iter()
        .zip(&choice)
        .map(|(mut t, &c)| t.swap_remove(c).1)
        .collect();
    let finals: Vec<(crate::LayerPredictor, Calibration)> = nets
        .par_iter_mut()
        .enumerate()
        .map(|(l, net)| {
            let rank = trials[l][choice[l]].rank;
            let net = match net.take() {
                Some(n) => n,
                None => {
                    let t = TrainOptions {
                        rank,
                        seed: opts.train.seed ^ (l as u64) << 8,
                        ..opts.train.clone()
                    };
                    train(&train_samples[l], &t, &mut |step| {
                        progress(FitProgress {
                            search: false,
                            layer: l,
                            rank,
                            step,
                        })
                    })?
                }
            };
            let mut p = net.deploy(opts.input, 0.0)?;
            let c = calibrate_layer(&mut p, &serial, &held[l], opts.recall_kind, opts.recall)?;
            Ok((p, c))
        })
        .collect::<Result<_, PredictorError>>()?;
    let (layers_p, cals): (Vec<_>, Vec<_>) = finals.into_iter().unzip();
    let set = PredictorSet {
        model,
        rule,
        point: OperatingPoint {
            recall_kind: opts.recall_kind,
            recall: opts.recall,
            quality_budget: None,
            ppl_ratio: None,
        },
        layers: layers_p,
        calibration: cals.into_iter().map(Some).collect(),
    };
    let chosen = choice
        .iter()
        .zip(&trials)
        .map(|(&c, t)| t[c].rank)
        .collect();
    Ok((set, FitReport { trials, chosen }))
}

/// Per layer, the index of the smallest trial within `slack` of the layer's lowest
/// density; then, while over `budget` bytes, the step down one rank that costs the
/// least density per byte saved.
pub fn choose(
    trials: &[Vec<RankTrial>],
    slack: f64,
    budget: usize,
) -> Result<Vec<usize>, PredictorError> {
    let mut choice: Vec<usize> = trials
        .iter()
        .map(|t| {
            let best = t
                .iter()
                .map(|r| r.calibration.density)
                .fold(f64::INFINITY, f64::min);
            t.iter()
                .position(|r| r.calibration.density <= best + slack)
                .unwrap_or(0)
        })
        .collect();
    let total = |c: &[usize]| -> usize { c.iter().zip(trials).map(|(&i, t)| t[i].bytes).sum() };
    while total(&choice) > budget {
        let step = choice
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(l, &c)| {
                let (a, b) = (&trials[l][c], &trials[l][c - 1]);
                let cost = (b.calibration.density - a.calibration.density)
                    / (a.bytes.saturating_sub(b.bytes)).max(1) as f64;
                (l, cost)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match step {
            Some((l, _)) => choice[l] -= 1,
            None => {
                return Err(PredictorError::Invalid(format!(
                    "predictor budget of {budget} bytes is too small: the smallest ladder rank needs {} bytes",
                    total(&choice)
                )));
            }
        }
    }
    Ok(choice)
}
