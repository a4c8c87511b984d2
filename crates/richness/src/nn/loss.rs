//! Losses and metrics.
//!
//! - `mse`: mean squared error averaged over batch × outputs, PyTorch's
//!   `mse_loss` convention: L = Σ (f − y)² / (B·k), ∂L/∂f = 2(f − y)/(B·k).
//! - `cross-entropy`: softmax cross-entropy averaged over the batch, against
//!   one-hot (or probability) rows: L = −(1/B) Σ y·log softmax(f), ∂L/∂f = (softmax(f) − y)/B.
//!
//! ```
//! use richness::nn::Loss;
//! let mut g = [0.0f64; 2];
//! let l = Loss::Mse.value_and_grad(&[1.0, 3.0], &[0.0, 1.0], 1, 2, Some(&mut g));
//! assert_eq!(l, 2.5);
//! assert_eq!(g, [1.0, 2.0]);
//! ```

use crate::tensor::Scalar;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    #[default]
    Mse,
    CrossEntropy,
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "cross-entropy",
        }
    }

    /// Mean loss over `batch` rows of `k` outputs; writes ∂L/∂f into `grad` when
    /// given. Accumulates in f64.
    pub fn value_and_grad<T: Scalar>(
        self,
        f: &[T],
        y: &[T],
        batch: usize,
        k: usize,
        grad: Option<&mut [T]>,
    ) -> f64 {
        let n = batch * k;
        assert!(f.len() >= n && y.len() >= n);
        match self {
            Loss::Mse => {
                let scale = 1.0 / n as f64;
                let loss: f64 = f[..n]
                    .iter()
                    .zip(&y[..n])
                    .map(|(&f, &y)| (f.f64() - y.f64()).powi(2))
                    .sum::<f64>()
                    * scale;
                if let Some(g) = grad {
                    let s = T::of(2.0 * scale);
                    g[..n]
                        .iter_mut()
                        .zip(f.iter().zip(y))
                        .for_each(|(g, (&f, &y))| *g = s * (f - y));
                }
                loss
            }
            Loss::CrossEntropy => {
                let mut total = 0.0;
                let mut grad = grad;
                for b in 0..batch {
                    let row = &f[b * k..(b + 1) * k];
                    let yr = &y[b * k..(b + 1) * k];
                    let max = row
                        .iter()
                        .map(|v| v.f64())
                        .fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = row.iter().map(|v| (v.f64() - max).exp()).sum();
                    let logz = max + z.ln();
                    total -= row
                        .iter()
                        .zip(yr)
                        .map(|(&f, &y)| y.f64() * (f.f64() - logz))
                        .sum::<f64>();
                    if let Some(g) = grad.as_deref_mut() {
                        for j in 0..k {
                            let p = (row[j].f64() - logz).exp();
                            g[b * k + j] = T::of((p - yr[j].f64()) / batch as f64);
                        }
                    }
                }
                total / batch as f64
            }
        }
    }
}

impl FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mse" => Ok(Loss::Mse),
            "cross-entropy" | "ce" | "xent" => Ok(Loss::CrossEntropy),
            _ => Err(format!(
                "unknown loss `{s}` (expected mse or cross-entropy)"
            )),
        }
    }
}

/// Mean softmax cross-entropy of `rows` = `targets.len()` rows of `k` logits against
/// integer targets (next-token prediction: a one-hot target without the dense
/// [rows, k] one-hot matrix): L = −(1/rows) Σ_r log softmax(f_r)[y_r], and
/// ∂L/∂f_r = (softmax(f_r) − e_{y_r})/rows into `grad` when given. In f64.
///
/// ```
/// use richness::nn::loss::token_cross_entropy;
/// let l = token_cross_entropy(&[0.0f64, 0.0, 5.0, 5.0], &[1, 0], 2, None);
/// assert!((l - 2f64.ln()).abs() < 1e-15);
/// ```
pub fn token_cross_entropy<T: Scalar>(
    f: &[T],
    targets: &[u32],
    k: usize,
    mut grad: Option<&mut [T]>,
) -> f64 {
    let rows = targets.len();
    assert!(f.len() >= rows * k, "token_cross_entropy: logits too short");
    let mut total = 0.0;
    for (r, &y) in targets.iter().enumerate() {
        let row = &f[r * k..(r + 1) * k];
        let max = row
            .iter()
            .map(|v| v.f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|v| (v.f64() - max).exp()).sum();
        let logz = max + z.ln();
        total -= row[y as usize].f64() - logz;
        if let Some(g) = grad.as_deref_mut() {
            for j in 0..k {
                let p = (row[j].f64() - logz).exp();
                let hit = if j == y as usize { 1.0 } else { 0.0 };
                g[r * k + j] = T::of((p - hit) / rows as f64);
            }
        }
    }
    total / rows.max(1) as f64
}

/// Fraction of rows whose largest output is at the largest target entry (one-hot
/// targets; ties go to the first index).
pub fn accuracy<T: Scalar>(f: &[T], y: &[T], batch: usize, k: usize) -> f64 {
    if batch == 0 {
        return f64::NAN;
    }
    let argmax = |r: &[T]| {
        r.iter()
            .enumerate()
            .fold((0, T::neg_infinity()), |(bi, bv), (i, &v)| {
                if v > bv {
                    (i, v)
                } else {
                    (bi, bv)
                }
            })
            .0
    };
    let hits = (0..batch)
        .filter(|&b| argmax(&f[b * k..(b + 1) * k]) == argmax(&y[b * k..(b + 1) * k]))
        .count();
    hits as f64 / batch as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        let f = [0.3f64, -1.2, 2.0, 0.1, 0.0, -0.5];
        let y = [0.0f64, 0.0, 1.0, 1.0, 0.0, 0.0];
        let mut g = [0.0; 6];
        Loss::CrossEntropy.value_and_grad(&f, &y, 2, 3, Some(&mut g));
        for i in 0..6 {
            let h = 1e-6;
            let (mut fp, mut fm) = (f, f);
            fp[i] += h;
            fm[i] -= h;
            let fd = (Loss::CrossEntropy.value_and_grad(&fp, &y, 2, 3, None)
                - Loss::CrossEntropy.value_and_grad(&fm, &y, 2, 3, None))
                / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-8);
        }
    }

    #[test]
    fn accuracy_counts_argmax_hits() {
        let f = [0.1f32, 0.9, 0.8, 0.2];
        let y = [0.0f32, 1.0, 0.0, 1.0];
        assert_eq!(accuracy(&f, &y, 2, 2), 0.5);
    }
}
