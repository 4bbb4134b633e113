//! Keys and values of past positions, per layer.

/// A fixed-capacity KV cache: `[layer][position][kv_dim]` for keys and for values.
///
/// Why preallocated: decode appends one position per token; a flat buffer sized for
/// the context makes that a copy, and attention reads contiguous rows.
#[derive(Clone, Debug)]
pub struct KvCache {
    kv_dim: usize,
    ctx_len: usize,
    len: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// An empty cache for `layers` layers of `ctx_len` positions of width `kv_dim`.
    pub fn new(layers: usize, ctx_len: usize, kv_dim: usize) -> KvCache {
        let n = layers * ctx_len * kv_dim;
        KvCache {
            kv_dim,
            ctx_len,
            len: 0,
            k: vec![0.0; n],
            v: vec![0.0; n],
        }
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

    fn at(&self, layer: usize, pos: usize) -> usize {
        (layer * self.ctx_len + pos) * self.kv_dim
    }

    /// Stores the key and value of `pos` in `layer`.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let a = self.at(layer, pos);
        self.k[a..a + self.kv_dim].copy_from_slice(k);
        self.v[a..a + self.kv_dim].copy_from_slice(v);
    }

    /// Keys and values of positions `0..len` of `layer`, row-major.
    pub(crate) fn layer(&self, layer: usize, len: usize) -> (&[f32], &[f32]) {
        let a = self.at(layer, 0);
        let n = len * self.kv_dim;
        (&self.k[a..a + n], &self.v[a..a + n])
    }
}
