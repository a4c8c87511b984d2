//! Scaling-exponent fits: ordinary least squares of a line, and of a power law on
//! log–log axes.
//!
//! For points (xᵢ, yᵢ), i = 1..m, [`fit_line`] returns the least-squares line
//! y = a + b·x with
//!
//! ```text
//! b = Sxy / Sxx,   a = ȳ − b·x̄,   s² = Σ (yᵢ − a − b·xᵢ)² / (m − 2),
//! se(b) = √(s² / Sxx),   95% interval b ± t₀.₉₇₅,ₘ₋₂ · se(b),   R² = 1 − SSE/Syy.
//! ```
//!
//! [`fit_loglog`] fits ln y = a + b·ln x, so `slope` is the exponent of a power law
//! y ∝ x^b (the intercept is in natural-log units). Width-scaling checks compare
//! `slope` and `ci95` with a predicted exponent.
//!
//! ```
//! use richness::fit::fit_loglog;
//! let xs = [256.0, 512.0, 1024.0, 2048.0];
//! let ys: Vec<f64> = xs.iter().map(|n: &f64| 3.0 * n.powf(-0.5)).collect();
//! let f = fit_loglog(&xs, &ys);
//! assert!((f.slope + 0.5).abs() < 1e-12 && f.slope_se < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// A least-squares line y = intercept + slope·x with its uncertainty.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope (NaN with fewer than 3 points).
    pub slope_se: f64,
    /// 95% confidence interval of the slope (Student t with m − 2 degrees of freedom).
    pub ci95: (f64, f64),
    /// Coefficient of determination.
    pub r2: f64,
    /// Number of points.
    pub n: usize,
}

impl LineFit {
    /// Whether the 95% interval contains `value`.
    pub fn ci_contains(&self, value: f64) -> bool {
        self.ci95.0 <= value && value <= self.ci95.1
    }
}

/// Least-squares line through (xs, ys). Panics if the lengths differ; needs at
/// least two distinct x values for a finite slope.
pub fn fit_line(xs: &[f64], ys: &[f64]) -> LineFit {
    assert_eq!(xs.len(), ys.len(), "fit_line: {} x values, {} y values", xs.len(), ys.len());
    let m = xs.len();
    let mf = m as f64;
    let xbar = xs.iter().sum::<f64>() / mf;
    let ybar = ys.iter().sum::<f64>() / mf;
    let sxx: f64 = xs.iter().map(|x| (x - xbar).powi(2)).sum();
    let syy: f64 = ys.iter().map(|y| (y - ybar).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - xbar) * (y - ybar)).sum();
    let slope = sxy / sxx;
    let intercept = ybar - slope * xbar;
    let sse: f64 = xs.iter().zip(ys).map(|(x, y)| (y - intercept - slope * x).powi(2)).sum();
    let (slope_se, ci95) = if m > 2 {
        let se = (sse / (mf - 2.0) / sxx).sqrt();
        let t = student_t_quantile(0.975, mf - 2.0);
        (se, (slope - t * se, slope + t * se))
    } else {
        (f64::NAN, (f64::NAN, f64::NAN))
    };
    let r2 = if syy > 0.0 { 1.0 - sse / syy } else { 1.0 };
    LineFit { slope, intercept, slope_se, ci95, r2, n: m }
}

/// Power-law fit: the least-squares line through (ln x, ln y). Every value must be
/// positive (a non-positive y is a measurement that cannot be on log axes: the
/// caller should report it rather than drop it silently).
pub fn fit_loglog(xs: &[f64], ys: &[f64]) -> LineFit {
    assert!(
        xs.iter().chain(ys).all(|v| *v > 0.0 && v.is_finite()),
        "fit_loglog: every value must be positive and finite"
    );
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    fit_line(&lx, &ly)
}

/// The p-quantile of Student's t distribution with `dof` degrees of freedom
/// (p in (0, 1)), by bisection on the CDF.
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && dof > 0.0);
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, dof);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while student_t_cdf(hi, dof) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, dof) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// CDF of Student's t: for t ≥ 0, 1 − I_{ν/(ν+t²)}(ν/2, 1/2)/2.
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    let x = dof / (dof + t * t);
    let tail = 0.5 * reg_inc_beta(x, 0.5 * dof, 0.5);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Regularized incomplete beta I_x(a, b), by its continued fraction (modified
/// Lentz), using the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) where that converges faster.
fn reg_inc_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(1.0 - x, b, a) / b
    }
}

fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        // Two-sided 95% critical values from standard tables.
        for (dof, t) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (5.0, 2.570_581_836),
            (10.0, 2.228_138_852),
            (30.0, 2.042_272_456),
        ] {
            let q = student_t_quantile(0.975, dof);
            assert!((q - t).abs() < 1e-6, "dof {dof}: {q} vs {t}");
        }
        assert!((student_t_cdf(0.0, 7.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn line_fit_matches_hand_computation() {
        // x̄ = 2.5, ȳ = 2.75, Sxx = 5, Sxy = 5.5, Syy = 8.75: slope 1.1, intercept 0,
        // residuals (−0.1, 0.8, −1.3, 0.6), SSE 2.7, se = √(1.35/5), R² = 1 − 2.7/8.75.
        let f = fit_line(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 5.0]);
        assert!((f.slope - 1.1).abs() < 1e-14);
        assert!(f.intercept.abs() < 1e-14);
        assert!((f.slope_se - 0.27f64.sqrt()).abs() < 1e-14);
        assert!((f.r2 - (1.0 - 2.7 / 8.75)).abs() < 1e-14);
        let half = 4.302_652_729_911 * 0.27f64.sqrt();
        assert!((f.ci95.0 - (1.1 - half)).abs() < 1e-8 && (f.ci95.1 - (1.1 + half)).abs() < 1e-8);
        assert!(f.ci_contains(1.1) && !f.ci_contains(5.0));
    }

    #[test]
    fn loglog_is_the_line_through_logs() {
        let xs: Vec<f64> = [1.0f64, 2.0, 3.0, 4.0].iter().map(|v| v.exp()).collect();
        let ys: Vec<f64> = [1.0f64, 3.0, 2.0, 5.0].iter().map(|v| v.exp()).collect();
        let f = fit_loglog(&xs, &ys);
        assert!((f.slope - 1.1).abs() < 1e-12 && (f.slope_se - 0.27f64.sqrt()).abs() < 1e-12);
        let g = fit_loglog(&[2.0, 8.0], &[4.0, 2.0]);
        assert!((g.slope + 0.5).abs() < 1e-14 && g.slope_se.is_nan());
    }
}
