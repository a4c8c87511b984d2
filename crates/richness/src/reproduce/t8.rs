//! Experiment T8: trained networks against their kernel predictions, across width
//! and r (experiments.md T8, theory.md §4.1 and §5).
//!
//! For each width n, richness exponent r and seed, a ReLU MLP 64 → n → … → n → 1
//! on the embedded digits (scalar target: +1 for odd digits, −1 for even; the first
//! `n_train` training and `n_test` test images) is
//!
//! 1. initialised (gauge `mup` by default, prefactor γ₀, optionally centred: with
//!    `center` the network outputs f − f₀, f₀ the output of a frozen copy at init) and
//!    its empirical NTK K₀ computed on the training and test points, together with the
//!    infinite-width NTK K∞ (the same for every n and r);
//! 2. trained by full-batch gradient descent (no momentum) for `steps` steps at base
//!    rate η₀ on the library's MSE;
//! 3. compared on the test points with the linearised network of
//!    [`crate::kernel::regression`] after exactly the same number of GD steps
//!    ([`Horizon::Steps`], so no time-discretisation error enters), using K₀
//!    ("emp") and K∞ ("inf"), both started from the network's own f₀ (f₀ = 0 when
//!    centred: the centred network starts at 0, and so does its linearisation).
//!
//! Measured per run (tidy rows `width,r,seed,quantity,value` in `t8_runs.csv`):
//!
//! | quantity | definition |
//! |---|---|
//! | `gap_emp` | ‖f_net − f_lin,K₀‖ / ‖f_lin,K₀‖ on test points |
//! | `gap_inf` | ‖f_net − f_lin,K∞‖ / ‖f_lin,K∞‖ on test points |
//! | `movement` | ‖K_T − K₀‖_F / ‖K₀‖_F on the training points |
//! | `k0_vs_inf` | ‖K₀ − K∞‖_F / ‖K∞‖_F on train ∪ test; `kernel_seeds` seeds, no training (r-independent, recorded at r = 0) |
//! | `gap_emp_rel_change`, `gap_inf_rel_change` | the gaps divided by ‖f_lin − f₀‖ instead (not fitted) |
//! | `kernel_distance`, `alignment_0`, `alignment_T` | see [`crate::kernel::movement`] (not fitted) |
//! | `train_mse_net`, `test_mse_net`, `test_mse_lin_emp`, `test_mse_lin_inf` | losses after training (not fitted) |
//! | `f0_rms`, `f0_raw_rms` | RMS test output at init as trained (0 when centred) and uncentred |
//!
//! Across seeds, per (width, r), in `t8_parts.csv` (`width,r,seeds,quantity,value`),
//! the movement D_s = K_T − K₀ and the gap g_s = f_net − f_lin,K₀ are split into a
//! *mean part* and a *fluctuation part* (theory.md §4.1: the first-order kernel change
//! averages out over inits, so the mean and the fluctuations scale differently). With
//! S seeds, D̄ the seed mean and V = Σ_s ‖D_s − D̄‖²/(S − 1) (unbiased for the
//! fluctuation's E‖D − E D‖²):
//!
//! | quantity | definition |
//! |---|---|
//! | `movement_fluct` | √V / ‖K₀‖ (‖K₀‖ averaged over seeds) |
//! | `movement_mean` | √max(‖D̄‖² − V/S, 0) / ‖K₀‖: ‖D̄‖² overestimates ‖E D‖² by the fluctuation's V/S, which is removed; 0 (and left out of the fit) when the seeds cannot resolve a mean |
//! | `movement_mean_upper` | ‖D̄‖ / ‖K₀‖, the biased (upper) estimate |
//! | `gap_emp_mean`, `gap_emp_mean_upper`, `gap_emp_fluct` | the same for g_s, relative to ‖f_lin,K₀‖ |
//! | `eps` | ε = γ₀ n^{r−1/2}, the expansion parameter of §4.1 |
//!
//! Each fitted quantity gets a log–log least-squares slope (per-run quantities over
//! all (width, seed) points; parts over widths) with a 95% interval ([`crate::fit`]),
//! judged against theory.md §4.1 ([`prediction`]) with [`crate::verdict`]'s band rule
//! and tolerance [`TOLERANCE`]:
//!
//! | quantity (r < 1/2) | terms (exponents of n) | prediction |
//! |---|---|---|
//! | `movement_mean`, `gap_emp_mean` | A ε² (2r − 1) + B/n (−1) | 2r − 1 at r = 0, else the interval [−1, 2r − 1]: the two terms' ratio changes only like n^{2r} |
//! | `movement_fluct`, `gap_emp_fluct` | γ₀ n^{r−1} (smooth φ), γ₀^{1/2} n^{r/2−3/4} (ReLU: activation flips) | a point |
//! | `movement`, `gap_emp` | mean + fluctuation | the interval spanned by all terms (ReLU r = 0: [−1, −3/4]) |
//! | `gap_inf` | ‖K₀ − K∞‖ ~ n^{−1/2} dominates | max(−1/2, 2r − 1) |
//! | `k0_vs_inf` | | −1/2 |
//!
//! The local log–log slope of a sum of positive power laws lies between their
//! exponents, so an interval is what the theory predicts where neither term is
//! negligible; the parts' own fits are the sharper claims. At r = 1/2 nothing
//! shrinks: the gaps must not fall (slope ≥ −0.1) and the movement's slope is 0;
//! the parts are not judged (the ε expansion does not apply at ε ~ 1).
//!
//! **Regime first.** The expansion holds while the kernel moves by ≪ 1. For r < 1/2,
//! if the movement at the smallest width (seed mean) exceeds [`SMALL_MOVEMENT`], every
//! training-dependent exponent at that r (movement, gaps and their parts) gets the
//! verdict `crossover`, with ε and the movement in the reason: the widths cannot
//! decide an exponent (theory.md §4.1: r = 1/4 with γ₀ = 1 moves the kernel by
//! 67–256 %). Lower γ₀ or use larger widths. `k0_vs_inf` needs no training and is
//! always judged.

use super::common::{csv_path, parse};
use super::{ClaimResult, ExperimentId, ExperimentResult, Options, Table};
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::fit::{fit_loglog, LineFit};
use crate::kernel::empirical::{empirical_ntk, NtkOptions};
use crate::kernel::infinite::InfiniteMlp;
use crate::kernel::movement::{kernel_distance, relative_change, target_alignment};
use crate::kernel::regression::{Horizon, LinearisedMse};
use crate::linalg::Compute;
use crate::nn::{Activation, Arch, Loss, Model, Trace};
use crate::optim::OptimConfig;
use crate::param::{Gauge, OptimizerKind, ScaleChoice};
use crate::report::plot::{power_line, Figure, Series};
use crate::tensor::{Dtype, Mat, Scalar};
use crate::train::Trainer;
use crate::verdict::{judge_band, judge_interval, Judged, Verdict};
use serde::{Deserialize, Serialize};
use std::path::Path;

fn one() -> f64 {
    1.0
}

/// Settings of T8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareConfig {
    pub widths: Vec<usize>,
    /// Richness exponents. Each one gets its own fits and verdicts (see the module
    /// docs); `k0_vs_inf` does not depend on r and is judged once.
    pub rs: Vec<f64>,
    pub seeds: usize,
    /// Seeds per width for `k0_vs_inf` (kernels at init only, no training: cheap, and
    /// the Frobenius error is dominated by a few random modes, so it needs many).
    pub kernel_seeds: usize,
    /// Weight layers L (L − 1 hidden layers of width n).
    pub depth: usize,
    pub n_train: usize,
    pub n_test: usize,
    /// Full-batch GD steps.
    pub steps: usize,
    /// Base rate η₀.
    pub base_lr: f64,
    pub gauge: Gauge,
    /// Training precision (kernels and predictions are f64).
    pub dtype: Dtype,
    /// The prefactor γ₀ of α = γ₀ n^r; ε = γ₀ n^{r−1/2} sets how far the kernel moves,
    /// so a smaller γ₀ brings a crossover regime back into the small-movement one.
    #[serde(default = "one")]
    pub gamma0: f64,
    /// Centre the network (train f − f₀; theory.md §4.1). The empirical NTK is
    /// unchanged; the network and its linearisation both start at 0.
    #[serde(default)]
    pub center: bool,
}

impl CompareConfig {
    /// The default: minutes on 2 cores.
    pub fn small() -> Self {
        CompareConfig {
            widths: vec![256, 512, 1024, 2048],
            rs: vec![0.0, 0.25, 0.5],
            seeds: 3,
            kernel_seeds: 24,
            depth: 3,
            n_train: 128,
            n_test: 128,
            steps: 150,
            base_lr: 0.2,
            gauge: Gauge::Mup,
            dtype: Dtype::F32,
            gamma0: 1.0,
            center: false,
        }
    }

    /// The original scale (widths 256…8192).
    pub fn full() -> Self {
        CompareConfig {
            widths: vec![256, 512, 1024, 2048, 4096, 8192],
            seeds: 5,
            kernel_seeds: 32,
            n_train: 500,
            n_test: 250,
            steps: 200,
            ..Self::small()
        }
    }

    fn validate(&self) -> Result<()> {
        if crate::probe::check::distinct(&self.widths) < 2 || self.widths.contains(&0) {
            return Err(Error::config(
                "T8 needs at least two distinct positive widths to fit a slope",
            ));
        }
        if self.rs.is_empty()
            || self.seeds == 0
            || self.kernel_seeds == 0
            || self.depth < 2
            || self.n_train < 2
            || self.n_test < 1
        {
            return Err(Error::config(
                "T8 needs r values, at least one seed, depth ≥ 2, ≥ 2 training and ≥ 1 test points",
            ));
        }
        if let Some(r) = self.rs.iter().find(|r| !r.is_finite()) {
            return Err(Error::config(format!("r must be a finite number, got {r}")));
        }
        use crate::counts;
        counts::SEEDS.check(self.seeds)?;
        counts::SEEDS.check_named("kernel_seeds", self.kernel_seeds)?;
        counts::DEPTH.check(self.depth)?;
        counts::POINTS.check_named("train points", self.n_train)?;
        counts::POINTS.check_named("test points", self.n_test)?;
        counts::TRAIN_STEPS.check(self.steps)?;
        let runs = (self.widths.len() as u128)
            .saturating_mul(self.rs.len() as u128)
            .saturating_mul(self.seeds.max(self.kernel_seeds) as u128);
        // A run's measurements and its test predictions.
        crate::probe::check::ensure_scan_fits("T8", runs, 16 + self.n_test as u128, 64)?;
        if !(self.base_lr > 0.0 && self.base_lr.is_finite()) {
            return Err(Error::config("base rate must be positive"));
        }
        if !(self.gamma0 > 0.0 && self.gamma0.is_finite()) {
            return Err(Error::config(format!(
                "gamma0 must be a positive number, got {}",
                self.gamma0
            )));
        }
        Ok(())
    }

    /// ε = γ₀ n^{r−1/2}.
    pub fn eps(&self, width: usize, r: f64) -> f64 {
        self.gamma0 * (width as f64).powf(r - 0.5)
    }
}

/// One measurement: a row of `t8_runs.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub width: usize,
    pub r: f64,
    pub seed: u64,
    pub quantity: String,
    pub value: f64,
}

/// An across-seed quantity at one (width, r): a row of `t8_parts.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub width: usize,
    pub r: f64,
    pub seeds: usize,
    pub quantity: String,
    pub value: f64,
}

/// Half-width of the band around a predicted exponent (or interval), and how far
/// below 0 a "does not fall" slope may go.
pub const TOLERANCE: f64 = 0.1;

/// Largest kernel movement ‖K_T − K₀‖/‖K₀‖ at the smallest width for which the
/// §4.1 expansion in ε is trusted. Its terms are ε², ε⁴, …; at a movement of 0.3 the
/// next order is ~ 0.3 of the leading one and bends local slopes by about as much as
/// the tolerance, beyond it the widths sit in the crossover.
pub const SMALL_MOVEMENT: f64 = 0.3;

/// The rule of a slope that must stay ≥ −[`TOLERANCE`] rather than match a value.
pub const DOES_NOT_FALL: &str = "does not fall";
/// The rule of a point prediction.
pub const WITHIN: &str = "within 0.1";
/// The rule of an interval prediction.
pub const INTERVAL: &str = "interval ± 0.1";

/// Quantities whose exponent depends on training staying in the small-movement
/// regime (crossover when it does not).
const NEEDS_REGIME: [&str; 7] = [
    "movement",
    "movement_mean",
    "movement_fluct",
    "gap_emp",
    "gap_emp_mean",
    "gap_emp_fluct",
    "gap_inf",
];

/// What theory.md §4.1 predicts for a quantity's width exponent.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The exponent that dominates as n → ∞ (the largest term).
    pub asymptotic: f64,
    /// The exponents the finite-width slope may take: a point, or the interval
    /// between competing terms.
    pub range: (f64, f64),
    /// [`WITHIN`], [`INTERVAL`] or [`DOES_NOT_FALL`].
    pub rule: &'static str,
}

fn is_rich(r: f64) -> bool {
    r >= 0.5 - 1e-12
}

/// The fluctuation exponent of the kernel change: ReLU's activation flips give
/// n^{r/2−3/4}; a smooth φ gives n^{r−1} (theory.md §4.1).
pub fn fluctuation_exponent(act: Activation, r: f64) -> f64 {
    match act {
        Activation::Relu => 0.5 * r - 0.75,
        _ => r - 1.0,
    }
}

/// theory.md §4.1's prediction for `quantity` at r, or `None` when the quantity is not
/// judged there.
pub fn prediction(quantity: &str, r: f64, act: Activation) -> Option<Prediction> {
    let from_terms = |terms: &[f64]| {
        let lo = terms.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        Prediction {
            asymptotic: hi,
            range: (lo, hi),
            rule: if hi - lo < 1e-12 { WITHIN } else { INTERVAL },
        }
    };
    let mean = [2.0 * r - 1.0, -1.0];
    let fluct = fluctuation_exponent(act, r);
    if quantity == "k0_vs_inf" {
        return Some(from_terms(&[-0.5]));
    }
    if is_rich(r) {
        return match quantity {
            "gap_emp" | "gap_inf" => Some(Prediction {
                asymptotic: 0.0,
                range: (0.0, 0.0),
                rule: DOES_NOT_FALL,
            }),
            "movement" => Some(from_terms(&[0.0])),
            _ => None,
        };
    }
    match quantity {
        "movement_mean" | "gap_emp_mean" => Some(from_terms(&mean)),
        "movement_fluct" | "gap_emp_fluct" => Some(from_terms(&[fluct])),
        "movement" | "gap_emp" => Some(from_terms(&[mean[0], mean[1], fluct])),
        "gap_inf" => Some(from_terms(&[(2.0 * r - 1.0).max(-0.5)])),
        _ => None,
    }
}

/// The T8 verdict of a slope against its prediction, for `ntk compare` and
/// `reproduce` alike: the band rule of [`crate::verdict`] on [range ± tolerance], or
/// on [−tolerance, ∞) for [`DOES_NOT_FALL`]. `seeds`: the seeds behind the interval,
/// when more of them would narrow it.
pub fn judge(fit: &LineFit, p: &Prediction, seeds: Option<usize>) -> Judged {
    if p.rule == DOES_NOT_FALL {
        return judge_band(fit.slope, fit.ci95, (-TOLERANCE, f64::INFINITY), seeds);
    }
    judge_interval(fit, p.range, TOLERANCE, seeds)
}

/// Where the widths sit relative to the small-movement regime, at one r.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regime {
    pub width_min: usize,
    /// ε = γ₀ n^{r−1/2} at the smallest width.
    pub eps_min: f64,
    /// Seed-mean ‖K_T − K₀‖/‖K₀‖ at the smallest width.
    pub movement_min: f64,
    /// Smallest and largest seed-mean movement over the widths.
    pub movement_range: (f64, f64),
}

impl Regime {
    /// Whether the kernel moves too much at the smallest width for §4.1 to apply.
    pub fn is_crossover(&self) -> bool {
        // NaN movement (nothing measured) counts as a crossover too.
        !matches!(
            self.movement_min.partial_cmp(&SMALL_MOVEMENT),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        )
    }

    /// The reason of a crossover verdict.
    pub fn reason(&self, r: f64, widths: (usize, usize)) -> String {
        format!(
            "the kernel moves by {:.0}% at the smallest width n = {} (ε = γ₀n^(r−1/2) = {:.3} at r = {r}; {:.0}–{:.0}% over widths {}–{}), more than the {:.0}% where docs/theory.md §6.1's expansion holds: the widths are in the crossover and cannot decide an exponent (lower γ₀ or use larger widths)",
            100.0 * self.movement_min,
            self.width_min,
            self.eps_min,
            100.0 * self.movement_range.0,
            100.0 * self.movement_range.1,
            widths.0,
            widths.1,
            100.0 * SMALL_MOVEMENT
        )
    }
}

/// A fitted width exponent with its prediction and verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlopeVerdict {
    pub quantity: String,
    pub r: f64,
    pub fit: LineFit,
    /// The predicted exponent as n → ∞.
    pub predicted: f64,
    /// The predicted range at finite width (equal ends for a point prediction).
    pub predicted_range: (f64, f64),
    /// [`WITHIN`], [`INTERVAL`] or [`DOES_NOT_FALL`].
    pub rule: String,
    /// [`judge`] of the fit, or `crossover` when the regime precludes judging.
    pub verdict: Verdict,
    /// Why the verdict is not a pass (empty for a pass).
    #[serde(default)]
    pub reason: String,
    /// For `unclear`: about how many seeds would decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds_to_decide: Option<usize>,
    /// The regime at this r (absent for `k0_vs_inf`, which needs no training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regime: Option<Regime>,
    /// `verdict == pass`.
    pub pass: bool,
}

impl SlopeVerdict {
    fn new(
        quantity: &str,
        r: f64,
        fit: LineFit,
        p: &Prediction,
        judged: Judged,
        regime: Option<Regime>,
    ) -> Self {
        SlopeVerdict {
            quantity: quantity.to_string(),
            r,
            fit,
            predicted: p.asymptotic,
            predicted_range: p.range,
            rule: p.rule.to_string(),
            verdict: judged.verdict,
            reason: judged.reason,
            seeds_to_decide: judged.seeds_to_decide,
            regime,
            pass: judged.verdict == Verdict::Pass,
        }
    }

    /// The verdict with its reason.
    pub fn judged(&self) -> Judged {
        Judged {
            verdict: self.verdict,
            reason: self.reason.clone(),
            seeds_to_decide: self.seeds_to_decide,
        }
    }

    /// The prediction as text: `-0.50 ± 0.1`, `[-1.00, -0.75] ± 0.1` or `≥ -0.10 (does not fall)`.
    pub fn expected(&self) -> String {
        let (lo, hi) = self.predicted_range;
        match self.rule.as_str() {
            DOES_NOT_FALL => format!("≥ {:+.2} ({DOES_NOT_FALL})", -TOLERANCE),
            INTERVAL => format!("[{lo:+.2}, {hi:+.2}] ± {TOLERANCE}"),
            _ => format!("{lo:+.2} ± {TOLERANCE}"),
        }
    }
}

/// Everything T8 produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareReport {
    pub config: CompareConfig,
    pub measurements: Vec<Measurement>,
    /// Across-seed parts (mean, fluctuation, ε) per (width, r).
    #[serde(default)]
    pub parts: Vec<Part>,
    pub fits: Vec<SlopeVerdict>,
    pub seconds: f64,
}

impl CompareReport {
    /// Whether every verdict passed.
    pub fn all_pass(&self) -> bool {
        self.fits.iter().all(|f| f.pass)
    }

    /// The worst verdict (`pass` when nothing was fitted).
    pub fn worst(&self) -> Verdict {
        Verdict::worst(self.fits.iter().map(|f| f.verdict))
    }

    /// Mean of a quantity at (width, r) over seeds.
    pub fn mean(&self, quantity: &str, width: usize, r: f64) -> Option<f64> {
        let v = self.values(quantity, width, r);
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// An across-seed part at (width, r).
    pub fn part(&self, quantity: &str, width: usize, r: f64) -> Option<f64> {
        self.parts
            .iter()
            .find(|p| p.quantity == quantity && p.width == width && p.r == r)
            .map(|p| p.value)
    }

    /// Values of a quantity at (width, r), one per seed.
    fn values(&self, quantity: &str, width: usize, r: f64) -> Vec<f64> {
        self.measurements
            .iter()
            .filter(|m| m.quantity == quantity && m.width == width && m.r == r)
            .map(|m| m.value)
            .collect()
    }

    /// One log–log series per r of `quantity`'s seed mean against width, with a
    /// min–max band over seeds; `rs` picks the r values (k0_vs_inf lives at r = 0).
    fn width_series(&self, quantity: &str, rs: &[f64]) -> Vec<(f64, Series)> {
        let mut out = Vec::new();
        for (i, &r) in rs.iter().enumerate() {
            let (mut x, mut y, mut lo, mut hi) = (vec![], vec![], vec![], vec![]);
            for &w in &self.config.widths {
                let v: Vec<f64> = self
                    .values(quantity, w, r)
                    .into_iter()
                    .filter(|v| *v > 0.0 && v.is_finite())
                    .collect();
                if v.is_empty() {
                    continue;
                }
                x.push(w as f64);
                y.push(v.iter().sum::<f64>() / v.len() as f64);
                lo.push(v.iter().cloned().fold(f64::INFINITY, f64::min));
                hi.push(v.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
            }
            if !x.is_empty() {
                out.push((
                    r,
                    Series::new(format!("r = {r}"), x, y).band(lo, hi).color(i),
                ));
            }
        }
        out
    }

    /// The T8 figures, log–log against width with theory guides (theory.md §4.1;
    /// both ends of an interval prediction) through each series' geometric middle:
    /// `t8_gap` (network vs linearised-network test predictions), `t8_gap_inf` (vs
    /// the infinite-width kernel), `t8_movement` (‖K_T − K₀‖/‖K₀‖) and `t8_k0`
    /// (‖K₀ − K∞‖/‖K∞‖).
    pub fn figures(&self) -> Vec<(&'static str, Figure)> {
        let panels: [(&str, &str, &str, bool); 4] = [
            (
                "t8_gap",
                "gap_emp",
                "network vs linearised network (empirical NTK at init)",
                true,
            ),
            (
                "t8_gap_inf",
                "gap_inf",
                "network vs infinite-width NTK prediction",
                true,
            ),
            (
                "t8_movement",
                "movement",
                "NTK movement ‖K_T − K₀‖/‖K₀‖",
                true,
            ),
            ("t8_k0", "k0_vs_inf", "‖K₀ − K∞‖/‖K∞‖ at init", false),
        ];
        let mut figs = Vec::new();
        for (stem, q, title, per_r) in panels {
            let rs: Vec<f64> = if per_r {
                self.config.rs.clone()
            } else {
                vec![0.0]
            };
            let series = self.width_series(q, &rs);
            if series.is_empty() {
                continue;
            }
            let mut fig = Figure::loglog(title, "width n", q);
            let (x_lo, x_hi) = (
                *self.config.widths.iter().min().unwrap() as f64,
                *self.config.widths.iter().max().unwrap() as f64,
            );
            let mut guides = Vec::new();
            for (r, s) in &series {
                let Some(p) = prediction(q, *r, Activation::Relu) else {
                    continue;
                };
                let k = s.x.len() / 2;
                let mut ends = vec![p.range.0];
                if p.range.1 - p.range.0 > 1e-12 {
                    ends.push(p.range.1);
                }
                for slope in ends {
                    let label = format!("theory n^{slope:+.2}");
                    guides.push(
                        power_line(&label, x_lo, x_hi, s.x[k], s.y[k], slope)
                            .color(s.color.unwrap_or(0)),
                    );
                }
            }
            fig.series.extend(series.into_iter().map(|(_, s)| s));
            fig.series.extend(guides);
            figs.push((stem, fig));
        }
        figs
    }

    /// The tidy CSV `width,r,seed,quantity,value`.
    pub fn runs_csv(&self) -> String {
        let mut s = String::from("width,r,seed,quantity,value\n");
        for m in &self.measurements {
            s.push_str(&format!(
                "{},{},{},{},{:e}\n",
                m.width, m.r, m.seed, m.quantity, m.value
            ));
        }
        s
    }

    /// The across-seed parts as CSV `width,r,seeds,quantity,value`.
    pub fn parts_csv(&self) -> String {
        let mut s = String::from("width,r,seeds,quantity,value\n");
        for p in &self.parts {
            s.push_str(&format!(
                "{},{},{},{},{:e}\n",
                p.width, p.r, p.seeds, p.quantity, p.value
            ));
        }
        s
    }

    /// The fits as CSV: `quantity,r,slope,slope_se,ci_lo,ci_hi,r2,n,predicted,
    /// predicted_lo,predicted_hi,rule,verdict,eps_min,movement_min,reason` (the reason
    /// quoted; regime columns empty for `k0_vs_inf`).
    pub fn fits_csv(&self) -> String {
        let mut s = String::from(
            "quantity,r,slope,slope_se,ci_lo,ci_hi,r2,n,predicted,predicted_lo,predicted_hi,rule,verdict,eps_min,movement_min,reason\n",
        );
        for f in &self.fits {
            let (eps, mv) = match &f.regime {
                Some(g) => (
                    format!("{:.4}", g.eps_min),
                    format!("{:.4}", g.movement_min),
                ),
                None => (String::new(), String::new()),
            };
            s.push_str(&format!(
                "{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{},{},{},{},{},{},{},{},\"{}\"\n",
                f.quantity,
                f.r,
                f.fit.slope,
                f.fit.slope_se,
                f.fit.ci95.0,
                f.fit.ci95.1,
                f.fit.r2,
                f.fit.points,
                f.predicted,
                f.predicted_range.0,
                f.predicted_range.1,
                f.rule,
                f.verdict.name(),
                eps,
                mv,
                f.reason.replace('"', "\"\"")
            ));
        }
        s
    }
}

/// Training inputs, training targets, test inputs, test targets.
type Split = (Mat<f64>, Mat<f64>, Mat<f64>, Mat<f64>);

/// The T8 data: digits, scalar parity target ±1.
fn t8_data(cfg: &CompareConfig) -> Result<Split> {
    let split = DataSource::Digits
        .load()?
        .limit(Some(cfg.n_train), Some(cfg.n_test))?;
    let test = split
        .test
        .ok_or_else(|| Error::config("digits without a test split"))?;
    let target = |d: &crate::data::Dataset| {
        let labels = d.labels.as_ref().expect("digits have labels");
        Mat::from_vec(
            labels.len(),
            1,
            labels
                .iter()
                .map(|&l| if l % 2 == 1 { 1.0 } else { -1.0 })
                .collect(),
        )
    };
    Ok((
        split.train.x.clone(),
        target(&split.train),
        test.x.clone(),
        target(&test),
    ))
}

/// ‖a − b‖ / ‖b‖ over all entries.
fn rel_dist(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    crate::tensor::dist(a.as_slice(), b.as_slice()) / b.norm()
}

fn mse(f: &Mat<f64>, y: &Mat<f64>) -> f64 {
    crate::tensor::dist(f.as_slice(), y.as_slice()).powi(2) / f.as_slice().len() as f64
}

/// Rows `lo..hi` and columns `clo..chi` of a matrix.
fn sub(m: &Mat<f64>, lo: usize, hi: usize, clo: usize, chi: usize) -> Mat<f64> {
    Mat::from_fn(hi - lo, chi - clo, |i, j| m[(lo + i, clo + j)])
}

/// The mean and fluctuation parts of per-seed differences `diffs` (each relative to
/// the seed-mean of `norms`): (unbiased mean, upper mean, fluctuation); `None` with
/// fewer than two seeds, where no fluctuation can be estimated.
pub fn split_parts(diffs: &[Vec<f64>], norms: &[f64]) -> Option<(f64, f64, f64)> {
    let s = diffs.len();
    if s < 2 || norms.len() != s || diffs.iter().any(|d| d.len() != diffs[0].len()) {
        return None;
    }
    let len = diffs[0].len();
    let mut mean = vec![0.0; len];
    for d in diffs {
        mean.iter_mut().zip(d).for_each(|(m, v)| *m += v / s as f64);
    }
    let var = diffs
        .iter()
        .map(|d| {
            d.iter()
                .zip(&mean)
                .map(|(v, m)| (v - m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / (s - 1) as f64;
    let mean_sq: f64 = mean.iter().map(|m| m * m).sum();
    let scale = norms.iter().sum::<f64>() / s as f64;
    // E‖D̄‖² = ‖E D‖² + E‖D − E D‖²/S: remove the fluctuation's share.
    let unbiased = (mean_sq - var / s as f64).max(0.0).sqrt();
    Some((unbiased / scale, mean_sq.sqrt() / scale, var.sqrt() / scale))
}

/// What one run hands to the across-seed split.
struct RunDiffs {
    /// K_T − K₀ on the training points, and ‖K₀‖.
    dk: Vec<f64>,
    k0_norm: f64,
    /// f_net − f_lin,K₀ on the test points, and ‖f_lin,K₀‖.
    dg: Vec<f64>,
    lin_norm: f64,
}

/// Run T8. `progress` shows a bar on stderr.
pub fn run_compare(cfg: &CompareConfig, cx: &Compute, progress: bool) -> Result<CompareReport> {
    cfg.validate()?;
    let start = std::time::Instant::now();
    let (xtr, ytr, xte, yte) = t8_data(cfg)?;
    let (b, nt) = (xtr.rows(), xte.rows());
    let mut xall = Mat::<f64>::zeros(b + nt, xtr.cols());
    xall.as_mut_slice()[..b * xtr.cols()].copy_from_slice(xtr.as_slice());
    xall.as_mut_slice()[b * xtr.cols()..].copy_from_slice(xte.as_slice());
    // K∞ does not depend on n or r (on the scale): compute it once.
    let kinf_all = InfiniteMlp::on_scale(cfg.depth, Activation::Relu, 1.0, false)
        .kernels_with(cx, &xall, None)?
        .ntk;
    let kinf_tr = sub(&kinf_all, 0, b, 0, b);
    let kinf_cross = sub(&kinf_all, b, b + nt, 0, b);
    let total = (cfg.widths.len() * (cfg.rs.len() * cfg.seeds + cfg.kernel_seeds)) as u64;
    let bar = crate::progress::bar(total, "T8", progress);
    let mut measurements = Vec::new();
    let mut parts = Vec::new();
    for &width in &cfg.widths {
        // K₀ at init does not depend on r (tests/kernels.rs checks it to 1e-10), so
        // its distance to K∞ is measured once per (width, seed), recorded at r = 0.
        for seed in 0..cfg.kernel_seeds as u64 {
            let model = Model::<f64>::init(
                &t8_arch(cfg, xall.cols(), width),
                &t8_choice(cfg, 0.0),
                OptimizerKind::Sgd,
                seed,
            )?;
            let k0 = empirical_ntk(&model, cx, &xall, None, &NtkOptions::default())?.remove(0);
            measurements.push(Measurement {
                width,
                r: 0.0,
                seed,
                quantity: "k0_vs_inf".into(),
                value: rel_dist(&k0, &kinf_all),
            });
            bar.inc(1);
        }
        for &r in &cfg.rs {
            let mut diffs = Vec::new();
            for seed in 0..cfg.seeds as u64 {
                let ctx = RunCtx {
                    cfg,
                    cx,
                    xtr: &xtr,
                    ytr: &ytr,
                    xte: &xte,
                    yte: &yte,
                    xall: &xall,
                    kinf_tr: &kinf_tr,
                    kinf_cross: &kinf_cross,
                };
                let (vals, d) = match cfg.dtype {
                    Dtype::F32 => one_run::<f32>(&ctx, width, r, seed)?,
                    Dtype::F64 => one_run::<f64>(&ctx, width, r, seed)?,
                };
                for (q, v) in vals {
                    measurements.push(Measurement {
                        width,
                        r,
                        seed,
                        quantity: q.to_string(),
                        value: v,
                    });
                }
                diffs.push(d);
                bar.inc(1);
                bar.set_message(format!("n={width} r={r}"));
            }
            let mut part = |quantity: &str, value: f64| {
                parts.push(Part {
                    width,
                    r,
                    seeds: cfg.seeds,
                    quantity: quantity.to_string(),
                    value,
                })
            };
            part("eps", cfg.eps(width, r));
            let dk: Vec<Vec<f64>> = diffs.iter().map(|d| d.dk.clone()).collect();
            let kn: Vec<f64> = diffs.iter().map(|d| d.k0_norm).collect();
            if let Some((m, up, fl)) = split_parts(&dk, &kn) {
                part("movement_mean", m);
                part("movement_mean_upper", up);
                part("movement_fluct", fl);
            }
            let dg: Vec<Vec<f64>> = diffs.iter().map(|d| d.dg.clone()).collect();
            let ln: Vec<f64> = diffs.iter().map(|d| d.lin_norm).collect();
            if let Some((m, up, fl)) = split_parts(&dg, &ln) {
                part("gap_emp_mean", m);
                part("gap_emp_mean_upper", up);
                part("gap_emp_fluct", fl);
            }
        }
    }
    bar.finish_and_clear();
    let mut report = CompareReport {
        config: cfg.clone(),
        measurements,
        parts,
        fits: Vec::new(),
        seconds: 0.0,
    };
    report.fits = judge_report(&report);
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The regime at r: ε and the seed-mean movement at the smallest width, and the
/// movement's range over widths; `None` without movement measurements.
pub fn regime(report: &CompareReport, r: f64) -> Option<Regime> {
    let cfg = &report.config;
    let width_min = *cfg.widths.iter().min()?;
    let movement_min = report.mean("movement", width_min, r)?;
    let per_width: Vec<f64> = cfg
        .widths
        .iter()
        .filter_map(|&w| report.mean("movement", w, r))
        .collect();
    Some(Regime {
        width_min,
        eps_min: cfg.eps(width_min, r),
        movement_min,
        movement_range: (
            per_width.iter().cloned().fold(f64::INFINITY, f64::min),
            per_width.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        ),
    })
}

/// Fit and judge every quantity of a report's measurements and parts (theory.md
/// §4.1; see the module docs): the regime first, then the band rule.
pub fn judge_report(report: &CompareReport) -> Vec<SlopeVerdict> {
    let cfg = &report.config;
    let act = Activation::Relu;
    let widths = (
        *cfg.widths.iter().min().unwrap_or(&0),
        *cfg.widths.iter().max().unwrap_or(&0),
    );
    let per_run = ["gap_emp", "gap_inf", "movement"];
    let per_width = [
        "movement_mean",
        "movement_fluct",
        "gap_emp_mean",
        "gap_emp_fluct",
    ];
    let mut fits = Vec::new();
    let mut push = |q: &str, r: f64, pts: Vec<(f64, f64)>, seeds: Option<usize>| {
        let Some(p) = prediction(q, r, act) else {
            return;
        };
        let pts: Vec<(f64, f64)> = pts
            .into_iter()
            .filter(|(_, v)| *v > 0.0 && v.is_finite())
            .collect();
        if pts.len() < 3 {
            return;
        }
        let (xs, ys): (Vec<f64>, Vec<f64>) = pts.into_iter().unzip();
        let Some(fit) = fit_loglog(&xs, &ys) else {
            return;
        };
        let reg = (q != "k0_vs_inf").then(|| regime(report, r)).flatten();
        let judged = match &reg {
            Some(g) if !is_rich(r) && NEEDS_REGIME.contains(&q) && g.is_crossover() => {
                Judged::crossover(g.reason(r, widths))
            }
            _ => judge(&fit, &p, seeds),
        };
        fits.push(SlopeVerdict::new(q, r, fit, &p, judged, reg));
    };
    for (i, &r) in cfg.rs.iter().enumerate() {
        for q in per_run {
            let pts = report
                .measurements
                .iter()
                .filter(|m| m.quantity == q && m.r == r)
                .map(|m| (m.width as f64, m.value))
                .collect();
            push(q, r, pts, Some(cfg.seeds));
        }
        for q in per_width {
            let pts = report
                .parts
                .iter()
                .filter(|m| m.quantity == q && m.r == r)
                .map(|m| (m.width as f64, m.value))
                .collect();
            push(q, r, pts, None);
        }
        if i == 0 {
            let pts = report
                .measurements
                .iter()
                .filter(|m| m.quantity == "k0_vs_inf")
                .map(|m| (m.width as f64, m.value))
                .collect();
            push("k0_vs_inf", 0.0, pts, Some(cfg.kernel_seeds));
        }
    }
    fits
}

struct RunCtx<'a> {
    cfg: &'a CompareConfig,
    cx: &'a Compute,
    xtr: &'a Mat<f64>,
    ytr: &'a Mat<f64>,
    xte: &'a Mat<f64>,
    yte: &'a Mat<f64>,
    xall: &'a Mat<f64>,
    kinf_tr: &'a Mat<f64>,
    kinf_cross: &'a Mat<f64>,
}

fn t8_arch(cfg: &CompareConfig, n_in: usize, width: usize) -> Arch {
    let mut dims = vec![n_in];
    dims.extend(std::iter::repeat(width).take(cfg.depth - 1));
    dims.push(1);
    Arch::mlp(dims, Activation::Relu)
}

fn t8_choice(cfg: &CompareConfig, r: f64) -> ScaleChoice {
    ScaleChoice {
        richness: Some(r),
        gauge: Some(cfg.gauge),
        base_lr: cfg.base_lr,
        gamma0: cfg.gamma0,
        center: Some(cfg.center),
        ..Default::default()
    }
}

/// The network's outputs at init on (train, test) as the linearisation starts from
/// them: `None` (f₀ = 0) for a centred model, whose output f − f₀ starts at 0.
fn linearisation_start(
    centred: bool,
    f0_tr: &Mat<f64>,
    f0_te: &Mat<f64>,
) -> (Option<Mat<f64>>, Option<Mat<f64>>) {
    if centred {
        (None, None)
    } else {
        (Some(f0_tr.clone()), Some(f0_te.clone()))
    }
}

/// One (width, r, seed): returns (quantity, value) pairs and the differences the
/// across-seed split needs.
fn one_run<T: Scalar>(
    c: &RunCtx<'_>,
    width: usize,
    r: f64,
    seed: u64,
) -> Result<(Vec<(&'static str, f64)>, RunDiffs)> {
    let cfg = c.cfg;
    let cx = c.cx;
    let (b, nt) = (c.xtr.rows(), c.xte.rows());
    let model = Model::<T>::init(
        &t8_arch(cfg, c.xtr.cols(), width),
        &t8_choice(cfg, r),
        OptimizerKind::Sgd,
        seed,
    )?;
    let (xtr, ytr): (Mat<T>, Mat<T>) = (c.xtr.cast(), c.ytr.cast());
    let (xte, xall): (Mat<T>, Mat<T>) = (c.xte.cast(), c.xall.cast());
    let mut trace = Trace::new(&model, b.max(nt));
    let f0_tr: Mat<f64> = model.predict(cx, &xtr, &mut trace).cast();
    let f0_te: Mat<f64> = model.predict(cx, &xte, &mut trace).cast();
    let f0_raw_te: Mat<f64> = match &model.reference {
        Some(frozen) => frozen.predict(cx, &xte, &mut Trace::new(frozen, nt)).cast(),
        None => f0_te.clone(),
    };
    let (start_tr, start_te) = linearisation_start(model.is_centred(), &f0_tr, &f0_te);
    // K₀ on train ∪ test at once (one symmetric kernel), then its blocks.
    let k0_all = empirical_ntk(&model, cx, &xall, None, &NtkOptions::default())?.remove(0);
    let k0_tr = sub(&k0_all, 0, b, 0, b);
    let k0_cross = sub(&k0_all, b, b + nt, 0, b);
    let horizon = Horizon::Steps(cfg.steps);
    let lin_emp = LinearisedMse::new(&k0_tr, c.ytr, start_tr.as_ref(), cfg.base_lr, 0.0)?;
    let pred_emp = lin_emp.predict(cx, &k0_cross, start_te.as_ref(), horizon)?;
    let lin_inf = LinearisedMse::new(c.kinf_tr, c.ytr, start_tr.as_ref(), cfg.base_lr, 0.0)?;
    let pred_inf = lin_inf.predict(cx, c.kinf_cross, start_te.as_ref(), horizon)?;
    // Train: full-batch GD, no momentum, the library's MSE.
    let mut trainer = Trainer::new(model, &OptimConfig::sgd(0.0), *cx, Loss::Mse, b);
    let mut last = 0.0;
    for _ in 0..cfg.steps {
        last = trainer.step(xtr.as_slice(), ytr.as_slice(), b);
        if !last.is_finite() {
            break;
        }
    }
    let f_te: Mat<f64> = trainer.model.predict(cx, &xte, &mut trace).cast();
    let f_tr: Mat<f64> = trainer.model.predict(cx, &xtr, &mut trace).cast();
    let kt_tr = empirical_ntk(&trainer.model, cx, &xtr, None, &NtkOptions::default())?.remove(0);
    let change = |pred: &Mat<f64>| {
        let mut d = pred.clone();
        d.as_mut_slice()
            .iter_mut()
            .zip(f0_te.as_slice())
            .for_each(|(p, f)| *p -= f);
        crate::tensor::dist(f_te.as_slice(), pred.as_slice()) / d.norm()
    };
    let diffs = RunDiffs {
        dk: kt_tr
            .as_slice()
            .iter()
            .zip(k0_tr.as_slice())
            .map(|(t, z)| t - z)
            .collect(),
        k0_norm: k0_tr.norm(),
        dg: f_te
            .as_slice()
            .iter()
            .zip(pred_emp.as_slice())
            .map(|(f, p)| f - p)
            .collect(),
        lin_norm: pred_emp.norm(),
    };
    Ok((
        vec![
            ("gap_emp", rel_dist(&f_te, &pred_emp)),
            ("gap_inf", rel_dist(&f_te, &pred_inf)),
            ("gap_emp_rel_change", change(&pred_emp)),
            ("gap_inf_rel_change", change(&pred_inf)),
            ("movement", relative_change(&k0_tr, &kt_tr)),
            ("kernel_distance", kernel_distance(&k0_tr, &kt_tr)),
            ("alignment_0", target_alignment(&k0_tr, c.ytr)),
            ("alignment_T", target_alignment(&kt_tr, c.ytr)),
            ("train_mse_net", mse(&f_tr, c.ytr)),
            ("last_step_loss", last),
            ("test_mse_net", mse(&f_te, c.yte)),
            ("test_mse_lin_emp", mse(&pred_emp, c.yte)),
            ("test_mse_lin_inf", mse(&pred_inf, c.yte)),
            ("f0_rms", f0_te.norm() / (nt as f64).sqrt()),
            ("f0_raw_rms", f0_raw_te.norm() / (nt as f64).sqrt()),
        ],
        diffs,
    ))
}

// ---------------------------------------------------------------- the experiment

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct T8Config {
    compare: CompareConfig,
}

fn t8(cfg: &T8Config, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    let c = &cfg.compare;
    res.setup = format!(
        "ReLU MLP with {} weight layers on digits (±1 parity target), {} train / {} test points, full-batch GD {} steps at η₀ = {}, γ₀ = {}{}, widths {:?}, r ∈ {:?}, {} seeds; network test predictions against the linearised network (empirical NTK at init) and the infinite-width NTK; movement and gap split across seeds into mean and fluctuation parts, judged against docs/theory.md §6.1.",
        c.depth, c.n_train, c.n_test, c.steps, c.base_lr, c.gamma0,
        if c.center { " (centred)" } else { "" },
        c.widths, c.rs, c.seeds
    );
    let cx = Compute::new(opts.threads.max(1));
    let report = run_compare(c, &cx, opts.progress)?;
    crate::files::write_atomic(&dir.join("t8_runs.csv"), report.runs_csv().as_bytes())?;
    crate::files::write_atomic(&dir.join("t8_parts.csv"), report.parts_csv().as_bytes())?;
    crate::files::write_atomic(&dir.join("t8_fits.csv"), report.fits_csv().as_bytes())?;
    res.files.push(csv_path(res, "t8_runs.csv"));
    res.files.push(csv_path(res, "t8_parts.csv"));
    res.files.push(csv_path(res, "t8_fits.csv"));
    for &r in &c.rs {
        if let Some(g) = regime(&report, r) {
            res.notes.push(format!(
                "r = {r}: ε = γ₀n^(r−1/2) = {:.4} at n = {}, where the kernel moves by {:.1}% ({:.1}–{:.1}% over the widths); exponents are judged only below {:.0}% (docs/theory.md §6.1).",
                g.eps_min,
                g.width_min,
                100.0 * g.movement_min,
                100.0 * g.movement_range.0,
                100.0 * g.movement_range.1,
                100.0 * SMALL_MOVEMENT
            ));
        }
    }
    // An r whose widths all sit in the crossover gets one claim, the crossover
    // measurement (below); its per-quantity fits go to a detail table.
    let crossed: Vec<f64> = c
        .rs
        .iter()
        .copied()
        .filter(|&r| {
            let fits: Vec<&SlopeVerdict> = report
                .fits
                .iter()
                .filter(|f| f.r == r && NEEDS_REGIME.contains(&f.quantity.as_str()))
                .collect();
            !fits.is_empty() && fits.iter().all(|f| f.verdict == Verdict::Crossover)
        })
        .collect();
    let fixed = format!(
        "fixed design: {} seeds ({} for K₀ at init); T8 runs no sequential rounds",
        c.seeds, c.kernel_seeds
    );
    for f in &report.fits {
        if crossed.contains(&f.r) {
            continue;
        }
        let what = match f.quantity.as_str() {
            "gap_emp" => "network vs linearised network",
            "gap_inf" => "network vs infinite-width NTK",
            "movement" => "NTK movement ‖K_T − K₀‖/‖K₀‖",
            "movement_mean" => "NTK movement, mean part across seeds",
            "movement_fluct" => "NTK movement, fluctuation part across seeds",
            "gap_emp_mean" => "gap to the linearised network, mean part",
            "gap_emp_fluct" => "gap to the linearised network, fluctuation part",
            "k0_vs_inf" => "‖K₀ − K∞‖/‖K∞‖ at init",
            q => q,
        };
        let fit = &f.fit;
        let regime = match &f.regime {
            Some(g) => format!(
                "; movement {:.1}% at n = {}",
                100.0 * g.movement_min,
                g.width_min
            ),
            None => String::new(),
        };
        res.claims.push(ClaimResult::judged(
            format!("r = {}: {what}", f.r),
            format!("width slope {}", f.expected()),
            format!(
                "{:+.3} (95% [{:+.3}, {:+.3}]){regime}",
                fit.slope, fit.ci95.0, fit.ci95.1
            ),
            f.rule.clone(),
            // The verdict `ntk compare` prints (one rule: reproduce::t8::judge).
            &f.judged(),
        )
        .seeded(
            if f.quantity == "k0_vs_inf" { c.kernel_seeds } else { c.seeds },
            fixed.clone(),
        ));
    }
    for &r in &crossed {
        res.claims.push(crossover_claim(&report, r).seeded(c.seeds, fixed.clone()));
        res.tables.push(Table {
            caption: format!(
                "r = {r}: every fitted exponent, not judged (the widths sit in the crossover)"
            ),
            header: ["quantity", "slope (95%)", "predicted (§4.1, small movement)"]
                .map(String::from)
                .to_vec(),
            rows: report
                .fits
                .iter()
                .filter(|f| f.r == r)
                .map(|f| {
                    vec![
                        f.quantity.clone(),
                        format!("{:+.3} [{:+.3}, {:+.3}]", f.fit.slope, f.fit.ci95.0, f.fit.ci95.1),
                        f.expected(),
                    ]
                })
                .collect(),
        });
    }
    for (stem, fig) in report.figures() {
        res.add_figure(dir, stem, &fig.title.clone(), &fig)?;
    }
    Ok(())
}

/// The local exponents of the seed-mean movement between consecutive widths.
pub fn local_movement_exponents(report: &CompareReport, r: f64) -> Vec<(usize, usize, f64)> {
    let mut widths = report.config.widths.clone();
    widths.sort_unstable();
    widths.dedup();
    widths
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (report.mean("movement", w[0], r)?, report.mean("movement", w[1], r)?);
            (a > 0.0 && b > 0.0)
                .then(|| (w[0], w[1], (b / a).ln() / (w[1] as f64 / w[0] as f64).ln()))
        })
        .collect()
}

/// One claim for an r whose widths all sit in the crossover: the measurement of the
/// crossover itself. §4.1's expansion needs the kernel to move by less than
/// [`SMALL_MOVEMENT`]; where it moves more at every width no small-movement exponent
/// can be judged, and what the widths do show is the movement and how its local
/// exponent drifts with width. Verdict `crossover`, with the movement, ε, the local
/// exponents and the setting that would bring the widths into the regime as reason.
pub fn crossover_claim(report: &CompareReport, r: f64) -> ClaimResult {
    let cfg = &report.config;
    let local = local_movement_exponents(report, r);
    let local_text = local
        .iter()
        .map(|(a, b, s)| format!("{a}→{b}: {s:+.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    let g = regime(report, r);
    let (m0, m1) = g
        .as_ref()
        .map_or((f64::NAN, f64::NAN), |g| g.movement_range);
    let wmin = cfg.widths.iter().copied().min().unwrap_or(1);
    // γ₀ that gives the smallest width the movement of r = 0 there, ε(r) = ε(0):
    // γ₀ n^(r−1/2) = n^(−1/2), i.e. γ₀ = n^(−r) (if r = 0 is in the regime).
    let gamma_in = (wmin as f64).powf(-r);
    let reason = match &g {
        Some(g) => format!(
            "{}; the exponent drifts with width as the kernel settles (local movement exponents {local_text}, against [{:+.2}, {:+.2}] once the movement is small). In the regime: γ₀ = {gamma_in:.3} (the smallest width then moves like r = 0's), e.g. `richness ntk compare --rs {r} --gamma0 {gamma_in:.3}`",
            g.reason(r, (wmin, cfg.widths.iter().copied().max().unwrap_or(1))),
            prediction("movement", r, Activation::Relu).map_or(f64::NAN, |p| p.range.0),
            prediction("movement", r, Activation::Relu).map_or(f64::NAN, |p| p.range.1),
        ),
        None => "no movement measured".into(),
    };
    ClaimResult::new(
        format!("r = {r} (γ₀ = {}): kernel regime at these widths", cfg.gamma0),
        format!(
            "movement < {:.0}% at the smallest width for §4.1's exponents to apply",
            100.0 * SMALL_MOVEMENT
        ),
        format!(
            "movement {:.0}% → {:.0}% over widths {}–{}, ε = {:.3} at n = {wmin}; local exponents {local_text}",
            100.0 * m1,
            100.0 * m0,
            wmin,
            cfg.widths.iter().copied().max().unwrap_or(1),
            cfg.eps(wmin, r)
        ),
        "crossover measurement: the movement and its local exponents (no small-movement exponent judged)",
        Verdict::Crossover,
    )
    .because(reason)
}

/// Run T8 from its config text, writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    t8(&parse(text, ExperimentId::T8)?, dir, opts, res)
}

/// Parse T8's config without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    parse::<T8Config>(text, ExperimentId::T8).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(rs: Vec<f64>) -> CompareConfig {
        CompareConfig {
            widths: vec![8, 16, 32],
            rs,
            seeds: 2,
            kernel_seeds: 2,
            depth: 2,
            n_train: 6,
            n_test: 3,
            steps: 2,
            base_lr: 0.1,
            gauge: Gauge::Mup,
            dtype: Dtype::F64,
            gamma0: 1.0,
            center: false,
        }
    }

    /// Every r gets gap and movement verdicts with §4.1's predictions, the parts are
    /// judged below r = 1/2, and `k0_vs_inf` once.
    #[test]
    fn every_r_gets_gap_and_movement_verdicts() {
        let rs = vec![0.0, 0.25, 0.5];
        let report = run_compare(&tiny(rs.clone()), &Compute::new(1), false).unwrap();
        let get = |q: &str, r: f64| -> Vec<&SlopeVerdict> {
            report
                .fits
                .iter()
                .filter(|f| f.quantity == q && f.r == r)
                .collect()
        };
        for &r in &rs {
            for q in ["gap_emp", "gap_inf", "movement"] {
                let f = get(q, r);
                assert_eq!(f.len(), 1, "{q} at r = {r}");
                let p = prediction(q, r, Activation::Relu).unwrap();
                assert_eq!(f[0].predicted_range, p.range);
                assert_eq!(f[0].regime.as_ref().unwrap().width_min, 8);
            }
            // Fluctuations are always resolved; a mean part only where the seeds
            // resolve it at ≥ 3 widths (two seeds often cannot).
            for q in ["movement_fluct", "gap_emp_fluct"] {
                assert_eq!(get(q, r).len(), usize::from(r < 0.5), "{q} at r = {r}");
            }
            for q in ["movement_mean", "gap_emp_mean"] {
                assert!(get(q, r).len() <= usize::from(r < 0.5), "{q} at r = {r}");
            }
        }
        assert_eq!(get("gap_emp", 0.5)[0].rule, DOES_NOT_FALL);
        assert_eq!(get("movement", 0.0)[0].predicted_range, (-1.0, -0.75));
        assert_eq!(get("gap_inf", 0.0)[0].predicted_range, (-0.5, -0.5));
        assert_eq!(get("k0_vs_inf", 0.0).len(), 1);
        for f in &report.fits {
            assert_eq!(f.pass, f.verdict == Verdict::Pass);
            let crossover = f.regime.as_ref().is_some_and(|g| g.is_crossover()) && f.r < 0.5;
            if crossover {
                assert_eq!(f.verdict, Verdict::Crossover, "{f:?}");
            } else {
                let p = prediction(&f.quantity, f.r, Activation::Relu).unwrap();
                assert_eq!(f.verdict, judge(&f.fit, &p, None).verdict, "{f:?}");
            }
        }
        // Parts per (width, r): ε always, the split with ≥ 2 seeds.
        assert_eq!(report.part("eps", 8, 0.25), Some(8f64.powf(-0.25)));
        let (m, up, fl) = (
            report.part("movement_mean", 16, 0.0).unwrap(),
            report.part("movement_mean_upper", 16, 0.0).unwrap(),
            report.part("movement_fluct", 16, 0.0).unwrap(),
        );
        assert!(0.0 <= m && m <= up && fl > 0.0, "{m} {up} {fl}");
    }

    fn fit(slope: f64, ci: (f64, f64)) -> LineFit {
        LineFit {
            slope,
            intercept: 0.0,
            slope_se: (ci.1 - ci.0) / 4.0,
            ci95: ci,
            r2: 0.9,
            points: 8,
        }
    }

    #[test]
    fn relu_r0_movement_is_judged_against_the_interval() {
        let p = prediction("movement", 0.0, Activation::Relu).unwrap();
        assert_eq!((p.range, p.rule), ((-1.0, -0.75), INTERVAL));
        // theory.md §4.1's full-scale measurement, a miss against the old n^{r−1/2}.
        let measured = fit(-0.882, (-0.981, -0.783));
        assert_eq!(judge(&measured, &p, None).verdict, Verdict::Pass);
        let old = Prediction {
            asymptotic: -0.5,
            range: (-0.5, -0.5),
            rule: WITHIN,
        };
        assert_eq!(judge(&measured, &old, None).verdict, Verdict::Fail);
        // Still falsifiable: n^{r−1/2} itself, measured precisely, fails.
        assert_eq!(
            judge(&fit(-0.5, (-0.55, -0.45)), &p, None).verdict,
            Verdict::Fail
        );
        // A smooth activation has no −3/4 term: the mean and fluctuation meet at −1.
        let smooth = prediction("movement", 0.0, Activation::Tanh).unwrap();
        assert_eq!((smooth.range, smooth.rule), ((-1.0, -1.0), WITHIN));
        assert_eq!(
            prediction("gap_inf", 0.25, Activation::Relu).unwrap().range,
            (-0.5, -0.5)
        );
        assert_eq!(
            prediction("movement_mean", 0.25, Activation::Relu)
                .unwrap()
                .range,
            (-1.0, -0.5)
        );
        assert!(prediction("movement_fluct", 0.5, Activation::Relu).is_none());
    }

    #[test]
    fn verdicts_are_pass_unclear_or_fail() {
        let point = prediction("k0_vs_inf", 0.0, Activation::Relu).unwrap();
        assert_eq!(
            judge(&fit(-0.45, (-0.5, -0.42)), &point, None).verdict,
            Verdict::Pass
        );
        // The docs' r = 0 gap_emp row: the interval crosses the band's edge.
        assert_eq!(
            judge(&fit(-0.624, (-0.855, -0.392)), &point, None).verdict,
            Verdict::Unclear
        );
        let flat = prediction("gap_emp", 0.5, Activation::Relu).unwrap();
        assert_eq!(
            judge(&fit(-0.05, (-0.08, 0.2)), &flat, None).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge(&fit(-0.3, (-0.4, -0.2)), &flat, None).verdict,
            Verdict::Fail
        );
        assert_eq!(
            serde_json::to_value(Verdict::Crossover).unwrap(),
            "crossover"
        );
    }

    /// A report whose kernel moves by more than [`SMALL_MOVEMENT`] at the smallest
    /// width: no exponent of the trained quantities is judged at that r.
    #[test]
    fn large_movement_at_the_smallest_width_is_a_crossover() {
        let mut cfg = tiny(vec![0.0, 0.25]);
        cfg.widths = vec![256, 512, 1024, 2048];
        let mut measurements = Vec::new();
        for &w in &cfg.widths {
            let n = w as f64;
            for seed in 0..3u64 {
                let jitter = 1.0 + 0.01 * (seed as f64 - 1.0);
                for (r, movement) in [
                    (0.0, 2.0 * n.powf(-0.88)),
                    (0.25, 0.67 * (256.0 / n).powf(-0.5)),
                ] {
                    for (q, v) in [
                        ("movement", movement * jitter),
                        ("gap_emp", 0.5 * movement * jitter),
                        ("gap_inf", n.powf(-0.5) * jitter),
                    ] {
                        measurements.push(Measurement {
                            width: w,
                            r,
                            seed,
                            quantity: q.into(),
                            value: v,
                        });
                    }
                }
            }
        }
        let report = CompareReport {
            config: cfg,
            measurements,
            parts: Vec::new(),
            fits: Vec::new(),
            seconds: 0.0,
        };
        let fits = judge_report(&report);
        let at = |q: &str, r: f64| fits.iter().find(|f| f.quantity == q && f.r == r).unwrap();
        for q in ["movement", "gap_emp", "gap_inf"] {
            let f = at(q, 0.25);
            assert_eq!(f.verdict, Verdict::Crossover, "{f:?}");
            assert!(
                f.reason.contains("67%") && f.reason.contains("ε"),
                "{}",
                f.reason
            );
            assert!(!f.pass);
        }
        // r = 0 moves the kernel by 2 · 256^−0.88 ≈ 1.5%: judged, and −0.88 passes.
        let m0 = at("movement", 0.0);
        assert!(m0.regime.as_ref().unwrap().movement_min < 0.02);
        assert_eq!(m0.verdict, Verdict::Pass, "{m0:?}");
        let g = at("movement", 0.25).regime.clone().unwrap();
        assert!((g.eps_min - 0.25).abs() < 1e-12);
        assert!((g.movement_range.1 - 0.67 * 8f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn parts_split_mean_and_fluctuation() {
        // Two seeds d = m ± e with m ⟂ e: mean part ‖m‖, fluctuation √2‖e‖ (S − 1 = 1).
        let d = vec![vec![3.0, 1.0], vec![3.0, -1.0]];
        let (m, up, fl) = split_parts(&d, &[1.0, 1.0]).unwrap();
        assert!((fl - 2f64.sqrt()).abs() < 1e-12);
        // ‖D̄‖² = 9, V/S = 2/2 = 1: unbiased √8, upper 3.
        assert!((m - 8f64.sqrt()).abs() < 1e-12 && (up - 3.0).abs() < 1e-12);
        // Pure noise around zero: no resolvable mean.
        let (m, _, _) = split_parts(&[vec![1.0], vec![-1.0]], &[1.0, 1.0]).unwrap();
        assert_eq!(m, 0.0);
        assert!(split_parts(&[vec![1.0]], &[1.0]).is_none());
    }

    /// `center`: the network starts at 0, and its linearisation starts from f₀ = 0
    /// (not from the frozen copy's output), as a direct kernel computation confirms.
    #[test]
    fn centred_compare_starts_network_and_linearisation_at_zero() {
        let mut cfg = tiny(vec![0.0]);
        cfg.center = true;
        cfg.seeds = 1;
        let cx = Compute::new(1);
        let report = run_compare(&cfg, &cx, false).unwrap();
        let uncentred = run_compare(
            &CompareConfig {
                center: false,
                ..cfg.clone()
            },
            &cx,
            false,
        )
        .unwrap();
        for &w in &cfg.widths {
            assert_eq!(report.mean("f0_rms", w, 0.0), Some(0.0));
            let raw = report.mean("f0_raw_rms", w, 0.0).unwrap();
            assert!(raw > 0.0);
            // The same weights: the uncentred run's f₀ is the centred run's raw f₀.
            let u = uncentred.mean("f0_rms", w, 0.0).unwrap();
            assert!((u - raw).abs() <= 1e-12 * raw, "{u} vs {raw}");
        }
        // Recompute the linearised test loss with f₀ = 0 from the model's own K₀.
        let (xtr, ytr, xte, yte) = t8_data(&cfg).unwrap();
        let w = cfg.widths[0];
        let model = Model::<f64>::init(
            &t8_arch(&cfg, xtr.cols(), w),
            &t8_choice(&cfg, 0.0),
            OptimizerKind::Sgd,
            0,
        )
        .unwrap();
        assert!(model.is_centred());
        let k_tr = empirical_ntk(&model, &cx, &xtr, None, &NtkOptions::default())
            .unwrap()
            .remove(0);
        let mut xall = Mat::<f64>::zeros(xtr.rows() + xte.rows(), xtr.cols());
        xall.as_mut_slice()[..xtr.as_slice().len()].copy_from_slice(xtr.as_slice());
        xall.as_mut_slice()[xtr.as_slice().len()..].copy_from_slice(xte.as_slice());
        let k_all = empirical_ntk(&model, &cx, &xall, None, &NtkOptions::default())
            .unwrap()
            .remove(0);
        let b = xtr.rows();
        let k_cross = sub(&k_all, b, b + xte.rows(), 0, b);
        let lin = LinearisedMse::new(&k_tr, &ytr, None, cfg.base_lr, 0.0).unwrap();
        let pred = lin
            .predict(&cx, &k_cross, None, Horizon::Steps(cfg.steps))
            .unwrap();
        let want = mse(&pred, &yte);
        let got = report.mean("test_mse_lin_emp", w, 0.0).unwrap();
        assert!(
            (got - want).abs() <= 1e-10 * want.max(1e-300),
            "{got} vs {want}"
        );
        // Uncentred, the linearisation starts from the network's nonzero f₀ instead.
        let got_u = uncentred.mean("test_mse_lin_emp", w, 0.0).unwrap();
        assert!((got_u - want).abs() > 1e-6 * want, "{got_u} vs {want}");
        let (tr, te) = linearisation_start(true, &ytr, &yte);
        assert!(tr.is_none() && te.is_none());
    }

    #[test]
    fn bad_settings_are_errors_not_panics() {
        let cx = Compute::new(1);
        for bad in [
            CompareConfig {
                gamma0: 0.0,
                ..tiny(vec![0.0])
            },
            CompareConfig {
                gamma0: f64::NAN,
                ..tiny(vec![0.0])
            },
            CompareConfig {
                rs: vec![f64::INFINITY],
                ..tiny(vec![0.0])
            },
            CompareConfig {
                widths: vec![8],
                ..tiny(vec![0.0])
            },
        ] {
            assert!(run_compare(&bad, &cx, false).is_err());
        }
    }
}
