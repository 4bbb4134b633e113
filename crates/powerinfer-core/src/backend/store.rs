//! Weights copied into a host-memory device, and the operations over them: what
//! [`super::CpuBackend`] and [`super::SimAccelerator`] share.

use powerinfer_kernels::{
    Activation, DownRows, FfnBatchScratch, FfnWeights, Kernels, Matrix, WType, quantize_row,
};

use super::{BackendError, Done, FfnSelect, Op, WeightId};

/// A row-major matrix owned by the device.
#[derive(Debug)]
pub(crate) struct OwnedMatrix {
    pub wtype: WType,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
}

impl OwnedMatrix {
    /// A copy of all of `m`.
    pub(crate) fn copy(m: &Matrix) -> OwnedMatrix {
        let rows: Vec<u32> = (0..m.rows() as u32).collect();
        OwnedMatrix::gather(m, &rows)
    }

    /// A copy of the rows `rows` of `m`, in that order.
    pub(crate) fn gather(m: &Matrix, rows: &[u32]) -> OwnedMatrix {
        let mut data = Vec::with_capacity(rows.len() * m.row_bytes());
        rows.iter()
            .for_each(|&r| data.extend_from_slice(m.row(r as usize)));
        OwnedMatrix {
            wtype: m.wtype(),
            rows: rows.len(),
            cols: m.cols(),
            data,
        }
    }

    pub(crate) fn view(&self) -> Result<Matrix<'_>, BackendError> {
        Ok(Matrix::new(self.wtype, self.rows, self.cols, &self.data)?)
    }
}

/// Some neurons of one FFN, renumbered `0..n`.
#[derive(Debug)]
pub(crate) struct OwnedFfn {
    pub gate: OwnedMatrix,
    pub up: Option<OwnedMatrix>,
    pub down: OwnedMatrix,
    pub gate_bias: Option<Vec<f32>>,
    pub act: Activation,
}

impl OwnedFfn {
    /// The rows of `neurons` (sorted, unique) of `w`; down rows re-encoded as
    /// `down_type` when `w`'s are an exactly transposed 4-bit layout. `what` names the
    /// upload in errors.
    pub(crate) fn gather(
        what: &str,
        w: &FfnWeights,
        neurons: &[u32],
        down_type: WType,
    ) -> Result<OwnedFfn, BackendError> {
        let ctx = |source| BackendError::Kernel {
            context: format!("upload {what}"),
            source,
        };
        powerinfer_kernels::check_index_list(neurons, w.neurons()).map_err(ctx)?;
        let down = match w.down_t {
            DownRows::Matrix(m) => OwnedMatrix::gather(&m, neurons),
            DownRows::ColQ4(c) => {
                let mut data = Vec::new();
                let mut row = vec![0f32; c.dim()];
                for &i in neurons {
                    c.dequantize_row(i as usize, &mut row).map_err(ctx)?;
                    data.extend_from_slice(&quantize_row(down_type, &row).map_err(ctx)?);
                }
                OwnedMatrix {
                    wtype: down_type,
                    rows: neurons.len(),
                    cols: c.dim(),
                    data,
                }
            }
        };
        Ok(OwnedFfn {
            gate: OwnedMatrix::gather(&w.gate, neurons),
            up: w.up.map(|u| OwnedMatrix::gather(&u, neurons)),
            down,
            gate_bias: w
                .gate_bias
                .map(|b| neurons.iter().map(|&i| b[i as usize]).collect()),
            act: w.act,
        })
    }
}

#[derive(Debug)]
enum Weight {
    Matrix(OwnedMatrix),
    Ffn(OwnedFfn),
}

/// The weight sets of one device and its byte accounting.
#[derive(Debug)]
pub(crate) struct Store {
    name: String,
    budget: Option<u64>,
    held: u64,
    weights: Vec<Weight>,
}

impl Store {
    pub(crate) fn new(name: String, budget: Option<u64>) -> Store {
        Store {
            name,
            budget,
            held: 0,
            weights: Vec::new(),
        }
    }

    pub(crate) fn budget(&self) -> Option<u64> {
        self.budget
    }

    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    pub(crate) fn clear(&mut self) {
        self.weights.clear();
        self.held = 0;
    }

    /// Stores `w` (`bytes` of weights) once `make` has built it, refusing it first if
    /// it would pass the budget (so nothing is copied for an upload that cannot fit).
    fn insert(
        &mut self,
        name: &str,
        bytes: u64,
        make: impl FnOnce() -> Result<Weight, BackendError>,
    ) -> Result<WeightId, BackendError> {
        let total = check_budget(&self.name, self.budget, self.held, name, bytes)?;
        self.weights.push(make()?);
        self.held = total;
        Ok(WeightId(self.weights.len() - 1))
    }

    pub(crate) fn upload_matrix(
        &mut self,
        name: &str,
        m: &Matrix,
    ) -> Result<WeightId, BackendError> {
        let bytes = (m.rows() * m.row_bytes()) as u64;
        self.insert(name, bytes, || Ok(Weight::Matrix(OwnedMatrix::copy(m))))
    }

    pub(crate) fn upload_ffn(
        &mut self,
        name: &str,
        w: &FfnWeights,
        neurons: &[u32],
        down_type: WType,
    ) -> Result<WeightId, BackendError> {
        let bytes = super::ffn_neuron_bytes(w, down_type)? * neurons.len() as u64;
        self.insert(name, bytes, || {
            Ok(Weight::Ffn(OwnedFfn::gather(name, w, neurons, down_type)?))
        })
    }

    fn unknown(&self, kind: &'static str, id: WeightId) -> BackendError {
        BackendError::UnknownWeight {
            backend: self.name.clone(),
            kind,
            id: id.0,
        }
    }

    /// Runs `op` with `kernels` (on the calling thread's pool).
    pub(crate) fn run(
        &self,
        kernels: &Kernels,
        op: &Op,
        scratch: &mut FfnBatchScratch,
    ) -> Result<Done, BackendError> {
        let ctx = |id: WeightId| {
            let name = self.name.clone();
            move |source| BackendError::Kernel {
                context: format!("{name}: weight set {}", id.0),
                source,
            }
        };
        match op {
            Op::MatMul { w, xs, n } => {
                let Some(Weight::Matrix(m)) = self.weights.get(w.0) else {
                    return Err(self.unknown("matrix", *w));
                };
                let view = m.view()?;
                let mut ys = vec![0f32; n * m.rows];
                if *n == 1 {
                    kernels.gemv(&view, xs, &mut ys)
                } else {
                    kernels.gemm(&view, xs, *n, &mut ys)
                }
                .map_err(ctx(*w))?;
                Ok(Done {
                    ys,
                    ..Done::default()
                })
            }
            Op::Ffn {
                w,
                xs,
                n,
                select,
                skip,
            } => {
                let Some(Weight::Ffn(f)) = self.weights.get(w.0) else {
                    return Err(self.unknown("ffn", *w));
                };
                let weights = FfnWeights {
                    gate: f.gate.view()?,
                    up: f.up.as_ref().map(OwnedMatrix::view).transpose()?,
                    down_t: f.down.view()?.into(),
                    gate_bias: f.gate_bias.as_deref(),
                    act: f.act,
                };
                let mut ys = vec![0f32; xs.len()];
                let (idx, sets) = match select {
                    FfnSelect::All => (None, None),
                    FfnSelect::Shared(i) => (Some(i.as_slice()), None),
                    FfnSelect::PerToken(s) => (None, Some(s.as_slice())),
                };
                kernels
                    .ffn_sparse_batch(&weights, xs, *n, idx, sets, *skip, &mut ys, scratch)
                    .map_err(ctx(*w))?;
                Ok(Done {
                    ys,
                    active: (0..*n).map(|b| scratch.active(b).len()).collect(),
                    ..Done::default()
                })
            }
        }
    }
}

/// The bytes a device of `budget` holding `held` would hold after uploading `bytes` more
/// for `name`, or the budget error naming it.
pub(crate) fn check_budget(
    backend: &str,
    budget: Option<u64>,
    held: u64,
    name: &str,
    bytes: u64,
) -> Result<u64, BackendError> {
    let total = held.saturating_add(bytes);
    match budget {
        Some(budget) if total > budget => Err(BackendError::Budget {
            backend: backend.to_string(),
            name: name.to_string(),
            bytes,
            total,
            budget,
        }),
        _ => Ok(total),
    }
}

/// Bytes an operation moves across a link: its inputs in, plus `outputs` values out.
pub(crate) fn op_link_bytes(op: &Op, outputs: usize) -> u64 {
    let inputs = match op {
        Op::MatMul { xs, .. } | Op::Ffn { xs, .. } => xs.len(),
    };
    4 * (inputs + outputs) as u64
}
