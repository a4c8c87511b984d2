//! Learning-rate transfer across width (experiments.md T5).
//!
//! Input: finished runs of a width × base-rate (× seed) sweep, grouped by every
//! other axis (e.g. `param.preset`). For each group and width:
//!
//! 1. the loss curve over base rates, averaged over seeds; a diverged run counts as
//!    `diverged_loss` (1e5, as the tutorial does);
//! 2. the best grid rate, refined by a parabola through ln(loss) at that rate and its
//!    two neighbours, in ln(rate) (the vertex, kept between the neighbours). An
//!    optimum on the edge of the grid, or next to a rate where runs diverged (the
//!    edge of stability), is kept as the grid point and flagged;
//! 3. the same for each seed alone: the seed spread is the standard deviation of
//!    log₂ of the per-seed optima.
//!
//! The drift exponent is the least-squares slope of ln(optimal rate) on ln(width).
//! Its 95% interval is a delete-one-seed jackknife (seeds are the independent units;
//! Student t with S − 1 degrees of freedom); with fewer than three seeds it is the
//! least-squares interval over widths. An optimum kept at a grid point is known only
//! to within its grid cell, which deleting a seed cannot reveal (every leave-one-out
//! curve may pick the same point), so the jackknife variance gets that cell's
//! rounding variance (Δ²/12 in ln rate, propagated through the slope) added.
//!
//! Verdicts use the shared rule ([`crate::verdict::judge_band`]): the claim "the rate
//! transfers" is drift 0 ± tolerance (default 0.15), `pass` only when the whole 95%
//! interval lies in that band, and, when judged against an alternative drift (T5:
//! NTP's measured drift), only when the interval also excludes that drift on the side
//! of 0. The claim "the rate drifts up" is the band (tolerance, ∞): the same tolerance
//! that lets a drift count as transfer keeps it from counting as drift, so no interval
//! can pass both claims. An `unclear` verdict from a jackknife interval names the seeds
//! that would decide it (the jackknife half-width shrinks like 1/√seeds; the grid
//! rounding term does not, so with many grid-point optima the estimate is optimistic).
//! An optimum on the edge of the rate grid makes the drift a bound, not a measurement:
//! such a group is at best `unclear`.

use super::spec::short_float;
use super::store::RunRecord;
use crate::error::{Error, Result};
use crate::fit::{fit_line, mean_std, t975};
use crate::report::plot::{Figure, Series, Style};
use crate::verdict::{judge_band, Judged, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which number of a run is the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Test loss at the end of training (the tutorial's test MSE).
    TestLoss,
    /// The last step's batch training loss.
    TrainLoss,
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "test_loss" | "test-loss" => Ok(Metric::TestLoss),
            "train_loss" | "train-loss" => Ok(Metric::TrainLoss),
            _ => Err(format!(
                "unknown metric `{s}` (expected test_loss or train_loss)"
            )),
        }
    }
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::TestLoss => "test_loss",
            Metric::TrainLoss => "train_loss",
        }
    }
}

/// Settings of the analysis.
#[derive(Clone, Debug, Serialize)]
pub struct TransferOptions {
    pub width_key: String,
    pub rate_key: String,
    pub seed_key: String,
    pub metric: Metric,
    /// The loss a diverged run counts as.
    pub diverged_loss: f64,
    /// Largest |drift exponent| that counts as transfer.
    pub tolerance: f64,
    /// A group (its label, or one `key=value` of it) whose measured drift is the
    /// alternative the other groups' transfer is judged against; that group itself
    /// is judged on the claim that its rate drifts up (T5: `param.preset=ntp`).
    pub against: Option<String>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            width_key: "model.width".into(),
            rate_key: "param.base_lr".into(),
            seed_key: "seed".into(),
            metric: Metric::TestLoss,
            diverged_loss: 1e5,
            tolerance: 0.15,
            against: None,
        }
    }
}

/// One width of one group.
#[derive(Clone, Debug, Serialize)]
pub struct WidthOptimum {
    pub width: f64,
    /// Base rates of the grid (sorted).
    pub rates: Vec<f64>,
    /// Seed-mean loss at each rate (diverged runs at `diverged_loss`).
    pub mean_loss: Vec<f64>,
    /// Min and max over seeds at each rate.
    pub min_loss: Vec<f64>,
    pub max_loss: Vec<f64>,
    /// Diverged seeds at each rate.
    pub diverged: Vec<usize>,
    /// Best grid rate of the seed-mean curve.
    pub best_grid_rate: f64,
    /// Refined optimum (parabola in log-rate).
    pub optimum: f64,
    /// The seed-mean loss at the optimum (from the parabola).
    pub optimum_loss: f64,
    /// The optimum is at the edge of the grid (not refined; widen the grid).
    pub at_edge: bool,
    /// How the optimum was located.
    pub located: Located,
    /// Refined optimum of each seed alone.
    pub seed_optima: Vec<f64>,
    /// Standard deviation of log₂(seed optima).
    pub spread_log2: f64,
}

/// The drift fit of one group.
#[derive(Clone, Debug, Serialize)]
pub struct Drift {
    /// Slope of ln(optimal rate) on ln(width).
    pub slope: f64,
    pub intercept: f64,
    pub se: f64,
    pub ci95: (f64, f64),
    /// `jackknife over S seeds` or `least squares over widths`.
    pub interval: String,
    /// The seeds behind a jackknife interval (`None` for least squares over widths,
    /// whose width does not shrink in a known way with more seeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<usize>,
}

/// What a group is claimed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// The optimal rate stays put: drift 0 ± tolerance.
    Transfers,
    /// The optimal rate moves to larger rates with width: drift > tolerance.
    DriftsUp,
}

/// One group (e.g. one parameterization).
#[derive(Clone, Debug, Serialize)]
pub struct TransferGroup {
    /// The other axes' values, `key=value …` (empty with no other axes).
    pub label: String,
    pub seeds: usize,
    pub widths: Vec<WidthOptimum>,
    pub drift: Option<Drift>,
    /// The claim judged for this group.
    pub claim: Claim,
    /// The measured drift of the `against` group this one was judged against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternative: Option<f64>,
    /// The verdict on `claim`, with its reason.
    pub verdict: Judged,
    /// For readers of the old field: `Some(true)` when the verdict on "transfers" is
    /// a pass, `Some(false)` when it is a fail, `None` when undecided or not judged.
    pub transfers: Option<bool>,
    pub warnings: Vec<String>,
}

/// The whole analysis.
#[derive(Clone, Debug, Serialize)]
pub struct TransferReport {
    pub options: TransferOptions,
    pub groups: Vec<TransferGroup>,
    /// Runs left out because they failed.
    pub failed_runs: usize,
}

fn number(v: Option<&serde_json::Value>) -> Option<f64> {
    v.and_then(|v| v.as_f64())
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_f64() => short_float(n.as_f64().unwrap()),
        v => v.to_string(),
    }
}

/// Ordered float key.
fn key(x: f64) -> i64 {
    x.to_bits() as i64
}

/// Analyse the runs of a width × rate sweep.
pub fn analyse(runs: &[RunRecord], opts: &TransferOptions) -> Result<TransferReport> {
    // A NaN here would make every comparison false: no run would count as diverged
    // and the optimum search would find no finite loss.
    if !(opts.diverged_loss.is_finite() && opts.diverged_loss > 0.0) {
        return Err(Error::config(format!(
            "diverged_loss must be a finite positive number, got {}",
            opts.diverged_loss
        )));
    }
    if !(opts.tolerance.is_finite() && opts.tolerance > 0.0) {
        return Err(Error::config(format!(
            "tolerance must be a finite positive number, got {}",
            opts.tolerance
        )));
    }
    // group label → width → seed → rate → loss
    type Cube = BTreeMap<i64, BTreeMap<String, BTreeMap<i64, f64>>>;
    let mut groups: Vec<(String, Cube)> = Vec::new();
    let mut failed = 0;
    for r in runs {
        if !r.finished() {
            failed += 1;
            continue;
        }
        let params = r.params_map();
        let width = number(params.get(&opts.width_key)).ok_or_else(|| {
            Error::config(format!(
                "run {} has no numeric `{}` axis (axes: {}): give the width key",
                r.index,
                opts.width_key,
                params.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let rate = number(params.get(&opts.rate_key)).ok_or_else(|| {
            Error::config(format!(
                "run {} has no numeric `{}` axis (axes: {}): give the rate key",
                r.index,
                opts.rate_key,
                params.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if !(width > 0.0 && rate > 0.0) {
            return Err(Error::config(format!(
                "run {}: width and rate must be positive",
                r.index
            )));
        }
        let seed = params.get(&opts.seed_key).map(show).unwrap_or_default();
        let label = params
            .iter()
            .filter(|(k, _)| ![&opts.width_key, &opts.rate_key, &opts.seed_key].contains(k))
            .map(|(k, v)| format!("{k}={}", show(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let value = match opts.metric {
            Metric::TestLoss => r.final_test_loss,
            Metric::TrainLoss => r.final_train_loss,
        };
        let loss = match (r.status.as_str(), value) {
            ("completed", Some(v)) if v.is_finite() && v < opts.diverged_loss => v,
            ("completed", None) if opts.metric == Metric::TestLoss => {
                return Err(Error::config(format!(
                    "run {} has no test loss (no test set?): use --metric train_loss",
                    r.index
                )))
            }
            _ => opts.diverged_loss,
        };
        let pos = match groups.iter().position(|(l, _)| *l == label) {
            Some(p) => p,
            None => {
                groups.push((label.clone(), Cube::new()));
                groups.len() - 1
            }
        };
        groups[pos]
            .1
            .entry(key(width))
            .or_default()
            .entry(seed)
            .or_default()
            .insert(key(rate), loss);
    }
    if groups.is_empty() {
        return Err(Error::config("no finished runs to analyse"));
    }
    let mut out = Vec::new();
    for (label, cube) in groups {
        out.push(analyse_group(label, &cube, opts));
    }
    judge_groups(&mut out, opts)?;
    Ok(TransferReport {
        options: opts.clone(),
        groups: out,
        failed_runs: failed,
    })
}

/// The group that `against` names: its exact label, else the one group with that
/// `key=value` among its labels.
fn find_group(groups: &[TransferGroup], name: &str) -> Result<usize> {
    if let Some(i) = groups.iter().position(|g| g.label == name) {
        return Ok(i);
    }
    let hits: Vec<usize> = (0..groups.len())
        .filter(|&i| groups[i].label.split(' ').any(|t| t == name))
        .collect();
    let list = || {
        groups
            .iter()
            .map(|g| format!("`{}`", g.label))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(Error::config(format!(
            "--against `{name}`: no such group (groups: {})",
            list()
        ))),
        _ => Err(Error::config(format!(
            "--against `{name}` names {} groups (groups: {}): give a whole label",
            hits.len(),
            list()
        ))),
    }
}

fn judge_groups(groups: &mut [TransferGroup], opts: &TransferOptions) -> Result<()> {
    let reference = match &opts.against {
        Some(name) => Some(find_group(groups, name)?),
        None => None,
    };
    let alternative = reference.and_then(|i| {
        let g = &groups[i];
        g.drift.as_ref().map(|d| (d.slope, g.label.clone()))
    });
    for (i, g) in groups.iter_mut().enumerate() {
        if Some(i) == reference {
            g.claim = Claim::DriftsUp;
        } else if reference.is_some() {
            match &alternative {
                Some((a, _)) => g.alternative = Some(*a),
                None => g.warnings.push(
                    "the --against group has no drift fit: judged without the alternative".into(),
                ),
            }
        }
        let mut judged = match (&g.drift, g.claim) {
            (None, _) => Judged::new(Verdict::Error, "fewer than two widths: no drift fit"),
            (Some(d), Claim::DriftsUp) => judge_drifts_up(d, opts.tolerance),
            (Some(d), Claim::Transfers) => judge_transfer(
                d,
                opts.tolerance,
                alternative.as_ref().map(|(a, l)| (*a, l.as_str())),
            ),
        };
        let edges: Vec<String> = g
            .widths
            .iter()
            .filter(|w| w.at_edge)
            .map(|w| short_float(w.width))
            .collect();
        if !edges.is_empty() && matches!(judged.verdict, Verdict::Pass | Verdict::Fail) {
            judged = Judged::new(
                Verdict::Unclear,
                format!(
                    "the interval alone says {}, but the optimum at width {} is at the edge of the rate grid, so the drift is a bound, not a measurement: widen the grid",
                    judged.verdict,
                    edges.join(", ")
                ),
            );
        }
        g.transfers = match (g.claim, judged.verdict) {
            (Claim::Transfers, Verdict::Pass) => Some(true),
            (Claim::Transfers, Verdict::Fail) | (Claim::DriftsUp, Verdict::Pass) => Some(false),
            _ => None,
        };
        g.verdict = judged;
    }
    Ok(())
}

/// Judge the claim "the rate transfers": drift 0 ± `tol`. With an `alternative`
/// drift (value, label), a pass also needs the interval to exclude it on the side of
/// 0: the data must separate the prediction from the alternative, not merely contain
/// the prediction. A wholly-outside interval is a `fail` either way.
///
/// The alternative is taken as measured (its own interval is not propagated), as the
/// claim is "μP's drift is not NTP's measured drift".
pub fn judge_transfer(d: &Drift, tol: f64, alternative: Option<(f64, &str)>) -> Judged {
    let band = (-tol, tol);
    let plain = judge_band(d.slope, d.ci95, band, d.seeds);
    let (lo, hi) = d.ci95;
    let Some((a, label)) = alternative.filter(|(a, _)| a.is_finite()) else {
        return plain;
    };
    if matches!(plain.verdict, Verdict::Fail | Verdict::Error)
        || !(lo.is_finite() && hi.is_finite())
    {
        return plain;
    }
    let name = if label.is_empty() {
        format!("{a:+.3}")
    } else {
        format!("{a:+.3} ({label})")
    };
    // The pass region: the part of the band on 0's side of the alternative.
    let region = if a > 0.0 {
        (band.0, band.1.min(a))
    } else if a < 0.0 {
        (band.0.max(a), band.1)
    } else {
        return Judged::new(
            Verdict::Unclear,
            format!("the alternative drift {name} is the prediction itself: no data separate them"),
        );
    };
    let contains_a = lo <= a && a <= hi;
    if region.0 <= lo && hi <= region.1 && !contains_a {
        return Judged::pass();
    }
    let mut why = Vec::new();
    if !(band.0 <= lo && hi <= band.1) {
        why.push(format!(
            "its 95% interval [{lo:+.3}, {hi:+.3}] crosses an edge of the band [{:+.3}, {:+.3}]",
            band.0, band.1
        ));
    }
    if contains_a {
        why.push(format!(
            "the interval [{lo:+.3}, {hi:+.3}] contains the alternative drift {name}"
        ));
    }
    let inside_region = region.0 < d.slope && d.slope < region.1;
    let inside_band = band.0 <= d.slope && d.slope <= band.1;
    let mut judged = Judged::new(
        Verdict::Unclear,
        format!("estimate {:+.3}: {}", d.slope, why.join("; and ")),
    );
    if inside_region {
        // More seeds would shrink the interval into the region: a pass.
        judged.seeds_to_decide = judge_band(d.slope, d.ci95, region, d.seeds).seeds_to_decide;
    } else if !inside_band {
        // More seeds would push the interval out of the band: a fail.
        judged.seeds_to_decide = plain.seeds_to_decide;
    } else {
        judged.reason.push_str(
            "; the estimate lies beyond the alternative, inside the band: more seeds would not separate them",
        );
        return judged;
    }
    match judged.seeds_to_decide {
        Some(n) => judged
            .reason
            .push_str(&format!("; ≈ {n} seeds would decide")),
        None if d.seeds.is_some() => judged
            .reason
            .push_str("; the estimate sits on the edge: no practical number of seeds decides it"),
        None => {}
    }
    judged
}

/// Judge the claim "the rate drifts up with width": the band (`tol`, ∞), the
/// complement of the transfer band on the positive side, so that one interval can
/// never pass both claims.
pub fn judge_drifts_up(d: &Drift, tol: f64) -> Judged {
    judge_band(d.slope, d.ci95, (tol, f64::INFINITY), d.seeds)
}

/// How an optimum was located.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Located {
    /// The vertex of the parabola through the best grid point and its neighbours.
    Parabola,
    /// The best grid point is the first or last rate of the grid (widen the grid).
    GridEdge,
    /// A neighbour of the best grid point has diverged runs: the optimum sits at the
    /// edge of stability, and the grid point is kept (a parabola through a diverged
    /// point would say nothing about the loss).
    StabilityEdge,
}

/// A loss curve's optimum: (ln rate, loss, how). `xs` = ln rates (sorted), `ys` =
/// losses (positive), `diverged[j]` = some run at rate j diverged.
pub fn curve_optimum(xs: &[f64], ys: &[f64], diverged: &[bool]) -> Option<(f64, f64, Located)> {
    let i = ys
        .iter()
        .enumerate()
        .filter(|(_, y)| y.is_finite())
        .min_by(|a, b| a.1.partial_cmp(b.1).unwrap())?
        .0;
    if i == 0 || i + 1 == xs.len() {
        return Some((xs[i], ys[i], Located::GridEdge));
    }
    if diverged[i - 1] || diverged[i + 1] {
        return Some((xs[i], ys[i], Located::StabilityEdge));
    }
    let (x0, x1, x2) = (xs[i - 1], xs[i], xs[i + 1]);
    let (y0, y1, y2) = (ys[i - 1].ln(), ys[i].ln(), ys[i + 1].ln());
    // Parabola y = a x² + b x + c through the three points (divided differences).
    let d01 = (y1 - y0) / (x1 - x0);
    let d12 = (y2 - y1) / (x2 - x1);
    let a = (d12 - d01) / (x2 - x0);
    let b = d01 - a * (x0 + x1);
    let c = y0 - a * x0 * x0 - b * x0;
    // A NaN curvature is not finite, so it too falls back to the sampled point.
    if !a.is_finite() || a <= 0.0 {
        return Some((x1, ys[i], Located::Parabola));
    }
    let v = (-b / (2.0 * a)).clamp(x0, x2);
    Some((v, (a * v * v + b * v + c).exp(), Located::Parabola))
}

fn analyse_group(
    label: String,
    cube: &BTreeMap<i64, BTreeMap<String, BTreeMap<i64, f64>>>,
    opts: &TransferOptions,
) -> TransferGroup {
    let mut warnings = Vec::new();
    let mut seed_names: Vec<String> = cube.values().flat_map(|s| s.keys().cloned()).collect();
    seed_names.sort();
    seed_names.dedup();
    let mut widths = Vec::new();
    // For the jackknife: per width, the loss matrix [seed][rate].
    let mut matrices: Vec<(f64, Vec<f64>, Vec<Vec<f64>>)> = Vec::new();
    for (&wk, seeds) in cube {
        let width = f64::from_bits(wk as u64);
        let mut rate_keys: Vec<i64> = seeds.values().flat_map(|m| m.keys().copied()).collect();
        rate_keys.sort_by(|a, b| {
            f64::from_bits(*a as u64)
                .partial_cmp(&f64::from_bits(*b as u64))
                .unwrap()
        });
        rate_keys.dedup();
        let rates: Vec<f64> = rate_keys
            .iter()
            .map(|k| f64::from_bits(*k as u64))
            .collect();
        // Seeds that have every rate (incomplete seeds would bias the mean).
        let full: Vec<Vec<f64>> = seed_names
            .iter()
            .filter_map(|s| seeds.get(s))
            .filter(|m| m.len() == rate_keys.len())
            .map(|m| rate_keys.iter().map(|k| m[k]).collect())
            .collect();
        let partial = seeds.len() - full.len();
        if partial > 0 {
            warnings.push(format!(
                "width {}: {partial} seed(s) lack some rates and are left out",
                short_float(width)
            ));
        }
        if full.is_empty() || rates.len() < 2 {
            warnings.push(format!(
                "width {}: too few runs for an optimum",
                short_float(width)
            ));
            continue;
        }
        let xs: Vec<f64> = rates.iter().map(|r| r.ln()).collect();
        let mean: Vec<f64> = (0..rates.len())
            .map(|j| full.iter().map(|s| s[j]).sum::<f64>() / full.len() as f64)
            .collect();
        let any_div: Vec<bool> = (0..rates.len())
            .map(|j| full.iter().any(|s| s[j] >= opts.diverged_loss))
            .collect();
        // Seed means of huge losses (near f64::MAX) can overflow to inf at every rate.
        let Some((x_opt, l_opt, located)) = curve_optimum(&xs, &mean, &any_div) else {
            warnings.push(format!(
                "width {}: no finite seed-mean loss at any rate",
                short_float(width)
            ));
            continue;
        };
        let edge = located == Located::GridEdge;
        if edge {
            warnings.push(format!(
                "width {}: the optimum is at the edge of the rate grid ({}): widen the grid",
                short_float(width),
                short_float(x_opt.exp())
            ));
        }
        let best = rates[mean
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.partial_cmp(b.1).unwrap())
            .unwrap()
            .0];
        let seed_optima: Vec<f64> = full
            .iter()
            .map(|s| {
                let div: Vec<bool> = s.iter().map(|v| *v >= opts.diverged_loss).collect();
                curve_optimum(&xs, s, &div).expect("finite").0.exp()
            })
            .collect();
        let logs: Vec<f64> = seed_optima.iter().map(|o| o.log2()).collect();
        let spread = mean_std(&logs).1;
        let diverged: Vec<usize> = (0..rates.len())
            .map(|j| full.iter().filter(|s| s[j] >= opts.diverged_loss).count())
            .collect();
        widths.push(WidthOptimum {
            width,
            min_loss: (0..rates.len())
                .map(|j| full.iter().map(|s| s[j]).fold(f64::INFINITY, f64::min))
                .collect(),
            max_loss: (0..rates.len())
                .map(|j| full.iter().map(|s| s[j]).fold(f64::NEG_INFINITY, f64::max))
                .collect(),
            rates: rates.clone(),
            mean_loss: mean,
            diverged,
            best_grid_rate: best,
            optimum: x_opt.exp(),
            optimum_loss: l_opt,
            at_edge: edge,
            located,
            seed_optima,
            spread_log2: spread,
        });
        matrices.push((width, xs, full));
    }
    let lw: Vec<f64> = widths.iter().map(|w| w.width.ln()).collect();
    let lo: Vec<f64> = widths.iter().map(|w| w.optimum.ln()).collect();
    let seeds = matrices.iter().map(|m| m.2.len()).min().unwrap_or(0);
    let drift = fit_line(&lw, &lo).map(|f| {
        // Delete-one-seed jackknife, when every width has the same seeds.
        let same_seeds = matrices.iter().all(|m| m.2.len() == seeds);
        if seeds >= 3 && same_seeds {
            let slopes: Vec<f64> = (0..seeds)
                .filter_map(|j| {
                    let opt: Vec<f64> = matrices
                        .iter()
                        .map(|(_, xs, full)| {
                            let mean: Vec<f64> = (0..xs.len())
                                .map(|r| {
                                    full.iter()
                                        .enumerate()
                                        .filter(|(s, _)| *s != j)
                                        .map(|(_, v)| v[r])
                                        .sum::<f64>()
                                        / (full.len() - 1) as f64
                                })
                                .collect();
                            let div: Vec<bool> = (0..xs.len())
                                .map(|r| {
                                    full.iter()
                                        .enumerate()
                                        .any(|(s, v)| s != j && v[r] >= opts.diverged_loss)
                                })
                                .collect();
                            curve_optimum(xs, &mean, &div).expect("finite").0
                        })
                        .collect();
                    fit_line(&lw, &opt).map(|f| f.slope)
                })
                .collect();
            let s = slopes.len() as f64;
            let m = slopes.iter().sum::<f64>() / s;
            let jack = (s - 1.0) / s * slopes.iter().map(|x| (x - m).powi(2)).sum::<f64>();
            let se = (jack + grid_rounding_var(&widths, &lw)).sqrt();
            let half = t975(slopes.len() - 1) * se;
            Drift {
                slope: f.slope,
                intercept: f.intercept,
                se,
                ci95: (f.slope - half, f.slope + half),
                interval: format!("jackknife over {seeds} seeds"),
                seeds: Some(seeds),
            }
        } else {
            Drift {
                slope: f.slope,
                intercept: f.intercept,
                se: f.slope_se,
                ci95: f.ci95,
                interval: "least squares over widths".into(),
                seeds: None,
            }
        }
    });
    if drift.is_none() {
        warnings.push("fewer than two widths: no drift fit".into());
    }
    TransferGroup {
        label,
        seeds,
        claim: Claim::Transfers,
        alternative: None,
        // Set by `judge_groups`, which knows every group.
        verdict: Judged::new(Verdict::Error, "not judged"),
        transfers: None,
        widths,
        drift,
        warnings,
    }
}

/// Variance of the drift slope from optima kept at a grid point: each is known to
/// within its grid cell (width Δ in ln rate, rounding variance Δ²/12), and the slope
/// is Σ cᵢ·ln(optimumᵢ) with cᵢ = (ln nᵢ − mean)/Sxx.
fn grid_rounding_var(widths: &[WidthOptimum], lw: &[f64]) -> f64 {
    let k = lw.len() as f64;
    let mean = lw.iter().sum::<f64>() / k;
    let sxx: f64 = lw.iter().map(|x| (x - mean).powi(2)).sum();
    widths
        .iter()
        .zip(lw)
        .filter(|(w, _)| w.located != Located::Parabola)
        .map(|(w, x)| {
            let xs: Vec<f64> = w.rates.iter().map(|r| r.ln()).collect();
            // A grid-point optimum is exp(xs[j]); ln undoes it to rounding.
            let j = xs.iter().position(|&v| (v - w.optimum.ln()).abs() < 1e-9);
            let cell = match j {
                Some(j) => {
                    let left = if j > 0 { xs[j] - xs[j - 1] } else { 0.0 };
                    let right = if j + 1 < xs.len() {
                        xs[j + 1] - xs[j]
                    } else {
                        0.0
                    };
                    // Half of each neighbouring gap belongs to this point's cell.
                    let c = 0.5 * (left + right);
                    if j == 0 || j + 1 == xs.len() {
                        2.0 * c
                    } else {
                        c
                    }
                }
                None => 0.0,
            };
            let c = (x - mean) / sxx;
            c * c * cell * cell / 12.0
        })
        .sum()
}

impl TransferReport {
    /// Loss against base rate, one panel per group, one curve per width (seed mean,
    /// min–max band), the optimum of each width marked.
    pub fn figures(&self) -> Vec<Figure> {
        let name = self.options.metric.name();
        self.groups
            .iter()
            .map(|g| {
                let title = match &g.drift {
                    Some(d) => format!(
                        "{}: optimum ∝ n^{:+.3} [{:+.2}, {:+.2}]",
                        if g.label.is_empty() { "all" } else { &g.label },
                        d.slope,
                        d.ci95.0,
                        d.ci95.1
                    ),
                    None => g.label.clone(),
                };
                let mut fig = Figure::loglog(title, "base rate η₀", name);
                let best = g
                    .widths
                    .iter()
                    .map(|w| w.optimum_loss)
                    .fold(f64::INFINITY, f64::min);
                for (i, w) in g.widths.iter().enumerate() {
                    // Show the rates where no seed diverged and the loss is within
                    // 20× of the group's best (the blow-up past the optimum would
                    // squash the interesting part).
                    let keep: Vec<usize> = (0..w.rates.len())
                        .filter(|&j| w.diverged[j] == 0 && w.mean_loss[j] <= 20.0 * best)
                        .collect();
                    let pick = |v: &Vec<f64>| keep.iter().map(|&j| v[j]).collect::<Vec<f64>>();
                    fig.series.push(
                        Series::new(
                            format!("n = {}", short_float(w.width)),
                            pick(&w.rates),
                            pick(&w.mean_loss),
                        )
                        .band(pick(&w.min_loss), pick(&w.max_loss))
                        .color(i),
                    );
                    fig.series.push(
                        Series::new("", vec![w.optimum], vec![w.optimum_loss])
                            .style(Style::Markers)
                            .color(i),
                    );
                }
                fig
            })
            .collect()
    }

    /// Optimal rate against width, per group, with the seed range and the fit.
    pub fn drift_figure(&self) -> Figure {
        let mut fig = Figure::loglog("optimal base rate against width", "width n", "optimal η₀");
        for (i, g) in self.groups.iter().enumerate() {
            let xs: Vec<f64> = g.widths.iter().map(|w| w.width).collect();
            let label = if g.label.is_empty() {
                "all".to_string()
            } else {
                g.label.clone()
            };
            let lo: Vec<f64> = g
                .widths
                .iter()
                .map(|w| w.seed_optima.iter().cloned().fold(f64::INFINITY, f64::min))
                .collect();
            let hi: Vec<f64> = g
                .widths
                .iter()
                .map(|w| {
                    w.seed_optima
                        .iter()
                        .cloned()
                        .fold(f64::NEG_INFINITY, f64::max)
                })
                .collect();
            fig.series.push(
                Series::new(
                    label,
                    xs.clone(),
                    g.widths.iter().map(|w| w.optimum).collect(),
                )
                .band(lo, hi)
                .style(Style::Points)
                .color(i),
            );
            if let Some(d) = &g.drift {
                let ys = xs
                    .iter()
                    .map(|x| (d.intercept + d.slope * x.ln()).exp())
                    .collect();
                fig.series.push(
                    Series::new(format!("fit n^{:+.3}", d.slope), xs, ys)
                        .style(Style::Dashed)
                        .color(i),
                );
            }
        }
        fig
    }

    /// The per-width table as CSV.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "group,width,best_grid_rate,optimum,optimum_loss,at_edge,spread_log2,seed_optima\n",
        );
        for g in &self.groups {
            for w in &g.widths {
                s.push_str(&format!(
                    "{},{},{},{},{},{},{},{}\n",
                    if g.label.contains(',') {
                        format!("\"{}\"", g.label)
                    } else {
                        g.label.clone()
                    },
                    w.width,
                    w.best_grid_rate,
                    w.optimum,
                    w.optimum_loss,
                    serde_json::to_value(w.located)
                        .unwrap()
                        .as_str()
                        .unwrap_or(""),
                    w.spread_log2,
                    w.seed_optima
                        .iter()
                        .map(|o| o.to_string())
                        .collect::<Vec<_>>()
                        .join(";")
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabola_vertex_is_exact_for_a_parabola_in_log_loss() {
        // ln y = (x − 1.3)² + 0.5 on x = 0, 1, 2 (rates e^0, e^1, e^2).
        let xs = [0.0, 1.0, 2.0, 3.0];
        let ys: Vec<f64> = xs
            .iter()
            .map(|x: &f64| ((x - 1.3).powi(2) + 0.5).exp())
            .collect();
        let none = [false; 4];
        let (v, l, how) = curve_optimum(&xs, &ys, &none).unwrap();
        assert_eq!(how, Located::Parabola);
        assert!((v - 1.3).abs() < 1e-12);
        assert!((l - 0.5f64.exp()).abs() < 1e-12);
        let (v, _, how) = curve_optimum(&xs, &[1.0, 2.0, 3.0, 4.0], &none).unwrap();
        assert!(how == Located::GridEdge && v == 0.0);
        let (v, _, how) = curve_optimum(&xs, &ys, &[false, false, true, false]).unwrap();
        assert!(how == Located::StabilityEdge && v == 1.0);
    }

    fn run(i: usize, width: usize, rate: f64, seed: u64, loss: f64) -> RunRecord {
        RunRecord {
            run_id: format!("{i}"),
            index: i as i64,
            label: String::new(),
            params: serde_json::json!({"model.width": width, "param.base_lr": rate, "seed": seed})
                .to_string(),
            config: String::new(),
            config_json: String::new(),
            status: if loss.is_finite() {
                "completed"
            } else {
                "diverged"
            }
            .into(),
            diverged_step: None,
            reason: None,
            steps: None,
            final_train_loss: Some(loss),
            final_test_loss: Some(loss),
            final_test_acc: None,
            num_params: None,
            seconds: 0.0,
            threads: 1,
            host: String::new(),
            shard: None,
            started_unix: 0.0,
            finished_unix: 0.0,
        }
    }

    #[test]
    fn recovers_a_planted_drift() {
        // Optimum at 4·n^0.5 / 8 with a log-parabola loss and seed noise.
        let mut runs = Vec::new();
        let rates = super::super::spec::logspace(0.25, 64.0, 17);
        for (wi, &n) in [64usize, 128, 256, 512].iter().enumerate() {
            for seed in 0..4u64 {
                for (ri, &r) in rates.iter().enumerate() {
                    let opt = 4.0 * (n as f64 / 64.0).sqrt();
                    let noise = 0.01 * ((seed as f64 + 1.0) * (ri as f64 + 1.0)).sin();
                    let loss = if r > 8.0 * opt {
                        f64::NAN
                    } else {
                        (0.2 * (r / opt).ln().powi(2) + noise).exp() * 0.1
                    };
                    runs.push(run(runs.len() + wi, n, r, seed, loss));
                }
            }
        }
        let rep = analyse(&runs, &TransferOptions::default()).unwrap();
        assert_eq!(rep.groups.len(), 1);
        let d = rep.groups[0].drift.as_ref().unwrap();
        assert!((d.slope - 0.5).abs() < 0.05, "{d:?}");
        assert!(d.ci95.0 < d.slope && d.slope < d.ci95.1);
        assert_eq!(rep.groups[0].transfers, Some(false));
        assert_eq!(rep.groups[0].verdict.verdict, Verdict::Fail);
        assert!(rep.groups[0].widths.iter().all(|w| !w.at_edge));
    }

    fn drift(slope: f64, lo: f64, hi: f64, seeds: usize) -> Drift {
        Drift {
            slope,
            intercept: 0.0,
            se: (hi - lo) / 4.0,
            ci95: (lo, hi),
            interval: format!("jackknife over {seeds} seeds"),
            seeds: Some(seeds),
        }
    }

    #[test]
    fn a_wide_interval_reaching_ntp_is_unclear_not_pass() {
        // The case: μP +0.079 [−0.098, +0.257] against NTP's +0.289, 5 seeds.
        // The old rule passed it on |0.079| ≤ 0.15.
        let j = judge_transfer(&drift(0.079, -0.098, 0.257, 5), 0.15, Some((0.289, "ntp")));
        assert_eq!(j.verdict, Verdict::Unclear, "{j:?}");
        assert!(j.seeds_to_decide.unwrap() > 5, "{j:?}");
        assert!(j.reason.contains("seeds would decide"), "{}", j.reason);
    }

    #[test]
    fn transfer_passes_only_when_the_interval_separates_0_from_the_alternative() {
        let d = drift(0.02, -0.05, 0.09, 5);
        // Decisive: inside the band, far from NTP's drift.
        assert_eq!(
            judge_transfer(&d, 0.15, Some((0.289, "ntp"))).verdict,
            Verdict::Pass
        );
        // Inside the band, but the alternative lies inside the interval too.
        let j = judge_transfer(&d, 0.15, Some((0.06, "ntp")));
        assert_eq!(j.verdict, Verdict::Unclear, "{j:?}");
        assert!(j.reason.contains("alternative"), "{}", j.reason);
        assert!(j.seeds_to_decide.unwrap() > 5, "{j:?}");
        // A negative alternative bounds the region from below: −0.04 lies inside
        // [−0.05, +0.09], −0.06 just below it.
        assert_eq!(
            judge_transfer(&d, 0.15, Some((-0.04, "x"))).verdict,
            Verdict::Unclear
        );
        assert_eq!(
            judge_transfer(&d, 0.15, Some((-0.06, "x"))).verdict,
            Verdict::Pass
        );
        // Beyond the alternative, inside the band: no number of seeds separates them.
        let j = judge_transfer(&drift(0.1, 0.02, 0.14, 5), 0.15, Some((0.05, "ntp")));
        assert_eq!(j.verdict, Verdict::Unclear);
        assert_eq!(j.seeds_to_decide, None);
        // Wholly outside the band: fail, whatever the alternative.
        let out = drift(0.40, 0.30, 0.50, 5);
        assert_eq!(
            judge_transfer(&out, 0.15, Some((0.289, "ntp"))).verdict,
            Verdict::Fail
        );
        assert_eq!(judge_transfer(&out, 0.15, None).verdict, Verdict::Fail);
    }

    #[test]
    fn drift_up_needs_the_interval_above_the_tolerance() {
        // The NTP drift +0.289 [+0.051, +0.528]: above 0, but reaching into the
        // transfer band: unclear; margin 0.139, half-width 0.2385, 5 seeds:
        // 5 · (1.2 · 0.2385 / 0.139)² = 21.2 → 22.
        let j = judge_drifts_up(&drift(0.289, 0.051, 0.527, 5), 0.15);
        assert_eq!(j.verdict, Verdict::Unclear, "{j:?}");
        assert_eq!(j.seeds_to_decide, Some(22));
        assert_eq!(
            judge_drifts_up(&drift(0.3, 0.2, 0.4, 5), 0.15).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge_drifts_up(&drift(0.0, -0.1, 0.1, 5), 0.15).verdict,
            Verdict::Fail
        );
    }

    fn preset_runs(preset: &str, exponent: f64, runs: &mut Vec<RunRecord>) {
        let rates = super::super::spec::logspace(0.25, 64.0, 17);
        for &n in &[64usize, 128, 256, 512] {
            for seed in 0..4u64 {
                for (ri, &r) in rates.iter().enumerate() {
                    let opt = 4.0 * (n as f64 / 64.0).powf(exponent);
                    let noise = 0.01 * ((seed as f64 + 1.0) * (ri as f64 + 1.0)).sin();
                    let loss = (0.2 * (r / opt).ln().powi(2) + noise).exp() * 0.1;
                    let mut rec = run(runs.len(), n, r, seed, loss);
                    rec.params = serde_json::json!({"model.width": n, "param.base_lr": r,
                        "seed": seed, "param.preset": preset})
                    .to_string();
                    runs.push(rec);
                }
            }
        }
    }

    #[test]
    fn groups_are_judged_against_the_named_group() {
        let mut runs = Vec::new();
        preset_runs("mup", 0.0, &mut runs);
        preset_runs("ntp", 0.5, &mut runs);
        let opts = TransferOptions {
            against: Some("param.preset=ntp".into()),
            ..TransferOptions::default()
        };
        let rep = analyse(&runs, &opts).unwrap();
        let (mup, ntp) = (&rep.groups[0], &rep.groups[1]);
        assert_eq!(mup.claim, Claim::Transfers);
        assert_eq!(ntp.claim, Claim::DriftsUp);
        let a = mup.alternative.unwrap();
        assert_eq!(a, ntp.drift.as_ref().unwrap().slope);
        assert_eq!(mup.verdict.verdict, Verdict::Pass, "{:?}", mup);
        assert_eq!(ntp.verdict.verdict, Verdict::Pass, "{:?}", ntp);
        assert_eq!(mup.transfers, Some(true));
        let bad = TransferOptions {
            against: Some("param.preset=sp".into()),
            ..TransferOptions::default()
        };
        let e = analyse(&runs, &bad).unwrap_err().to_string();
        assert!(e.contains("no such group") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn an_optimum_at_the_grid_edge_is_never_decided() {
        // Optima beyond the top of the grid at the larger widths.
        let mut runs = Vec::new();
        preset_runs("ntp", 2.0, &mut runs);
        let rep = analyse(&runs, &TransferOptions::default()).unwrap();
        let g = &rep.groups[0];
        assert!(g.widths.iter().any(|w| w.at_edge));
        assert_eq!(g.verdict.verdict, Verdict::Unclear, "{:?}", g.verdict);
        assert!(g.verdict.reason.contains("edge of the rate grid"));
    }

    #[test]
    fn a_non_finite_diverged_loss_is_a_config_error_not_a_panic() {
        let mut runs = Vec::new();
        preset_runs("mup", 0.0, &mut runs);
        for bad in [f64::NAN, f64::INFINITY, 0.0, -1.0] {
            let opts = TransferOptions {
                diverged_loss: bad,
                ..TransferOptions::default()
            };
            let e = analyse(&runs, &opts).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
            assert!(e.to_string().contains("diverged_loss"), "{e}");
        }
        // Finite but so large that seed means overflow: a warning, not a panic.
        let mut huge = Vec::new();
        preset_runs("mup", 0.0, &mut huge);
        for r in &mut huge {
            r.final_test_loss = Some(f64::MAX);
        }
        let opts = TransferOptions {
            diverged_loss: f64::MAX,
            ..TransferOptions::default()
        };
        let rep = analyse(&huge, &opts).unwrap();
        let warnings: Vec<&String> = rep.groups.iter().flat_map(|g| &g.warnings).collect();
        assert!(
            warnings.iter().any(|w| w.contains("no finite")),
            "{warnings:?}"
        );
    }
}
