//! Writing GGUF v3 files.
//!
//! Why: tests (here and in the model code) build small random models with known weights,
//! and tools convert or re-lay out weights (e.g. a transposed `ffn_down_t`), without
//! depending on Python's `gguf` package.

use std::io::Write;
use std::path::Path;

use powerinfer_kernels::WType;

use super::error::GgufError;
use super::file::{GgufFile, MEMORY_FILE};
use super::parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use super::value::Value;

/// Builds a GGUF v3 image: metadata in insertion order, then tensors in insertion order,
/// each tensor's data at the next multiple of the alignment.
///
/// The alignment is `general.alignment` when that key is added (it must be a power-of-two
/// integer), 32 otherwise. No padding follows the last tensor, so the file ends exactly at
/// the end of its data.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

#[derive(Debug)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    wtype: WType,
    data: Vec<u8>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Adds (or replaces) metadata `key`.
    pub fn add(&mut self, key: &str, value: impl Into<Value>) -> &mut GgufWriter {
        let value = value.into();
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    /// Adds a tensor with `dims` in ggml order (`dims[0]` = columns) and its raw bytes,
    /// checking that the bytes match the type and shape and that the name is new.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        wtype: WType,
        data: Vec<u8>,
    ) -> Result<&mut GgufWriter, GgufError> {
        let bad = |problem: String| GgufError::BadTensorData {
            file: MEMORY_FILE.to_string(),
            tensor: name.to_string(),
            problem,
        };
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufError::DuplicateTensor {
                file: MEMORY_FILE.to_string(),
                tensor: name.to_string(),
            });
        }
        if dims.is_empty() || dims.len() > MAX_DIMS || dims.contains(&0) {
            return Err(bad(format!(
                "shape {dims:?} needs 1 to {MAX_DIMS} nonzero dims"
            )));
        }
        let expected = usize::try_from(dims[0])
            .ok()
            .and_then(|cols| wtype.row_bytes(cols).ok())
            .and_then(|row| {
                dims[1..]
                    .iter()
                    .try_fold(row, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
            })
            .ok_or_else(|| bad(format!("shape {dims:?} is not a valid {wtype} size")))?;
        if data.len() != expected {
            return Err(bad(format!(
                "{} bytes given, {wtype} {dims:?} needs {expected}",
                data.len()
            )));
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            wtype,
            data,
        });
        Ok(self)
    }

    fn alignment(&self) -> Result<u64, GgufError> {
        let Some((_, v)) = self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) else {
            return Ok(DEFAULT_ALIGNMENT);
        };
        match v.as_integer().and_then(|a| u64::try_from(a).ok()) {
            Some(a) if a.is_power_of_two() => Ok(a),
            a => Err(GgufError::BadAlignment {
                file: MEMORY_FILE.to_string(),
                alignment: a.unwrap_or(0),
            }),
        }
    }

    /// The complete file image.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.emit(&mut out, MEMORY_FILE)?;
        Ok(out)
    }

    /// Writes the file to `path`, streaming the tensor data (a multi-gigabyte model is
    /// not copied into one image first).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let io = |source| GgufError::Io {
            file: file.clone(),
            source,
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        self.emit(&mut out, &file)?;
        out.flush().map_err(io)
    }

    /// The file, validated, built in memory without writing an image first: each
    /// tensor's data moves into the file's buffer and is freed, so converting a model
    /// needs about its size in memory once, not twice. Errors name the file `name`.
    pub fn into_file(self, name: &str) -> Result<GgufFile, GgufError> {
        let (head, offsets) = self.header()?;
        let len = self
            .tensors
            .last()
            .zip(offsets.last())
            .map_or(head.len() as u64, |(t, off)| {
                head.len() as u64 + off + t.data.len() as u64
            });
        let len = usize::try_from(len).map_err(|_| GgufError::BadTensorData {
            file: name.to_string(),
            tensor: String::new(),
            problem: format!("an image of {len} bytes does not fit in memory"),
        })?;
        GgufFile::filled(len, name.to_string(), |buf| {
            // `header` placed every tensor inside `len`, after the header.
            #[allow(clippy::indexing_slicing)]
            {
                buf[..head.len()].copy_from_slice(&head);
                for (t, off) in self.tensors.into_iter().zip(offsets) {
                    let start = head.len() + off as usize;
                    buf[start..start + t.data.len()].copy_from_slice(&t.data);
                }
            }
        })
    }

    /// The header (metadata, tensor table, padding to the data section) and each
    /// tensor's offset from the start of the data.
    fn header(&self) -> Result<(Vec<u8>, Vec<u64>), GgufError> {
        let alignment = self.alignment()?;
        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_str(&mut head, key);
            head.extend_from_slice(&value.value_type().id().to_le_bytes());
            write_value(&mut head, key, value)?;
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offset = offset.next_multiple_of(alignment);
            offsets.push(offset);
            write_str(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.wtype.ggml_id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset += t.data.len() as u64;
        }
        let data_start = (head.len() as u64).next_multiple_of(alignment);
        head.resize(data_start as usize, 0);
        Ok((head, offsets))
    }

    /// The header (metadata, tensor table) then the aligned tensor data, into `out`.
    fn emit(&self, out: &mut impl Write, file: &str) -> Result<(), GgufError> {
        let io = |source| GgufError::Io {
            file: file.to_string(),
            source,
        };
        let (head, offsets) = self.header()?;
        out.write_all(&head).map_err(io)?;
        let mut at = 0u64;
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.write_all(&vec![0u8; (off - at) as usize]).map_err(io)?;
            out.write_all(&t.data).map_err(io)?;
            at = off + t.data.len() as u64;
        }
        Ok(())
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_value(out: &mut Vec<u8>, key: &str, value: &Value) -> Result<(), GgufError> {
    match value {
        Value::U8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => write_str(out, s),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Array { elem, items } => {
            out.extend_from_slice(&elem.id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                if item.value_type() != *elem {
                    return Err(GgufError::BadValue {
                        file: MEMORY_FILE.to_string(),
                        key: key.to_string(),
                        problem: format!(
                            "array of {} holds a {}",
                            elem.name(),
                            item.type_description()
                        ),
                    });
                }
                write_value(out, key, item)?;
            }
        }
    }
    Ok(())
}
