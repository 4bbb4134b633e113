//! The placement plan file: versioned, little-endian, checksummed.
//!
//! Why a custom binary: a plan is computed once per (model, budget, context) and loaded at
//! every start, next to a multi-gigabyte model; it must be small, quick to read, and a damaged
//! or foreign file must be refused with a clear message rather than mis-placing weights.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header (24 bytes):
//!   magic         8 bytes  "PIPLAN\0\x1a"
//!   version       u32      currently 1
//!   payload_len   u64
//!   crc32         u32      CRC-32 (IEEE) of the payload
//! payload:
//!   accelerator_budget u64, reserved_bytes u64
//!   layer_count u32, then per layer:
//!     neurons u32, bytes_per_neuron u64,
//!     accelerator_activations f64, total_activations f64,
//!     hot_count u32, hot_count × u32 neuron indices (strictly ascending, < neurons)
//!   dense_count u32, then per item:
//!     name_len u32, name (UTF-8), bytes u64, access f64, on_accelerator u8 (0 or 1)
//! ```

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::plan::{DensePlacement, LayerPlacement, PlacementPlan};

/// First bytes of every plan file.
pub const PLAN_MAGIC: [u8; 8] = *b"PIPLAN\0\x1a";
/// The format version this build writes and reads.
pub const PLAN_VERSION: u32 = 1;
/// Size of the fixed header.
const HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// Most neurons (over all layers) a plan file may declare: 2^27, about 58 times a 70B model.
/// Why: each neuron costs a mask entry in memory, and a hostile file must not be able to make
/// the reader allocate gigabytes from a few bytes.
pub const MAX_PLAN_NEURONS: u64 = 1 << 27;

/// A plan file could not be read or written; names the file (when there is one) and the
/// problem, so a user can tell a wrong path from a damaged or foreign file.
#[derive(Debug, Error)]
#[error("placement plan {}: {problem}", origin(path.as_deref()))]
pub struct PlanFileError {
    /// The file involved, `None` when decoding bytes from memory.
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub problem: PlanFileProblem,
}

/// What is wrong with a plan file.
#[derive(Debug, Error)]
pub enum PlanFileProblem {
    /// The file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with [`PLAN_MAGIC`].
    #[error("not a placement plan (bad magic bytes)")]
    BadMagic,
    /// The file was written by a different format version.
    #[error("unsupported format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The file ends before the data it announces.
    #[error("truncated: {what} needs {needed} bytes, only {available} left")]
    Truncated {
        /// Which part was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The payload does not match its checksum (bit rot, partial write, tampering).
    #[error("checksum mismatch: header says {expected:#010x}, payload hashes to {actual:#010x}")]
    ChecksumMismatch {
        /// CRC stored in the header.
        expected: u32,
        /// CRC of the payload as read.
        actual: u32,
    },
    /// Bytes follow the announced payload.
    #[error("{0} unexpected bytes after the payload")]
    TrailingBytes(u64),
    /// The payload passed its checksum but its content is inconsistent.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// How the error names where the bytes came from.
fn origin(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("`{}`", p.display()),
        None => "(in memory)".to_string(),
    }
}

impl PlacementPlan {
    /// Encodes the plan in the file format described in this module.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&self.accelerator_budget.to_le_bytes());
        p.extend_from_slice(&self.reserved_bytes.to_le_bytes());
        put_len(&mut p, self.layers.len());
        for l in &self.layers {
            put_len(&mut p, l.neuron_count());
            p.extend_from_slice(&l.bytes_per_neuron.to_le_bytes());
            p.extend_from_slice(&l.accelerator_activation.to_le_bytes());
            p.extend_from_slice(&l.total_activation.to_le_bytes());
            put_len(&mut p, l.accelerator.len());
            for &i in &l.accelerator {
                p.extend_from_slice(&i.to_le_bytes());
            }
        }
        put_len(&mut p, self.dense.len());
        for d in &self.dense {
            put_len(&mut p, d.name.len());
            p.extend_from_slice(d.name.as_bytes());
            p.extend_from_slice(&d.bytes.to_le_bytes());
            p.extend_from_slice(&d.access.to_le_bytes());
            p.push(u8::from(d.on_accelerator));
        }
        let mut out = Vec::with_capacity(HEADER_LEN + p.len());
        out.extend_from_slice(&PLAN_MAGIC);
        out.extend_from_slice(&PLAN_VERSION.to_le_bytes());
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
        out.extend_from_slice(&p);
        out
    }

    /// Decodes a plan from bytes produced by [`PlacementPlan::to_bytes`]; any damage gives a
    /// typed error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PlanFileError> {
        decode(bytes).map_err(|problem| PlanFileError {
            path: None,
            problem,
        })
    }

    /// Writes the plan to `path`.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<(), PlanFileError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|e| PlanFileError {
            path: Some(path.to_path_buf()),
            problem: e.into(),
        })
    }

    /// Reads a plan from `path`; errors name the file.
    pub fn read_from(path: impl AsRef<Path>) -> Result<Self, PlanFileError> {
        let path = path.as_ref();
        let with_path = |problem| PlanFileError {
            path: Some(path.to_path_buf()),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| with_path(e.into()))?;
        decode(&bytes).map_err(with_path)
    }
}

/// Appends a length as u32; lengths come from a plan whose neuron counts are validated to fit.
fn put_len(p: &mut Vec<u8>, len: usize) {
    p.extend_from_slice(&(len as u32).to_le_bytes());
}

/// Checks the header and checksum, then parses the payload.
fn decode(bytes: &[u8]) -> Result<PlacementPlan, PlanFileProblem> {
    let mut header = Cursor::new(bytes);
    let magic = header.take(PLAN_MAGIC.len(), "magic")?;
    if magic != PLAN_MAGIC {
        return Err(PlanFileProblem::BadMagic);
    }
    let version = header.u32("version")?;
    if version != PLAN_VERSION {
        return Err(PlanFileProblem::UnsupportedVersion {
            found: version,
            supported: PLAN_VERSION,
        });
    }
    let payload_len = header.u64("payload length")?;
    let expected = header.u32("checksum")?;
    let rest = header.remaining();
    let available = rest.len() as u64;
    if available < payload_len {
        return Err(PlanFileProblem::Truncated {
            what: "payload",
            needed: payload_len,
            available,
        });
    }
    if available > payload_len {
        return Err(PlanFileProblem::TrailingBytes(available - payload_len));
    }
    let actual = crc32fast::hash(rest);
    if actual != expected {
        return Err(PlanFileProblem::ChecksumMismatch { expected, actual });
    }
    parse_payload(rest)
}

/// Parses a payload that passed its checksum, validating every invariant a plan relies on.
fn parse_payload(payload: &[u8]) -> Result<PlacementPlan, PlanFileProblem> {
    let malformed = |s: String| PlanFileProblem::Malformed(s);
    let mut c = Cursor::new(payload);
    let accelerator_budget = c.u64("accelerator budget")?;
    let reserved_bytes = c.u64("reserved bytes")?;
    let mut weight_bytes: u64 = 0;
    let mut total_neurons: u64 = 0;
    let layer_count = c.count(4 + 8 + 8 + 8 + 4, "layer count")?;
    let mut layers = Vec::with_capacity(layer_count);
    for l in 0..layer_count {
        let neurons = c.u32("neuron count")?;
        total_neurons += u64::from(neurons);
        if total_neurons > MAX_PLAN_NEURONS {
            return Err(malformed(format!(
                "layer {l}: more than {MAX_PLAN_NEURONS} neurons in total"
            )));
        }
        let bytes_per_neuron = c.u64("bytes per neuron")?;
        let on = c.f64("accelerator activations")?;
        let total = c.f64("total activations")?;
        if bytes_per_neuron == 0 {
            return Err(malformed(format!("layer {l}: zero bytes per neuron")));
        }
        if !(on.is_finite() && total.is_finite() && on >= 0.0 && total >= 0.0) {
            return Err(malformed(format!(
                "layer {l}: activation sums {on} / {total} are not finite non-negative numbers"
            )));
        }
        let hot = c.count(4, "hot neuron count")?;
        if hot > neurons as usize {
            return Err(malformed(format!(
                "layer {l}: {hot} hot neurons out of {neurons}"
            )));
        }
        let mut indices = Vec::with_capacity(hot);
        for _ in 0..hot {
            let i = c.u32("hot neuron index")?;
            if i >= neurons || indices.last().is_some_and(|&last| last >= i) {
                return Err(malformed(format!(
                    "layer {l}: hot neuron index {i} out of order or not below {neurons}"
                )));
            }
            indices.push(i);
        }
        weight_bytes = u64::from(neurons)
            .checked_mul(bytes_per_neuron)
            .and_then(|b| weight_bytes.checked_add(b))
            .ok_or_else(|| malformed(format!("layer {l}: byte sizes overflow 64 bits")))?;
        layers.push(LayerPlacement::new(
            neurons as usize,
            bytes_per_neuron,
            indices,
            on,
            total,
        ));
    }
    let dense_count = c.count(4 + 8 + 8 + 1, "dense item count")?;
    let mut dense = Vec::with_capacity(dense_count);
    for d in 0..dense_count {
        let name_len = c.count(1, "dense item name length")?;
        let name = std::str::from_utf8(c.take(name_len, "dense item name")?)
            .map_err(|_| malformed(format!("dense item {d}: name is not UTF-8")))?
            .to_string();
        let bytes = c.u64("dense item bytes")?;
        let access = c.f64("dense item access")?;
        let on_accelerator = match c.u8("dense item flag")? {
            0 => false,
            1 => true,
            other => {
                return Err(malformed(format!(
                    "dense item `{name}`: flag {other} is neither 0 nor 1"
                )));
            }
        };
        if !(access.is_finite() && access >= 0.0) {
            return Err(malformed(format!(
                "dense item `{name}`: access {access} is not a finite non-negative number"
            )));
        }
        weight_bytes = weight_bytes
            .checked_add(bytes)
            .ok_or_else(|| malformed("dense byte sizes overflow 64 bits".into()))?;
        dense.push(DensePlacement {
            name,
            bytes,
            access,
            on_accelerator,
        });
    }
    let left = c.remaining().len();
    if left != 0 {
        return Err(malformed(format!(
            "{left} bytes left over after the dense items"
        )));
    }
    let plan = PlacementPlan {
        layers,
        dense,
        accelerator_budget,
        reserved_bytes,
    };
    // All sums are bounded by `weight_bytes`, which fits in u64; reservations may not.
    if reserved_bytes > accelerator_budget
        || plan.accelerator_weight_bytes() > accelerator_budget - reserved_bytes
    {
        return Err(malformed(format!(
            "plan uses {} weight bytes + {reserved_bytes} reserved, over its budget of \
             {accelerator_budget}",
            plan.accelerator_weight_bytes()
        )));
    }
    Ok(plan)
}

/// A bounds-checked reader over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn remaining(&self) -> &'a [u8] {
        self.bytes
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PlanFileProblem> {
        if self.bytes.len() < n {
            return Err(PlanFileProblem::Truncated {
                what,
                needed: n as u64,
                available: self.bytes.len() as u64,
            });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PlanFileProblem> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PlanFileProblem> {
        self.array(what).map(u8::from_le_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PlanFileProblem> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PlanFileProblem> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, PlanFileProblem> {
        self.array(what).map(f64::from_le_bytes)
    }

    /// Reads a u32 element count and checks that `count × min_size` bytes can follow, so a
    /// damaged count cannot trigger a huge allocation.
    fn count(&mut self, min_size: usize, what: &'static str) -> Result<usize, PlanFileProblem> {
        let n = self.u32(what)? as usize;
        let needed = n.saturating_mul(min_size);
        if needed > self.bytes.len() {
            return Err(PlanFileProblem::Truncated {
                what,
                needed: needed as u64,
                available: self.bytes.len() as u64,
            });
        }
        Ok(n)
    }
}
