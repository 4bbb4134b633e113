//! Synthetic, model-shaped placement profiles (not real data).
//!
//! Why in the library: the `place` example demonstrates on one when no profile is
//! given, the 70B benchmark times the solver on one, and users can size budgets before
//! they have profiled anything — one generator, so all of them mean the same thing.

use crate::{Activity, DenseItem};

/// The shape of a LLaMA-like model in Q4_0, and how skewed its neuron activity is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticModel {
    /// Transformer layers.
    pub layers: usize,
    /// FFN neurons per layer.
    pub neurons: usize,
    /// Model dimension.
    pub hidden: u64,
    /// Width of the key/value projections (GQA: less than `hidden`).
    pub kv_dim: u64,
    /// Vocabulary size.
    pub vocab: u64,
    /// Power-law exponent of the first and of the last layer (deeper layers are more
    /// skewed, as profiles of ReLU models tend to show).
    pub skew: (f64, f64),
    /// Seed of the neuron shuffle.
    pub seed: u64,
}

impl SyntheticModel {
    /// A 7B ReLU-LLaMA: 32 layers × 11008 neurons, hidden 4096, no GQA.
    pub const LLAMA_7B: SyntheticModel = SyntheticModel {
        layers: 32,
        neurons: 11_008,
        hidden: 4_096,
        kv_dim: 4_096,
        vocab: 32_000,
        skew: (0.6, 1.1),
        seed: 0x2545_f491_4f6c_dd1d,
    };

    /// A 70B LLaMA-2 shape: 80 layers × 28672 neurons, hidden 8192, KV width 1024.
    pub const LLAMA_70B: SyntheticModel = SyntheticModel {
        layers: 80,
        neurons: 28_672,
        hidden: 8_192,
        kv_dim: 1_024,
        vocab: 32_000,
        skew: (0.5, 1.2),
        seed: 0x9e37_79b9_7f4a_7c15,
    };

    /// Per-layer neuron frequencies (rank `r` fires with probability `0.9·(r+1)^-s`,
    /// shuffled by a seeded xorshift), Q4_0 bytes per neuron (gate + up + down rows),
    /// and the dense items: per layer attention and norms read every token, the output
    /// head every token, the embedding table one row per token.
    pub fn profile(&self) -> (Activity, Vec<u64>, Vec<DenseItem>) {
        let q4_0 = |weights: u64| weights / 32 * 18;
        let mut state = self.seed.max(1);
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let last = self.layers.saturating_sub(1).max(1) as f64;
        let frequencies = (0..self.layers)
            .map(|l| {
                let s = self.skew.0 + (self.skew.1 - self.skew.0) * l as f64 / last;
                let mut f: Vec<f64> = (0..self.neurons)
                    .map(|r| 0.9 * ((r + 1) as f64).powf(-s))
                    .collect();
                for i in (1..f.len()).rev() {
                    f.swap(i, (next() % (i as u64 + 1)) as usize);
                }
                f
            })
            .collect();
        let (h, kv) = (self.hidden, self.kv_dim);
        let mut dense = Vec::with_capacity(2 * self.layers + 2);
        for l in 0..self.layers {
            dense.push(DenseItem {
                name: format!("blk.{l}.attn"),
                bytes: q4_0(2 * h * h + 2 * h * kv),
                access: 1.0,
            });
            dense.push(DenseItem {
                name: format!("blk.{l}.norms"),
                bytes: 2 * h * 4,
                access: 1.0,
            });
        }
        dense.push(DenseItem {
            name: "output".into(),
            bytes: q4_0(self.vocab * h),
            access: 1.0,
        });
        dense.push(DenseItem {
            name: "token_embd".into(),
            bytes: q4_0(self.vocab * h),
            access: 1.0 / self.vocab as f64,
        });
        let bytes_per_neuron = vec![q4_0(3 * h); self.layers];
        (Activity::Frequencies(frequencies), bytes_per_neuron, dense)
    }

    /// Bytes of a KV cache of `ctx` positions in f16 for this shape.
    pub fn kv_cache_bytes(&self, ctx: u64) -> u64 {
        2 * self.layers as u64 * ctx * self.kv_dim * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_has_the_declared_shape_and_is_deterministic() {
        let m = SyntheticModel {
            layers: 3,
            neurons: 100,
            ..SyntheticModel::LLAMA_7B
        };
        let (a, bytes, dense) = m.profile();
        let Activity::Frequencies(f) = &a else {
            panic!("frequencies expected")
        };
        assert_eq!((f.len(), f[0].len(), bytes.len()), (3, 100, 3));
        assert_eq!(bytes[0], 3 * 4096 / 32 * 18);
        assert_eq!(dense.len(), 2 * 3 + 2);
        assert!(f.iter().flatten().all(|&p| p > 0.0 && p <= 0.9));
        // The top neuron fires at 0.9 in every layer, somewhere after the shuffle.
        assert!(f.iter().all(|l| l.contains(&0.9)));
        assert_eq!(m.profile(), (a, bytes, dense));
    }
}
