//! Opening a model from either source: a GGUF file, or a Hugging Face checkpoint
//! directory converted in memory with a progress bar.

// Each example that includes this module uses part of it.
#![allow(dead_code)]

use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use powerinfer::core::hf::{ConvertOptions, HfCheckpoint};
use powerinfer::core::{LoadOptions, Model};
use powerinfer::kernels::WType;

/// A progress bar over the checkpoint's bytes.
pub fn bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{bytes}}/{{total_bytes}} ({{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Converts `checkpoint` with a progress bar on stderr.
pub fn convert_with_bar<T>(
    quantize: Option<WType>,
    run: impl FnOnce(&ConvertOptions<'_>) -> Result<T>,
) -> Result<T> {
    let bar = bar("converting");
    let report = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let out = run(&ConvertOptions {
        quantize,
        progress: Some(&report),
    });
    bar.finish_and_clear();
    out
}

/// Opens `path`: a GGUF file, or a checkpoint directory (quantized to `opts.quantize`
/// while loading, when set).
pub fn open_model(path: &Path, opts: &LoadOptions) -> Result<Model> {
    if !path.is_dir() {
        return Model::open_with(path, opts).with_context(|| format!("loading {}", path.display()));
    }
    let mut ck = HfCheckpoint::open(path).with_context(|| format!("opening {}", path.display()))?;
    if let Some(e) = ck.take_tokenizer_error() {
        return Err(e).with_context(|| format!("loading {}", path.display()));
    }
    convert_with_bar(opts.quantize, |c| Ok(Model::from_hf(&ck, c, opts)?))
        .with_context(|| format!("loading {}", path.display()))
}

/// The `--quantize` argument: a weight type name, or none.
pub fn quantize_arg(name: Option<&str>) -> Result<Option<WType>> {
    name.map(|n| WType::from_name(n).with_context(|| format!("unknown weight type {n:?}")))
        .transpose()
}
