//! The envelope shared by the stats and predictor files: magic, version, payload length
//! and CRC-32, then a little-endian payload read through a bounds-checked cursor.
//!
//! Why: both files sit next to a model for a long time and are loaded at every start; a
//! damaged, truncated or foreign file must be refused with a precise message, and no
//! length field read from a file may size an allocation before it is checked against the
//! bytes that are really there.
//!
//! ```text
//! magic 8 bytes | version u32 | payload_len u64 | crc32 u32 | payload
//! ```

use std::path::Path;

use crate::PredictorError;
use crate::error::FileProblem;

const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Wraps `payload` in the envelope.
pub(crate) fn seal(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope and returns the payload.
pub(crate) fn open<'a>(
    magic: &[u8; 8],
    version: u32,
    bytes: &'a [u8],
) -> Result<&'a [u8], FileProblem> {
    let mut r = Reader::new(bytes);
    if r.take(8, "magic").map_err(|_| FileProblem::BadMagic)? != magic {
        return Err(FileProblem::BadMagic);
    }
    let found = r.u32("version")?;
    if found != version {
        return Err(FileProblem::UnsupportedVersion {
            found,
            supported: version,
        });
    }
    let len = r.u64("payload length")?;
    let expected = r.u32("checksum")?;
    let available = r.remaining() as u64;
    if len > available {
        return Err(FileProblem::Truncated {
            what: "payload",
            needed: len,
            available,
        });
    }
    if len < available {
        return Err(FileProblem::Trailing(available - len));
    }
    let payload = r.take(len as usize, "payload")?;
    let actual = crc32fast::hash(payload);
    if actual != expected {
        return Err(FileProblem::Checksum { expected, actual });
    }
    Ok(payload)
}

/// A file of `kind` decoded from memory, its problems as [`PredictorError::File`].
pub(crate) fn from_bytes<T>(
    kind: &'static str,
    bytes: &[u8],
    decode: fn(&[u8]) -> Result<T, FileProblem>,
) -> Result<T, PredictorError> {
    decode(bytes).map_err(|problem| PredictorError::File {
        kind,
        path: None,
        problem,
    })
}

/// Writes `bytes` to `path`, naming the file on failure.
pub(crate) fn save(kind: &'static str, path: &Path, bytes: &[u8]) -> Result<(), PredictorError> {
    std::fs::write(path, bytes).map_err(|e| PredictorError::File {
        kind,
        path: Some(path.to_path_buf()),
        problem: e.into(),
    })
}

/// Reads and decodes the file at `path`, naming it on failure.
pub(crate) fn load<T>(
    kind: &'static str,
    path: &Path,
    decode: fn(&[u8]) -> Result<T, FileProblem>,
) -> Result<T, PredictorError> {
    let err = |problem| PredictorError::File {
        kind,
        path: Some(path.to_path_buf()),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.into()))?;
    decode(&bytes).map_err(err)
}

/// Appends little-endian fields.
#[derive(Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A length as u32 (every length we write is far below 2³²; larger is a bug).
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.len(v.len());
        v.iter().for_each(|&x| self.f32(x));
    }
}

/// Reads little-endian fields, refusing to read (or allocate) past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FileProblem> {
        if n > self.remaining() {
            return Err(FileProblem::Truncated {
                what,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        // In bounds: n ≤ remaining, checked above.
        let s = self.bytes.get(self.at..self.at + n).unwrap_or_default();
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FileProblem> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, FileProblem> {
        self.array(what).map(u8::from_le_bytes)
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, FileProblem> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, FileProblem> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn f32(&mut self, what: &'static str) -> Result<f32, FileProblem> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub fn f64(&mut self, what: &'static str) -> Result<f64, FileProblem> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A count of items of `item_bytes` each, checked against the bytes left so a
    /// corrupt count cannot size an allocation.
    pub fn count(&mut self, what: &'static str, item_bytes: usize) -> Result<usize, FileProblem> {
        let n = self.u32(what)? as usize;
        let needed = n.saturating_mul(item_bytes.max(1));
        if needed > self.remaining() {
            return Err(FileProblem::Truncated {
                what,
                needed: needed as u64,
                available: self.remaining() as u64,
            });
        }
        Ok(n)
    }

    pub fn str(&mut self, what: &'static str) -> Result<String, FileProblem> {
        let n = self.count(what, 1)?;
        String::from_utf8(self.take(n, what)?.to_vec())
            .map_err(|_| FileProblem::Malformed(format!("{what} is not UTF-8")))
    }

    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], FileProblem> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| FileProblem::Truncated {
            what,
            needed: n,
            available: self.remaining() as u64,
        })?;
        self.take(n, what)
    }

    pub fn f32s(&mut self, what: &'static str) -> Result<Vec<f32>, FileProblem> {
        let n = self.count(what, 4)?;
        (0..n).map(|_| self.f32(what)).collect()
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), FileProblem> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(FileProblem::Malformed(format!(
                "{n} bytes left after the last field"
            ))),
        }
    }
}
