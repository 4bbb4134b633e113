//! The CUDA backend (feature `cuda`): the kernels compile to PTX wherever NVRTC loads
//! (no GPU needed; CI installs NVRTC from PyPI), and on a GPU every operation matches the
//! CPU backend for every weight type, on odd sizes. Each test says why it skips.
#![cfg(feature = "cuda")]

use powerinfer_core::backend::cuda::{self, KERNEL_NAMES};
use powerinfer_core::backend::{Backend, CpuBackend, FfnSelect, Op};
use powerinfer_kernels::{Activation, FfnWeights, Kernels, Matrix, Skip, WType, quantize_matrix};

#[test]
fn every_kernel_compiles_to_ptx() {
    if !cuda::nvrtc_present() {
        println!("skipped: libnvrtc not found (set LD_LIBRARY_PATH to an NVRTC lib folder)");
        return;
    }
    let ptx = cuda::compile_ptx().unwrap();
    for name in KERNEL_NAMES {
        assert!(
            ptx.contains(&format!(".entry {name}")),
            "{name} missing from the PTX"
        );
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Largest |want − got|, and the scale it is judged against (the largest |want|).
fn max_err(want: &[f32], got: &[f32]) -> (f32, f32) {
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let err = want
        .iter()
        .zip(got)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    (err, scale)
}

#[test]
fn cuda_operations_match_the_cpu_backend_for_every_type() {
    if !cuda::driver_present() {
        println!("skipped: no CUDA driver (libcuda) on this machine");
        return;
    }
    let gpu = match cuda::open(0, None) {
        Ok(g) => g,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    println!("device: {}", gpu.name());
    let (neurons, dim, n) = (97usize, 96usize, 5usize);
    for wtype in [
        WType::F32,
        WType::F16,
        WType::Q8_0,
        WType::Q4_0,
        WType::Q4_1,
    ] {
        let q = |rows: usize, cols: usize, seed: u64| {
            quantize_matrix(wtype, &values(rows * cols, seed), rows, cols).unwrap()
        };
        let (gb, ub, db) = (q(neurons, dim, 1), q(neurons, dim, 2), q(neurons, dim, 3));
        let bias = values(neurons, 4);
        for act in Activation::ALL {
            let w = FfnWeights {
                gate: Matrix::new(wtype, neurons, dim, &gb).unwrap(),
                up: act
                    .has_up()
                    .then(|| Matrix::new(wtype, neurons, dim, &ub).unwrap()),
                down_t: Matrix::new(wtype, neurons, dim, &db).unwrap().into(),
                gate_bias: (act == Activation::Relu).then_some(bias.as_slice()),
                act,
            };
            let cpu = CpuBackend::new(Kernels::new(), None);
            let subset: Vec<u32> = (0..neurons as u32).filter(|i| i % 3 != 1).collect();
            let (ic, ig) = (
                cpu.upload_ffn("ffn", &w, &subset, WType::F16).unwrap(),
                gpu.upload_ffn("ffn", &w, &subset, WType::F16).unwrap(),
            );
            let (mc, mg) = (
                cpu.upload_matrix("m", &w.gate).unwrap(),
                gpu.upload_matrix("m", &w.gate).unwrap(),
            );
            let xs = values(n * dim, 5);
            let per_token: Vec<Vec<u32>> = (0..n)
                .map(|b| {
                    (0..subset.len() as u32)
                        .filter(|k| !(k + b as u32).is_multiple_of(4))
                        .collect()
                })
                .collect();
            for tokens in [1, n] {
                let x = xs[..tokens * dim].to_vec();
                let selects = [
                    (FfnSelect::All, Skip::None),
                    (FfnSelect::All, Skip::Below(0.1)),
                    (
                        FfnSelect::Shared((0..subset.len() as u32).step_by(2).collect()),
                        Skip::None,
                    ),
                    (
                        FfnSelect::PerToken(per_token[..tokens].to_vec()),
                        Skip::None,
                    ),
                ];
                for (select, skip) in selects {
                    let run = |b: &dyn Backend, id| {
                        b.submit(Op::Ffn {
                            w: id,
                            xs: x.clone(),
                            n: tokens,
                            select: select.clone(),
                            skip,
                        })
                        .unwrap()
                        .wait()
                        .unwrap()
                    };
                    let (c, g) = (run(&cpu, ic), run(&gpu, ig));
                    let (err, scale) = max_err(&c.ys, &g.ys);
                    assert!(
                        err <= 2e-3 * scale,
                        "{wtype} {act:?} {select:?} {skip:?} n={tokens}: {err} of {scale}"
                    );
                    if skip == Skip::None {
                        assert_eq!(c.active, g.active, "{wtype} {act:?} {select:?}");
                    }
                }
                let mm = |b: &dyn Backend, id| {
                    b.submit(Op::MatMul {
                        w: id,
                        xs: x.clone(),
                        n: tokens,
                    })
                    .unwrap()
                    .wait()
                    .unwrap()
                };
                let (c, g) = (mm(&cpu, mc), mm(&gpu, mg));
                let (err, scale) = max_err(&c.ys, &g.ys);
                // The CPU's one-token GEMV quantizes x to 8 bits for block types.
                assert!(
                    err <= 1e-2 * scale,
                    "{wtype} matmul n={tokens}: {err} of {scale}"
                );
            }
            gpu.release_all();
            assert_eq!(gpu.bytes_held(), 0);
        }
    }
}
