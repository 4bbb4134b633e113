//! An open GGUF file: validated metadata and tensor table over memory-mapped bytes.
//!
//! Why mmap: a model's weights are used in place by the kernels; mapping the file costs
//! no copy and lets the OS page weights in (and out) on demand.

use std::collections::HashMap;
use std::path::Path;

use memmap2::Mmap;

use super::error::GgufError;
use super::parse::{Parsed, parse};
use super::tensor::TensorInfo;
use super::value::Value;

/// The name used in errors for files read from memory.
pub const MEMORY_FILE: &str = "<memory>";

/// 64 bytes with 64-byte alignment: the unit of the owned buffer behind
/// [`GgufFile::from_bytes`], so tensor data there is as aligned as in an mmap.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Chunk([u8; 64]);

/// The bytes behind a [`GgufFile`].
enum Storage {
    Mapped(Mmap),
    Owned { chunks: Box<[Chunk]>, len: usize },
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            // `len ≤ 64 × chunks.len()`: `filled` sized the chunks for it.
            #[allow(clippy::indexing_slicing)]
            Storage::Owned { chunks, len } => &bytemuck::cast_slice(chunks)[..*len],
        }
    }
}

/// A GGUF (v2 or v3) file whose header, metadata and tensor table have been validated.
///
/// Every tensor's data is known to lie inside the file, at an aligned offset, with the
/// byte size its type and shape imply; [`GgufFile::tensor_data`] is a zero-copy slice.
pub struct GgufFile {
    file: String,
    storage: Storage,
    version: u32,
    alignment: u64,
    data_start: usize,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("file", &self.file)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps and validates the file at `path`.
    ///
    /// Why a map: a multi-gigabyte model is paged in on demand and shared with the page
    /// cache, never copied. The header is parsed and every tensor's range checked here;
    /// the weights are read through the map for as long as the `GgufFile` lives.
    ///
    /// # The file must not change while it is open
    ///
    /// Like every memory map (see `memmap2::Mmap`, and candle's loaders, which say the
    /// same), soundness rests on no one modifying the file while it is mapped; the OS
    /// cannot enforce that. If another process rewrites the file in place, tensors may read
    /// the new bytes: wrong answers, not memory unsafety in this crate, since every tensor
    /// is read as plain bytes. If it *truncates* the file, a read of a page past the new
    /// end raises `SIGBUS` and the process dies. Replace model files by writing a new file
    /// and renaming it over the old (the open map keeps the old inode), never in place; when
    /// that cannot be guaranteed, read the file into memory and use
    /// [`GgufFile::from_bytes`] instead.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let io = |source| GgufError::Io {
            file: name.clone(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and we never hand out references that outlive
        // `self`. The one caveat of any file mapping remains: if another process truncates
        // or rewrites the file while it is mapped, reads may see the new bytes or fault
        // (SIGBUS). Model files are not modified while a model is loaded, and that is the
        // contract of this type.
        let map = unsafe { Mmap::map(&f) }.map_err(io)?;
        GgufFile::from_storage(Storage::Mapped(map), name)
    }

    /// Validates a GGUF image held in memory (errors name the file `<memory>`).
    ///
    /// Why: tests and tools build small files with [`GgufWriter`](super::GgufWriter) and
    /// read them back without touching the disk. The bytes are copied once into a
    /// 64-byte-aligned buffer so tensor data is aligned as in a mapped file.
    pub fn from_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
        GgufFile::filled(bytes.len(), MEMORY_FILE.to_string(), |buf| {
            buf.copy_from_slice(bytes)
        })
    }

    /// Validates an image of `len` bytes that `fill` writes into a fresh, zeroed,
    /// 64-byte-aligned buffer (errors name the file `name`).
    ///
    /// Why: a model converted in memory ([`GgufWriter::into_file`](super::GgufWriter))
    /// is written straight into the buffer the file keeps, with no second copy; the
    /// buffer is allocated zeroed, so its pages cost memory only once written.
    pub(crate) fn filled(
        len: usize,
        name: String,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<GgufFile, GgufError> {
        let mut chunks: Box<[Chunk]> = bytemuck::zeroed_slice_box(len.div_ceil(64));
        // The chunks hold at least `len` bytes, by the line above.
        #[allow(clippy::indexing_slicing)]
        fill(&mut bytemuck::cast_slice_mut::<Chunk, u8>(&mut chunks)[..len]);
        GgufFile::from_storage(Storage::Owned { chunks, len }, name)
    }

    fn from_storage(storage: Storage, file: String) -> Result<GgufFile, GgufError> {
        let Parsed {
            version,
            metadata,
            tensors,
            alignment,
            data_start,
        } = parse(storage.bytes(), &file)?;
        let key_index = metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let tensor_index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            file,
            storage,
            version,
            alignment,
            data_start,
            metadata,
            key_index,
            tensors,
            tensor_index,
        })
    }

    /// The same file, named `name` in errors (an image built in memory from another file,
    /// such as a tokenizer.json, reports that file).
    pub(crate) fn with_name(mut self, name: &str) -> GgufFile {
        self.file = name.to_string();
        self
    }

    /// The path as given to [`GgufFile::open`], or `<memory>`.
    pub fn name(&self) -> &str {
        &self.file
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section from the start of the file.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, v)| v)
    }

    /// The value of `key`, or [`GgufError::MissingKey`].
    pub fn value(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            file: self.file.clone(),
            key: key.to_string(),
        })
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: String) -> GgufError {
        GgufError::WrongType {
            file: self.file.clone(),
            key: key.to_string(),
            expected,
            found,
        }
    }

    fn integer<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T, GgufError> {
        let v = self.value(key)?;
        let Some(i) = v.as_integer() else {
            return Err(self.wrong_type(key, expected, v.type_description()));
        };
        T::try_from(i).map_err(|_| self.wrong_type(key, expected, format!("{i} (out of range)")))
    }

    /// An integer key as `u32`; any integer type whose value fits is accepted (llama.cpp
    /// writes the same key as u32, i32 or u64 depending on the converter).
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.integer(key, "u32")
    }

    /// An integer key as `u64` (any integer type whose value fits).
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.integer(key, "u64")
    }

    /// An integer key as `i64` (any integer type whose value fits).
    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.integer(key, "i64")
    }

    /// An integer key as `usize`, for sizes and counts (any integer type that fits).
    pub fn get_usize(&self, key: &str) -> Result<usize, GgufError> {
        self.integer(key, "usize")
    }

    /// A float key as `f32` (stored as f32, or f64 narrowed).
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.value(key)?;
        v.as_float()
            .map(|f| f as f32)
            .ok_or_else(|| self.wrong_type(key, "f32", v.type_description()))
    }

    /// A bool key.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.value(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(self.wrong_type(key, "bool", v.type_description())),
        }
    }

    /// A string key.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.value(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.wrong_type(key, "string", v.type_description())),
        }
    }

    fn array(&self, key: &str, expected: &'static str) -> Result<&[Value], GgufError> {
        match self.value(key)? {
            Value::Array { items, .. } => Ok(items),
            v => Err(self.wrong_type(key, expected, v.type_description())),
        }
    }

    /// An array-of-strings key (vocabularies, merges).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        const EXPECTED: &str = "array of string";
        self.array(key, EXPECTED)?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                v => Err(self.wrong_type(
                    key,
                    EXPECTED,
                    format!("array of {}", v.type_description()),
                )),
            })
            .collect()
    }

    /// An array-of-floats key as `f32` (f32 or f64 elements).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        const EXPECTED: &str = "array of f32";
        self.array(key, EXPECTED)?
            .iter()
            .map(|v| {
                v.as_float().map(|f| f as f32).ok_or_else(|| {
                    self.wrong_type(key, EXPECTED, format!("array of {}", v.type_description()))
                })
            })
            .collect()
    }

    /// An array-of-integers key as `i32` (any integer elements whose values fit).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        const EXPECTED: &str = "array of i32";
        self.array(key, EXPECTED)?
            .iter()
            .map(|v| match v.as_integer() {
                Some(i) => i32::try_from(i).map_err(|_| {
                    self.wrong_type(key, EXPECTED, format!("element {i} (out of range)"))
                }),
                None => Err(self.wrong_type(
                    key,
                    EXPECTED,
                    format!("array of {}", v.type_description()),
                )),
            })
            .collect()
    }

    /// `general.architecture` (e.g. `llama`), which prefixes the model's own keys.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    /// The tensor table in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// The tensor named `name`, or [`GgufError::MissingTensor`].
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            file: self.file.clone(),
            tensor: name.to_string(),
        })
    }

    /// The data of `info`, zero-copy. Its start is aligned in memory to the file's
    /// alignment (up to 64 bytes for in-memory files, a page for mapped ones).
    ///
    /// # Panics
    /// If `info` was not taken from this file (its range was validated against this
    /// file only).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        // Validated at open: offset + n_bytes ≤ data length, both fit in usize. A
        // `TensorInfo` of another file may not fit this one: it gets no bytes.
        let start = self.data_start.saturating_add(info.offset as usize);
        let end = start.saturating_add(info.n_bytes as usize);
        self.storage.bytes().get(start..end).unwrap_or_default()
    }
}
