//! What the example tools share: the default model and corpus, and the fixed split of
//! the corpus (`powerinfer::core::corpus`).
// Each example includes this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use powerinfer::core::{corpus, tokenizer::Tokenizer};
use powerinfer::kernels::Kernels;
use powerinfer_assets as assets;

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

/// Kernels on `threads` workers (`None` = one per core); a count out of range is an error.
pub fn kernels(threads: Option<usize>) -> Result<Kernels> {
    Ok(match threads {
        Some(t) => Kernels::new().with_threads(t)?,
        None => Kernels::new(),
    })
}

/// One HumanEval-format problem.
pub struct Problem {
    /// `task_id`.
    pub task_id: String,
    /// The function signature and docstring the model continues.
    pub prompt: String,
    /// The reference completion.
    pub solution: String,
    /// The test code (defines `check(candidate)`).
    pub test: String,
    /// The function under test.
    pub entry_point: String,
}

/// Problems held back for calibration: the sweep's code evaluation split is every
/// problem after these, so calibration never sees an evaluated problem.
pub const CODE_CALIBRATION_PROBLEMS: usize = 64;

/// Every problem of a HumanEval-format file (`.jsonl` or `.jsonl.gz`, default
/// data/HumanEval.jsonl.gz), in file order.
pub fn problems(code: Option<&Path>) -> Result<Vec<Problem>> {
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
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut json)
            .with_context(|| format!("decompressing {}", path.display()))?;
    } else {
        std::io::BufReader::new(file).read_to_string(&mut json)?;
    }
    let mut out = Vec::new();
    for (k, line) in json.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let task: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}", path.display(), k + 1))?;
        let field = |f: &str| -> Result<String> {
            Ok(task[f]
                .as_str()
                .with_context(|| format!("{}: problem {} has no {f:?}", path.display(), k + 1))?
                .to_string())
        };
        out.push(Problem {
            task_id: field("task_id").unwrap_or_else(|_| format!("problem {}", k + 1)),
            prompt: field("prompt")?,
            solution: field("canonical_solution")?,
            test: field("test").unwrap_or_default(),
            entry_point: field("entry_point").unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Each problem as (prompt tokens ++ solution tokens, index of the first solution
/// token): prompt and solution are tokenized separately, so the scored tokens are
/// exactly the solution's.
pub fn problem_items(
    tokenizer: &Tokenizer,
    problems: &[Problem],
) -> Result<Vec<(Vec<u32>, usize)>> {
    problems
        .iter()
        .map(|p| {
            let mut ids = tokenizer.encode(&p.prompt, false)?;
            let first = ids.len();
            ids.extend(tokenizer.encode(&p.solution, false)?);
            Ok((ids, first))
        })
        .collect()
}

/// The first `n` problems of `code` (default data/HumanEval.jsonl.gz) as
/// [`problem_items`].
pub fn code_items(
    tokenizer: &Tokenizer,
    code: Option<&Path>,
    n: usize,
) -> Result<Vec<(Vec<u32>, usize)>> {
    let all = problems(code)?;
    problem_items(tokenizer, &all[..n.min(all.len())])
}
