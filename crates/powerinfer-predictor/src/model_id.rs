//! Which model a stats or predictor file belongs to.

use std::fmt;

use crate::container::{Reader, Writer};
use crate::error::{FileProblem, PredictorError};

/// The facts that tie a file to one model: architecture, shape, and a hash of the FFN
/// weights (so a predictor for a fine-tune of the same shape is refused too).
///
/// Why a hash of the FFN tensors: a predictor guesses the active neurons of exactly
/// these weights; the same architecture with other weights makes it silently wrong.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelId {
    /// Architecture name (GGUF `general.architecture`).
    pub arch: String,
    /// Transformer layers.
    pub n_layers: u32,
    /// Model (hidden) dimension: the predictor's input length.
    pub dim: u32,
    /// FFN neurons per layer: the predictor's output length.
    pub n_ff: u32,
    /// CRC-32 over the FFN tensors' names, shapes, types and bytes (0 = unknown, as in
    /// files imported from PowerInfer, which record none; such files are matched by
    /// shape alone).
    pub ffn_hash: u32,
}

impl ModelId {
    /// Whether a file recorded for `self` may be used with `model`.
    pub fn matches(&self, model: &ModelId) -> bool {
        self.arch == model.arch
            && self.n_layers == model.n_layers
            && self.dim == model.dim
            && self.n_ff == model.n_ff
            && (self.ffn_hash == 0 || model.ffn_hash == 0 || self.ffn_hash == model.ffn_hash)
    }

    /// [`ModelId::matches`] as a result: a file recorded for `self` (a `what`) is
    /// refused for `model` with [`PredictorError::WrongModel`] naming both.
    pub fn check(&self, model: &ModelId, what: &str) -> Result<(), PredictorError> {
        if self.matches(model) {
            Ok(())
        } else {
            Err(PredictorError::WrongModel {
                what: what.to_string(),
                expected: Box::new(model.clone()),
                found: Box::new(self.clone()),
            })
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.str(&self.arch);
        w.u32(self.n_layers);
        w.u32(self.dim);
        w.u32(self.n_ff);
        w.u32(self.ffn_hash);
    }

    pub(crate) fn read(r: &mut Reader) -> Result<ModelId, FileProblem> {
        Ok(ModelId {
            arch: r.str("model architecture")?,
            n_layers: r.u32("model layers")?,
            dim: r.u32("model dim")?,
            n_ff: r.u32("model n_ff")?,
            ffn_hash: r.u32("model FFN hash")?,
        })
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} layers, dim {}, n_ff {}, FFN hash {:08x})",
            self.arch, self.n_layers, self.dim, self.n_ff, self.ffn_hash
        )
    }
}
