//! The checks Q5_0 and Q5_1 share (their files keep the ones that differ: known bytes,
//! round-trip and constant-block bounds, the scalar axpy's tolerance).

use crate::blocks::{QK, f16_at};
use crate::q8::{BlockQ8, quantize_q8};

/// One Q5 type's functions, scalar and AVX2 (non-capturing closures around the
/// `#[target_feature]` kernels), and its test data.
pub(crate) struct Q5Fns {
    /// Bytes per block.
    pub bb: usize,
    /// Byte offset of the block's f16 minimum (Q5_1), if any.
    pub m_at: Option<usize>,
    /// `blocks` blocks of test values from a seed.
    pub random: fn(usize, u64) -> Vec<f32>,
    pub encode: fn(&[f32], &mut Vec<u8>),
    pub decode: fn(&[u8], &mut [f32]),
    pub dot: fn(&[u8], &[BlockQ8]) -> f32,
    pub axpy: fn(&[u8], f32, &mut [f32]),
    /// AVX2 dot; called only once AVX2, FMA and F16C were detected.
    #[cfg(target_arch = "x86_64")]
    pub avx_dot: fn(&[u8], &[BlockQ8]) -> f32,
    /// AVX2 axpy; called only once AVX2, FMA and F16C were detected.
    #[cfg(target_arch = "x86_64")]
    pub avx_axpy: fn(&[u8], f32, &mut [f32]),
}

impl Q5Fns {
    pub(crate) fn encoded(&self, values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        (self.encode)(values, &mut out);
        out
    }

    pub(crate) fn decoded(&self, row: &[u8]) -> Vec<f32> {
        let mut out = vec![0.0; row.len() / self.bb * QK];
        (self.decode)(row, &mut out);
        out
    }
}

/// The activation as the dot sees it: `d·q` per element, exactly (in f64).
fn dequantized(xq: &[BlockQ8]) -> Vec<f64> {
    xq.iter()
        .flat_map(|b| b.qs.iter().map(move |&q| f64::from(b.d) * f64::from(q)))
        .collect()
}

/// `decode` takes only the whole blocks both sides hold, whatever their lengths.
pub(crate) fn check_decode_any_lengths(k: &Q5Fns) {
    let row = k.encoded(&(k.random)(3, 1));
    let full = k.decoded(&row);
    // Out shorter than the row, with a partial block: one whole block.
    let mut out = vec![f32::NAN; QK + 7];
    (k.decode)(&row, &mut out);
    assert_eq!(out[..QK], full[..QK]);
    assert!(out[QK..].iter().all(|v| v.is_nan()));
    // Row cut mid-block: two whole blocks.
    let mut out = vec![f32::NAN; 3 * QK];
    (k.decode)(&row[..2 * k.bb + 5], &mut out);
    assert_eq!(out[..2 * QK], full[..2 * QK]);
    assert!(out[2 * QK..].iter().all(|v| v.is_nan()));
    (k.decode)(&[], &mut out);
    (k.decode)(&row, &mut []);
}

/// The scalar dot against the f64 dot of the decoded row with the dequantized
/// activation (within 1e-6 of Σ|w·x|), for 1, 2, 3, 5 and 7 blocks.
pub(crate) fn check_scalar_dot(k: &Q5Fns) {
    let mut xq = Vec::new();
    for blocks in [1, 2, 3, 5, 7] {
        let row = k.encoded(&(k.random)(blocks, blocks as u64));
        quantize_q8(&(k.random)(blocks, 100 + blocks as u64), &mut xq);
        let (w, x) = (k.decoded(&row), dequantized(&xq));
        let exact: f64 = w.iter().zip(&x).map(|(&a, b)| f64::from(a) * b).sum();
        let mag: f64 = w
            .iter()
            .zip(&x)
            .map(|(&a, b)| (f64::from(a) * b).abs())
            .sum();
        let got = f64::from((k.dot)(&row, &xq));
        assert!(
            (got - exact).abs() <= 1e-6 * mag,
            "{blocks}: {got} vs {exact}"
        );
    }
}

/// AVX2 dot and axpy against scalar for 1..=9 and 128 blocks, and on mismatched
/// lengths (only the common whole blocks, nothing past them touched); skipped, with a
/// note, when the CPU lacks AVX2, FMA or F16C.
#[cfg(target_arch = "x86_64")]
pub(crate) fn check_avx2(k: &Q5Fns) {
    let ok = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    if !ok {
        eprintln!("skipped: this CPU lacks avx2, fma or f16c");
        return;
    }
    let mut xq = Vec::new();
    for blocks in (1..=9).chain([128]) {
        let row = k.encoded(&(k.random)(blocks, 200 + blocks as u64));
        quantize_q8(&(k.random)(blocks, 300 + blocks as u64), &mut xq);
        check_dot(k, &row, &xq);
        let y0 = (k.random)(blocks, 400 + blocks as u64);
        check_axpy(k, &row, 0.37, &y0);
        check_axpy(k, &row, -3.5, &y0);
    }
    let row = k.encoded(&(k.random)(7, 11));
    quantize_q8(&(k.random)(9, 12), &mut xq);
    let y0 = (k.random)(9, 13);
    for blocks in 0..=7 {
        let cut = &row[..blocks * k.bb];
        // Row shorter than xq / y, then cut mid-block.
        check_dot(k, cut, &xq);
        check_axpy(k, cut, 1.25, &y0);
        check_dot(k, &row[..(blocks * k.bb + 9).min(row.len())], &xq);
        // xq / y shorter than the row, y also with a partial block.
        check_dot(k, &row, &xq[..blocks]);
        check_axpy(k, &row, 1.25, &y0[..blocks * QK]);
        check_axpy(k, &row, -0.5, &y0[..blocks * QK + 13]);
    }
}

/// AVX2 `dot` against the scalar one for a row and an activation of any (possibly
/// different) block counts.
#[cfg(target_arch = "x86_64")]
fn check_dot(k: &Q5Fns, row: &[u8], xq: &[BlockQ8]) {
    let n = (row.len() / k.bb).min(xq.len());
    let w = k.decoded(&row[..n * k.bb]);
    let mag: f64 = w
        .iter()
        .zip(dequantized(&xq[..n]))
        .map(|(&a, b)| (f64::from(a) * b).abs())
        .sum();
    let want = (k.dot)(row, xq);
    assert_eq!(want, (k.dot)(&row[..n * k.bb], &xq[..n]));
    let got = (k.avx_dot)(row, xq);
    let err = f64::from(got - want).abs();
    assert!(err <= 2e-5 * mag, "{n} blocks: {got} vs {want}");
}

/// AVX2 `axpy` against the scalar one, and `y` past the common whole blocks untouched.
#[cfg(target_arch = "x86_64")]
fn check_axpy(k: &Q5Fns, row: &[u8], h: f32, y0: &[f32]) {
    let n = (row.len() / k.bb).min(y0.len() / QK);
    let w = k.decoded(&row[..n * k.bb]);
    let (mut want, mut got) = (y0.to_vec(), y0.to_vec());
    (k.axpy)(row, h, &mut want);
    (k.avx_axpy)(row, h, &mut got);
    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
        if i < n * QK {
            // The two sum `y + h·d·q (+ h·m)` in different orders: relative to the
            // largest of the terms.
            let m = k.m_at.map_or(0.0, |at| f16_at(&row[i / QK * k.bb..], at));
            let big = y0[i].abs() + (h * w[i]).abs() + 2.0 * (h * m).abs();
            assert!(
                (g - e).abs() <= 2e-5 * big,
                "{n} blocks, value {i}: {g} vs {e}"
            );
        } else {
            assert_eq!(g.to_bits(), y0[i].to_bits(), "value {i} past the blocks");
        }
    }
}
