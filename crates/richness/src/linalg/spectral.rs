//! Spectral norms by Lanczos iteration on AᵀA.
//!
//! ‖A‖_op = √λ_max(AᵀA). We run the symmetric Lanczos process on AᵀA (the same
//! Krylov space as Golub–Kahan bidiagonalization of A) with full
//! reorthogonalization, and take √ of the largest eigenvalue of the small
//! tridiagonal matrix (Sturm-sequence bisection) as the estimate. It increases
//! monotonically to ‖A‖_op; we stop when it changes by less than `tol` (relative) on
//! two consecutive steps, or when the Krylov space is exhausted (an exact answer,
//! e.g. for low-rank updates). AᵀA·v is computed in a single pass over a row-major A
//! (each row's dot product with v, then an axpy with the same row), so each step
//! reads the matrix once: O(k·m·n) time, O(k·n) memory.
//!
//! ```
//! use richness::linalg::spectral::op_norm;
//! use richness::tensor::Mat;
//! let a = Mat::from_vec(2, 2, vec![3.0f64, 0.0, 0.0, -4.0]);
//! assert!((op_norm(&a, 1e-12, 0).value - 4.0).abs() < 1e-9);
//! ```

use crate::tensor::{Mat, Scalar};
use rand::Rng as _;

/// A converged spectral-norm estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpNorm {
    pub value: f64,
    /// Lanczos steps taken.
    pub steps: usize,
    /// Whether the stopping rule was met (false only when `max_steps` ran out).
    pub converged: bool,
}

/// How the method is described in reports.
pub const METHOD: &str = "Lanczos iteration on AᵀA with full reorthogonalization, stopped when the estimate of σ_max changes < 1e-7 relative on two consecutive steps (or the Krylov space is exhausted)";

/// Default relative tolerance used by the probes.
pub const TOL: f64 = 1e-7;

/// ‖A‖_op of a dense matrix, to relative tolerance `tol`; `seed` picks the start vector.
pub fn op_norm<T: Scalar>(a: &Mat<T>, tol: f64, seed: u64) -> OpNorm {
    op_norm_gram(
        a.cols(),
        a.rows().min(a.cols()),
        |v, out| gram_matvec(a, v, out),
        tol,
        seed,
    )
}

/// ‖A‖_op given the product `out = AᵀA v` of an n-column matrix of rank at most `rank`.
pub fn op_norm_gram(
    n: usize,
    rank: usize,
    mut ata: impl FnMut(&[f64], &mut [f64]),
    tol: f64,
    seed: u64,
) -> OpNorm {
    if n == 0 || rank == 0 {
        return OpNorm {
            value: 0.0,
            steps: 0,
            converged: true,
        };
    }
    // One step more than the rank: the start vector may have a null-space component.
    let max_steps = (rank + 1).min(n).min(400);
    let mut rng = crate::rng::stream(seed, "lanczos", 0);
    let mut v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
    normalize(&mut v);
    let mut basis: Vec<Vec<f64>> = vec![v.clone()];
    let (mut diag, mut off): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut w = vec![0.0; n];
    let (mut est, mut stable) = (0.0f64, 0);
    for step in 1..=max_steps {
        ata(&v, &mut w);
        let alpha: f64 = w.iter().zip(&v).map(|(a, b)| a * b).sum();
        diag.push(alpha);
        reorthogonalize(&mut w, &basis);
        let lam = tridiagonal_max(&diag, &off).max(0.0);
        let new = lam.sqrt();
        if (new - est).abs() <= tol * new {
            stable += 1;
        } else {
            stable = 0;
        }
        est = new;
        let beta = norm(&w);
        if stable >= 2 || beta <= f64::EPSILON * lam.max(f64::MIN_POSITIVE) * 1e3 {
            return OpNorm {
                value: est,
                steps: step,
                converged: true,
            };
        }
        off.push(beta);
        w.iter_mut().for_each(|x| *x /= beta);
        v.copy_from_slice(&w);
        basis.push(v.clone());
    }
    OpNorm {
        value: est,
        steps: max_steps,
        converged: max_steps >= n,
    }
}

/// `out = AᵀA v` in one pass over the rows of a row-major A, accumulated in f64.
///
/// Four rows at a time: their dot products with v share one read of v, and their
/// axpys into `out` one read and write of `out` (a row-at-a-time pass moved v and
/// out, each twice A's row in f32, through the cache for every row). Compiled for
/// AVX2 with fused multiply-adds where the CPU has them: 0.85 s → 0.40 s for a
/// 4096² f32 matrix (76 steps, `cargo run --release --example prof_opnorm -p richness`).
pub fn gram_matvec<T: Scalar>(a: &Mat<T>, v: &[f64], out: &mut [f64]) {
    if crate::simd::fused_multiply_add() {
        crate::simd::vectorized(
            #[inline(always)]
            || gram_matvec_rows::<T, true>(a, v, out),
        )
    } else {
        gram_matvec_rows::<T, false>(a, v, out)
    }
}

/// `acc + x·y`, fused when `FMA`.
#[inline(always)]
fn madd<const FMA: bool>(x: f64, y: f64, acc: f64) -> f64 {
    if FMA {
        x.mul_add(y, acc)
    } else {
        acc + x * y
    }
}

#[inline(always)]
fn gram_matvec_rows<T: Scalar, const FMA: bool>(a: &Mat<T>, v: &[f64], out: &mut [f64]) {
    const ROWS: usize = 4;
    out.iter_mut().for_each(|x| *x = 0.0);
    let n = a.cols();
    if n == 0 {
        return;
    }
    let data = a.as_slice();
    let mut blocks = data.chunks_exact(ROWS * n);
    for block in &mut blocks {
        let (r0, rest) = block.split_at(n);
        let (r1, rest) = rest.split_at(n);
        let (r2, r3) = rest.split_at(n);
        let y = dot4::<T, FMA>(r0, r1, r2, r3, v);
        for ((((o, &a0), &a1), &a2), &a3) in out.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            let s = madd::<FMA>(y[0], a0.f64(), *o);
            let s = madd::<FMA>(y[1], a1.f64(), s);
            let s = madd::<FMA>(y[2], a2.f64(), s);
            *o = madd::<FMA>(y[3], a3.f64(), s);
        }
    }
    for row in blocks.remainder().chunks_exact(n) {
        let y = dot_lanes(row, v);
        out.iter_mut()
            .zip(row)
            .for_each(|(o, &x)| *o += y * x.f64());
    }
}

/// The dot products of four rows with v, each over four interleaved partial sums.
#[inline(always)]
fn dot4<T: Scalar, const FMA: bool>(r0: &[T], r1: &[T], r2: &[T], r3: &[T], v: &[f64]) -> [f64; 4] {
    const LANES: usize = 4;
    let mut acc = [[0.0f64; LANES]; 4];
    let chunks = r0
        .chunks_exact(LANES)
        .zip(r1.chunks_exact(LANES))
        .zip(r2.chunks_exact(LANES))
        .zip(r3.chunks_exact(LANES))
        .zip(v.chunks_exact(LANES));
    for ((((c0, c1), c2), c3), vc) in chunks {
        for k in 0..LANES {
            acc[0][k] = madd::<FMA>(c0[k].f64(), vc[k], acc[0][k]);
            acc[1][k] = madd::<FMA>(c1[k].f64(), vc[k], acc[1][k]);
            acc[2][k] = madd::<FMA>(c2[k].f64(), vc[k], acc[2][k]);
            acc[3][k] = madd::<FMA>(c3[k].f64(), vc[k], acc[3][k]);
        }
    }
    let body = v.len() - v.len() % LANES;
    let mut y = [0.0; 4];
    for (i, r) in [r0, r1, r2, r3].iter().enumerate() {
        y[i] = acc[i].iter().sum::<f64>()
            + r[body..]
                .iter()
                .zip(&v[body..])
                .map(|(&x, &w)| x.f64() * w)
                .sum::<f64>();
    }
    y
}

/// Σ xᵢ vᵢ in f64 over eight interleaved partial sums: a single running sum is one
/// dependent addition per element (which the compiler may not reorder), eight let
/// the loop run at the speed of the loads (1.6× faster spectral norms).
#[inline(always)]
pub fn dot_lanes<T: Scalar>(x: &[T], v: &[f64]) -> f64 {
    const LANES: usize = 8;
    let n = x.len().min(v.len());
    let (xa, xb) = x[..n].split_at(n - n % LANES);
    let (va, vb) = v[..n].split_at(n - n % LANES);
    let mut acc = [0.0f64; LANES];
    for (xc, vc) in xa.chunks_exact(LANES).zip(va.chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += xc[k].f64() * vc[k];
        }
    }
    let tail: f64 = xb.iter().zip(vb).map(|(&x, &v)| x.f64() * v).sum();
    acc.iter().sum::<f64>() + tail
}

/// Two passes of classical Gram–Schmidt against `basis` (orthonormal vectors).
fn reorthogonalize(x: &mut [f64], basis: &[Vec<f64>]) {
    crate::simd::vectorized(
        #[inline(always)]
        || {
            for _ in 0..2 {
                for b in basis {
                    let c = dot_lanes(x, b);
                    axpy(-c, b, x);
                }
            }
        },
    )
}

#[inline(always)]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn normalize(x: &mut [f64]) {
    let n = norm(x);
    x.iter_mut().for_each(|v| *v /= n);
}

/// Largest eigenvalue of the symmetric tridiagonal matrix with diagonal `diag` and
/// off-diagonal `off` (length k−1 or more; extra entries ignored), by bisection on
/// Sturm counts.
fn tridiagonal_max(diag: &[f64], off: &[f64]) -> f64 {
    let k = diag.len();
    let e = |i: usize| off[i]; // coupling between i and i+1
    let mut hi: f64 = (0..k)
        .map(|i| {
            diag[i]
                + if i > 0 { e(i - 1).abs() } else { 0.0 }
                + if i + 1 < k { e(i).abs() } else { 0.0 }
        })
        .fold(f64::NEG_INFINITY, f64::max);
    let mut lo: f64 = (0..k)
        .map(|i| {
            diag[i]
                - if i > 0 { e(i - 1).abs() } else { 0.0 }
                - if i + 1 < k { e(i).abs() } else { 0.0 }
        })
        .fold(f64::INFINITY, f64::min);
    // Number of eigenvalues below x (signs of the LDLᵀ pivots).
    let count_below = |x: f64| {
        let mut c = 0;
        let mut d = 1.0;
        for (i, &di) in diag.iter().enumerate().take(k) {
            d = di - x - if i > 0 { e(i - 1).powi(2) / d } else { 0.0 };
            if d == 0.0 {
                d = -f64::EPSILON * (di.abs() + x.abs()).max(f64::MIN_POSITIVE);
            }
            if d < 0.0 {
                c += 1;
            }
        }
        c
    };
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if count_below(mid) < k {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::normal_vec;

    fn exact(a: &Mat<f64>) -> f64 {
        let m = faer::Mat::<f64>::from_fn(a.rows(), a.cols(), |i, j| a[(i, j)]);
        m.singular_values().unwrap().into_iter().fold(0.0, f64::max)
    }

    #[test]
    fn matches_a_dense_svd_on_square_tall_wide_and_low_rank_matrices() {
        for (m, n, rank) in [
            (60, 60, 60),
            (120, 30, 30),
            (20, 90, 20),
            (80, 80, 3),
            (1, 50, 1),
            (50, 1, 1),
        ] {
            let u = normal_vec(1, "u", m as u64, m * rank, 1.0);
            let v = normal_vec(2, "v", n as u64, rank * n, 1.0);
            let a = Mat::from_fn(m, n, |i, j| {
                (0..rank).map(|r| u[i * rank + r] * v[r * n + j]).sum()
            });
            let est = op_norm(&a, 1e-12, 7);
            let want = exact(&a);
            assert!(est.converged);
            assert!(
                (est.value - want).abs() <= 1e-8 * want,
                "{m}x{n} rank {rank}: {} vs {want}",
                est.value
            );
        }
        assert_eq!(op_norm(&Mat::<f64>::zeros(5, 4), 1e-9, 0).value, 0.0);
    }

    #[test]
    fn f32_matrices_are_measured_in_f64() {
        let a = Mat::from_vec(3, 2, vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let want = exact(&a.cast());
        assert!((op_norm(&a, 1e-12, 1).value - want).abs() < 1e-6 * want);
    }
}
