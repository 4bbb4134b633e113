//! The sparse feed-forward block: compute only the neurons that fire.

use crate::context::{check_idx, check_len, prepare};
use crate::q8::ActBuf;
use crate::{ColQ4, KernelError, Kernels, Matrix, WType, blocks};

/// How a neuron's gate (and up) pre-activations become its output `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `h = relu(g)` — OPT/Falcon-style fc1 → ReLU (no up projection).
    Relu,
    /// `h = gelu(g)` with the exact (erf) GELU, no up projection — Falcon's MLP
    /// (`nn.GELU()`); like SwiGLU, sparse only under a threshold.
    Gelu,
    /// `h = relu(g) · u` — ReLU-LLaMA.
    ReGlu,
    /// `h = relu(g) · relu(u)` — Bamboo (dReLU).
    DRelu,
    /// `h = silu(g) · u` — LLaMA/SmolLM (SwiGLU); sparse only under a threshold.
    SwiGlu,
    /// `h = gelu(g) · u` with GELU's tanh approximation — Gemma (GeGLU); like SwiGLU,
    /// sparse only under a threshold.
    GeGlu,
}

impl Activation {
    /// Every activation, for tests and tools that sweep them.
    pub const ALL: [Activation; 6] = [
        Activation::Relu,
        Activation::Gelu,
        Activation::ReGlu,
        Activation::DRelu,
        Activation::SwiGlu,
        Activation::GeGlu,
    ];

    /// Whether the activated gate is exactly zero for most neurons (the ReLU family), so
    /// that sparsity is free; SwiGLU and GeGLU have no exact zeros and are sparse only
    /// under a magnitude threshold.
    pub fn has_exact_zeros(self) -> bool {
        !matches!(
            self,
            Activation::SwiGlu | Activation::GeGlu | Activation::Gelu
        )
    }

    /// Whether this activation multiplies by an up projection.
    pub fn has_up(self) -> bool {
        !matches!(self, Activation::Relu | Activation::Gelu)
    }

    /// The gate nonlinearity alone: `relu(g)`, `silu(g)` or `gelu(g)`.
    #[inline]
    pub fn gate(self, g: f32) -> f32 {
        match self {
            Activation::SwiGlu => g / (1.0 + (-g).exp()),
            Activation::GeGlu => gelu_tanh(g),
            Activation::Gelu => gelu_erf(g),
            _ => g.max(0.0),
        }
    }

    /// Combines the activated gate `a` with the up value `u`.
    #[inline]
    pub fn combine(self, a: f32, u: f32) -> f32 {
        match self {
            Activation::Relu | Activation::Gelu => a,
            Activation::ReGlu | Activation::SwiGlu | Activation::GeGlu => a * u,
            Activation::DRelu => a * u.max(0.0),
        }
    }
}

/// GELU with the tanh approximation, `½g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))`, as
/// ggml's `ggml_gelu` and Gemma's `gelu_pytorch_tanh`.
#[inline]
fn gelu_tanh(g: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * g * (1.0 + (SQRT_2_OVER_PI * g * (1.0 + 0.044_715 * g * g)).tanh())
}

/// The exact GELU, `½g·(1 + erf(g/√2))`, as PyTorch's `nn.GELU()` (Falcon); `libm`'s
/// `erff` because `std` has no `erf`.
#[inline]
fn gelu_erf(g: f32) -> f32 {
    0.5 * g * (1.0 + libm::erff(g * std::f32::consts::FRAC_1_SQRT_2))
}

/// Which neurons to skip: none (dense), or those whose activated gate has
/// `|a| ≤ threshold` (0 for the ReLU family: exactly the zeros; > 0 for SwiGLU
/// magnitude sparsity à la CATS/TEAL). A neuron whose final `h` is exactly 0 is skipped
/// too, since it adds nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Skip {
    /// Compute every listed neuron.
    None,
    /// Skip neurons with `|gate activation| ≤` this.
    Below(f32),
}

impl Skip {
    /// The magnitude a neuron's activated gate must exceed to be kept (`-∞` keeps all).
    pub fn threshold(self) -> f32 {
        match self {
            Skip::None => f32::NEG_INFINITY,
            Skip::Below(t) => t,
        }
    }
}

/// The down projection with one row per neuron, as the sparse axpy reads it.
///
/// Why two forms: a row-major matrix in any weight type (PowerInfer's `ffn_down_t`, or
/// a transpose made at load), or a 4-bit source transposed exactly ([`ColQ4`]: no
/// second rounding, 4 bits per weight read per active neuron).
#[derive(Clone, Copy, Debug)]
pub enum DownRows<'a> {
    /// `n_ff × dim` rows in a weight type.
    Matrix(Matrix<'a>),
    /// A Q4_0/Q4_1 `dim × n_ff` matrix transposed without re-quantizing.
    ColQ4(&'a ColQ4),
}

impl<'a> From<Matrix<'a>> for DownRows<'a> {
    fn from(m: Matrix<'a>) -> DownRows<'a> {
        DownRows::Matrix(m)
    }
}

impl<'a> From<&'a ColQ4> for DownRows<'a> {
    fn from(c: &'a ColQ4) -> DownRows<'a> {
        DownRows::ColQ4(c)
    }
}

impl DownRows<'_> {
    /// Neurons.
    pub fn neurons(&self) -> usize {
        match self {
            DownRows::Matrix(m) => m.rows(),
            DownRows::ColQ4(c) => c.neurons(),
        }
    }

    /// Outputs per neuron.
    pub fn dim(&self) -> usize {
        match self {
            DownRows::Matrix(m) => m.cols(),
            DownRows::ColQ4(c) => c.dim(),
        }
    }

    /// Bytes read per active neuron (for [`ColQ4`], its codes plus its share of its
    /// block's scales, which 32 neurons share).
    pub fn bytes_per_neuron(&self) -> usize {
        match self {
            DownRows::Matrix(m) => m.row_bytes(),
            DownRows::ColQ4(c) => c.row_bytes() + c.block_scale_bytes() / crate::COLQ4_BLOCK,
        }
    }

    /// A short name of the layout, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            DownRows::Matrix(m) => m.wtype().name(),
            DownRows::ColQ4(_) => "q4-exact",
        }
    }
}

impl Kernels {
    /// `y += Σ_k h[k] · down[idx[k]]` over either form of [`DownRows`] (see
    /// [`Kernels::axpy_rows`] and [`Kernels::axpy_colq4`]).
    pub fn axpy_down(
        &self,
        w: &DownRows,
        h: &[f32],
        idx: &[u32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        match w {
            DownRows::Matrix(m) => self.axpy_rows(m, h, idx, y),
            DownRows::ColQ4(c) => self.axpy_colq4(c, h, idx, y),
        }
    }

    /// [`Kernels::axpy_down`] for `n` tokens (see [`Kernels::axpy_rows_batch`]).
    pub fn axpy_down_batch(
        &self,
        w: &DownRows,
        hs: &[f32],
        n: usize,
        idx: &[u32],
        ys: &mut [f32],
    ) -> Result<(), KernelError> {
        match w {
            DownRows::Matrix(m) => self.axpy_rows_batch(m, hs, n, idx, ys),
            DownRows::ColQ4(c) => self.axpy_colq4_batch(c, hs, n, idx, ys),
        }
    }
}

/// The three weight views of one FFN, rows indexed by neuron.
///
/// `gate` and `up` are `n_ff × dim` (gate/fc1 rows); `down_t` is the down projection
/// transposed, also `n_ff × dim`, so neuron `i`'s output column is a row. They may be
/// strided views into one neuron-bundled buffer ([`BundledFfn`]).
#[derive(Clone, Copy, Debug)]
pub struct FfnWeights<'a> {
    /// Gate (or fc1) rows.
    pub gate: Matrix<'a>,
    /// Up rows (absent for [`Activation::Relu`] and [`Activation::Gelu`]).
    pub up: Option<Matrix<'a>>,
    /// Down projection transposed: one row per neuron.
    pub down_t: DownRows<'a>,
    /// Per-neuron bias added to the gate pre-activation (OPT's fc1 bias).
    pub gate_bias: Option<&'a [f32]>,
    /// The activation.
    pub act: Activation,
}

impl FfnWeights<'_> {
    /// Number of neurons.
    pub fn neurons(&self) -> usize {
        self.gate.rows()
    }

    /// Model dimension.
    pub fn dim(&self) -> usize {
        self.gate.cols()
    }

    /// Neuron `i`'s activated gate from its gate pre-activation `g`: the bias added
    /// (OPT) and the activation applied. Why one function: every FFN path (fused,
    /// batched, dense, calibration) must agree on it to the bit.
    #[inline]
    pub fn activated_gate(&self, i: usize, g: f32) -> f32 {
        self.act.gate(
            g + self
                .gate_bias
                .and_then(|b| b.get(i))
                .copied()
                .unwrap_or(0.0),
        )
    }

    pub(crate) fn validate(&self) -> Result<(), KernelError> {
        let (n, d) = (self.neurons(), self.dim());
        check_len("ffn: down_t rows", n, self.down_t.neurons())?;
        check_len("ffn: down_t cols", d, self.down_t.dim())?;
        match (self.up, self.act.has_up()) {
            (Some(up), true) => {
                check_len("ffn: up rows", n, up.rows())?;
                check_len("ffn: up cols", d, up.cols())?;
            }
            (None, false) => {}
            (_, need) => check_len("ffn: up matrices", usize::from(need), 1 - usize::from(need))?,
        }
        if let Some(b) = self.gate_bias {
            check_len("ffn: gate bias", n, b.len())?;
        }
        Ok(())
    }
}

/// Reusable buffers of the fused FFN, and what its last call found.
///
/// Why public: the engine reads [`FfnScratch::active`] to measure density and to
/// collect training masks for predictors, without recomputing anything.
#[derive(Default, Debug)]
pub struct FfnScratch {
    h: Vec<f32>,
    active: Vec<u32>,
    h_active: Vec<f32>,
    q: ActBuf,
    q_up: ActBuf,
}

impl FfnScratch {
    /// Neurons whose output was added to `y` by the last call, ascending.
    pub fn active(&self) -> &[u32] {
        &self.active
    }

    /// Their activations `h`, parallel to [`FfnScratch::active`].
    pub fn active_values(&self) -> &[f32] {
        &self.h_active
    }
}

impl Kernels {
    /// Fused sparse FFN: `y += Σ_{i ∈ idx, i fires} h_i · down_t[i]` with
    /// `h_i = act(gate_i·x (+ bias_i), up_i·x)`.
    ///
    /// The gates of all candidate neurons (`idx`, or all when `None`) are computed first,
    /// as one gathered GEMV; the up rows and down rows are read only for neurons that
    /// survive `skip`. Three passes (gates, survivors' up rows, then the down projection
    /// over column tiles), each computing an output on one thread with fixed arithmetic,
    /// so the result does not depend on the thread count. (Per-neuron gate-then-up in
    /// one pass measured slower: the grouped GEMV kernel streams four rows at a time.) Returns the
    /// number of neurons that fired; [`FfnScratch::active`] lists them.
    pub fn ffn_sparse(
        &self,
        w: &FfnWeights,
        x: &[f32],
        idx: Option<&[u32]>,
        skip: Skip,
        y: &mut [f32],
        scratch: &mut FfnScratch,
    ) -> Result<usize, KernelError> {
        w.validate()?;
        check_len("ffn_sparse: x", w.dim(), x.len())?;
        check_len("ffn_sparse: y", w.dim(), y.len())?;
        if let Some(idx) = idx {
            check_idx(idx, w.neurons())?;
        }
        let neuron = |k: usize| idx.map_or(k, |i| i[k] as usize);
        let FfnScratch {
            h,
            active,
            h_active,
            q,
            q_up,
        } = scratch;
        let threshold = skip.threshold();
        // Every candidate's gate, as one (gathered) GEMV: rows stream in groups.
        h.resize(idx.map_or(w.neurons(), <[u32]>::len), 0.0);
        let act_g = prepare(w.gate.wtype(), x, q);
        self.gemv_blocks(&w.gate, &act_g, idx, h);
        active.clear();
        h_active.clear();
        for (k, g) in h.iter().enumerate() {
            let i = neuron(k);
            let a = w.activated_gate(i, *g);
            if a.abs() > threshold {
                active.push(i as u32);
                h_active.push(a);
            }
        }
        // Up rows of the survivors only, then the combined activation; a neuron whose
        // output is exactly 0 adds nothing and is dropped unless nothing is skipped.
        if let Some(up) = &w.up {
            let act_u = prepare(up.wtype(), x, q_up);
            h.resize(active.len(), 0.0);
            self.gemv_blocks(up, &act_u, Some(active), h);
            let mut kept = 0;
            for j in 0..active.len() {
                let v = w.act.combine(h_active[j], h[j]);
                if skip == Skip::None || v != 0.0 {
                    active[kept] = active[j];
                    h_active[kept] = v;
                    kept += 1;
                }
            }
            active.truncate(kept);
            h_active.truncate(kept);
        }
        match &w.down_t {
            DownRows::Matrix(m) => self.axpy_unchecked(m, h_active, active, y),
            DownRows::ColQ4(c) => self.axpy_colq4_unchecked(c, h_active, active, y),
        }
        Ok(active.len())
    }
}

/// An FFN re-laid out so neuron `i`'s gate row, up row and down column sit side by
/// side ("row-column bundling"): one neuron, one contiguous run of bytes.
///
/// Why: a sparse FFN touches scattered neurons; bundling turns three scattered reads
/// per neuron into one, and it is where the down projection gets its transposed,
/// row-per-neuron form. The engine (`powerinfer-core`) does not bundle: its policies
/// compute every gate, and a bundled gate is read at a stride, measured 7× slower than
/// the contiguous matrix on SmolLM2. Bundles pay when neurons are chosen before any gate
/// is computed (a predictor) and read few rows; `bench kernels` measures both layouts.
#[derive(Clone, Debug)]
pub struct BundledFfn {
    data: Vec<u8>,
    neurons: usize,
    dim: usize,
    types: [WType; 3],
    gate_bias: Option<Vec<f32>>,
    act: Activation,
}

impl BundledFfn {
    /// Packs gate/up rows (`n_ff × dim`, as stored) and `down_t` rows (`n_ff × dim`)
    /// into one buffer. Each source keeps its weight type and bytes unchanged.
    pub fn pack(
        gate: &Matrix,
        up: Option<&Matrix>,
        down_t: &Matrix,
        gate_bias: Option<Vec<f32>>,
        act: Activation,
    ) -> Result<BundledFfn, KernelError> {
        let view = FfnWeights {
            gate: *gate,
            up: up.copied(),
            down_t: (*down_t).into(),
            gate_bias: gate_bias.as_deref(),
            act,
        };
        view.validate()?;
        let (neurons, dim) = (gate.rows(), gate.cols());
        let stride = gate.row_bytes() + up.map_or(0, Matrix::row_bytes) + down_t.row_bytes();
        let mut data = Vec::with_capacity(
            stride
                .checked_mul(neurons)
                .ok_or(KernelError::SizeOverflow)?,
        );
        for i in 0..neurons {
            data.extend_from_slice(gate.row(i));
            if let Some(u) = up {
                data.extend_from_slice(u.row(i));
            }
            data.extend_from_slice(down_t.row(i));
        }
        Ok(BundledFfn {
            data,
            neurons,
            dim,
            types: [
                gate.wtype(),
                up.map_or(gate.wtype(), Matrix::wtype),
                down_t.wtype(),
            ],
            gate_bias,
            act,
        })
    }

    /// Total bytes of the bundle.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Bytes of one neuron (gate + up + down rows).
    pub fn neuron_bytes(&self) -> usize {
        self.data.len().checked_div(self.neurons).unwrap_or(0)
    }

    /// The strided views the kernels take.
    pub fn weights(&self) -> FfnWeights<'_> {
        let stride = self.neuron_bytes();
        let [tg, tu, td] = self.types;
        let view = |t: WType, skip: usize| -> Matrix<'_> {
            // Cannot fail: `pack` validated these shapes and built this exact buffer.
            Matrix::strided(
                t,
                self.neurons,
                self.dim,
                stride.max(1),
                &self.data[skip.min(self.data.len())..],
            )
            .unwrap_or_else(|_| unreachable!("bundle views were validated in pack"))
        };
        let gate_bytes = tg.row_bytes(self.dim).unwrap_or(0);
        let up_bytes = if self.act.has_up() {
            tu.row_bytes(self.dim).unwrap_or(0)
        } else {
            0
        };
        FfnWeights {
            gate: view(tg, 0),
            up: self.act.has_up().then(|| view(tu, gate_bytes)),
            down_t: view(td, gate_bytes + up_bytes).into(),
            gate_bias: self.gate_bias.as_deref(),
            act: self.act,
        }
    }
}

/// Transposes a `rows × cols` matrix into `cols × rows` of type `out`, going through
/// f32. Why: the down projection is stored `dim × n_ff`; sparse kernels want it
/// `n_ff × dim`. Exact when `out` can hold the source values (float types to F32, or
/// the same float type); quantized sources are re-quantized (`out` = Q8_0 keeps the
/// error far below the source's 4-bit error).
pub fn transpose(m: &Matrix, out: WType) -> Result<Vec<u8>, KernelError> {
    let (rows, cols) = (m.rows(), m.cols());
    let mut dense = vec![0f32; rows.checked_mul(cols).ok_or(KernelError::SizeOverflow)?];
    for (r, dst) in dense.chunks_exact_mut(cols.max(1)).enumerate().take(rows) {
        blocks::dequantize_row(m.wtype(), m.row(r), dst)?;
    }
    let mut t = vec![0f32; dense.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = dense[r * cols + c];
        }
    }
    blocks::quantize_matrix(out, &t, cols, rows)
}

#[cfg(test)]
mod tests {
    use super::Activation;

    #[test]
    fn gate_nonlinearities_match_known_values() {
        // Φ(1) = 0.841 344 75, Φ(−1) = 0.158 655 25 (exact GELU = g·Φ(g)); the tanh
        // form is 0.841 192 in 1 and differs from the exact one by < 2e-4 there.
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(Activation::Gelu.gate(1.0), 0.841_344_7));
        assert!(close(Activation::Gelu.gate(-1.0), -0.158_655_3));
        assert!(close(Activation::Gelu.gate(0.0), 0.0));
        assert!(close(Activation::GeGlu.gate(1.0), 0.841_192));
        assert!(close(Activation::Relu.gate(-1.0), 0.0));
        assert!(close(Activation::SwiGlu.gate(1.0), 0.731_058_6));
        for act in Activation::ALL {
            assert_eq!(
                act.has_up(),
                !matches!(act, Activation::Relu | Activation::Gelu)
            );
            assert_eq!(act.combine(2.0, 3.0) == 2.0, !act.has_up(), "{act:?}");
        }
    }
}
