//! Hugging Face checkpoints as published: `config.json`, `*.safetensors` (one file, or
//! shards with `model.safetensors.index.json`) and `tokenizer.json`, loaded without a
//! conversion step.
//!
//! Why: the ReLU-family models PowerInfer targets (ReLU-LLaMA, ProSparse, Bamboo,
//! ReLU-Falcon, OPT) are published this way, f16/bf16. The weights are read in place
//! from the mapped files and converted once into an in-memory GGUF image ([`GgufFile`]):
//! renamed, q/k permuted for our RoPE, Falcon's fused qkv split, optionally quantized
//! ([`ConvertOptions::quantize`]). The same image written to disk is a GGUF file that
//! loads and runs identically (the `convert` example).

mod config;
mod convert;
mod error;
mod shards;

use std::path::{Path, PathBuf};

pub use convert::ConvertOptions;
pub use error::HfError;
pub use shards::{INDEX_FILE, WEIGHTS_FILE};

use crate::config::Arch;
use crate::gguf::{GgufFile, GgufWriter, Value};
use crate::tokenizer::TokenizerError;
use config::HfConfig;
use shards::Shards;

/// The config file of a checkpoint.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file of a checkpoint.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// An opened checkpoint directory: config parsed, weight files mapped and validated,
/// tokenizer read (when there is a `tokenizer.json`).
pub struct HfCheckpoint {
    dir: PathBuf,
    config: HfConfig,
    shards: Shards,
    /// The tokenizer's GGUF metadata (empty without a `tokenizer.json`), or why it was
    /// refused: the weights load either way (logits, profiling), a text engine does not.
    tokenizer: Result<Vec<(String, Value)>, TokenizerError>,
}

impl std::fmt::Debug for HfCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfCheckpoint")
            .field("dir", &self.dir)
            .field("arch", &self.config.model.arch)
            .finish()
    }
}

impl HfCheckpoint {
    /// Opens the checkpoint in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<HfCheckpoint, HfError> {
        let dir = dir.as_ref();
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| HfError::Io {
                file: path.display().to_string(),
                source,
            })
        };
        let config_file = dir.join(CONFIG_FILE).display().to_string();
        let config = HfConfig::parse(&read(CONFIG_FILE)?, &config_file)?;
        let shards = Shards::open(dir)?;
        let tok_path = dir.join(TOKENIZER_FILE);
        let mut tokenizer = Ok(Vec::new());
        if tok_path.is_file() {
            let file = tok_path.display().to_string();
            tokenizer =
                crate::tokenizer::tokenizer_json_metadata(read(TOKENIZER_FILE)?.as_bytes(), &file);
        }
        if let Ok(tokenizer) = &mut tokenizer
            && !tokenizer.is_empty()
        {
            // config.json's ids where the tokenizer file gives none.
            for (key, id) in [
                ("tokenizer.ggml.bos_token_id", config.bos),
                ("tokenizer.ggml.eos_token_id", config.eos),
            ] {
                if let Some(id) = id
                    && !tokenizer.iter().any(|(k, _)| k == key)
                    && (id as usize) < config.model.vocab
                {
                    tokenizer.push((key.to_string(), Value::U32(id)));
                }
            }
        }
        Ok(HfCheckpoint {
            dir: dir.to_path_buf(),
            config,
            shards,
            tokenizer,
        })
    }

    /// The architecture `config.json` names.
    pub fn arch(&self) -> Arch {
        self.config.model.arch
    }

    /// Whether a usable `tokenizer.json` came with the weights.
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.as_ref().is_ok_and(|t| !t.is_empty())
    }

    /// Why `tokenizer.json` was refused, if it was (the converted model then carries
    /// no tokenizer; its weights load and run on token ids).
    pub fn tokenizer_error(&self) -> Option<&TokenizerError> {
        self.tokenizer.as_ref().err()
    }

    /// Takes the error of [`HfCheckpoint::tokenizer_error`], to return it.
    pub fn take_tokenizer_error(&mut self) -> Option<TokenizerError> {
        match std::mem::replace(&mut self.tokenizer, Ok(Vec::new())) {
            Ok(t) => {
                self.tokenizer = Ok(t);
                None
            }
            Err(e) => Some(e),
        }
    }

    /// The model as a GGUF writer (e.g. to write it to disk: the `convert` example).
    pub fn to_gguf(&self, opts: &ConvertOptions<'_>) -> Result<GgufWriter, HfError> {
        let dir = self.dir.display().to_string();
        let name = self
            .dir
            .file_name()
            .map_or_else(|| dir.clone(), |n| n.to_string_lossy().into_owned());
        let tokenizer = self.tokenizer.as_deref().unwrap_or_default();
        convert::to_writer(&self.config, &self.shards, &dir, &name, tokenizer, opts)
    }

    /// The model as an in-memory GGUF file named after the directory (errors from
    /// loading it then name the checkpoint).
    pub fn to_gguf_file(&self, opts: &ConvertOptions<'_>) -> Result<GgufFile, HfError> {
        Ok(self
            .to_gguf(opts)?
            .into_file(&self.dir.display().to_string())?)
    }
}
