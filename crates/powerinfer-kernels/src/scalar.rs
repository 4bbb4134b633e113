//! Scalar row kernels: the definition of correct for every SIMD level.
//!
//! Each function handles one weight row; callers guarantee `row` holds exactly the
//! values that `x`/`y` describe (checked once at the safe API boundary).

use half::{bf16, f16};

use crate::WType;
use crate::blocks::{QK, f16_at};
use crate::q8::Act;

/// `row · x` for every type; quantized types use `x.q` (integer dot per block).
pub(crate) fn dot(wtype: WType, row: &[u8], x: &Act) -> f32 {
    match wtype {
        WType::F32 => row
            .chunks_exact(4)
            .zip(x.f)
            .map(|(c, v)| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * v)
            .sum(),
        WType::F16 => row
            .chunks_exact(2)
            .zip(x.f)
            .map(|(c, v)| f16::from_le_bytes([c[0], c[1]]).to_f32() * v)
            .sum(),
        WType::BF16 => row
            .chunks_exact(2)
            .zip(x.f)
            .map(|(c, v)| bf16::from_le_bytes([c[0], c[1]]).to_f32() * v)
            .sum(),
        WType::Q8_0 => row
            .chunks_exact(34)
            .zip(x.q)
            .map(|(b, xb)| {
                let s: i32 = b[2..34]
                    .iter()
                    .zip(&xb.qs)
                    .map(|(&w, &x)| (w as i8) as i32 * x as i32)
                    .sum();
                f16_at(b, 0) * xb.d * s as f32
            })
            .sum(),
        WType::Q4_0 | WType::Q4_1 => {
            let bb = wtype.block_bytes();
            row.chunks_exact(bb)
                .zip(x.q)
                .map(|(b, xb)| {
                    let qs = &b[bb - 16..];
                    let s: i32 = (0..16)
                        .map(|j| {
                            (qs[j] & 0x0F) as i32 * xb.qs[j] as i32
                                + (qs[j] >> 4) as i32 * xb.qs[j + 16] as i32
                        })
                        .sum();
                    let d = f16_at(b, 0) * xb.d;
                    if wtype == WType::Q4_0 {
                        d * (s - 8 * xb.sum) as f32
                    } else {
                        d * s as f32 + f16_at(b, 2) * xb.d * xb.sum as f32
                    }
                })
                .sum()
        }
    }
}

/// `y += h · row` for every type.
pub(crate) fn axpy(wtype: WType, row: &[u8], h: f32, y: &mut [f32]) {
    match wtype {
        WType::F32 => {
            for (o, c) in y.iter_mut().zip(row.chunks_exact(4)) {
                *o += h * f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        WType::F16 => {
            for (o, c) in y.iter_mut().zip(row.chunks_exact(2)) {
                *o += h * f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        WType::BF16 => {
            for (o, c) in y.iter_mut().zip(row.chunks_exact(2)) {
                *o += h * bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        WType::Q8_0 => {
            for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(34)) {
                let hd = h * f16_at(b, 0);
                for (v, &q) in o.iter_mut().zip(&b[2..34]) {
                    *v += hd * (q as i8) as f32;
                }
            }
        }
        WType::Q4_0 | WType::Q4_1 => {
            let bb = wtype.block_bytes();
            for (o, b) in y.chunks_exact_mut(QK).zip(row.chunks_exact(bb)) {
                let hd = h * f16_at(b, 0);
                // Q4_0: d·(q − 8); Q4_1: d·q + m.
                let hm = if wtype == WType::Q4_0 {
                    -8.0 * hd
                } else {
                    h * f16_at(b, 2)
                };
                for (j, &q) in b[bb - 16..].iter().enumerate() {
                    o[j] += hd * (q & 0x0F) as f32 + hm;
                    o[j + 16] += hd * (q >> 4) as f32 + hm;
                }
            }
        }
    }
}

/// One block run of the [`crate::ColQ4`] axpy: `y_j += d_j·Σ_r h_r·q_rj + m_j·s`, per 32
/// outputs (`rows[r]` holds 16 code bytes per 32 outputs, ggml nibble order; `d`, `m`
/// are f16 bits). The reference the SIMD versions are tested against.
pub(crate) fn colq4_block(rows: &[&[u8]], h: &[f32], s: f32, d: &[u16], m: &[u16], y: &mut [f32]) {
    let n = rows
        .iter()
        .map(|r| r.len() * 2)
        .fold(y.len().min(d.len()).min(m.len()), usize::min);
    for (g, ys) in y[..n].chunks_mut(32).enumerate() {
        let mut t = [0f32; 32];
        for (row, &hr) in rows.iter().zip(h) {
            let qs = &row[g * 16..];
            for (k, tk) in t.iter_mut().enumerate().take(ys.len()) {
                let code = if k < 16 {
                    qs[k % 16] & 0x0F
                } else {
                    qs[k % 16] >> 4
                };
                *tk += hr * f32::from(code);
            }
        }
        for (k, yv) in ys.iter_mut().enumerate() {
            let dj = half::f16::from_bits(d[g * 32 + k]).to_f32();
            let mj = half::f16::from_bits(m[g * 32 + k]).to_f32();
            *yv += dj * t[k] + mj * s;
        }
    }
}
