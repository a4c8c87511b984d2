//! Matrix products behind one narrow interface.
//!
//! Every matrix product in training, probes and kernels goes through
//! [`Compute::matmul`], which computes, BLAS-style,
//!
//! ```text
//! C ← α · op(A) · op(B) + β · C        (op = identity or transpose, via strides)
//! ```
//!
//! Two backends sit behind it: the pure-Rust [`gemm`] crate (the default; nothing to
//! install) and, with the `openblas` cargo feature, the system OpenBLAS
//! (`libopenblas-dev` on Debian). Keeping the interface this small is deliberate:
//! it is where an accelerator backend will plug in.
//!
//! ```
//! use richness::linalg::Compute;
//! use richness::tensor::{Mat, MatRef};
//! let cx = Compute::new(1);
//! let a = Mat::from_vec(2, 2, vec![1.0f64, 2.0, 3.0, 4.0]);
//! let mut c = Mat::<f64>::zeros(2, 2);
//! // C = Aᵀ·A
//! cx.matmul(c.view_mut(), a.view().t(), a.view(), 1.0, 0.0);
//! assert_eq!(c.as_slice(), &[10.0, 14.0, 14.0, 20.0]);
//! ```

pub mod spectral;

use crate::tensor::{MatMut, MatRef, Scalar};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which library multiplies the matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The pure-Rust `gemm` crate.
    #[default]
    Gemm,
    /// The system OpenBLAS (only with the `openblas` feature).
    Openblas,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gemm" => Ok(Backend::Gemm),
            "openblas" if cfg!(feature = "openblas") => Ok(Backend::Openblas),
            "openblas" => Err("backend `openblas` needs a build with `--features openblas`".into()),
            _ => Err(format!("unknown backend `{s}` (expected gemm or openblas)")),
        }
    }
}

/// How to compute: thread count and matrix-product backend.
///
/// A `Compute` is cheap to copy; it does not own threads. Products with
/// `threads > 1` run on the current rayon pool (the command-line tool sizes the
/// global pool from `--threads`).
#[derive(Clone, Copy, Debug)]
pub struct Compute {
    pub threads: usize,
    pub backend: Backend,
}

/// Below this many elements, elementwise loops stay on one thread.
const PAR_MIN: usize = 1 << 15;

impl Compute {
    /// `threads` worker threads (at least 1), default backend.
    pub fn new(threads: usize) -> Self {
        Compute {
            threads: threads.max(1),
            backend: Backend::default(),
        }
    }

    /// Same, with an explicit backend.
    pub fn with_backend(threads: usize, backend: Backend) -> Self {
        Compute {
            threads: threads.max(1),
            backend,
        }
    }

    /// `C ← alpha · A · B + beta · C`. With `beta == 0`, `C` is not read (so stale
    /// NaNs in it cannot leak into the result).
    ///
    /// Panics on inconsistent shapes: callers own the shapes, so a mismatch is a bug.
    pub fn matmul<T: Scalar>(
        &self,
        c: MatMut<'_, T>,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        alpha: T,
        beta: T,
    ) {
        assert_eq!(
            a.cols, b.rows,
            "matmul: inner dimensions {}x{} · {}x{}",
            a.rows, a.cols, b.rows, b.cols
        );
        assert_eq!(
            (c.rows, c.cols),
            (a.rows, b.cols),
            "matmul: destination shape"
        );
        check_extent(&a);
        check_extent(&b);
        let (m, n, k) = (a.rows, b.cols, a.cols);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            scale_in_place(c.data, beta);
            return;
        }
        match self.backend {
            #[cfg(feature = "openblas")]
            Backend::Openblas => {
                if openblas::matmul(self.threads, c.data, m, n, k, a, b, alpha, beta) {
                    return;
                }
                self.gemm_crate(c, a, b, alpha, beta)
            }
            _ => self.gemm_crate(c, a, b, alpha, beta),
        }
    }

    fn gemm_crate<T: Scalar>(
        &self,
        c: MatMut<'_, T>,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        alpha: T,
        beta: T,
    ) {
        let par = if self.threads > 1 {
            gemm::Parallelism::Rayon(self.threads)
        } else {
            gemm::Parallelism::None
        };
        let read_dst = beta != T::zero();
        // SAFETY: the extents of `a` and `b` were checked against their slices, and
        // `c` is a contiguous row-major `m × n` slice that we hold mutably.
        unsafe {
            gemm::gemm(
                a.rows,
                b.cols,
                a.cols,
                c.data.as_mut_ptr(),
                1,
                c.cols as isize,
                read_dst,
                a.data.as_ptr(),
                a.cs as isize,
                a.rs as isize,
                b.data.as_ptr(),
                b.cs as isize,
                b.rs as isize,
                beta,
                alpha,
                false,
                false,
                false,
                par,
            )
        }
    }

    /// Apply `f` to each element of `dst` paired with the same element of `src`,
    /// in parallel chunks when large. Elementwise, so the result does not depend on
    /// the thread count.
    pub fn zip_apply<T: Scalar>(&self, dst: &mut [T], src: &[T], f: impl Fn(&mut T, T) + Sync) {
        assert_eq!(dst.len(), src.len());
        if self.threads > 1 && dst.len() >= PAR_MIN {
            dst.par_chunks_mut(PAR_MIN)
                .zip(src.par_chunks(PAR_MIN))
                .for_each(|(d, s)| {
                    d.iter_mut().zip(s).for_each(|(d, &s)| f(d, s));
                });
        } else {
            dst.iter_mut().zip(src).for_each(|(d, &s)| f(d, s));
        }
    }

    /// Like [`zip_apply`](Self::zip_apply) with two destinations and one source.
    pub fn zip3_apply<T: Scalar>(
        &self,
        d1: &mut [T],
        d2: &mut [T],
        src: &[T],
        f: impl Fn(&mut T, &mut T, T) + Sync,
    ) {
        assert_eq!(d1.len(), src.len());
        assert_eq!(d2.len(), src.len());
        if self.threads > 1 && d1.len() >= PAR_MIN {
            d1.par_chunks_mut(PAR_MIN)
                .zip(d2.par_chunks_mut(PAR_MIN))
                .zip(src.par_chunks(PAR_MIN))
                .for_each(|((a, b), s)| {
                    for i in 0..a.len() {
                        f(&mut a[i], &mut b[i], s[i]);
                    }
                });
        } else {
            for i in 0..d1.len() {
                f(&mut d1[i], &mut d2[i], src[i]);
            }
        }
    }

    /// Like [`zip_apply`](Self::zip_apply) with three destinations and one source.
    pub fn zip4_apply<T: Scalar>(
        &self,
        d1: &mut [T],
        d2: &mut [T],
        d3: &mut [T],
        src: &[T],
        f: impl Fn(&mut T, &mut T, &mut T, T) + Sync,
    ) {
        assert!(d1.len() == src.len() && d2.len() == src.len() && d3.len() == src.len());
        if self.threads > 1 && d1.len() >= PAR_MIN {
            d1.par_chunks_mut(PAR_MIN)
                .zip(d2.par_chunks_mut(PAR_MIN))
                .zip(d3.par_chunks_mut(PAR_MIN))
                .zip(src.par_chunks(PAR_MIN))
                .for_each(|(((a, b), c), s)| {
                    for i in 0..a.len() {
                        f(&mut a[i], &mut b[i], &mut c[i], s[i]);
                    }
                });
        } else {
            for i in 0..d1.len() {
                f(&mut d1[i], &mut d2[i], &mut d3[i], src[i]);
            }
        }
    }
}

fn check_extent<T>(m: &MatRef<'_, T>) {
    if m.rows > 0 && m.cols > 0 {
        let last = (m.rows - 1) * m.rs + (m.cols - 1) * m.cs;
        assert!(
            last < m.data.len(),
            "matmul: view {}x{} (strides {},{}) outruns its slice",
            m.rows,
            m.cols,
            m.rs,
            m.cs
        );
    }
}

fn scale_in_place<T: Scalar>(c: &mut [T], beta: T) {
    if beta == T::zero() {
        c.iter_mut().for_each(|x| *x = T::zero());
    } else {
        c.iter_mut().for_each(|x| *x *= beta);
    }
}

#[cfg(feature = "openblas")]
mod openblas {
    //! CBLAS bindings: just the two products we need, declared by hand rather than
    //! through a -sys crate, since OpenBLAS is the only library we link.
    use crate::tensor::{MatRef, Scalar};
    use std::any::TypeId;
    use std::os::raw::c_int;

    const ROW_MAJOR: c_int = 101;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;

    #[link(name = "openblas")]
    extern "C" {
        fn cblas_sgemm(
            layout: c_int,
            ta: c_int,
            tb: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
        fn cblas_dgemm(
            layout: c_int,
            ta: c_int,
            tb: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f64,
            a: *const f64,
            lda: c_int,
            b: *const f64,
            ldb: c_int,
            beta: f64,
            c: *mut f64,
            ldc: c_int,
        );
        fn openblas_set_num_threads(n: c_int);
    }

    /// (transpose flag, leading dimension) of a view, if BLAS can take it.
    fn layout<T>(v: &MatRef<'_, T>) -> Option<(c_int, c_int)> {
        if v.cs == 1 || v.cols == 1 {
            Some((NO_TRANS, v.rs.max(v.cols).max(1) as c_int))
        } else if v.rs == 1 || v.rows == 1 {
            Some((TRANS, v.cs.max(v.rows).max(1) as c_int))
        } else {
            None
        }
    }

    /// Returns false when the strides do not suit BLAS (the caller falls back).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul<T: Scalar>(
        threads: usize,
        c: &mut [T],
        m: usize,
        n: usize,
        k: usize,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        alpha: T,
        beta: T,
    ) -> bool {
        let (Some((ta, lda)), Some((tb, ldb))) = (layout(&a), layout(&b)) else {
            return false;
        };
        if beta == T::zero() {
            c.iter_mut().for_each(|x| *x = T::zero());
        }
        // SAFETY: shapes and extents were checked by the caller; the pointers are
        // valid for the sizes BLAS reads and writes.
        unsafe {
            openblas_set_num_threads(threads as c_int);
            if TypeId::of::<T>() == TypeId::of::<f32>() {
                cblas_sgemm(
                    ROW_MAJOR,
                    ta,
                    tb,
                    m as c_int,
                    n as c_int,
                    k as c_int,
                    alpha.f64() as f32,
                    a.data.as_ptr() as *const f32,
                    lda,
                    b.data.as_ptr() as *const f32,
                    ldb,
                    beta.f64() as f32,
                    c.as_mut_ptr() as *mut f32,
                    n as c_int,
                );
            } else {
                cblas_dgemm(
                    ROW_MAJOR,
                    ta,
                    tb,
                    m as c_int,
                    n as c_int,
                    k as c_int,
                    alpha.f64(),
                    a.data.as_ptr() as *const f64,
                    lda,
                    b.data.as_ptr() as *const f64,
                    ldb,
                    beta.f64(),
                    c.as_mut_ptr() as *mut f64,
                    n as c_int,
                );
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Mat;

    fn naive(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
        Mat::from_fn(a.rows(), b.cols(), |i, j| {
            (0..a.cols()).map(|k| a[(i, k)] * b[(k, j)]).sum()
        })
    }

    #[test]
    fn matmul_matches_naive_with_transposes_and_accumulation() {
        let a = Mat::from_fn(37, 23, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = Mat::from_fn(23, 19, |i, j| ((i * 5 + j * 2) % 13) as f64 * 0.5);
        let at = a.transposed();
        let bt = b.transposed();
        let expect = naive(&a, &b);
        for threads in [1, 2] {
            let cx = Compute::new(threads);
            for (av, bv) in [
                (a.view(), b.view()),
                (at.view().t(), b.view()),
                (a.view(), bt.view().t()),
                (at.view().t(), bt.view().t()),
            ] {
                let mut c = Mat::from_fn(37, 19, |_, _| 1.0);
                cx.matmul(c.view_mut(), av, bv, 2.0, 3.0);
                for (x, y) in c.as_slice().iter().zip(expect.as_slice()) {
                    assert!((x - (2.0 * y + 3.0)).abs() < 1e-9);
                }
                let mut c = Mat::from_fn(37, 19, |_, _| f64::NAN);
                cx.matmul(c.view_mut(), av, bv, 1.0, 0.0);
                assert_eq!(c.as_slice(), expect.as_slice());
            }
        }
    }
}
