//! The coordinate check (as in Microsoft's `mup`): coordinate sizes over training
//! steps and widths.
//!
//! For each width and seed, train t = 1…T steps on the probe batch and record, at
//! every t = 0…T and for every layer, the mean absolute coordinate `mean|h_ℓ|` and
//! the RMS coordinate of the pre-activations (the output for ℓ = L). A well-scaled
//! network has no coordinate that grows with width: the verdict is `stable` when
//! every log–log slope of `mean_abs` against width is at most the tolerance (it
//! lists which are flat, |slope| ≤ tolerance; on the scale the output at init
//! shrinks like n^{−r}, by design). Slopes are judged on their 95% interval
//! ([`crate::verdict`]): `fail` (grows) when the whole interval lies above the
//! tolerance, `unclear` when it straddles it. Outputs are centred (f − f₀) unless
//! `param.center = false`, so the read-out's coordinate at t = 0 is exactly 0 and is
//! not fitted; ‖f₀‖/‖y‖ is reported per width either way.

use super::check::CheckConfig;
use crate::error::{Error, Result};
use crate::fit::{mean_std, LineFit};
use crate::linalg::Compute;
use crate::nn::Model;
use crate::param::Parameterization;
use crate::report::plot::{Figure, Grid, Series, Style};
use crate::tensor::{Dtype, Scalar};
use crate::train::Trainer;
use crate::verdict::{judge_band, Judged, Verdict};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One coordinate statistic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordRow {
    pub width: usize,
    pub seed: usize,
    pub step: usize,
    pub layer: usize,
    /// `mean_abs` or `rms`.
    pub quantity: String,
    pub value: f64,
}

/// Slope of `mean_abs` against width at one (step, layer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordSlope {
    pub step: usize,
    pub layer: usize,
    pub fit: Option<LineFit>,
    pub flat: bool,
    pub grows: bool,
    /// "Does not grow": the 95% interval of the slope below +tolerance.
    #[serde(flatten)]
    pub judged: Judged,
}

/// The coordinate check's result (also `coord.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordReport {
    pub config: CheckConfig,
    pub parameterization: Parameterization,
    /// The name of every coordinate's module, in `layer` order (1-based): `layer ℓ`
    /// for a chain of layers, the stream, branches and logits of a GPT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    pub slopes: Vec<CoordSlope>,
    /// (width, seed, step) where a coordinate became non-finite.
    pub diverged: Vec<(usize, usize, usize)>,
    /// No coordinate's slope lies wholly above the tolerance (verdict not `fail`).
    pub stable: bool,
    /// Whether outputs were centred (f − f₀).
    #[serde(default)]
    pub centred: bool,
    /// ‖f₀‖/‖y‖ per width (seed mean), uncentred.
    #[serde(default)]
    pub f0_rel: Vec<(usize, f64)>,
    /// Why an uncentred f₀ may bias the picture (see `check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f0_note: Option<String>,
    /// The worst slope verdict (`fail`: a coordinate grows with width).
    pub verdict: Verdict,
}

/// (width, seed, step) of a run that diverged.
type Divergence = (usize, usize, usize);

/// Run the coordinate check with `cfg.steps` steps.
pub fn run(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(CoordReport, Vec<CoordRow>)> {
    if cfg.model.arch == crate::nn::Family::Gpt {
        return super::gpt::coord(cfg, threads, progress);
    }
    match cfg.dtype {
        Dtype::F32 => run_typed::<f32>(cfg, threads, progress),
        Dtype::F64 => run_typed::<f64>(cfg, threads, progress),
    }
}

fn run_typed<T: Scalar>(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(CoordReport, Vec<CoordRow>)> {
    if crate::probe::check::distinct(&cfg.widths) < 2 || cfg.seeds == 0 {
        return Err(Error::config(format!(
            "widths {:?}, seeds {}: a coordinate check needs at least two distinct widths and one seed",
            cfg.widths, cfg.seeds
        )));
    }
    super::check::validate_counts(cfg)?;
    // As `check` does: a NaN momentum would otherwise train silently into NaN.
    cfg.optim.validate()?;
    if !cfg.lr_exponent.is_finite() {
        return Err(Error::config(format!(
            "lr_exponent must be a finite number, got {}",
            cfg.lr_exponent
        )));
    }
    let (x, y) = super::check::probe_batch::<T>(cfg)?;
    let b = x.rows();
    // Every step's coordinate sizes are kept: rows grow with steps × seeds × widths.
    let depth = {
        let mut m = cfg.model.clone();
        m.width = cfg.widths.iter().copied().max();
        m.resolve(x.cols(), y.cols())?.depth() as u128
    };
    super::check::ensure_scan_fits(
        "a coordinate check",
        (cfg.widths.len() as u128).saturating_mul(cfg.seeds as u128),
        (cfg.steps as u128 + 1).saturating_mul(2 * depth + 1),
        std::mem::size_of::<CoordRow>() + 16,
    )?;
    let mut jobs: Vec<(usize, usize)> = cfg
        .widths
        .iter()
        .flat_map(|&w| (0..cfg.seeds).map(move |s| (w, s)))
        .collect();
    jobs.sort_by_key(|&(w, s)| (std::cmp::Reverse(w), s));
    let bar = crate::progress::bar(
        (jobs.len() as u64).saturating_mul(cfg.steps as u64 + 1),
        "coord steps",
        progress,
    );
    let one = |&(w, s): &(usize, usize)| -> Result<(Vec<CoordRow>, Option<Divergence>)> {
        let mut m = cfg.model.clone();
        m.width = Some(w);
        let arch = m.resolve(x.cols(), y.cols())?;
        let mut choice = cfg.param.clone();
        choice.base_lr = cfg.param.base_lr * (arch.width() as f64).powf(-cfg.lr_exponent);
        // Centred unless asked otherwise, as `check` (docs/theory.md §6.1).
        choice.center = Some(cfg.param.center.unwrap_or(true));
        let param = Parameterization::resolve(&arch.layer_shapes(), &choice, cfg.optim.kind)?;
        let model = Model::<T>::init_with(&arch, param, s as u64)?;
        let mut t = Trainer::new(model, &cfg.optim, Compute::new(1), cfg.loss, b);
        let mut rows = Vec::new();
        let mut div = None;
        for step in 0..=cfg.steps {
            t.model.forward(&t.cx, x.as_slice(), b, &mut t.trace);
            if step == 0 {
                let f0 = t.model.raw_output(&t.trace);
                rows.push(CoordRow {
                    width: w,
                    seed: s,
                    step,
                    layer: 0,
                    quantity: "f0_rel".into(),
                    value: crate::tensor::norm(f0.as_slice()) / crate::tensor::norm(y.as_slice()),
                });
            }
            for (l, z) in t.trace.z.iter().enumerate() {
                let v = z.as_slice();
                let n = v.len() as f64;
                let mean_abs = v.iter().map(|c| c.f64().abs()).sum::<f64>() / n;
                let rms = (v.iter().map(|c| c.f64().powi(2)).sum::<f64>() / n).sqrt();
                if !mean_abs.is_finite() && div.is_none() {
                    div = Some((w, s, step));
                }
                for (q, val) in [("mean_abs", mean_abs), ("rms", rms)] {
                    rows.push(CoordRow {
                        width: w,
                        seed: s,
                        step,
                        layer: l + 1,
                        quantity: q.into(),
                        value: val,
                    });
                }
            }
            if step < cfg.steps {
                t.step(x.as_slice(), y.as_slice(), b);
            }
            bar.inc(1);
        }
        Ok((rows, div))
    };
    let pool = super::check::thread_pool(threads)?;
    // One job per task: the jobs differ in cost by width² (rayon's default halving
    // left one thread idle behind the widest ones).
    let results: Vec<Result<_>> =
        pool.install(|| jobs.par_iter().with_max_len(1).map(one).collect());
    bar.finish_and_clear();
    let mut rows = Vec::new();
    let mut diverged = Vec::new();
    for r in results {
        let (rs, d) = r?;
        rows.extend(rs);
        diverged.extend(d);
    }
    rows.sort_by(|a, b| {
        (a.width, a.seed, a.step, a.layer, &a.quantity).cmp(&(
            b.width,
            b.seed,
            b.step,
            b.layer,
            &b.quantity,
        ))
    });
    diverged.sort();
    let wmax = *cfg.widths.iter().max().unwrap();
    let mut m = cfg.model.clone();
    m.width = Some(wmax);
    let arch = m.resolve(x.cols(), y.cols())?;
    let mut choice = cfg.param.clone();
    choice.center = Some(cfg.param.center.unwrap_or(true));
    let parameterization =
        Parameterization::resolve(&arch.layer_shapes(), &choice, cfg.optim.kind)?;
    let centred = parameterization.center;
    let depth = arch.depth();
    // A centred output is exactly 0 before the first step: nothing to fit.
    let zero_at_init = |layer: usize| centred && layer == depth;
    let modules = (1..=depth).map(|l| format!("layer {l}")).collect();
    Ok(judge_rows(
        cfg,
        parameterization,
        rows,
        diverged,
        modules,
        &zero_at_init,
    ))
}

/// Judge coordinate rows (`mean_abs` per (step, layer), layers 1..=`modules.len()`):
/// the slopes against width, the verdict, ‖f₀‖/‖y‖. `zero_at_init(layer)`: the
/// module is exactly 0 at step 0 (a centred output, a zero-initialised query's
/// logits), so nothing is fitted there.
pub(crate) fn judge_rows(
    cfg: &CheckConfig,
    parameterization: Parameterization,
    rows: Vec<CoordRow>,
    diverged: Vec<Divergence>,
    modules: Vec<String>,
    zero_at_init: &dyn Fn(usize) -> bool,
) -> (CoordReport, Vec<CoordRow>) {
    let centred = parameterization.center;
    let depth = modules.len();
    let tol = cfg.tolerance;
    let mut slopes = Vec::new();
    for step in 0..=cfg.steps {
        for layer in 1..=depth {
            if step == 0 && zero_at_init(layer) {
                continue;
            }
            let fit = seed_fit(&rows, step, layer, cfg.ci_level.unwrap_or(0.95));
            // Growing is judged on the interval: `grows` when the whole 95% interval
            // lies above the tolerance, `unclear` when it straddles it.
            let judged = match &fit {
                Some(f) => judge_band(f.slope, f.ci95, (f64::NEG_INFINITY, tol), Some(cfg.seeds)),
                None => Judged::new(Verdict::Error, "no fit (a coordinate is 0 or non-finite)"),
            };
            let (flat, grows) = match fit {
                Some(f) => (f.slope.abs() <= tol, judged.verdict == Verdict::Fail),
                None => (false, true),
            };
            slopes.push(CoordSlope {
                step,
                layer,
                fit,
                flat,
                grows,
                judged,
            });
        }
    }
    let mut verdict = Verdict::worst(slopes.iter().map(|s| s.judged.verdict));
    if !diverged.is_empty() {
        verdict = Verdict::Fail;
    }
    let stable = !verdict.fails(false);
    let f0_rel: Vec<(usize, f64)> = {
        let mut widths: Vec<usize> = rows
            .iter()
            .filter(|r| r.quantity == "f0_rel")
            .map(|r| r.width)
            .collect();
        widths.sort_unstable();
        widths.dedup();
        widths
            .into_iter()
            .map(|w| {
                let v: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.width == w && r.quantity == "f0_rel")
                    .map(|r| r.value)
                    .collect();
                (w, mean_std(&v).0)
            })
            .collect()
    };
    let f0_note = super::check::f0_bias_note(&f0_rel, centred);
    (
        CoordReport {
            config: cfg.clone(),
            parameterization,
            modules,
            slopes,
            diverged,
            stable,
            centred,
            f0_rel,
            f0_note,
            verdict,
        },
        rows,
    )
}

/// Log–log fit of `mean_abs` at one (step, layer): least squares on seed means with a
/// delete-one-seed jackknife interval over seeds (the units), as `check` fits (with
/// fewer than three seeds, the least-squares interval over widths).
fn seed_fit(rows: &[CoordRow], step: usize, layer: usize, level: f64) -> Option<LineFit> {
    let mut table: std::collections::BTreeMap<usize, Vec<(usize, f64)>> =
        std::collections::BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.step == step && r.layer == layer && r.quantity == "mean_abs")
    {
        table.entry(r.width).or_default().push((r.seed, r.value));
    }
    let mut xs = Vec::new();
    let mut per_width = Vec::new();
    for (w, mut v) in table {
        v.sort_by_key(|p| p.0);
        if v.iter().any(|p| !p.1.is_finite()) {
            continue;
        }
        xs.push(w as f64);
        per_width.push(v.into_iter().map(|p| p.1).collect::<Vec<f64>>());
    }
    crate::fit::fit_loglog_jackknife_nested_at(&xs, &per_width, level)
}

/// (width, mean, min, max) of `mean_abs` over seeds at one (step, layer).
fn stats(rows: &[CoordRow], step: usize, layer: usize) -> Vec<(f64, f64, f64, f64)> {
    let mut widths: Vec<usize> = rows.iter().map(|r| r.width).collect();
    widths.sort_unstable();
    widths.dedup();
    widths
        .into_iter()
        .filter_map(|w| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| {
                    r.width == w && r.step == step && r.layer == layer && r.quantity == "mean_abs"
                })
                .map(|r| r.value)
                .filter(|v| v.is_finite())
                .collect();
            if v.is_empty() {
                return None;
            }
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some((w as f64, mean_std(&v).0, lo, hi))
        })
        .collect()
}

impl CoordReport {
    /// Modules (coordinates) per step.
    pub fn depth(&self) -> usize {
        if self.modules.is_empty() {
            self.parameterization.layers.len()
        } else {
            self.modules.len()
        }
    }

    /// The name of coordinate `layer` (1-based).
    pub fn module(&self, layer: usize) -> String {
        self.modules
            .get(layer.wrapping_sub(1))
            .cloned()
            .unwrap_or_else(|| format!("layer {layer}"))
    }

    pub fn to_text(&self) -> String {
        let mut s = format!(
            "# coordinate check: {} | widths {:?} | {} seeds\n",
            self.parameterization.summary(),
            self.config.widths,
            self.config.seeds
        );
        let depth = self.depth();
        let mut rows = vec![std::iter::once("step".to_string())
            .chain((1..=depth).map(|l| format!("{} slope", self.module(l))))
            .collect::<Vec<_>>()];
        for step in 0..=self.config.steps {
            let mut r = vec![step.to_string()];
            for l in 1..=depth {
                let Some(c) = self.slopes.iter().find(|c| c.step == step && c.layer == l) else {
                    r.push(
                        if self.centred {
                            "0 (centred)"
                        } else {
                            "0 (zero init)"
                        }
                        .into(),
                    );
                    continue;
                };
                r.push(match c.fit {
                    Some(f) => format!(
                        "{:+.3}{}",
                        f.slope,
                        if c.grows {
                            " GROWS"
                        } else if c.judged.verdict == Verdict::Unclear {
                            " (unclear)"
                        } else if c.flat {
                            ""
                        } else {
                            " (shrinks)"
                        }
                    ),
                    None => "n/a".into(),
                });
            }
            rows.push(r);
        }
        s.push_str("slopes of mean|h_ℓ| against width (log–log):\n");
        s.push_str(&crate::param::align(&rows));
        for (w, seed, step) in &self.diverged {
            s.push_str(&format!(
                "diverged at width {w}, seed {seed}, step {step}\n"
            ));
        }
        if !self.f0_rel.is_empty() {
            s.push_str(&super::check::f0_line(&self.f0_rel, self.centred));
        }
        if let Some(n) = &self.f0_note {
            s.push_str(&format!("note: {n}\n"));
        }
        for c in self
            .slopes
            .iter()
            .filter(|c| c.judged.verdict != Verdict::Pass)
        {
            s.push_str(&format!(
                "step {} {}: {}\n",
                c.step,
                self.module(c.layer),
                c.judged.describe()
            ));
        }
        s.push_str(&format!(
            "verdict: {} — {}\n",
            self.verdict.name(),
            match self.verdict {
                Verdict::Pass => "stable (no coordinate grows with width)",
                Verdict::Unclear => "no coordinate clearly grows, but some slope's interval reaches above the tolerance",
                _ => "UNSTABLE (some coordinate grows with width)",
            }
        ));
        s
    }

    /// `coord.json`, `coord.csv` and the plot (one panel per step).
    pub fn write(&self, dir: &Path, rows: &[CoordRow]) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::io::write_atomic(
            &dir.join("coord.json"),
            serde_json::to_string_pretty(self).expect("json").as_bytes(),
        )?;
        let mut csv = String::from("width,seed,step,layer,quantity,value\n");
        for r in rows {
            csv.push_str(&format!(
                "{},{},{},{},{},{:e}\n",
                r.width, r.seed, r.step, r.layer, r.quantity, r.value
            ));
        }
        crate::io::write_atomic(&dir.join("coord.csv"), csv.as_bytes())?;
        let figs = self.figures(rows);
        Grid {
            figures: &figs,
            cols: figs.len().min(4),
        }
        .save_all(dir, "coord")
    }

    /// One log–log panel per step, one line per layer, seed band.
    pub fn figures(&self, rows: &[CoordRow]) -> Vec<Figure> {
        let depth = self.depth();
        (0..=self.config.steps)
            .map(|step| {
                let mut f = Figure::loglog(format!("t = {step}"), "width n", "mean |h|");
                f.size = (420, 340);
                for l in 1..=depth {
                    let p = stats(rows, step, l);
                    if p.iter().any(|p| p.1 <= 0.0) {
                        continue; // exactly 0 (centred, zero init): nothing to draw on log axes
                    }
                    f.series.push(
                        Series::new(
                            self.module(l),
                            p.iter().map(|p| p.0).collect(),
                            p.iter().map(|p| p.1).collect(),
                        )
                        .style(Style::LinePoints)
                        .band(
                            p.iter().map(|p| p.2).collect(),
                            p.iter().map(|p| p.3).collect(),
                        ),
                    );
                }
                f
            })
            .collect()
    }
}
