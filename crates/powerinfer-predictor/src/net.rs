//! One layer's deployed predictor: `x → fc1 → ReLU → fc2 → logits`, neuron `i`
//! predicted active when `logit_i ≥ τ`, evaluated through powerinfer-kernels.

use powerinfer_kernels::{Kernels, Matrix, WType, quantize_matrix};

use crate::PredictorError;

/// What the predictor reads.
///
/// Why: our predictors read the FFN's own (normalised) input, the best signal for
/// which neurons fire; PowerInfer's released predictors read the residual stream
/// before the FFN norm (`ffn_inp` in its llama.cpp), and imported ones must be fed that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictorInput {
    /// The normalised FFN input (what gate/up see).
    FfnNorm,
    /// The residual stream after attention, before the FFN norm (PowerInfer).
    Residual,
}

/// A deployed per-layer predictor in compact weight types.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPredictor {
    pub(crate) input: PredictorInput,
    pub(crate) dim: usize,
    pub(crate) rank: usize,
    pub(crate) n_ff: usize,
    pub(crate) fc1_type: WType,
    /// `rank × dim` in `fc1_type`.
    pub(crate) fc1: Vec<u8>,
    pub(crate) b1: Vec<f32>,
    pub(crate) fc2_type: WType,
    /// `n_ff × rank` in `fc2_type`.
    pub(crate) fc2: Vec<u8>,
    pub(crate) b2: Vec<f32>,
    pub(crate) tau: f32,
}

/// Reusable buffers for [`LayerPredictor::predict`].
#[derive(Default, Debug)]
pub struct PredictScratch {
    hidden: Vec<f32>,
    logits: Vec<f32>,
}

/// The compact type for a matrix with rows of `cols` values: Q8_0 where the rows are
/// whole blocks (half the bytes of f16, and the dot runs on 8-bit integers), else F16.
pub fn compact_type(cols: usize) -> WType {
    if cols.is_multiple_of(WType::Q8_0.block_size()) {
        WType::Q8_0
    } else {
        WType::F16
    }
}

impl LayerPredictor {
    /// Builds a predictor from f32 weights (`w1`: rank × dim, `w2`: n_ff × rank,
    /// row-major; biases may be empty), stored in [`compact_type`]s.
    #[allow(clippy::too_many_arguments)]
    pub fn from_f32(
        input: PredictorInput,
        dim: usize,
        rank: usize,
        n_ff: usize,
        w1: &[f32],
        b1: Vec<f32>,
        w2: &[f32],
        b2: Vec<f32>,
        tau: f32,
    ) -> Result<LayerPredictor, PredictorError> {
        let (t1, t2) = (compact_type(dim), compact_type(rank));
        if w1.len() != rank * dim || w2.len() != n_ff * rank {
            return Err(PredictorError::Shape(format!(
                "fc1 of {} and fc2 of {} values for dim {dim}, rank {rank}, n_ff {n_ff}",
                w1.len(),
                w2.len()
            )));
        }
        LayerPredictor::assemble(
            input,
            [dim, rank, n_ff],
            (t1, quantize_matrix(t1, w1, rank, dim)?),
            b1,
            (t2, quantize_matrix(t2, w2, n_ff, rank)?),
            b2,
            tau,
        )
    }

    /// A predictor from weights already in a kernel type (e.g. PowerInfer's f16
    /// `fc1`/`fc2` tensors), without biases.
    #[allow(clippy::too_many_arguments)]
    pub fn from_raw(
        input: PredictorInput,
        dim: usize,
        rank: usize,
        n_ff: usize,
        fc1: (WType, Vec<u8>),
        fc2: (WType, Vec<u8>),
        tau: f32,
    ) -> Result<LayerPredictor, PredictorError> {
        LayerPredictor::assemble(
            input,
            [dim, rank, n_ff],
            fc1,
            Vec::new(),
            fc2,
            Vec::new(),
            tau,
        )
    }

    /// A predictor from its parts (`[dim, rank, n_ff]`, each weight buffer with its
    /// type), every buffer checked against the shape.
    pub(crate) fn assemble(
        input: PredictorInput,
        [dim, rank, n_ff]: [usize; 3],
        fc1: (WType, Vec<u8>),
        b1: Vec<f32>,
        fc2: (WType, Vec<u8>),
        b2: Vec<f32>,
        tau: f32,
    ) -> Result<LayerPredictor, PredictorError> {
        let p = LayerPredictor {
            input,
            dim,
            rank,
            n_ff,
            fc1_type: fc1.0,
            fc1: fc1.1,
            b1,
            fc2_type: fc2.0,
            fc2: fc2.1,
            b2,
            tau,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks every buffer against the shape.
    fn validate(&self) -> Result<(), PredictorError> {
        self.fc1()?;
        self.fc2()?;
        let bias = |b: &[f32], n: usize, what: &str| {
            if b.is_empty() || b.len() == n {
                Ok(())
            } else {
                Err(PredictorError::Shape(format!(
                    "{what} bias of {} for {n} outputs",
                    b.len()
                )))
            }
        };
        bias(&self.b1, self.rank, "fc1")?;
        bias(&self.b2, self.n_ff, "fc2")?;
        if !self.tau.is_finite() {
            return Err(PredictorError::Invalid(format!("threshold {}", self.tau)));
        }
        Ok(())
    }

    fn fc1(&self) -> Result<Matrix<'_>, PredictorError> {
        Ok(Matrix::new(self.fc1_type, self.rank, self.dim, &self.fc1)?)
    }

    fn fc2(&self) -> Result<Matrix<'_>, PredictorError> {
        Ok(Matrix::new(self.fc2_type, self.n_ff, self.rank, &self.fc2)?)
    }

    /// What the predictor reads.
    pub fn input(&self) -> PredictorInput {
        self.input
    }

    /// Hidden width `r`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Input length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Neurons predicted.
    pub fn n_ff(&self) -> usize {
        self.n_ff
    }

    /// The decision threshold on logits.
    pub fn tau(&self) -> f32 {
        self.tau
    }

    /// Sets the decision threshold (calibration).
    pub fn set_tau(&mut self, tau: f32) {
        self.tau = tau;
    }

    /// Weight types of fc1 and fc2.
    pub fn types(&self) -> (WType, WType) {
        (self.fc1_type, self.fc2_type)
    }

    /// Bytes read per prediction (weights and biases).
    pub fn bytes(&self) -> usize {
        self.fc1.len() + self.fc2.len() + 4 * (self.b1.len() + self.b2.len())
    }

    /// Multiply-adds per prediction.
    pub fn macs(&self) -> usize {
        self.rank * (self.dim + self.n_ff)
    }

    /// Logits of one input (`out.len() == n_ff`).
    pub fn logits(
        &self,
        kernels: &Kernels,
        x: &[f32],
        hidden: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), PredictorError> {
        hidden.resize(self.rank, 0.0);
        kernels.gemv(&self.fc1()?, x, hidden)?;
        relu_bias(hidden, &self.b1);
        kernels.gemv(&self.fc2()?, hidden, out)?;
        add(out, &self.b2);
        Ok(())
    }

    /// Logits of `n` inputs (`xs`: `n × dim`, `out`: `n × n_ff`), batched.
    pub fn logits_batch(
        &self,
        kernels: &Kernels,
        xs: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<(), PredictorError> {
        if n == 1 {
            let mut h = Vec::new();
            return self.logits(kernels, xs, &mut h, out);
        }
        let mut hidden = vec![0f32; n * self.rank];
        kernels.gemm(&self.fc1()?, xs, n, &mut hidden)?;
        hidden
            .chunks_exact_mut(self.rank.max(1))
            .for_each(|h| relu_bias(h, &self.b1));
        kernels.gemm(&self.fc2()?, &hidden, n, out)?;
        out.chunks_exact_mut(self.n_ff.max(1))
            .for_each(|o| add(o, &self.b2));
        Ok(())
    }

    /// The neurons predicted active for `x`, ascending, into `out`.
    pub fn predict(
        &self,
        kernels: &Kernels,
        x: &[f32],
        scratch: &mut PredictScratch,
        out: &mut Vec<u32>,
    ) -> Result<(), PredictorError> {
        let PredictScratch { hidden, logits } = scratch;
        logits.resize(self.n_ff, 0.0);
        self.logits(kernels, x, hidden, logits)?;
        select(logits, self.tau, out);
        Ok(())
    }
}

/// The indices whose logit reaches `tau`, ascending.
pub fn select(logits: &[f32], tau: f32, out: &mut Vec<u32>) {
    out.clear();
    out.extend(
        logits
            .iter()
            .enumerate()
            .filter(|(_, l)| **l >= tau)
            .map(|(i, _)| i as u32),
    );
}

fn relu_bias(h: &mut [f32], b: &[f32]) {
    if b.is_empty() {
        h.iter_mut().for_each(|v| *v = v.max(0.0));
    } else {
        h.iter_mut()
            .zip(b)
            .for_each(|(v, b)| *v = (*v + b).max(0.0));
    }
}

fn add(y: &mut [f32], b: &[f32]) {
    y.iter_mut().zip(b).for_each(|(v, b)| *v += b);
}
