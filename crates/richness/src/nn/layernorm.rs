//! Parameter-free LayerNorm over the width: `N(h) = (h − mean h)/√(var h + ε)`.
//!
//! Per example (one row of `h`, n values), with μ = Σᵢhᵢ/n, σ² = Σᵢ(hᵢ − μ)²/n (the
//! biased variance, as PyTorch's `layer_norm`) and s = 1/√(σ² + ε):
//!
//! ```text
//! N(h)  = s (h − μ)
//! ∂L/∂h = s (g − mean(g) − N(h)·mean(g ⊙ N(h)))        with g = ∂L/∂N
//! ```
//!
//! In the infinite-width limit the mean is O(n^{-1/2}) and N(h) = h/√(q + ε) with
//! q = ‖h‖²/n the example's second moment (the kernels of [`crate::kernel::infinite`]
//! use this limit). `torch.nn.functional.layer_norm(h, (n,), eps=1e-5)` without an
//! affine part computes the same map.
//!
//! ```
//! use richness::nn::layernorm::{layer_norm_forward, LAYER_NORM_EPS};
//! let h = [1.0f64, 3.0];
//! let mut out = [0.0; 2];
//! let mut inv = [0.0; 1];
//! layer_norm_forward(&h, 1, 2, &mut out, &mut inv);
//! let s = 1.0 / (1.0 + LAYER_NORM_EPS).sqrt();
//! assert!((out[0] + s).abs() < 1e-15 && (out[1] - s).abs() < 1e-15);
//! ```

use crate::tensor::Scalar;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// ε of the normalization (PyTorch's default).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// The normalization applied before a block's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// N = identity.
    #[default]
    None,
    /// Parameter-free LayerNorm over the width.
    Layer,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::None => "none",
            Norm::Layer => "layer",
        }
    }
}

impl FromStr for Norm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Norm::None),
            "layer" => Ok(Norm::Layer),
            _ => Err(format!("unknown norm `{s}` (expected none or layer)")),
        }
    }
}

/// `out = N(h)` row by row ([batch, n] each); `inv[i]` = s of row i (kept for the
/// backward pass).
pub fn layer_norm_forward<T: Scalar>(
    h: &[T],
    batch: usize,
    n: usize,
    out: &mut [T],
    inv: &mut [T],
) {
    let eps = LAYER_NORM_EPS;
    for i in 0..batch {
        let row = &h[i * n..(i + 1) * n];
        // Statistics in f64: a row's sum over thousands of f32 values loses digits.
        let mean = row.iter().map(|v| v.f64()).sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v.f64() - mean).powi(2)).sum::<f64>() / n as f64;
        let s = 1.0 / (var + eps).sqrt();
        inv[i] = T::of(s);
        let (m, s) = (T::of(mean), T::of(s));
        for (o, &v) in out[i * n..(i + 1) * n].iter_mut().zip(row) {
            *o = (v - m) * s;
        }
    }
}

/// `dh = ∂L/∂h` from `dout = ∂L/∂N`, the forward's output `out` and `inv`.
pub fn layer_norm_backward<T: Scalar>(
    out: &[T],
    inv: &[T],
    dout: &[T],
    batch: usize,
    n: usize,
    dh: &mut [T],
) {
    for i in 0..batch {
        let (o, g) = (&out[i * n..(i + 1) * n], &dout[i * n..(i + 1) * n]);
        let mean_g = g.iter().map(|v| v.f64()).sum::<f64>() / n as f64;
        let mean_gn = g.iter().zip(o).map(|(a, b)| a.f64() * b.f64()).sum::<f64>() / n as f64;
        let (mg, mgn, s) = (T::of(mean_g), T::of(mean_gn), inv[i]);
        for ((d, &gv), &ov) in dh[i * n..(i + 1) * n].iter_mut().zip(g).zip(o) {
            *d = s * (gv - mg - ov * mgn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_equals_central_differences() {
        let (b, n) = (3, 7);
        let h: Vec<f64> = (0..b * n)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let w: Vec<f64> = (0..b * n)
            .map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0)
            .collect();
        let loss = |h: &[f64]| {
            let (mut o, mut s) = (vec![0.0; b * n], vec![0.0; b]);
            layer_norm_forward(h, b, n, &mut o, &mut s);
            o.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
        };
        let (mut o, mut s) = (vec![0.0; b * n], vec![0.0; b]);
        layer_norm_forward(&h, b, n, &mut o, &mut s);
        let mut dh = vec![0.0; b * n];
        layer_norm_backward(&o, &s, &w, b, n, &mut dh);
        for i in 0..b * n {
            let (mut hp, mut hm) = (h.clone(), h.clone());
            hp[i] += 1e-6;
            hm[i] -= 1e-6;
            let fd = (loss(&hp) - loss(&hm)) / 2e-6;
            assert!((fd - dh[i]).abs() < 1e-8, "{i}: {fd} vs {}", dh[i]);
        }
    }
}
