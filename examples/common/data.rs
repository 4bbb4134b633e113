//! What the example tools share: the default model and corpus, and the fixed split of
//! the corpus (`powerinfer::core::corpus`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use powerinfer::core::{assets, corpus, tokenizer::Tokenizer};

/// `model`, or the default model (fetched on first use).
pub fn model_path(model: Option<&Path>) -> Result<PathBuf> {
    Ok(match model {
        Some(p) => p.to_path_buf(),
        None => {
            assets::ensure_assets().context("fetching the default model")?;
            assets::default_model_path()
        }
    })
}

/// The calibration part (first 85% of the tokens) of `corpus`, or of
/// `data/botchan.txt` when `None`.
pub fn calibration_tokens(tokenizer: &Tokenizer, corpus: Option<&Path>) -> Result<Vec<u32>> {
    let path = match corpus {
        Some(p) => p.to_path_buf(),
        None => {
            assets::ensure_assets()?;
            assets::data_path("botchan.txt")
        }
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let tokens = tokenizer.encode(&text, false)?;
    Ok(corpus::split(&tokens).0.to_vec())
}
