//! The safetensors files of a checkpoint: one `model.safetensors`, or the shards a
//! `model.safetensors.index.json` names, memory-mapped and validated.
//!
//! Why mapped: a 7B checkpoint is 14 GB of bf16; its tensors are read in place (each
//! once, while converting), never copied into an intermediate buffer.

use std::collections::HashMap;
use std::path::Path;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::HfError;

/// The index file name `transformers` writes next to sharded weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The weights file name of an unsharded checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// One tensor as stored: where it is and what it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stored<'a> {
    /// The file holding it (for errors).
    pub file: &'a str,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first (a `[rows, cols]` matrix for linear weights).
    pub shape: &'a [usize],
    /// Its bytes (little-endian), validated against dtype × shape.
    pub bytes: &'a [u8],
}

struct Shard {
    path: String,
    map: Mmap,
}

struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// Every tensor of a checkpoint's weight files, by name.
pub(crate) struct Shards {
    shards: Vec<Shard>,
    tensors: HashMap<String, Entry>,
}

impl Shards {
    /// Opens the weights of `dir`: the shards of `model.safetensors.index.json` when
    /// there is one, else `model.safetensors`, else every `*.safetensors` file.
    pub fn open(dir: &Path) -> Result<Shards, HfError> {
        let index = dir.join(INDEX_FILE);
        let (files, weight_map) = if index.is_file() {
            let Index { files, weight_map } = read_index(&index)?;
            (files, Some((index.display().to_string(), weight_map)))
        } else if dir.join(WEIGHTS_FILE).is_file() {
            (vec![WEIGHTS_FILE.to_string()], None)
        } else {
            let io = |source| HfError::Io {
                file: dir.display().to_string(),
                source,
            };
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".safetensors"))
                .collect();
            files.sort();
            (files, None)
        };
        if files.is_empty() {
            return Err(HfError::NoWeights {
                dir: dir.display().to_string(),
            });
        }
        let mut shards = Shards {
            shards: Vec::with_capacity(files.len()),
            tensors: HashMap::new(),
        };
        for f in &files {
            shards.add(&dir.join(f))?;
        }
        if let Some((index, map)) = weight_map {
            for (tensor, shard) in map {
                let holds = shards
                    .tensors
                    .get(&tensor)
                    .and_then(|e| shards.shards.get(e.shard))
                    .is_some_and(|s| Path::new(&s.path).file_name() == Some(shard.as_ref()));
                if !holds {
                    return Err(HfError::NotInShard {
                        index,
                        tensor,
                        shard,
                    });
                }
            }
        }
        Ok(shards)
    }

    /// Maps `path`, validates its header and adds its tensors.
    fn add(&mut self, path: &Path) -> Result<(), HfError> {
        let name = path.display().to_string();
        let io = |source| HfError::Io {
            file: name.clone(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives as long as `self`, which hands out
        // slices borrowed from `self` only. As for every file mapping (see
        // `GgufFile::open`), a file truncated or rewritten by another process while it
        // is mapped may fault or read new bytes; checkpoints are not modified while a
        // model is being loaded, and that is the contract of this type.
        let map = unsafe { Mmap::map(&f) }.map_err(io)?;
        // `read_metadata` checks the header length against the file, parses the JSON
        // (rejecting unknown dtypes), and checks that the tensors' ranges are
        // contiguous, non-overlapping, match dtype × shape and end at the file's end.
        let (header, meta) =
            SafeTensors::read_metadata(&map).map_err(|source| HfError::Safetensors {
                file: name.clone(),
                source,
            })?;
        let data_start = 8 + header;
        let shard = self.shards.len();
        for (tensor, info) in meta.tensors() {
            let (s, e) = info.data_offsets;
            let entry = Entry {
                shard,
                dtype: info.dtype,
                shape: info.shape.clone(),
                start: data_start + s,
                end: data_start + e,
            };
            if let Some(prev) = self.tensors.insert(tensor.clone(), entry) {
                let other = self
                    .shards
                    .get(prev.shard)
                    .map_or_else(String::new, |s| s.path.clone());
                return Err(HfError::DuplicateTensor {
                    file: name,
                    tensor,
                    other,
                });
            }
        }
        self.shards.push(Shard { path: name, map });
        Ok(())
    }

    /// The tensor called `name`, if a file holds it.
    pub fn get(&self, name: &str) -> Option<Stored<'_>> {
        let e = self.tensors.get(name)?;
        let shard = self.shards.get(e.shard)?;
        Some(Stored {
            file: &shard.path,
            dtype: e.dtype,
            shape: &e.shape,
            bytes: shard.map.get(e.start..e.end)?,
        })
    }

    /// Total bytes of tensor data.
    pub fn data_bytes(&self) -> u64 {
        self.tensors
            .values()
            .map(|e| (e.end - e.start) as u64)
            .sum()
    }
}

/// An index file: its shards and which shard holds each tensor.
struct Index {
    files: Vec<String>,
    weight_map: Vec<(String, String)>,
}

/// Reads an index file. Shard names must be plain file names in the checkpoint
/// directory (no path separators or `..`).
fn read_index(path: &Path) -> Result<Index, HfError> {
    let file = path.display().to_string();
    let bad = |problem: String| HfError::Json {
        file: file.clone(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|source| HfError::Io {
        file: file.clone(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
    let mut files = Vec::new();
    let mut pairs = Vec::with_capacity(map.len());
    for (tensor, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[{tensor:?}] is not a file name")))?;
        let plain = !shard.is_empty()
            && shard != ".."
            && shard != "."
            && !shard.contains(['/', '\\'])
            && Path::new(shard).file_name() == Some(shard.as_ref());
        if !plain {
            return Err(bad(format!(
                "weight_map[{tensor:?}] = {shard:?} is not a file name in the checkpoint directory"
            )));
        }
        if !files.iter().any(|f| f == shard) {
            files.push(shard.to_string());
        }
        pairs.push((tensor.clone(), shard.to_string()));
    }
    files.sort();
    Ok(Index {
        files,
        weight_map: pairs,
    })
}
