//! What the example tools share: the default model and corpus, and the fixed split of
//! the corpus (`powerinfer::core::corpus`).
// Each example includes this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use powerinfer::core::{assets, corpus, tokenizer::Tokenizer};
use powerinfer::kernels::Kernels;

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

/// The tokens of a plain-text file, or of data/botchan.txt when `None`.
fn text_tokens(tokenizer: &Tokenizer, text: Option<&Path>) -> Result<Vec<u32>> {
    let path = match text {
        Some(p) => p.to_path_buf(),
        None => {
            assets::ensure_assets()?;
            assets::data_path("botchan.txt")
        }
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(tokenizer.encode(&text, false)?)
}

/// The calibration part (first 85% of the tokens) of `corpus`, or of
/// `data/botchan.txt` when `None`.
pub fn calibration_tokens(tokenizer: &Tokenizer, corpus: Option<&Path>) -> Result<Vec<u32>> {
    Ok(corpus::split(&text_tokens(tokenizer, corpus)?).0.to_vec())
}

/// The evaluation part (last 15% of the tokens) of `text`, or of data/botchan.txt.
pub fn evaluation_tokens(tokenizer: &Tokenizer, text: Option<&Path>) -> Result<Vec<u32>> {
    Ok(corpus::split(&text_tokens(tokenizer, text)?).1.to_vec())
}

/// Kernels on `threads` workers (0 = one per core).
pub fn kernels(threads: usize) -> Result<Kernels> {
    Ok(if threads > 0 {
        Kernels::new().with_threads(threads)?
    } else {
        Kernels::new()
    })
}

/// HumanEval-format problems (`.jsonl` or `.jsonl.gz`, default data/HumanEval.jsonl.gz)
/// as (prompt tokens ++ solution tokens, index of the first solution token), the first
/// `n` problems.
pub fn code_items(
    tokenizer: &Tokenizer,
    code: Option<&Path>,
    n: usize,
) -> Result<Vec<(Vec<u32>, usize)>> {
    use std::io::Read;
    let path = match code {
        Some(p) => p.to_path_buf(),
        None => {
            assets::ensure_assets()?;
            assets::data_path("HumanEval.jsonl.gz")
        }
    };
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut json = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut json)?;
    } else {
        std::io::BufReader::new(file).read_to_string(&mut json)?;
    }
    let mut items = Vec::new();
    for (k, line) in json
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .enumerate()
    {
        let task: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}", path.display(), k + 1))?;
        let field = |f: &str| {
            task[f]
                .as_str()
                .with_context(|| format!("{}: problem {} has no {f:?}", path.display(), k + 1))
        };
        let mut ids = tokenizer.encode(field("prompt")?, false)?;
        let first = ids.len();
        ids.extend(tokenizer.encode(field("canonical_solution")?, false)?);
        items.push((ids, first));
    }
    Ok(items)
}
