//! Training one layer's predictor: minibatch Adam on a positive-weighted binary
//! cross-entropy, f32, deterministic for a seed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::matmul::{View, gemm};
use crate::{LayerPredictor, PredictorError, PredictorInput, Samples};

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Hidden width `r`.
    pub rank: usize,
    /// Passes over the samples.
    pub epochs: usize,
    /// Tokens per minibatch.
    pub batch: usize,
    /// Adam's peak learning rate (decays linearly to a tenth over the run).
    pub lr: f32,
    /// Weight of a positive (active) target in the loss; `None` = the inverse of the
    /// target density (`(1 − p) / p`, at least 1), so rare firings are not ignored.
    pub pos_weight: Option<f32>,
    /// Seed of the initialisation and the sample order.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> TrainOptions {
        TrainOptions {
            rank: 64,
            epochs: 4,
            batch: 256,
            lr: 2e-3,
            pos_weight: None,
            seed: 0,
        }
    }
}

/// Where training stands, for progress reports.
#[derive(Clone, Copy, Debug)]
pub struct TrainProgress {
    /// Minibatches done.
    pub step: usize,
    /// Minibatches in the run.
    pub steps: usize,
    /// Mean weighted BCE of the last minibatch.
    pub loss: f32,
    /// Event recall at logit ≥ 0 on the last minibatch.
    pub recall: f32,
}

/// A predictor's f32 training weights: `w1` is `rank × dim`, `w2` is `n_ff × rank`.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    /// Input length.
    pub dim: usize,
    /// Hidden width.
    pub rank: usize,
    /// Neurons.
    pub n_ff: usize,
    /// fc1 weights, row-major `rank × dim`.
    pub w1: Vec<f32>,
    /// fc1 bias.
    pub b1: Vec<f32>,
    /// fc2 weights, row-major `n_ff × rank`.
    pub w2: Vec<f32>,
    /// fc2 bias.
    pub b2: Vec<f32>,
}

impl Net {
    /// The deployed form (compact weight types) with threshold `tau`.
    pub fn deploy(
        &self,
        input: PredictorInput,
        tau: f32,
    ) -> Result<LayerPredictor, PredictorError> {
        LayerPredictor::from_f32(
            input,
            self.dim,
            self.rank,
            self.n_ff,
            &self.w1,
            self.b1.clone(),
            &self.w2,
            self.b2.clone(),
            tau,
        )
    }

    /// Logits of `n` inputs in f32 (`xs`: `n × dim`) into `z` (`n × n_ff`); `h` gets the
    /// hidden activations.
    fn forward(&self, xs: &[f32], n: usize, h: &mut [f32], z: &mut [f32]) {
        let (d, r, f) = (self.dim, self.rank, self.n_ff);
        gemm(View::new(xs, n, d), View::new(&self.w1, r, d).t(), 0.0, h);
        for row in h.chunks_exact_mut(r) {
            row.iter_mut()
                .zip(&self.b1)
                .for_each(|(v, b)| *v = (*v + b).max(0.0));
        }
        gemm(View::new(h, n, r), View::new(&self.w2, f, r).t(), 0.0, z);
        for row in z.chunks_exact_mut(f) {
            row.iter_mut().zip(&self.b2).for_each(|(v, b)| *v += b);
        }
    }
}

/// Adam moments of one parameter tensor.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn step(&mut self, p: &mut [f32], g: &[f32], lr: f32, t: i32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        let (c1, c2) = (1.0 - B1.powi(t), 1.0 - B2.powi(t));
        for (((p, g), m), v) in p.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}

/// Trains a predictor on `data` (every token, `opts.epochs` times, in a seeded random
/// order). `progress` is called after every minibatch.
pub fn train(
    data: &Samples,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(TrainProgress),
) -> Result<Net, PredictorError> {
    let (d, r, f) = (data.dim(), opts.rank, data.n_ff());
    let n = data.len();
    if n == 0 || r == 0 || opts.batch == 0 || opts.epochs == 0 {
        return Err(PredictorError::Invalid(format!(
            "training needs samples, a rank, a batch and epochs (got {n} samples, rank {r}, batch {}, {} epochs)",
            opts.batch, opts.epochs
        )));
    }
    let p = data.target_density().clamp(1e-4, 1.0 - 1e-4);
    let pos_w = opts
        .pos_weight
        .unwrap_or(((1.0 - p) / p).max(1.0) as f32)
        .max(0.0);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut normal = |scale: f32| {
        // Sum of uniforms (Irwin–Hall, 4 terms): a cheap, deterministic near-normal.
        let s: f32 = (0..4).map(|_| rng.random::<f32>() - 0.5).sum();
        s * scale * 3f32.sqrt()
    };
    let mut net = Net {
        dim: d,
        rank: r,
        n_ff: f,
        w1: (0..r * d)
            .map(|_| normal((2.0 / d as f32).sqrt()))
            .collect(),
        b1: vec![0.0; r],
        w2: (0..f * r)
            .map(|_| normal((1.0 / r as f32).sqrt()))
            .collect(),
        b2: vec![(p / (1.0 - p)).ln() as f32; f],
    };
    let (mut a1, mut ab1, mut a2, mut ab2) = (
        Adam::new(r * d),
        Adam::new(r),
        Adam::new(f * r),
        Adam::new(f),
    );
    let b = opts.batch.min(n);
    let (mut xs, mut h, mut z, mut dh) = (
        vec![0f32; b * d],
        vec![0f32; b * r],
        vec![0f32; b * f],
        vec![0f32; b * r],
    );
    let (mut g1, mut gb1, mut g2, mut gb2) = (
        vec![0f32; r * d],
        vec![0f32; r],
        vec![0f32; f * r],
        vec![0f32; f],
    );
    let mut order: Vec<usize> = (0..n).collect();
    let steps = opts.epochs * n.div_ceil(b);
    let mut step = 0;
    for _ in 0..opts.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(b) {
            let m = chunk.len();
            for (row, &t) in xs.chunks_exact_mut(d).zip(chunk) {
                data.x_into(t, row);
            }
            let (xs, h, z, dh) = (
                &xs[..m * d],
                &mut h[..m * r],
                &mut z[..m * f],
                &mut dh[..m * r],
            );
            net.forward(xs, m, h, z);
            // dL/dz of the weighted BCE, averaged over the minibatch's tokens.
            let (mut loss, mut hits, mut pos) = (0f64, 0usize, 0usize);
            let inv = 1.0 / m as f32;
            for (k, &t) in chunk.iter().enumerate() {
                for (i, zi) in z[k * f..(k + 1) * f].iter_mut().enumerate() {
                    let y = data.is_target(t, i);
                    let s = 1.0 / (1.0 + (-*zi).exp());
                    if y {
                        loss -= f64::from(pos_w * s.max(1e-7).ln());
                        pos += 1;
                        hits += usize::from(*zi >= 0.0);
                        *zi = pos_w * (s - 1.0) * inv;
                    } else {
                        loss -= f64::from((1.0 - s).max(1e-7).ln());
                        *zi = s * inv;
                    }
                }
            }
            let dz = &*z;
            // Gradients: fc2 = dzᵀ·h, fc1 through the ReLU = (dz·w2 ⊙ [h > 0])ᵀ·x.
            gemm(View::new(dz, m, f).t(), View::new(h, m, r), 0.0, &mut g2);
            column_sums(dz, f, &mut gb2);
            gemm(View::new(dz, m, f), View::new(&net.w2, f, r), 0.0, dh);
            dh.iter_mut().zip(h.iter()).for_each(|(g, hv)| {
                if *hv <= 0.0 {
                    *g = 0.0;
                }
            });
            gemm(View::new(dh, m, r).t(), View::new(xs, m, d), 0.0, &mut g1);
            column_sums(dh, r, &mut gb1);
            step += 1;
            let lr = opts.lr * (1.0 - 0.9 * (step - 1) as f32 / steps.max(1) as f32);
            let t = i32::try_from(step).unwrap_or(i32::MAX);
            a1.step(&mut net.w1, &g1, lr, t);
            ab1.step(&mut net.b1, &gb1, lr, t);
            a2.step(&mut net.w2, &g2, lr, t);
            ab2.step(&mut net.b2, &gb2, lr, t);
            progress(TrainProgress {
                step,
                steps,
                loss: (loss / (m * f) as f64) as f32,
                recall: hits as f32 / pos.max(1) as f32,
            });
        }
    }
    Ok(net)
}

/// `out[j] = Σ_rows m[row][j]`.
fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for row in m.chunks_exact(cols) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
}
