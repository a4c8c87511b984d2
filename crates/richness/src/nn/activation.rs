//! Activations with a gain: `a = c_φ · φ(z)`.
//!
//! The default gain makes a unit Gaussian keep its second moment,
//! `c_φ = 1/√E[φ(u)²]` for `u ~ N(0, 1)`: √2 for ReLU (the tutorial's choice), 1 for
//! linear, ≈ 1.5925 for tanh, ≈ 1.5335 for GELU (exact, erf-based, as PyTorch's
//! default) and √(π / (2·arcsin(2/3))) ≈ 1.4672 for erf. Any gain can be set instead.
//!
//! ```
//! use richness::nn::Activation;
//! let mut a = [0.0f64; 3];
//! Activation::Relu.forward(2.0, &[-1.0, 0.5, 2.0], &mut a);
//! assert_eq!(a, [0.0, 1.0, 4.0]);
//! ```

use crate::tensor::Scalar;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A pointwise nonlinearity φ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// φ(z) = z (the tutorial's linear network).
    Linear,
    /// φ(z) = max(z, 0).
    Relu,
    /// φ(z) = tanh z.
    Tanh,
    /// φ(z) = z·Φ(z), the exact GELU.
    Gelu,
    /// φ(z) = erf z (has closed-form infinite-width kernels).
    Erf,
}

impl Activation {
    pub const ALL: [Activation; 5] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Erf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Erf => "erf",
        }
    }

    /// 1/√E[φ(u)²], u ~ N(0,1): the gain that keeps unit-variance inputs at unit
    /// second moment. (Values checked against quadrature in the tests.)
    pub fn default_gain(self) -> f64 {
        match self {
            Activation::Linear => 1.0,
            Activation::Relu => std::f64::consts::SQRT_2,
            Activation::Tanh => 1.592_537_419_722_876_8,
            Activation::Gelu => 1.533_530_441_195_565,
            Activation::Erf => 1.467_166_950_489_138_7,
        }
    }

    /// φ(z).
    #[inline]
    pub fn phi<T: Scalar>(self, z: T) -> T {
        match self {
            Activation::Linear => z,
            Activation::Relu => {
                if z > T::zero() {
                    z
                } else {
                    T::zero()
                }
            }
            Activation::Tanh => z.tanh(),
            Activation::Gelu => {
                z * T::of(0.5) * (T::one() + (z * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf())
            }
            Activation::Erf => z.erf(),
        }
    }

    /// φ'(z). (ReLU: 0 at z = 0, as in PyTorch.)
    #[inline]
    pub fn dphi<T: Scalar>(self, z: T) -> T {
        match self {
            Activation::Linear => T::one(),
            Activation::Relu => {
                if z > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Tanh => {
                let t = z.tanh();
                T::one() - t * t
            }
            Activation::Gelu => {
                let cdf =
                    T::of(0.5) * (T::one() + (z * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = (-(z * z) * T::of(0.5)).exp() * T::of(0.398_942_280_401_432_7);
                cdf + z * pdf
            }
            Activation::Erf => (-(z * z)).exp() * T::of(std::f64::consts::FRAC_2_SQRT_PI),
        }
    }

    /// Forward: `a = gain · φ(z)` elementwise. `z` and `a` have the same length.
    pub fn forward<T: Scalar>(self, gain: T, z: &[T], a: &mut [T]) {
        assert_eq!(z.len(), a.len());
        match self {
            Activation::Linear => crate::simd::vectorized(
                #[inline(always)]
                || a.iter_mut().zip(z).for_each(|(a, &z)| *a = gain * z),
            ),
            Activation::Relu => crate::simd::vectorized(
                #[inline(always)]
                || {
                    a.iter_mut()
                        .zip(z)
                        .for_each(|(a, &z)| *a = if z > T::zero() { gain * z } else { T::zero() })
                },
            ),
            _ => a
                .iter_mut()
                .zip(z)
                .for_each(|(a, &z)| *a = gain * self.phi(z)),
        }
    }

    /// Backward: `dz = da ⊙ gain · φ'(z)` elementwise.
    pub fn backward<T: Scalar>(self, gain: T, z: &[T], da: &[T], dz: &mut [T]) {
        assert!(z.len() == da.len() && z.len() == dz.len());
        match self {
            Activation::Linear => crate::simd::vectorized(
                #[inline(always)]
                || dz.iter_mut().zip(da).for_each(|(dz, &da)| *dz = gain * da),
            ),
            Activation::Relu => crate::simd::vectorized(
                #[inline(always)]
                || {
                    dz.iter_mut()
                        .zip(da.iter().zip(z))
                        .for_each(|(dz, (&da, &z))| {
                            *dz = if z > T::zero() { gain * da } else { T::zero() }
                        })
                },
            ),
            _ => dz
                .iter_mut()
                .zip(da.iter().zip(z))
                .for_each(|(dz, (&da, &z))| *dz = gain * da * self.dphi(z)),
        }
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("unknown activation `{s}` (expected linear, relu, tanh, gelu or erf)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E[f(u)], u ~ N(0,1), by composite Simpson on [-12, 12] (independent of the
    /// Gauss–Hermite rules used for kernels).
    fn gauss_mean(f: impl Fn(f64) -> f64) -> f64 {
        let (n, l) = (200_000usize, 12.0);
        let h = 2.0 * l / n as f64;
        let mut s = 0.0;
        for i in 0..=n {
            let x = -l + i as f64 * h;
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            s += w * f(x) * (-x * x / 2.0).exp();
        }
        s * h / 3.0 / (2.0 * std::f64::consts::PI).sqrt()
    }

    #[test]
    fn default_gains_preserve_the_second_moment() {
        for act in Activation::ALL {
            let c = act.default_gain();
            let m = gauss_mean(|u| (c * act.phi(u)).powi(2));
            assert!((m - 1.0).abs() < 1e-10, "{}: E[(cφ)²] = {m}", act.name());
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for act in Activation::ALL {
            for &z in &[-2.3f64, -0.7, 0.3, 1.1, 2.9] {
                let h = 1e-6;
                let fd = (act.phi(z + h) - act.phi(z - h)) / (2.0 * h);
                assert!((fd - act.dphi(z)).abs() < 1e-8, "{} at {z}", act.name());
            }
        }
    }
}
