//! PowerInfer's own predictor tensors, read from its GGUF files.
//!
//! Layout, from PowerInfer's converter and llama.cpp (`llm_build_ffn_sparse`): per
//! layer `blk.N.fc1.weight` with ggml dims `(dim, r)` and `blk.N.fc2.weight` with
//! `(r, n_ff)`, no biases, usually F16 (or the file's quantized type); logits =
//! `fc2 · relu(fc1 · ffn_inp)` where `ffn_inp` is the residual stream before the FFN
//! norm; neuron active iff `logit ≥ powerinfer.sparse_threshold` (one value, default 0).
//! The predictors are merged into the model file, whose magic is `PWRI` instead of
//! `GGUF`.

use powerinfer_predictor::{
    ActiveRule, LayerPredictor, OperatingPoint, PredictorInput, PredictorSet, RecallKind,
};

use crate::gguf::GgufFile;
use crate::{Model, ModelError};

/// The metadata key of PowerInfer's global predictor threshold.
pub const SPARSE_THRESHOLD_KEY: &str = "powerinfer.sparse_threshold";

/// Whether `file` holds PowerInfer predictor tensors (`blk.0.fc1.weight`).
pub fn has_powerinfer_predictors(file: &GgufFile) -> bool {
    file.tensor("blk.0.fc1.weight").is_some()
}

/// Reads the predictors of every layer of `model` from `file` (often the model's own
/// file). The set records no FFN hash (PowerInfer files carry none), so it is matched
/// to the model by architecture and shape.
pub fn read_powerinfer_predictors(
    file: &GgufFile,
    model: &Model,
) -> Result<PredictorSet, ModelError> {
    let cfg = model.config();
    let (d, n_ff) = (cfg.dim as u64, cfg.n_ff as u64);
    let tau = match file.get(SPARSE_THRESHOLD_KEY) {
        Some(_) => file.get_f32(SPARSE_THRESHOLD_KEY)?,
        None => 0.0,
    };
    let shape_err = |tensor: String, expected: Vec<u64>, found: Vec<u64>| ModelError::Shape {
        file: file.name().to_string(),
        tensor,
        expected,
        found,
    };
    let mut layers = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let name1 = format!("blk.{l}.fc1.weight");
        let name2 = format!("blk.{l}.fc2.weight");
        let missing = |t: &str| ModelError::MissingTensor {
            file: file.name().to_string(),
            tensor: t.to_string(),
        };
        let fc1 = file.tensor(&name1).ok_or_else(|| missing(&name1))?;
        if fc1.dims.len() != 2 || fc1.dims[0] != d {
            return Err(shape_err(name1, vec![d, 0], fc1.dims.clone()));
        }
        let fc2 = file.tensor(&name2).ok_or_else(|| missing(&name2))?;
        let r = fc1.dims[1];
        if fc2.dims != [r, n_ff] {
            return Err(shape_err(name2, vec![r, n_ff], fc2.dims.clone()));
        }
        let p = LayerPredictor::from_raw(
            PredictorInput::Residual,
            cfg.dim,
            r as usize,
            cfg.n_ff,
            (fc1.wtype, file.tensor_data(fc1).to_vec()),
            (fc2.wtype, file.tensor_data(fc2).to_vec()),
            tau,
        )?;
        layers.push(p);
    }
    let mut model_id = model.predictor_id().clone();
    model_id.ffn_hash = 0;
    Ok(PredictorSet {
        model: model_id,
        rule: ActiveRule::NonZero,
        point: OperatingPoint {
            recall_kind: RecallKind::Event,
            recall: f64::NAN,
            quality_budget: None,
            ppl_ratio: None,
        },
        calibration: vec![None; layers.len()],
        layers,
    })
}
