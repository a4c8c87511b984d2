//! Kernel regression and the closed-form training trajectory of a linearised
//! network under MSE.
//!
//! Training minimises the library's MSE, L = Σ (f − y)² / (B·k) over B training
//! points and k outputs, with rate η₀·η_ℓ per layer. Holding the tangent kernel K
//! (of [`super::empirical`] or [`super::infinite`], which already carries the η_ℓ)
//! fixed, gradient descent moves the training outputs by
//!
//! ```text
//! f_{s+1}(X) = f_s(X) − c·K(X,X)(f_s(X) − y),     c = 2η₀ / (B·k)
//! ```
//!
//! and gradient flow is df/dt = −c K (f − y) with t counted in steps. Each output
//! column evolves independently under K (for k > 1 this uses the per-output kernel
//! and ignores cross-output blocks, which vanish at infinite width). With the
//! eigendecomposition K(X,X) = V Λ Vᵀ, an optional ridge μ (the penalty
//! (μ/(B·k))·Σ_ℓ ‖θ_ℓ − θ_ℓ(0)‖²/η_ℓ of the linearised model) and m = λ + μ, any point
//! x follows
//!
//! ```text
//! f_t(x) = f₀(x) + K(x, X) · V diag(φ_t(m)) Vᵀ · (y − f₀(X))
//! φ_t(m) = (1 − e^{−c·m·t}) / m          gradient flow for time t
//!        = (1 − (1 − c·m)^s) / m          s steps of gradient descent (exact)
//!        = 1 / m                         t → ∞ (kernel (ridge) regression; modes with
//!                                        m ≤ rcond·m_max are dropped, a pseudo-inverse)
//! ```
//!
//! which on the training points (K(X,X)V = VΛ) is f_t(X) = y + V e^{−cΛt} Vᵀ(f₀ − y)
//! for μ = 0 (theory.md §5). f₀ is the network at init ("uncentred"); a *centred*
//! network f − f₀ has f₀ = 0 (`None`).
//!
//! ```
//! use richness::kernel::regression::{Horizon, LinearisedMse};
//! use richness::linalg::Compute;
//! use richness::tensor::Mat;
//! let cx = Compute::new(1);
//! let k = Mat::from_vec(2, 2, vec![2.0, 1.0, 1.0, 2.0]);
//! let y = Mat::from_vec(2, 1, vec![1.0, -1.0]);
//! let lin = LinearisedMse::new(&k, &y, None, 0.5, 0.0).unwrap();
//! // t → ∞ interpolates the training targets.
//! let f = lin.predict_train(&cx, Horizon::Infinity);
//! assert!((f[(0, 0)] - 1.0).abs() < 1e-12 && (f[(1, 0)] + 1.0).abs() < 1e-12);
//! ```

use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::tensor::Mat;
use faer::Side;

/// Eigendecomposition of a symmetric matrix: eigenvalues in *descending* order and
/// the eigenvectors as the columns of V (row-major [n, n]). The matrix is
/// symmetrised first ((K + Kᵀ)/2), so rounding asymmetry does no harm.
pub fn eigh(k: &Mat<f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let n = k.rows();
    if k.cols() != n {
        return Err(Error::Shape(format!(
            "eigendecomposition needs a square matrix, got {}x{}",
            n,
            k.cols()
        )));
    }
    if let Some(i) = k.as_slice().iter().position(|v| !v.is_finite()) {
        return Err(Error::config(format!(
            "kernel matrix has a non-finite entry at [{}, {}]",
            i / n.max(1),
            i % n.max(1)
        )));
    }
    // The symmetrised copy, the eigenvectors and faer's workspace.
    crate::budget::ensure(
        || format!("the eigendecomposition of a {n} x {n} kernel"),
        crate::budget::product(&[n, n, 3], 8),
    )?;
    let m = faer::Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (k[(i, j)] + k[(j, i)]));
    let evd = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::config(format!("eigendecomposition failed: {e:?}")))?;
    let s = evd.S().column_vector();
    let u = evd.U();
    // faer sorts ascending; we want descending.
    let vals: Vec<f64> = (0..n).rev().map(|i| s[i]).collect();
    let vecs = Mat::from_fn(n, n, |i, c| u[(i, n - 1 - c)]);
    Ok((vals, vecs))
}

/// Eigenvalues of a symmetric matrix, descending.
pub fn eigenvalues(k: &Mat<f64>) -> Result<Vec<f64>> {
    let n = k.rows();
    if k.cols() != n {
        return Err(Error::Shape(format!(
            "eigenvalues need a square matrix, got {}x{}",
            n,
            k.cols()
        )));
    }
    if let Some(i) = k.as_slice().iter().position(|v| !v.is_finite()) {
        return Err(Error::config(format!(
            "kernel matrix has a non-finite entry at [{}, {}]",
            i / n.max(1),
            i % n.max(1)
        )));
    }
    // The symmetrised copy, the eigenvectors and faer's workspace.
    crate::budget::ensure(
        || format!("the eigendecomposition of a {n} x {n} kernel"),
        crate::budget::product(&[n, n, 3], 8),
    )?;
    let m = faer::Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (k[(i, j)] + k[(j, i)]));
    let mut v = m
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| Error::config(format!("eigendecomposition failed: {e:?}")))?;
    v.reverse();
    Ok(v)
}

/// How long the linearised network trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Horizon {
    /// Gradient flow for time t (in steps of rate η₀).
    Time(f64),
    /// s steps of full-batch gradient descent, exactly.
    Steps(usize),
    /// Converged: kernel (ridge) regression.
    Infinity,
}

/// A linearised network trained on (X, y) with MSE: the train kernel's
/// eigendecomposition and the projected initial residual.
#[derive(Clone, Debug)]
pub struct LinearisedMse {
    /// Eigenvalues of K(X,X), descending.
    pub eigenvalues: Vec<f64>,
    /// Eigenvectors (columns), [B, B].
    pub eigenvectors: Mat<f64>,
    /// Vᵀ(y − f₀(X)), [B, k].
    proj: Mat<f64>,
    /// f₀(X) (zeros when centred), [B, k].
    f0: Mat<f64>,
    /// c = 2η₀/(B·k).
    pub rate: f64,
    pub ridge: f64,
    /// Relative cutoff of the pseudo-inverse at t = ∞ (default 1e-12).
    pub rcond: f64,
}

impl LinearisedMse {
    /// From the train kernel K(X,X) [B, B], targets y [B, k], initial outputs f₀(X)
    /// (`None`: a centred network, f₀ = 0), base rate η₀ and ridge μ ≥ 0.
    pub fn new(
        k_train: &Mat<f64>,
        y: &Mat<f64>,
        f0: Option<&Mat<f64>>,
        base_lr: f64,
        ridge: f64,
    ) -> Result<Self> {
        let b = k_train.rows();
        if k_train.cols() != b || y.rows() != b {
            return Err(Error::Shape(format!(
                "train kernel is {}x{} but there are {} targets",
                k_train.rows(),
                k_train.cols(),
                y.rows()
            )));
        }
        if let Some(f0) = f0 {
            if f0.shape() != y.shape() {
                return Err(Error::Shape(format!(
                    "f0 is {:?}, targets are {:?}",
                    f0.shape(),
                    y.shape()
                )));
            }
        }
        if !ridge.is_finite() || ridge < 0.0 || !base_lr.is_finite() || base_lr < 0.0 {
            return Err(Error::config(
                "ridge and base rate must be non-negative numbers",
            ));
        }
        // A kernel is symmetric and positive semi-definite; anything else (a file of
        // the wrong thing, a test kernel given as the train kernel) gives predictions
        // that mean nothing, so it is refused rather than symmetrised silently.
        let scale = k_train
            .as_slice()
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..b {
            for j in 0..i {
                let (a, c) = (k_train[(i, j)], k_train[(j, i)]);
                if (a - c).abs() > 1e-8 * scale {
                    return Err(Error::config(format!(
                        "the train kernel is not symmetric: K[{i}, {j}] = {a:e} but K[{j}, {i}] = {c:e}"
                    )));
                }
            }
        }
        let (eigenvalues, eigenvectors) = eigh(k_train)?;
        let (top, bottom) = (
            eigenvalues.first().copied().unwrap_or(0.0),
            eigenvalues.last().copied().unwrap_or(0.0),
        );
        if bottom < -1e-6 * top.abs().max(scale) {
            return Err(Error::config(format!(
                "the train kernel is not positive semi-definite: smallest eigenvalue {bottom:e} (largest {top:e})"
            )));
        }
        let f0 = f0
            .cloned()
            .unwrap_or_else(|| Mat::zeros(y.rows(), y.cols()));
        let mut resid = y.clone();
        resid
            .as_mut_slice()
            .iter_mut()
            .zip(f0.as_slice())
            .for_each(|(r, f)| *r -= f);
        let mut proj = Mat::zeros(b, y.cols());
        Compute::new(1).matmul(
            proj.view_mut(),
            eigenvectors.view().t(),
            resid.view(),
            1.0,
            0.0,
        );
        let rate = 2.0 * base_lr / (b * y.cols().max(1)) as f64;
        Ok(LinearisedMse {
            eigenvalues,
            eigenvectors,
            proj,
            f0,
            rate,
            ridge,
            rcond: 1e-12,
        })
    }

    /// Refuse a horizon whose dynamics diverge: `s` steps of gradient descent at rate
    /// c are stable only while c·(λ_max + μ) < 2 (the residual along the top
    /// eigenvector is multiplied by 1 − c·(λ_max + μ) every step).
    pub fn check_stable(&self, horizon: Horizon) -> Result<()> {
        if let Horizon::Steps(_) = horizon {
            let top = self.eigenvalues.first().copied().unwrap_or(0.0) + self.ridge;
            let cm = self.rate * top;
            if cm >= 2.0 {
                return Err(Error::config(format!(
                    "the rate is unstable: c·(λ_max + ridge) = {cm:.4e} ≥ 2, so gradient descent diverges (lower the rate by more than a factor {:.4})",
                    cm / 2.0
                )));
            }
        }
        Ok(())
    }

    /// φ(m) of the module docs for every eigenvalue.
    pub fn filter(&self, horizon: Horizon) -> Vec<f64> {
        let c = self.rate;
        let mmax = self
            .eigenvalues
            .iter()
            .fold(0.0f64, |a, &l| a.max(l + self.ridge));
        self.eigenvalues
            .iter()
            .map(|&l| {
                let m = l + self.ridge;
                match horizon {
                    Horizon::Infinity => {
                        if m > self.rcond * mmax {
                            1.0 / m
                        } else {
                            0.0
                        }
                    }
                    Horizon::Time(t) => {
                        if m.abs() * c * t < 1e-300 {
                            c * t
                        } else {
                            -(-c * m * t).exp_m1() / m
                        }
                    }
                    Horizon::Steps(s) => {
                        let cm = c * m;
                        if cm == 0.0 {
                            c * s as f64
                        } else if cm > -1.0 && cm < 1.0 {
                            // 1 − (1 − cm)^s without cancellation.
                            -((s as f64) * (-cm).ln_1p()).exp_m1() / m
                        } else {
                            (1.0 - (1.0 - cm).powf(s as f64)) / m
                        }
                    }
                }
            })
            .collect()
    }

    /// Coefficients V diag(φ) Vᵀ (y − f₀(X)), [B, k]: predictions are f₀(x) + K(x, X)·coef.
    pub fn coefficients(&self, cx: &Compute, horizon: Horizon) -> Mat<f64> {
        let phi = self.filter(horizon);
        let mut scaled = self.proj.clone();
        let k = scaled.cols();
        for (i, p) in phi.iter().enumerate() {
            scaled.row_mut(i).iter_mut().for_each(|v| *v *= p);
        }
        let mut coef = Mat::zeros(self.proj.rows(), k);
        cx.matmul(
            coef.view_mut(),
            self.eigenvectors.view(),
            scaled.view(),
            1.0,
            0.0,
        );
        coef
    }

    /// f_t on the training points: f₀ + V diag(λφ) Vᵀ (y − f₀), [B, k].
    pub fn predict_train(&self, cx: &Compute, horizon: Horizon) -> Mat<f64> {
        let phi = self.filter(horizon);
        let mut scaled = self.proj.clone();
        for (i, (p, l)) in phi.iter().zip(&self.eigenvalues).enumerate() {
            scaled.row_mut(i).iter_mut().for_each(|v| *v *= p * l);
        }
        let mut out = self.f0.clone();
        cx.matmul(
            out.view_mut(),
            self.eigenvectors.view(),
            scaled.view(),
            1.0,
            1.0,
        );
        out
    }

    /// f_t at new points from K(x, X) [N, B] and f₀(x) [N, k] (`None`: centred), [N, k].
    pub fn predict(
        &self,
        cx: &Compute,
        k_cross: &Mat<f64>,
        f0_test: Option<&Mat<f64>>,
        horizon: Horizon,
    ) -> Result<Mat<f64>> {
        let b = self.proj.rows();
        let k = self.proj.cols();
        if k_cross.cols() != b {
            return Err(Error::Shape(format!(
                "cross kernel has {} columns, there are {b} training points",
                k_cross.cols()
            )));
        }
        let mut out = match f0_test {
            Some(f) if f.shape() != (k_cross.rows(), k) => {
                return Err(Error::Shape(format!(
                    "f0 at the test points is {:?}, expected {:?}",
                    f.shape(),
                    (k_cross.rows(), k)
                )))
            }
            Some(f) => f.clone(),
            None => Mat::zeros(k_cross.rows(), k),
        };
        let coef = self.coefficients(cx, horizon);
        cx.matmul(out.view_mut(), k_cross.view(), coef.view(), 1.0, 1.0);
        Ok(out)
    }
}
