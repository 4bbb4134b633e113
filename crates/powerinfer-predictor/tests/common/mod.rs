//! A synthetic layer with a known rule: `a = relu(A·B·x)` with a low inner rank, so a
//! small predictor can represent the firing pattern exactly.
#![allow(dead_code, missing_docs)]

use powerinfer_predictor::{ActiveRule, ModelId, Samples};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const DIM: usize = 64;
pub const N_FF: usize = 96;
const INNER: usize = 6;

pub struct Rule {
    w: Vec<f32>,
}

impl Rule {
    pub fn new(seed: u64) -> Rule {
        let mut rng = StdRng::seed_from_u64(seed);
        let a: Vec<f32> = (0..N_FF * INNER)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        let b: Vec<f32> = (0..INNER * DIM)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        let mut w = vec![0f32; N_FF * DIM];
        for i in 0..N_FF {
            for j in 0..DIM {
                w[i * DIM + j] = (0..INNER).map(|k| a[i * INNER + k] * b[k * DIM + j]).sum();
            }
        }
        Rule { w }
    }

    pub fn samples(&self, n: usize, seed: u64, mags: bool) -> Samples {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut s = Samples::new(DIM, N_FF, ActiveRule::NonZero, mags).unwrap();
        for _ in 0..n {
            let x: Vec<f32> = (0..DIM).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            let a: Vec<f32> = (0..N_FF)
                .map(|i| {
                    let g: f32 = self.w[i * DIM..(i + 1) * DIM]
                        .iter()
                        .zip(&x)
                        .map(|(w, x)| w * x)
                        .sum();
                    g.max(0.0)
                })
                .collect();
            s.push(&x, &a).unwrap();
        }
        s
    }
}

pub fn model_id(layers: u32) -> ModelId {
    ModelId {
        arch: "synthetic".into(),
        n_layers: layers,
        dim: DIM as u32,
        n_ff: N_FF as u32,
        ffn_hash: 0x1234_5678,
    }
}
