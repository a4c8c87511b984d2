//! Verdicts: the one type every command uses to say whether a claim of the theory held.
//!
//! A measured exponent comes with a 95% interval [lo, hi]; the theory gives a
//! prediction p (a point, or an interval [p₁, p₂] where two finite-width terms compete,
//! docs/theory.md §6.1) and the tool a tolerance τ. The *band* is [p₁ − τ, p₂ + τ]. A claim
//! is decided only when the data could have said otherwise:
//!
//! | verdict | when |
//! |---|---|
//! | `pass` | the whole interval lies inside the band: the data exclude every slope the band rules out (the nearest alternatives p ± τ) |
//! | `fail` | the whole interval lies outside the band: the data exclude the prediction and its tolerance |
//! | `unclear` | the interval straddles an edge of the band; the verdict names the number of seeds that would shrink it enough to decide |
//! | `crossover` | the widths are not in the regime where the prediction applies (e.g. the NTK moves by more than a small fraction at the smallest width), so no exponent can be judged; the reason is given |
//! | `error` | the measurement could not be made |
//!
//! This is an equivalence test (pass) and a difference test (fail) with the same
//! tolerance, so `pass` and `fail` are both statements the data support, and a wide
//! interval around a point estimate that happens to fall inside the band is `unclear`,
//! not `pass`.
//!
//! ```
//! use richness::fit::LineFit;
//! use richness::verdict::{judge_slope, Verdict};
//! let fit = |slope: f64, half: f64| LineFit { slope, intercept: 0.0, slope_se: half / 2.0,
//!     ci95: (slope - half, slope + half), r2: 1.0, points: 5 };
//! assert_eq!(judge_slope(&fit(0.24, 0.02), 0.25, 0.05, Some(8)).verdict, Verdict::Pass);
//! assert_eq!(judge_slope(&fit(0.10, 0.02), 0.25, 0.05, Some(8)).verdict, Verdict::Fail);
//! let u = judge_slope(&fit(0.24, 0.10), 0.25, 0.05, Some(8));
//! assert_eq!(u.verdict, Verdict::Unclear);
//! assert!(u.seeds_to_decide.unwrap() > 8);
//! ```

use crate::fit::LineFit;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The outcome of judging one claim. Ordered from best to worst, so the verdict of a
/// group of claims is the maximum (see [`Verdict::worst`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Unclear,
    Crossover,
    Fail,
    Error,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Pass,
        Verdict::Unclear,
        Verdict::Crossover,
        Verdict::Fail,
        Verdict::Error,
    ];

    /// The lower-case name used in text, CSV and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Unclear => "unclear",
            Verdict::Crossover => "crossover",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }

    /// `pass` when `ok`, else `fail` (for claims that are exact, e.g. gauge equivalence
    /// to rounding).
    pub fn from_bool(ok: bool) -> Self {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// The verdict of a group: its worst member (`pass` for an empty group).
    pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts.into_iter().max().unwrap_or(Verdict::Pass)
    }

    /// Whether this verdict makes a command exit non-zero: `fail` and `error` always,
    /// `unclear` and `crossover` only under `--strict`.
    pub fn fails(self, strict: bool) -> bool {
        match self {
            Verdict::Pass => false,
            Verdict::Unclear | Verdict::Crossover => strict,
            Verdict::Fail | Verdict::Error => true,
        }
    }

    /// One sentence explaining the verdict names, for reports and `--help`.
    pub const LEGEND: &'static str = "pass: the 95% interval lies inside the tolerance band around the prediction; \
fail: it lies wholly outside the band; unclear: it straddles an edge of the band (more seeds would decide: the row says how many); \
crossover: the widths are not in the regime where the prediction applies, so no exponent can be judged (the row says why).";
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for Verdict {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.name() == s.trim())
            .ok_or_else(|| {
                crate::Error::config(format!(
                    "unknown verdict `{s}` (expected pass, unclear, crossover, fail or error)"
                ))
            })
    }
}

/// A verdict with its reason (empty for a plain pass) and, for `unclear`, an estimate
/// of the seeds that would decide it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// For `unclear` with seed-based intervals: about how many seeds would shrink the
    /// interval enough to decide (intervals shrink like 1/√seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds_to_decide: Option<usize>,
}

impl Judged {
    pub fn new(verdict: Verdict, reason: impl Into<String>) -> Self {
        Judged {
            verdict,
            reason: reason.into(),
            seeds_to_decide: None,
        }
    }

    pub fn pass() -> Self {
        Judged::new(Verdict::Pass, "")
    }

    /// A crossover: the regime precludes judging an exponent, for `reason`.
    pub fn crossover(reason: impl Into<String>) -> Self {
        Judged::new(Verdict::Crossover, reason)
    }

    /// The verdict followed by its reason in brackets, e.g. `unclear (≈ 30 seeds
    /// would decide)`.
    pub fn describe(&self) -> String {
        if self.reason.is_empty() {
            self.verdict.name().to_string()
        } else {
            format!("{} ({})", self.verdict.name(), self.reason)
        }
    }
}

impl fmt::Display for Judged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.verdict.name())
    }
}

/// Largest seed count worth suggesting; beyond it the verdict says "many".
const MAX_SUGGESTED_SEEDS: usize = 100_000;

/// Judge a slope against a point prediction with tolerance `tol` (see the module docs).
/// `seeds`: the number of independent seeds behind the interval, when it is a seed
/// interval (then an `unclear` verdict estimates how many would decide it).
pub fn judge_slope(fit: &LineFit, predicted: f64, tol: f64, seeds: Option<usize>) -> Judged {
    judge_interval(fit, (predicted, predicted), tol, seeds)
}

/// Judge a slope against an interval prediction [`lo`, `hi`] (two terms of comparable
/// size at the widths used): the band is [lo − tol, hi + tol].
pub fn judge_interval(
    fit: &LineFit,
    (lo, hi): (f64, f64),
    tol: f64,
    seeds: Option<usize>,
) -> Judged {
    let (b0, b1) = (lo.min(hi) - tol, lo.max(hi) + tol);
    judge_band(fit.slope, fit.ci95, (b0, b1), seeds)
}

/// The three-way rule on an explicit band: `pass` when `ci` ⊂ `band`, `fail` when they
/// are disjoint, else `unclear` with the seeds that would decide.
pub fn judge_band(
    estimate: f64,
    ci: (f64, f64),
    (b0, b1): (f64, f64),
    seeds: Option<usize>,
) -> Judged {
    if !(estimate.is_finite() && ci.0.is_finite() && ci.1.is_finite()) {
        if !estimate.is_finite() {
            return Judged::new(Verdict::Error, "no finite estimate");
        }
        return Judged::new(
            Verdict::Unclear,
            "no finite interval (too few widths or seeds to estimate one)",
        );
    }
    if b0 <= ci.0 && ci.1 <= b1 {
        return Judged::pass();
    }
    if ci.1 < b0 || ci.0 > b1 {
        return Judged::new(
            Verdict::Fail,
            format!(
                "95% interval [{:+.3}, {:+.3}] outside the band [{b0:+.3}, {b1:+.3}]",
                ci.0, ci.1
            ),
        );
    }
    // Unclear: how far is the estimate from the nearest edge of the band, and how
    // narrow would the interval have to be to fall on one side of it?
    let half = 0.5 * (ci.1 - ci.0);
    let inside = b0 <= estimate && estimate <= b1;
    let margin = if inside {
        (estimate - b0).min(b1 - estimate)
    } else {
        (b0 - estimate).max(estimate - b1)
    };
    let side = if inside {
        "inside the band"
    } else {
        "outside the band"
    };
    let mut judged = Judged::new(
        Verdict::Unclear,
        format!(
            "estimate {estimate:+.3} {side} [{b0:+.3}, {b1:+.3}], but its 95% interval [{:+.3}, {:+.3}] crosses an edge",
            ci.0, ci.1
        ),
    );
    if let Some(s) = seeds.filter(|&s| s >= 2) {
        // Half-widths shrink like 1/√seeds; ask for a 20% safety margin.
        let needed = if margin > 0.0 {
            (s as f64 * (1.2 * half / margin).powi(2)).ceil()
        } else {
            f64::INFINITY
        };
        if needed.is_finite() && needed <= MAX_SUGGESTED_SEEDS as f64 {
            let n = (needed as usize).max(s + 1);
            judged.seeds_to_decide = Some(n);
            judged
                .reason
                .push_str(&format!("; ≈ {n} seeds would decide"));
        } else {
            judged.reason.push_str(
                "; the estimate sits on the edge: no practical number of seeds decides it",
            );
        }
    }
    judged
}

/// Judge a one-sided claim "the slope is below `bound`" (e.g. a ratio that must vanish):
/// `pass` when the whole interval is below, `fail` when it is wholly above, else
/// `unclear`.
pub fn judge_below(fit: &LineFit, bound: f64, seeds: Option<usize>) -> Judged {
    judge_band(fit.slope, fit.ci95, (f64::NEG_INFINITY, bound), seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(slope: f64, lo: f64, hi: f64) -> LineFit {
        LineFit {
            slope,
            intercept: 0.0,
            slope_se: (hi - lo) / 4.0,
            ci95: (lo, hi),
            r2: 1.0,
            points: 5,
        }
    }

    #[test]
    fn a_wide_interval_around_a_good_estimate_is_not_a_pass() {
        // T5's old case: +0.079 [−0.098, +0.257] against 0 ± 0.1 passed on the point.
        let j = judge_slope(&fit(0.079, -0.098, 0.257), 0.0, 0.1, Some(5));
        assert_eq!(j.verdict, Verdict::Unclear);
        assert!(j.seeds_to_decide.unwrap() > 5, "{j:?}");
        assert!(j.reason.contains("seeds would decide"), "{}", j.reason);
    }

    #[test]
    fn pass_fail_unclear_by_interval_and_band() {
        assert_eq!(
            judge_slope(&fit(0.25, 0.22, 0.28), 0.25, 0.05, None).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge_slope(&fit(0.1, 0.05, 0.15), 0.25, 0.05, None).verdict,
            Verdict::Fail
        );
        // Point outside the band, interval reaching into it: unclear, not fail.
        assert_eq!(
            judge_slope(&fit(0.18, 0.12, 0.24), 0.25, 0.05, None).verdict,
            Verdict::Unclear
        );
        // Interval predictions widen the band.
        assert_eq!(
            judge_interval(&fit(-0.88, -0.95, -0.80), (-1.0, -0.75), 0.05, None).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge_interval(&fit(-0.5, -0.55, -0.45), (-1.0, -0.75), 0.05, None).verdict,
            Verdict::Fail
        );
        assert_eq!(
            judge_below(&fit(-0.3, -0.4, -0.2), 0.0, None).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge_below(&fit(0.3, 0.2, 0.4), 0.0, None).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn seeds_to_decide_scale_with_the_squared_interval() {
        // Margin 0.05 − 0.01 = 0.04 to the band's edge, half-width 0.08, 8 seeds:
        // 8 · (1.2 · 0.08 / 0.04)² = 46.08 → 47.
        let j = judge_slope(&fit(0.26, 0.18, 0.34), 0.25, 0.05, Some(8));
        assert_eq!(j.seeds_to_decide, Some(47));
    }

    #[test]
    fn non_finite_inputs_never_pass() {
        let j = judge_slope(
            &fit(0.25, f64::NEG_INFINITY, f64::INFINITY),
            0.25,
            0.05,
            None,
        );
        assert_eq!(j.verdict, Verdict::Unclear);
        let j = judge_slope(&fit(f64::NAN, 0.0, 1.0), 0.25, 0.05, None);
        assert_eq!(j.verdict, Verdict::Error);
    }

    #[test]
    fn worst_orders_and_json_names() {
        assert_eq!(
            Verdict::worst([Verdict::Pass, Verdict::Crossover, Verdict::Unclear]),
            Verdict::Crossover
        );
        assert_eq!(Verdict::worst([]), Verdict::Pass);
        assert_eq!(
            serde_json::to_value(Verdict::Crossover).unwrap(),
            "crossover"
        );
        assert_eq!("fail".parse::<Verdict>().unwrap(), Verdict::Fail);
        assert!(!Verdict::Unclear.fails(false));
        assert!(Verdict::Unclear.fails(true));
        assert!(Verdict::Fail.fails(false));
    }
}
