//! `ffn_sparse_batch`: several tokens, each with its own candidates, give what each
//! token gives alone through the fused kernel (its active set exactly, its output within
//! the batched path's f32 activations), at every ISA level, weight type and odd size.

mod common;

use common::{TestMatrix, fit, isas, kernels, random_vec};
use powerinfer_kernels::{
    Activation, FfnBatchScratch, FfnScratch, FfnWeights, Matrix, Skip, WType, transpose,
};

#[test]
fn a_batch_equals_its_tokens_alone() {
    for isa in isas() {
        for wtype in WType::ALL {
            for act in [Activation::Relu, Activation::ReGlu, Activation::SwiGlu] {
                let (n_ff, d, n) = (83, fit(wtype, 64), 5);
                let k = kernels(isa, 2);
                let gate = TestMatrix::random(wtype, n_ff, d, 41);
                let up = TestMatrix::random(wtype, n_ff, d, 42);
                let down = TestMatrix::random(WType::F32, d, n_ff, 43);
                let dt_bytes = transpose(&down.matrix(), WType::F32).unwrap();
                let bias = random_vec(n_ff, 44);
                let w = FfnWeights {
                    gate: gate.matrix(),
                    up: act.has_up().then(|| up.matrix()),
                    down_t: Matrix::new(WType::F32, n_ff, d, &dt_bytes).unwrap().into(),
                    gate_bias: (act == Activation::Relu).then_some(bias.as_slice()),
                    act,
                };
                let xs = random_vec(n * d, 45);
                let sets: Vec<Vec<u32>> = (0..n)
                    .map(|b| {
                        (0..n_ff as u32)
                            .filter(|i| !(i + b as u32).is_multiple_of(3))
                            .collect()
                    })
                    .collect();
                let skip = if act == Activation::SwiGlu {
                    Skip::Below(0.05)
                } else {
                    Skip::Below(0.0)
                };
                let shared: Vec<u32> = (0..n_ff as u32).step_by(2).collect();
                for (sets, idx) in [
                    (Some(&sets[..]), None),
                    (None, Some(&shared[..])),
                    (None, None),
                ] {
                    let mut ys = vec![0f32; n * d];
                    let mut batch = FfnBatchScratch::default();
                    k.ffn_sparse_batch(&w, &xs, n, idx, sets, skip, &mut ys, &mut batch)
                        .unwrap();
                    for b in 0..n {
                        let cand = sets.map(|s| s[b].as_slice()).or(idx);
                        let mut y = vec![0f32; d];
                        let mut one = FfnScratch::default();
                        k.ffn_sparse(&w, &xs[b * d..(b + 1) * d], cand, skip, &mut y, &mut one)
                            .unwrap();
                        let what = format!(
                            "{isa} {wtype} {act:?} token {b} sets {} idx {}",
                            sets.is_some(),
                            idx.is_some()
                        );
                        // The single-token path quantizes x to 8 bits for block types; a
                        // gate within that error of its cut may fall either way.
                        if wtype == WType::F32 || wtype == WType::F16 {
                            assert_eq!(batch.active(b), one.active(), "{what}");
                        }
                        let scale = y.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                        let err = y
                            .iter()
                            .zip(&ys[b * d..(b + 1) * d])
                            .fold(0f32, |m, (a, c)| m.max((a - c).abs()));
                        let tol = if wtype.block_size() > 1 { 0.1 } else { 1e-3 };
                        assert!(err <= tol * scale, "{what}: {err} of {scale}");
                    }
                }
            }
        }
    }
}
