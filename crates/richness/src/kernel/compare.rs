//! Experiment T8: trained networks against their kernel predictions, across width
//! and r (experiments.md T8, theory.md §5).
//!
//! For each width n, richness exponent r and seed, a ReLU MLP 64 → n → … → n → 1
//! on the embedded digits (scalar target: +1 for odd digits, −1 for even; the first
//! `n_train` training and `n_test` test images) is
//!
//! 1. initialised (gauge `mup` by default) and its empirical NTK K₀ computed on the
//!    training and test points, together with the infinite-width NTK K∞ (the same
//!    for every n and r);
//! 2. trained by full-batch gradient descent (no momentum) for `steps` steps at base
//!    rate η₀ on the library's MSE;
//! 3. compared on the test points with the linearised network of
//!    [`super::regression`] after exactly the same number of GD steps
//!    ([`Horizon::Steps`], so no time-discretisation error enters), using K₀
//!    ("emp") and K∞ ("inf"), both started from the network's own f₀ (uncentred).
//!
//! Measured per run (tidy rows `width,r,seed,quantity,value` in `t8_runs.csv`):
//!
//! | quantity | definition | predicted width exponent |
//! |---|---|---|
//! | `gap_emp` | ‖f_net − f_lin,K₀‖ / ‖f_lin,K₀‖ on test points | r − 1/2 (r = 1/2: does not fall) |
//! | `gap_inf` | ‖f_net − f_lin,K∞‖ / ‖f_lin,K∞‖ on test points | r − 1/2 (r = 1/2: does not fall) |
//! | `movement` | ‖K_T − K₀‖_F / ‖K₀‖_F on the training points | r − 1/2 |
//! | `k0_vs_inf` | ‖K₀ − K∞‖_F / ‖K∞‖_F on train ∪ test; `kernel_seeds` seeds, no training (r-independent, recorded at r = 0) | −1/2 |
//! | `gap_emp_rel_change`, `gap_inf_rel_change` | the gaps divided by ‖f_lin − f₀‖ instead | (not fitted) |
//! | `kernel_distance`, `alignment_0`, `alignment_T` | see [`super::movement`] | (not fitted) |
//! | `train_mse_net`, `test_mse_net`, `test_mse_lin_emp`, `test_mse_lin_inf` | losses after training | (not fitted) |
//!
//! Each fitted quantity gets a log–log least-squares slope over all (width, seed)
//! points per r, with standard error and 95% interval ([`crate::fit`]), and a
//! verdict ([`judge`], shared by `richness ntk compare` and `richness reproduce`):
//! `pass` when |slope − predicted| ≤ 0.1; `unclear` when the slope misses by more
//! but its 95% interval still contains the prediction (more seeds would decide);
//! `miss` otherwise. "Does not fall" (r = 1/2 gaps) is one-sided: `pass` when
//! slope > −0.1, else `miss`. Misses are reported, never hidden.

use super::empirical::{empirical_ntk, NtkOptions};
use super::infinite::InfiniteMlp;
use super::movement::{kernel_distance, relative_change, target_alignment};
use super::regression::{Horizon, LinearisedMse};
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::fit::{fit_loglog, LineFit};
use crate::linalg::Compute;
use crate::nn::{Activation, Arch, Loss, Model, Trace};
use crate::optim::OptimConfig;
use crate::param::{Gauge, OptimizerKind, ScaleChoice};
use crate::report::plot::{power_line, Figure, Series};
use crate::tensor::{Dtype, Mat, Scalar};
use crate::train::Trainer;
use serde::{Deserialize, Serialize};

/// Settings of T8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareConfig {
    pub widths: Vec<usize>,
    /// Richness exponents. Each one gets its own fits and verdicts for `gap_emp`,
    /// `gap_inf` and `movement` (predicted slope r − 1/2, except the gaps at
    /// r = 1/2, which must not fall); `k0_vs_inf` does not depend on r and is
    /// judged once.
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
        if self.widths.len() < 2 || self.widths.contains(&0) {
            return Err(Error::config(
                "T8 needs at least two positive widths to fit a slope",
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
        if !(self.base_lr > 0.0 && self.base_lr.is_finite()) {
            return Err(Error::config("base rate must be positive"));
        }
        Ok(())
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

/// Largest |slope − predicted| that passes (and how far below 0 a "does not
/// fall" slope may go).
pub const TOLERANCE: f64 = 0.1;

/// The rule of a slope that must stay ≥ −[`TOLERANCE`] rather than match a value.
pub const DOES_NOT_FALL: &str = "does not fall";

pub use crate::verdict::Verdict as Judgement;

/// The T8 verdict of a slope against its prediction, for `ntk compare` and
/// `reproduce` alike. Two-sided rules ("within 0.1") are judged as `richness
/// check` judges its slopes ([`crate::probe::check::verdict`]): pass within the
/// tolerance, unclear when only the 95% interval contains the prediction, miss
/// otherwise. The one-sided [`DOES_NOT_FALL`] rule passes when slope > −0.1 and
/// is otherwise a miss (an interval reaching 0 does not make a falling slope
/// unclear).
pub fn judge(fit: &LineFit, predicted: f64, rule: &str) -> Judgement {
    if rule == DOES_NOT_FALL {
        return crate::verdict::judge_band(fit.slope, fit.ci95, (-TOLERANCE, f64::INFINITY), None)
            .verdict;
    }
    crate::verdict::judge_slope(fit, predicted, TOLERANCE, None).verdict
}

/// A fitted width exponent with its prediction and verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlopeVerdict {
    pub quantity: String,
    pub r: f64,
    pub fit: LineFit,
    /// Predicted exponent.
    pub predicted: f64,
    /// `"within 0.1"` or `"does not fall"`.
    pub rule: String,
    /// [`judge`] of the fit.
    pub verdict: Judgement,
    /// `verdict == pass`.
    pub pass: bool,
}

/// Everything T8 produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareReport {
    pub config: CompareConfig,
    pub measurements: Vec<Measurement>,
    pub fits: Vec<SlopeVerdict>,
    pub seconds: f64,
}

impl CompareReport {
    /// Whether every verdict passed.
    pub fn all_pass(&self) -> bool {
        self.fits.iter().all(|f| f.pass)
    }

    /// Whether some verdict is a clear miss (`unclear` is not).
    pub fn any_miss(&self) -> bool {
        self.fits.iter().any(|f| f.verdict == Judgement::Fail)
    }

    /// Mean of a quantity at (width, r) over seeds.
    pub fn mean(&self, quantity: &str, width: usize, r: f64) -> Option<f64> {
        let v: Vec<f64> = self
            .measurements
            .iter()
            .filter(|m| m.quantity == quantity && m.width == width && m.r == r)
            .map(|m| m.value)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
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
    fn width_series(&self, quantity: &str, rs: &[f64]) -> Vec<Series> {
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
                out.push(Series::new(format!("r = {r}"), x, y).band(lo, hi).color(i));
            }
        }
        out
    }

    /// The T8 figures, log–log against width with theory guides through each
    /// series' geometric middle: `t8_gap` (network vs linearised-network test
    /// predictions, guide n^{r−1/2}), `t8_gap_inf` (vs the infinite-width kernel),
    /// `t8_movement` (‖K_T − K₀‖/‖K₀‖, guide n^{r−1/2}) and `t8_k0` (‖K₀ − K∞‖/‖K∞‖,
    /// guide n^{−1/2}).
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
            for (s, &r) in series.iter().zip(&rs) {
                let slope = if per_r { r - 0.5 } else { -0.5 };
                let k = s.x.len() / 2;
                let label = format!("theory n^{slope:+.2}");
                guides.push(
                    power_line(&label, x_lo, x_hi, s.x[k], s.y[k], slope)
                        .color(s.color.unwrap_or(0)),
                );
            }
            fig.series.extend(series);
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

    /// The fits as CSV: `quantity,r,slope,slope_se,ci_lo,ci_hi,r2,n,predicted,rule,verdict`.
    pub fn fits_csv(&self) -> String {
        let mut s =
            String::from("quantity,r,slope,slope_se,ci_lo,ci_hi,r2,n,predicted,rule,verdict\n");
        for f in &self.fits {
            s.push_str(&format!(
                "{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{},{},{},{}\n",
                f.quantity,
                f.r,
                f.fit.slope,
                f.fit.slope_se,
                f.fit.ci95.0,
                f.fit.ci95.1,
                f.fit.r2,
                f.fit.points,
                f.predicted,
                f.rule,
                f.verdict.name()
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
                let vals = match cfg.dtype {
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
                bar.inc(1);
                bar.set_message(format!("n={width} r={r}"));
            }
        }
    }
    bar.finish_and_clear();
    let mut fits = Vec::new();
    for &r in &cfg.rs {
        for q in ["gap_emp", "gap_inf", "movement", "k0_vs_inf"] {
            if q == "k0_vs_inf" && r != cfg.rs[0] {
                continue;
            }
            let r_rec = if q == "k0_vs_inf" { 0.0 } else { r };
            let pts: Vec<(f64, f64)> = measurements
                .iter()
                .filter(|m| m.quantity == q && m.r == r_rec && m.value > 0.0 && m.value.is_finite())
                .map(|m| (m.width as f64, m.value))
                .collect();
            if pts.len() < 3 {
                continue;
            }
            let (xs, ys): (Vec<f64>, Vec<f64>) = pts.into_iter().unzip();
            let Some(fit) = fit_loglog(&xs, &ys) else {
                continue;
            };
            let (predicted, rule) = match q {
                "k0_vs_inf" => (-0.5, "within 0.1"),
                "gap_emp" | "gap_inf" if (r - 0.5).abs() < 1e-12 => (0.0, DOES_NOT_FALL),
                _ => (r - 0.5, "within 0.1"),
            };
            let verdict = judge(&fit, predicted, rule);
            fits.push(SlopeVerdict {
                quantity: q.to_string(),
                r: r_rec,
                fit,
                predicted,
                rule: rule.to_string(),
                verdict,
                pass: verdict == Judgement::Pass,
            });
        }
    }
    Ok(CompareReport {
        config: cfg.clone(),
        measurements,
        fits,
        seconds: start.elapsed().as_secs_f64(),
    })
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
        ..Default::default()
    }
}

/// One (width, r, seed): returns (quantity, value) pairs.
fn one_run<T: Scalar>(
    c: &RunCtx<'_>,
    width: usize,
    r: f64,
    seed: u64,
) -> Result<Vec<(&'static str, f64)>> {
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
    // K₀ on train ∪ test at once (one symmetric kernel), then its blocks.
    let k0_all = empirical_ntk(&model, cx, &xall, None, &NtkOptions::default())?.remove(0);
    let k0_tr = sub(&k0_all, 0, b, 0, b);
    let k0_cross = sub(&k0_all, b, b + nt, 0, b);
    let horizon = Horizon::Steps(cfg.steps);
    let lin_emp = LinearisedMse::new(&k0_tr, c.ytr, Some(&f0_tr), cfg.base_lr, 0.0)?;
    let pred_emp = lin_emp.predict(cx, &k0_cross, Some(&f0_te), horizon)?;
    let lin_inf = LinearisedMse::new(c.kinf_tr, c.ytr, Some(&f0_tr), cfg.base_lr, 0.0)?;
    let pred_inf = lin_inf.predict(cx, c.kinf_cross, Some(&f0_te), horizon)?;
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
    Ok(vec![
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
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(rs: Vec<f64>) -> CompareConfig {
        CompareConfig {
            widths: vec![8, 16],
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
        }
    }

    /// Gaps and movement are judged at every r (not only r = 0 and 1/2), and
    /// `k0_vs_inf` once.
    #[test]
    fn every_r_gets_gap_and_movement_verdicts() {
        let rs = vec![0.0, 0.25, 0.5];
        let report = run_compare(&tiny(rs.clone()), &Compute::new(1), false).unwrap();
        for &r in &rs {
            for q in ["gap_emp", "gap_inf", "movement"] {
                let f: Vec<&SlopeVerdict> = report
                    .fits
                    .iter()
                    .filter(|f| f.quantity == q && f.r == r)
                    .collect();
                assert_eq!(f.len(), 1, "{q} at r = {r}");
                let does_not_fall = q != "movement" && r == 0.5;
                if does_not_fall {
                    assert_eq!((f[0].predicted, f[0].rule.as_str()), (0.0, "does not fall"));
                } else {
                    assert_eq!(
                        (f[0].predicted, f[0].rule.as_str()),
                        (r - 0.5, "within 0.1")
                    );
                }
            }
        }
        let k0: Vec<&SlopeVerdict> = report
            .fits
            .iter()
            .filter(|f| f.quantity == "k0_vs_inf")
            .collect();
        assert_eq!(k0.len(), 1);
        assert_eq!(report.fits.len(), 3 * rs.len() + 1);
        for f in &report.fits {
            assert_eq!(f.verdict, judge(&f.fit, f.predicted, &f.rule));
            assert_eq!(f.pass, f.verdict == Judgement::Pass);
        }
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
    fn verdicts_are_pass_unclear_or_miss() {
        use Judgement::*;
        let w = "within 0.1";
        assert_eq!(judge(&fit(-0.45, (-0.5, -0.4)), -0.5, w), Pass);
        assert_eq!(judge(&fit(-0.6, (-0.7, -0.5)), -0.5, w), Pass);
        // The docs' r = 0 gap_emp row: misses by 0.02, the interval contains −0.5.
        assert_eq!(judge(&fit(-0.624, (-0.855, -0.392)), -0.5, w), Unclear);
        // The r = 0 movement row: the interval excludes −0.5.
        assert_eq!(judge(&fit(-0.897, (-1.099, -0.696)), -0.5, w), Miss);
        // One-sided: a falling slope is a miss even when its interval reaches 0.
        assert_eq!(judge(&fit(-0.05, (-0.3, 0.2)), 0.0, DOES_NOT_FALL), Pass);
        assert_eq!(judge(&fit(-0.3, (-0.6, 0.1)), 0.0, DOES_NOT_FALL), Miss);
        assert_eq!(Unclear.name(), "unclear");
        assert_eq!(serde_json::to_value(Miss).unwrap(), "miss");
    }
}
