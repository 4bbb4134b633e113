//! Keys and values of past positions, per layer.

use crate::ModelError;

/// A fixed-capacity KV cache: per layer, `[position][kv_dim]` keys and values.
///
/// Why reserved up front but filled as it goes: decode appends one position per token,
/// and with the whole context's capacity reserved at creation an append never
/// reallocates (nor moves the rows attention reads), while memory is only touched for
/// positions actually used. The reservation is checked and fallible, so a context too
/// large for the machine is an error when the session is made, not an abort later.
#[derive(Clone, Debug)]
pub struct KvCache {
    kv_dim: usize,
    ctx_len: usize,
    len: usize,
    /// Per layer: keys of the positions stored so far (`≥ len` rows after a truncate).
    k: Vec<Vec<f32>>,
    /// Per layer: values, as `k`.
    v: Vec<Vec<f32>>,
}

impl KvCache {
    /// Bytes of a cache for `layers` layers of `ctx_len` positions of width `kv_dim`
    /// (keys and values, f32), or `None` if that does not fit `usize`.
    pub fn bytes_for(layers: usize, ctx_len: usize, kv_dim: usize) -> Option<usize> {
        layers
            .checked_mul(ctx_len)?
            .checked_mul(kv_dim)?
            .checked_mul(2 * size_of::<f32>())
    }

    /// An empty cache for `layers` layers of `ctx_len` positions of width `kv_dim`;
    /// [`ModelError::Alloc`] when its size overflows or cannot be reserved (an 8B model
    /// at its full 131k context asks for 34 GB), instead of an abort.
    pub fn new(layers: usize, ctx_len: usize, kv_dim: usize) -> Result<KvCache, ModelError> {
        let bytes = KvCache::bytes_for(layers, ctx_len, kv_dim);
        let refused = || ModelError::Alloc {
            what: format!("a KV cache of {ctx_len} positions (ask for a shorter context)"),
            bytes,
        };
        let per_layer = bytes.ok_or_else(refused).map(|_| ctx_len * kv_dim)?;
        let reserve = || -> Result<Vec<Vec<f32>>, ModelError> {
            let mut all = Vec::new();
            all.try_reserve_exact(layers).map_err(|_| refused())?;
            for _ in 0..layers {
                let mut layer = Vec::new();
                layer.try_reserve_exact(per_layer).map_err(|_| refused())?;
                all.push(layer);
            }
            Ok(all)
        };
        Ok(KvCache {
            kv_dim,
            ctx_len,
            len: 0,
            k: reserve()?,
            v: reserve()?,
        })
    }

    /// Positions filled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in positions.
    pub fn ctx_len(&self) -> usize {
        self.ctx_len
    }

    /// Forgets every position.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drops positions from `len` on (to re-run a suffix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    /// Stores the key and value of `pos` in `layer`. Positions are stored in order from
    /// [`KvCache::len`] on (the session checks `pos < ctx_len`), so the row either
    /// overwrites one kept after a truncate or appends within the reserved capacity.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let a = pos * self.kv_dim;
        for (rows, new) in [(&mut self.k[layer], k), (&mut self.v[layer], v)] {
            rows.truncate(a);
            rows.extend_from_slice(new);
        }
    }

    /// Keys and values of positions `0..len` of `layer`, row-major.
    pub(crate) fn layer(&self, layer: usize, len: usize) -> (&[f32], &[f32]) {
        let n = len * self.kv_dim;
        (&self.k[layer][..n], &self.v[layer][..n])
    }
}
