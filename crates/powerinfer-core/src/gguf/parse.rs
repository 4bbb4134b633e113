//! Parsing the GGUF header, metadata and tensor table from bytes, defensively.
//!
//! Why a separate cursor: every read goes through one bounds-checked place, and every
//! length taken from the file is checked against the bytes that remain before anything
//! is allocated, so a hostile file yields a [`GgufError`], never a panic or a huge
//! allocation.

use std::collections::HashSet;

use powerinfer_kernels::WType;

use super::error::GgufError;
use super::tensor::TensorInfo;
use super::value::{Value, ValueType};

/// The GGUF magic, `GGUF` as bytes.
pub(crate) const MAGIC: [u8; 4] = *b"GGUF";
/// PowerInfer's marker for a GGUF file with sparse-inference tensors (its converter
/// overwrites the magic; the rest of the format is unchanged).
pub(crate) const POWERINFER_MAGIC: [u8; 4] = *b"PWRI";
/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that overrides the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Deepest array nesting accepted (real files use 1).
const MAX_NESTING: usize = 8;
/// Most memory the parsed header (metadata values, keys, tensor infos) may take.
///
/// Why: counts in the file are bounded by the bytes left to encode them, but a parsed
/// element is larger than its encoding (a one-byte `u8` becomes a 32-byte [`Value`]), so
/// a 4 GB file could otherwise ask for 128 GB. Real headers take tens of MB (a 128k
/// vocabulary with its merges is ~40 MB); 1 GiB leaves room without trusting the file.
pub const MAX_HEADER_MEMORY: u64 = 1 << 30;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Everything before the data section, parsed and validated.
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_start: usize,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a str,
    /// Bytes of memory the parsed header may still take ([`MAX_HEADER_MEMORY`]).
    budget: u64,
}

impl<'a> Cursor<'a> {
    fn truncated(&self, what: &dyn Fn() -> String) -> GgufError {
        GgufError::Truncated {
            file: self.file.to_string(),
            what: what(),
            offset: self.pos as u64,
        }
    }

    /// Takes `count` items of `size` bytes each from the memory budget, before they are
    /// allocated: an error naming `what` when the header would outgrow it.
    fn charge(
        &mut self,
        count: u64,
        size: usize,
        what: &dyn Fn() -> String,
    ) -> Result<(), GgufError> {
        match count.checked_mul(size as u64) {
            Some(bytes) if bytes <= self.budget => {
                self.budget -= bytes;
                Ok(())
            }
            bytes => Err(GgufError::HeaderTooLarge {
                file: self.file.to_string(),
                what: what(),
                bytes,
                limit: MAX_HEADER_MEMORY,
            }),
        }
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        // n ≤ remaining ≤ usize::MAX, so the cast is exact.
        let (start, end) = (self.pos, self.pos + n as usize);
        let bytes = self
            .bytes
            .get(start..end)
            .ok_or_else(|| self.truncated(what))?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        self.charge(len, 1, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::Utf8 {
            file: self.file.to_string(),
            what: what(),
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<Value, GgufError> {
        let what = &|| format!("value of metadata key {key:?}");
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(GgufError::BadValue {
                        file: self.file.to_string(),
                        key: key.to_string(),
                        problem: format!("bool byte is {b}, not 0 or 1"),
                    });
                }
            },
            ValueType::String => Value::String(self.string(what)?),
            ValueType::Array => {
                if depth >= MAX_NESTING {
                    return Err(GgufError::NestingTooDeep {
                        file: self.file.to_string(),
                        key: key.to_string(),
                        max: MAX_NESTING,
                    });
                }
                let elem_id = self.u32(what)?;
                let elem = self.value_type(elem_id, key)?;
                let count = self.u64(what)?;
                // Bound the count by what the remaining bytes could possibly encode.
                if count > self.remaining() / elem.min_bytes() {
                    return Err(self.truncated(&|| {
                        format!("array of {count} {} for metadata key {key:?}", elem.name())
                    }));
                }
                self.charge(count, size_of::<Value>(), &|| {
                    format!("array of {count} {} for metadata key {key:?}", elem.name())
                })?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array { elem, items }
            }
        })
    }

    fn value_type(&self, id: u32, key: &str) -> Result<ValueType, GgufError> {
        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
            file: self.file.to_string(),
            what: format!("metadata key {key:?}"),
            type_id: id,
        })
    }
}

/// Parses and validates everything up to the data section of `bytes`.
pub(crate) fn parse(bytes: &[u8], file: &str) -> Result<Parsed, GgufError> {
    let mut c = Cursor {
        bytes,
        pos: 0,
        file,
        budget: MAX_HEADER_MEMORY,
    };
    if bytes.get(..4) != Some(&MAGIC[..]) && bytes.get(..4) != Some(&POWERINFER_MAGIC[..]) {
        return Err(GgufError::BadMagic {
            file: file.to_string(),
            found: bytes.iter().take(4).copied().collect(),
        });
    }
    c.pos = 4;
    let version = c.u32(&|| "header version".into())?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion {
            file: file.to_string(),
            version,
        });
    }
    let n_tensors = c.u64(&|| "header tensor count".into())?;
    let n_kv = c.u64(&|| "header metadata count".into())?;

    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes.
    if n_kv > c.remaining() / 13 {
        return Err(c.truncated(&|| format!("{n_kv} metadata entries")));
    }
    c.charge(
        n_kv,
        size_of::<(String, Value)>() + size_of::<String>(),
        &|| format!("{n_kv} metadata entries"),
    )?;
    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let ty_id = c.u32(&|| format!("type of metadata key {key:?}"))?;
        let ty = c.value_type(ty_id, &key)?;
        let value = c.value(ty, &key, 0)?;
        if !keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey {
                file: file.to_string(),
                key,
            });
        }
        metadata.push((key, value));
    }

    let alignment = alignment(&metadata, file)?;

    // A tensor info takes at least 8 (name length) + 4 (n_dims) + 8 (a dim) + 4 + 8 bytes.
    if n_tensors > c.remaining() / 32 {
        return Err(c.truncated(&|| format!("{n_tensors} tensor infos")));
    }
    c.charge(n_tensors, 2 * size_of::<TensorInfo>(), &|| {
        format!("{n_tensors} tensor infos")
    })?;
    let mut infos = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        infos.push(tensor_info(&mut c, i)?);
    }

    // The data section starts at the next multiple of the alignment.
    let end_of_infos = c.pos as u64;
    let data_start = end_of_infos.div_ceil(alignment).checked_mul(alignment);
    let data_start = match data_start {
        Some(s) if s <= bytes.len() as u64 => s as usize,
        // A file without tensors may end right after its metadata.
        _ if infos.is_empty() => bytes.len(),
        _ => {
            return Err(GgufError::Truncated {
                file: file.to_string(),
                what: "padding before the data section".into(),
                offset: end_of_infos,
            });
        }
    };
    let data_len = (bytes.len() - data_start) as u64;

    let mut names = HashSet::with_capacity(infos.len());
    let mut tensors = Vec::with_capacity(infos.len());
    for raw in infos {
        if !names.insert(raw.name.clone()) {
            return Err(GgufError::DuplicateTensor {
                file: file.to_string(),
                tensor: raw.name,
            });
        }
        tensors.push(validate_tensor(raw, alignment, data_len, file)?);
    }

    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

fn alignment(metadata: &[(String, Value)], file: &str) -> Result<u64, GgufError> {
    let Some((_, v)) = metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let a = v.as_integer().unwrap_or(0);
    match u64::try_from(a) {
        Ok(a) if a.is_power_of_two() && a <= u32::MAX as u64 => Ok(a),
        _ => Err(GgufError::BadAlignment {
            file: file.to_string(),
            alignment: u64::try_from(a).unwrap_or(0),
        }),
    }
}

struct RawTensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    offset: u64,
}

fn tensor_info(c: &mut Cursor<'_>, i: u64) -> Result<RawTensor, GgufError> {
    let name = c.string(&|| format!("tensor info #{i} name"))?;
    let what = || format!("tensor info of {name:?}");
    let n_dims = c.u32(&what)?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(GgufError::BadShape {
            file: c.file.to_string(),
            tensor: name,
            problem: format!("{n_dims} dimensions (1 to {MAX_DIMS} supported)"),
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64(&what)?);
    }
    let type_id = c.u32(&what)?;
    let offset = c.u64(&what)?;
    Ok(RawTensor {
        name,
        dims,
        type_id,
        offset,
    })
}

fn validate_tensor(
    raw: RawTensor,
    alignment: u64,
    data_len: u64,
    file: &str,
) -> Result<TensorInfo, GgufError> {
    let RawTensor {
        name,
        dims,
        type_id,
        offset,
    } = raw;
    if let Some(d) = dims.iter().position(|&d| d == 0) {
        return Err(GgufError::BadShape {
            file: file.to_string(),
            tensor: name,
            problem: format!("dimension {d} of {dims:?} is zero"),
        });
    }
    let Some(wtype) = WType::from_ggml_id(type_id) else {
        return Err(GgufError::UnknownType {
            file: file.to_string(),
            tensor: name,
            type_id,
        });
    };
    let block = wtype.block_size() as u64;
    // At least one dimension: the tensor-info reader refuses zero dimensions.
    let (&cols, rest) = dims.split_first().ok_or_else(|| GgufError::BadShape {
        file: file.to_string(),
        tensor: name.clone(),
        problem: "no dimensions".into(),
    })?;
    if !cols.is_multiple_of(block) {
        return Err(GgufError::BadShape {
            file: file.to_string(),
            tensor: name,
            problem: format!("{cols} columns are not a whole number of {wtype} blocks of {block}"),
        });
    }
    // Bytes = (columns / block) × block bytes × every other dim, checked at each step and
    // required to fit in memory, so a hostile shape cannot wrap around to a small size.
    let mut n_bytes = (cols / block).checked_mul(wtype.block_bytes() as u64);
    for &d in rest {
        n_bytes = n_bytes.and_then(|n| n.checked_mul(d));
    }
    let n_bytes = n_bytes.filter(|&n| usize::try_from(n).is_ok());
    let Some(n_bytes) = n_bytes else {
        return Err(GgufError::SizeOverflow {
            file: file.to_string(),
            tensor: name,
            dims,
        });
    };
    if !offset.is_multiple_of(alignment) {
        return Err(GgufError::MisalignedTensor {
            file: file.to_string(),
            tensor: name,
            offset,
            alignment,
        });
    }
    if offset.checked_add(n_bytes).is_none_or(|end| end > data_len) {
        return Err(GgufError::TensorOutOfBounds {
            file: file.to_string(),
            tensor: name,
            offset,
            n_bytes,
            data_len,
        });
    }
    Ok(TensorInfo {
        name,
        dims,
        wtype,
        offset,
        n_bytes,
    })
}
