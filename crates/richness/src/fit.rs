//! Scaling-exponent fits: least-squares lines in log–log space.
//!
//! For widths n_i and measured values y_i (seed means), fit
//! `ln y = intercept + slope · ln n` by ordinary least squares and report the slope's
//! standard error `se = √(s² / Σ(ln n_i − mean)²)` with `s² = RSS/(k−2)`, and its
//! 95% interval `slope ± t_{0.975, k−2} · se` (Student t; k = number of widths).
//!
//! ```
//! use richness::fit::fit_loglog;
//! let n = [256.0, 512.0, 1024.0, 2048.0];
//! let y: Vec<f64> = n.iter().map(|n: &f64| 3.0 * n.powf(-0.5)).collect();
//! let f = fit_loglog(&n, &y).unwrap();
//! assert!((f.slope + 0.5).abs() < 1e-12);
//! assert!(f.slope_se < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// A fitted line y = intercept + slope·x (in log space for [`fit_loglog`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope (0 with two points, which fix the line exactly).
    pub slope_se: f64,
    /// 95% confidence interval of the slope (Student t); infinite with two points.
    pub ci95: (f64, f64),
    /// Coefficient of determination.
    pub r2: f64,
    /// Number of points.
    pub points: usize,
}

impl LineFit {
    /// Whether the 95% interval of the slope contains `value`.
    pub fn ci_contains(&self, value: f64) -> bool {
        self.ci95.0 <= value && value <= self.ci95.1
    }
}

/// 0.975 quantiles of Student's t for 1…30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 0.975 quantile of Student's t with `dof` degrees of freedom (normal beyond 30,
/// with the first-order correction).
pub fn t975(dof: usize) -> f64 {
    match dof {
        0 => f64::INFINITY,
        1..=30 => T975[dof - 1],
        _ => 1.959_964 + 2.372 / dof as f64,
    }
}

/// P(|T| ≤ t) for Student's t with `dof` degrees of freedom, from the closed forms
/// for integer degrees of freedom (Abramowitz & Stegun 26.7.3–4): with
/// θ = atan(t/√ν), odd ν: (2/π)(θ + sin θ (cos θ + ⅔cos³θ + … )), even ν:
/// sin θ (1 + ½cos²θ + ⅜cos⁴θ + …), the series up to cos^{ν−2}θ.
pub fn t_central_prob(t: f64, dof: usize) -> f64 {
    if dof == 0 || t.is_nan() {
        return f64::NAN;
    }
    let t = t.abs();
    if t.is_infinite() {
        return 1.0;
    }
    let theta = (t / (dof as f64).sqrt()).atan();
    let (s, c) = theta.sin_cos();
    let c2 = c * c;
    if dof % 2 == 1 {
        // Odd: the terms c, (2/3)c³, (2·4)/(3·5)c⁵, … up to c^{ν−2}.
        let mut sum = 0.0;
        if dof > 1 {
            let mut term = c;
            sum = term;
            let mut k = 1;
            while 2 * k + 1 < dof {
                term *= c2 * (2 * k) as f64 / (2 * k + 1) as f64;
                sum += term;
                k += 1;
            }
        }
        (2.0 / std::f64::consts::PI) * (theta + s * sum)
    } else {
        // Even: 1, ½c², (1·3)/(2·4)c⁴, … up to c^{ν−2}.
        let mut term = 1.0;
        let mut sum = 1.0;
        let mut k = 1;
        while 2 * k < dof {
            term *= c2 * (2 * k - 1) as f64 / (2 * k) as f64;
            sum += term;
            k += 1;
        }
        s * sum
    }
}

/// The half-width multiplier of a two-sided `level` interval with Student t and `dof`
/// degrees of freedom: t with P(|T| ≤ t) = level (bisection on [`t_central_prob`]).
/// At level 0.95 it is [`t975`] exactly, so a 95% interval is the same whichever
/// function computes it.
pub fn t_two_sided(level: f64, dof: usize) -> f64 {
    if (level - 0.95).abs() < 1e-12 {
        return t975(dof);
    }
    if dof == 0 || !(level > 0.0 && level < 1.0) {
        return f64::INFINITY;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while t_central_prob(hi, dof) < level {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_central_prob(mid, dof) < level {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Ordinary least squares of y on x. `None` with fewer than two points, non-finite
/// values, or constant x.
pub fn fit_line(xs: &[f64], ys: &[f64]) -> Option<LineFit> {
    let k = xs.len();
    if k < 2 || ys.len() != k || xs.iter().chain(ys).any(|v| !v.is_finite()) {
        return None;
    }
    let kf = k as f64;
    let mx = xs.iter().sum::<f64>() / kf;
    let my = ys.iter().sum::<f64>() / kf;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let rss: f64 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| (y - intercept - slope * x).powi(2))
        .sum();
    let dof = k - 2;
    let slope_se = if dof > 0 {
        (rss / dof as f64 / sxx).sqrt()
    } else {
        0.0
    };
    let half = if dof > 0 {
        t975(dof) * slope_se
    } else {
        f64::INFINITY
    };
    let r2 = if syy > 0.0 { 1.0 - rss / syy } else { 1.0 };
    Some(LineFit {
        slope,
        intercept,
        slope_se,
        ci95: (slope - half, slope + half),
        r2,
        points: k,
    })
}

/// Least squares of ln y on ln x. Points with x ≤ 0 or y ≤ 0 are an error (`None`):
/// a log–log slope of a quantity that reaches zero is not defined.
pub fn fit_loglog(xs: &[f64], ys: &[f64]) -> Option<LineFit> {
    if xs.iter().chain(ys).any(|&v| v <= 0.0) {
        return None;
    }
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    fit_line(&lx, &ly)
}

/// Log–log fit of seed means with a delete-one-seed jackknife interval.
///
/// `values[s][i]` is seed s's value at `xs[i]`. The slope is the least-squares slope
/// of ln(mean over seeds) against ln x (as [`fit_loglog`]); its standard error is the
/// jackknife one, `se² = (S−1)/S · Σ_j (slope_{−j} − mean slope_{−j})²`, where
/// slope_{−j} leaves seed j out, and the 95% interval uses Student t with S − 1
/// degrees of freedom. Seeds are the independent units, so the interval stays valid
/// when the noise is correlated across x (e.g. nested initializations across widths),
/// which the residuals of one fit cannot see. With fewer than three seeds the
/// least-squares interval is returned.
pub fn fit_loglog_jackknife(xs: &[f64], values: &[Vec<f64>]) -> Option<LineFit> {
    let per_x: Vec<Vec<f64>> = (0..xs.len())
        .map(|i| values.iter().map(|v| v[i]).collect())
        .collect();
    fit_loglog_jackknife_nested(xs, &per_x)
}

/// [`fit_loglog_jackknife`] for nested seed sets: `per_x[i]` holds the values of seeds
/// 0..S_i at `xs[i]`, and S_i may differ between points (more seeds where they are
/// cheap, e.g. at small widths). Deleting seed j removes it from every point that has
/// it; the jackknife runs over all J = max S_i seeds, and the interval uses Student t
/// with min S_i − 1 degrees of freedom. For equal S_i this is exactly
/// [`fit_loglog_jackknife`]. With unequal S_i each point's share of the variance is
/// scaled by (J−1)/J · S_i²/(S_i−1)² instead of 1 (slightly conservative), and units are
/// not identically distributed; the delete-one jackknife is still consistent for
/// smooth functions of means (Shao & Tu 1995, ch. 2).
pub fn fit_loglog_jackknife_nested(xs: &[f64], per_x: &[Vec<f64>]) -> Option<LineFit> {
    fit_loglog_jackknife_nested_at(xs, per_x, 0.95)
}

/// [`fit_loglog_jackknife_nested`] with a two-sided `level` interval instead of 95%
/// (the field is still `ci95`): a sequential design spends its error rate over several
/// looks and judges each at a higher level ([`crate::sequential`]).
pub fn fit_loglog_jackknife_nested_at(
    xs: &[f64],
    per_x: &[Vec<f64>],
    level: f64,
) -> Option<LineFit> {
    if per_x.len() != xs.len() || per_x.iter().any(|v| v.is_empty()) {
        return None;
    }
    let mean_at = |skip: Option<usize>| -> Vec<f64> {
        per_x
            .iter()
            .map(|v| {
                let (sum, n) = v
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| Some(*j) != skip)
                    .fold((0.0, 0usize), |(a, n), (_, x)| (a + x, n + 1));
                sum / n as f64
            })
            .collect()
    };
    let full = fit_loglog(xs, &mean_at(None))?;
    let s_min = per_x.iter().map(|v| v.len()).min().unwrap_or(0);
    let s_max = per_x.iter().map(|v| v.len()).max().unwrap_or(0);
    // Too few seeds for a jackknife: the least-squares interval, at `level`.
    let at_level = |f: LineFit| {
        if (level - 0.95).abs() < 1e-12 || f.points < 3 {
            return f;
        }
        let half = t_two_sided(level, f.points - 2) * f.slope_se;
        LineFit {
            ci95: (f.slope - half, f.slope + half),
            ..f
        }
    };
    if s_min < 3 {
        return Some(at_level(full));
    }
    let slopes: Vec<f64> = (0..s_max)
        .filter_map(|j| fit_loglog(xs, &mean_at(Some(j))).map(|f| f.slope))
        .collect();
    if slopes.len() != s_max {
        return Some(at_level(full));
    }
    let s = s_max as f64;
    let m = slopes.iter().sum::<f64>() / s;
    let se = ((s - 1.0) / s * slopes.iter().map(|x| (x - m).powi(2)).sum::<f64>()).sqrt();
    let half = t_two_sided(level, s_min - 1) * se;
    Some(LineFit {
        slope_se: se,
        ci95: (full.slope - half, full.slope + half),
        ..full
    })
}

/// Mean and (sample) standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_standard_error_matches_a_hand_computation() {
        // x = 0,1,2,3; y = 0,1,1,3: slope = 0.9, intercept = -0.1, RSS = 0.7,
        // s² = 0.35, Sxx = 5, se = sqrt(0.07).
        let f = fit_line(&[0.0, 1.0, 2.0, 3.0], &[0.0, 1.0, 1.0, 3.0]).unwrap();
        assert!((f.slope - 0.9).abs() < 1e-12);
        assert!((f.intercept + 0.1).abs() < 1e-12);
        assert!((f.slope_se - 0.07f64.sqrt()).abs() < 1e-12);
        assert!((f.ci95.1 - (0.9 + 4.303 * 0.07f64.sqrt())).abs() < 1e-9);
        assert!((f.r2 - (1.0 - 0.7 / 4.75)).abs() < 1e-12);
    }

    #[test]
    fn jackknife_interval_matches_a_direct_leave_one_out() {
        let xs = [1.0, 2.0, 4.0, 8.0];
        let values: Vec<Vec<f64>> = (0..5)
            .map(|s| {
                xs.iter()
                    .map(|x: &f64| x.powf(0.5) * (1.0 + 0.1 * ((s * 7 + (*x as usize)) % 5) as f64))
                    .collect()
            })
            .collect();
        let f = fit_loglog_jackknife(&xs, &values).unwrap();
        // By hand: the five leave-one-out slopes.
        let loo: Vec<f64> = (0..5)
            .map(|j| {
                let means: Vec<f64> = (0..4)
                    .map(|i| {
                        values
                            .iter()
                            .enumerate()
                            .filter(|(s, _)| *s != j)
                            .map(|(_, v)| v[i])
                            .sum::<f64>()
                            / 4.0
                    })
                    .collect();
                fit_loglog(&xs, &means).unwrap().slope
            })
            .collect();
        let m = loo.iter().sum::<f64>() / 5.0;
        let se = (0.8 * loo.iter().map(|x| (x - m).powi(2)).sum::<f64>()).sqrt();
        assert!((f.slope_se - se).abs() < 1e-12);
        assert!((f.ci95.1 - f.slope - 2.776 * se).abs() < 1e-9);
        assert!((f.slope - 0.5).abs() < 0.1);
    }

    #[test]
    fn nested_jackknife_equals_the_balanced_one_and_uses_extra_seeds() {
        let xs = [1.0, 2.0, 4.0, 8.0];
        let value = |s: usize, x: f64| {
            x.powf(0.3) * (1.0 + 0.2 * (((s * 13 + x as usize * 7) % 11) as f64 / 11.0 - 0.5))
        };
        let balanced: Vec<Vec<f64>> = (0..6)
            .map(|s| xs.iter().map(|&x| value(s, x)).collect())
            .collect();
        let a = fit_loglog_jackknife(&xs, &balanced).unwrap();
        let per_x: Vec<Vec<f64>> = xs
            .iter()
            .map(|&x| (0..6).map(|s| value(s, x)).collect())
            .collect();
        assert_eq!(a, fit_loglog_jackknife_nested(&xs, &per_x).unwrap());
        // 24 seeds at the first two points, 6 at the others: a narrower interval, the
        // t quantile of 5 degrees of freedom, and the slope of the seed means.
        let more: Vec<Vec<f64>> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                (0..if i < 2 { 24 } else { 6 })
                    .map(|s| value(s, x))
                    .collect()
            })
            .collect();
        let b = fit_loglog_jackknife_nested(&xs, &more).unwrap();
        let means: Vec<f64> = more
            .iter()
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
            .collect();
        assert!((b.slope - fit_loglog(&xs, &means).unwrap().slope).abs() < 1e-15);
        assert!((b.ci95.1 - b.slope - t975(5) * b.slope_se).abs() < 1e-12);
        assert!(b.slope_se < a.slope_se, "{} vs {}", b.slope_se, a.slope_se);
    }

    #[test]
    fn t_quantiles_match_the_table_and_known_values() {
        // The closed forms give back the 97.5% table at every tabulated dof.
        for dof in 1..=30 {
            let p = t_central_prob(t975(dof), dof);
            assert!((p - 0.95).abs() < 2e-4, "dof {dof}: {p}");
        }
        // Published two-sided 99% quantiles (t_{0.995}): 63.657, 9.925, 4.604, 3.169
        // (dof 10), 2.750 (dof 30); Cauchy: tan(π/2 · level).
        for (dof, t) in [
            (1, 63.657),
            (2, 9.925),
            (4, 4.604),
            (10, 3.169),
            (30, 2.750),
        ] {
            assert!((t_two_sided(0.99, dof) - t).abs() < 2e-3, "dof {dof}");
        }
        let cauchy = (std::f64::consts::FRAC_PI_2 * 0.9).tan();
        assert!((t_two_sided(0.9, 1) - cauchy).abs() < 1e-9);
        assert_eq!(t_two_sided(0.95, 7), t975(7));
        // Large dof: the normal quantile 2.5758 of 99% plus its first-order t correction (z³ + z)/(4ν).
        assert!(
            (t_two_sided(0.99, 2000) - (2.5758 + (2.5758f64.powi(3) + 2.5758) / 8000.0)).abs()
                < 1e-3
        );
    }

    #[test]
    fn a_higher_level_widens_the_jackknife_interval_by_the_quantile_ratio() {
        let xs = [1.0, 2.0, 4.0, 8.0];
        let per_x: Vec<Vec<f64>> = xs
            .iter()
            .map(|&x: &f64| {
                (0..6)
                    .map(|s| x.powf(0.3) * (1.0 + 0.05 * ((s * 5 + x as usize) % 7) as f64))
                    .collect()
            })
            .collect();
        let a = fit_loglog_jackknife_nested(&xs, &per_x).unwrap();
        let b = fit_loglog_jackknife_nested_at(&xs, &per_x, 0.99).unwrap();
        assert_eq!(a.slope, b.slope);
        let ratio = (b.ci95.1 - b.slope) / (a.ci95.1 - a.slope);
        assert!(
            (ratio - t_two_sided(0.99, 5) / t975(5)).abs() < 1e-12,
            "{ratio}"
        );
    }

    #[test]
    fn degenerate_inputs_give_none() {
        assert!(fit_line(&[1.0], &[1.0]).is_none());
        assert!(fit_line(&[1.0, 1.0], &[1.0, 2.0]).is_none());
        assert!(fit_loglog(&[1.0, 2.0], &[0.0, 1.0]).is_none());
        assert!(fit_loglog(&[1.0, 2.0], &[f64::NAN, 1.0]).is_none());
    }
}
