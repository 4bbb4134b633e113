//! Single-threaded f32 matrix products for training, through `matrixmultiply`.
//!
//! Why single-threaded: training runs one layer per rayon task (30 independent
//! problems), which keeps every core busy without nested parallelism and makes results
//! independent of the thread count.

/// A row-major matrix or the transpose of one, as strides over a slice.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose.
    pub fn t(self) -> View<'a> {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// `c = a·b + beta·c` with `c` row-major `a.rows × b.cols`.
///
/// Panics when the operands do not fit their views: every call site passes buffers it
/// sized itself, so a mismatch is a bug here, never bad input.
pub(crate) fn gemm(a: View, b: View, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions");
    let fits = |v: &View| {
        v.rows == 0 || v.cols == 0 || (v.rows - 1) * v.rs + (v.cols - 1) * v.cs < v.data.len()
    };
    assert!(
        fits(&a) && fits(&b),
        "gemm: operand views exceed their buffers"
    );
    assert!(c.len() >= m * n, "gemm: output buffer too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|v| *v *= beta);
        return;
    }
    // SAFETY: the asserts above check that every element the views address lies inside
    // its slice (largest offset (rows-1)·rs + (cols-1)·cs) and that `c` holds the m × n
    // row-major output; `c` is a unique borrow, so it aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_products_in_every_orientation() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![1.0; m * n];
        gemm(View::new(&a, m, k), View::new(&b, k, n), 0.5, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>() + 0.5;
                assert!((c[i * n + j] - want).abs() < 1e-5);
            }
        }
        // (bᵀ·aᵀ) = (a·b)ᵀ through transposed views.
        let mut ct = vec![0.0; n * m];
        gemm(
            View::new(&b, k, n).t(),
            View::new(&a, m, k).t(),
            0.0,
            &mut ct,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((ct[j * m + i] - (c[i * n + j] - 0.5)).abs() < 1e-5);
            }
        }
    }
}
