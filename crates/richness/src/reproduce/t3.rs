//! Experiment T3: Gauge equivalence and lazy vs rich (MLP).

use super::common::{cached_train, csv_path, parse};
use super::{ClaimResult, ExperimentId, ExperimentResult, Options, Verdict};
use crate::error::{Error, Result};
use crate::fit::mean_std;
use crate::param::{Preset, ScaleChoice};
use crate::report::plot::{Figure, Series, Style};
use crate::train::{self, Status, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// T3 and T4: train every preset on the same seeds and data order; compare curves.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct T3Config {
    pub presets: Vec<Preset>,
    pub seeds: usize,
    /// Presets that should coincide (a bundle), e.g. [["ntp", "ntp-lr"], ["mup", "mup-lr", "mfp"]].
    pub bundles: Vec<Vec<Preset>>,
    /// Largest relative difference of test losses within a bundle that counts as
    /// "rounding error".
    pub coincide_tol: f64,
    pub train: TrainConfig,
}

pub(super) fn compare_presets(
    cfg: &T3Config,
    dir: &Path,
    opts: &Options,
    res: &mut ExperimentResult,
    model: &str,
) -> Result<()> {
    let t = &cfg.train;
    res.setup = format!(
        "{model} ({}, width {}) on `{}`, batch {}, {} epochs, SGD momentum {}, η₀ = {}, {} seeds, {}; presets {}. Every preset sees the same initial weights (up to its gauge) and the same data order.",
        t.model.arch,
        t.model.width.map(|w| w.to_string()).unwrap_or_else(|| "-".into()),
        t.data.dataset,
        t.train.batch_size,
        t.train.epochs.unwrap_or(0),
        t.optim.momentum,
        t.param.base_lr,
        cfg.seeds,
        t.dtype.name(),
        cfg.presets.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
    );
    // curves[preset][seed] = test loss per evaluation (epoch).
    let mut curves: Vec<Vec<Vec<f64>>> = Vec::new();
    let mut epochs: Vec<f64> = Vec::new();
    let mut csv = String::from("preset,seed,epoch,test_loss,test_acc\n");
    let total = cfg.presets.len() * cfg.seeds;
    let bar = crate::progress::bar(total as u64, res.id.name(), opts.progress);
    for p in &cfg.presets {
        let mut per_seed = Vec::new();
        for s in 0..cfg.seeds {
            let mut c = t.clone();
            c.param = ScaleChoice {
                base_lr: t.param.base_lr,
                ..ScaleChoice::preset(*p)
            };
            c.seed = s as u64;
            let o = cached_train(
                &c,
                &dir.join("runs").join(format!("{}-s{s}", p.name())),
                opts,
            )?;
            if let Status::Diverged { step, reason } = &o.status {
                res.notes.push(format!(
                    "{} seed {s} diverged at step {step}: {reason}",
                    p.name()
                ));
            }
            let evals: Vec<&train::MetricRow> =
                o.metrics.iter().filter(|m| m.test_loss.is_some()).collect();
            epochs = evals.iter().map(|m| m.epoch as f64).collect();
            for m in &evals {
                csv.push_str(&format!(
                    "{},{s},{},{:e},{}\n",
                    p.name(),
                    m.epoch,
                    m.test_loss.unwrap(),
                    m.test_acc.map(|a| format!("{a:e}")).unwrap_or_default()
                ));
            }
            per_seed.push(evals.iter().map(|m| m.test_loss.unwrap()).collect());
            bar.inc(1);
        }
        curves.push(per_seed);
    }
    bar.finish_and_clear();
    crate::files::write_atomic(&dir.join("curves.csv"), csv.as_bytes())?;
    res.files.push(csv_path(res, "curves.csv"));
    let idx = |p: &Preset| cfg.presets.iter().position(|q| q == p);
    // Within-bundle agreement: max over seeds and epochs of |L_a − L_b| / L_b.
    let mut finals = Vec::new();
    for b in &cfg.bundles {
        let members: Vec<usize> = b.iter().filter_map(idx).collect();
        if members.len() < b.len() {
            return Err(Error::config(format!(
                "{}: a bundle names a preset that is not in `presets`",
                res.id.name()
            )));
        }
        let mut maxdiff: f64 = 0.0;
        for &m in &members[1..] {
            for (sa, sb) in curves[m].iter().zip(&curves[members[0]]) {
                for (a, b) in sa.iter().zip(sb) {
                    maxdiff = maxdiff.max((a - b).abs() / b.abs().max(1e-300));
                }
            }
        }
        let names = b.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
        res.claims.push(ClaimResult::new(
            format!("{{{names}}} coincide under identical seeds and data order"),
            "equal to rounding error (gauge equivalence)",
            format!("max relative test-loss difference {maxdiff:.2e}"),
            format!("≤ {:.0e}", cfg.coincide_tol),
            Verdict::from_bool(maxdiff <= cfg.coincide_tol),
        ));
        let last: Vec<f64> = curves[members[0]]
            .iter()
            .filter_map(|c| c.last().copied())
            .collect();
        let (m, s) = mean_std(&last);
        finals.push((names, m, s));
    }
    if finals.len() == 2 {
        let (lazy, rich) = (&finals[0], &finals[1]);
        let (expected_lazy, expected_rich) = if res.id == ExperimentId::T3 {
            ("≈ 0.04", "≈ 0.015–0.02")
        } else {
            ("≈ 0.08", "≈ 0.065–0.07")
        };
        res.claims.push(ClaimResult::new(
            "two bundles: the rich one ends lower",
            format!(
                "lazy {{{}}} {expected_lazy}, rich {{{}}} {expected_rich} (original data)",
                lazy.0, rich.0
            ),
            format!(
                "final test MSE lazy {:.4} ± {:.4}, rich {:.4} ± {:.4}",
                lazy.1, lazy.2, rich.1, rich.2
            ),
            "rich mean + 2 std < lazy mean − 2 std",
            Verdict::from_bool(rich.1 + 2.0 * rich.2 < lazy.1 - 2.0 * lazy.2),
        ));
    }
    let mut fig = Figure::new(
        format!(
            "{}: test MSE per epoch (mean ± std over seeds)",
            res.id.name()
        ),
        "epoch",
        "test MSE",
    );
    fig.y_log = true;
    for (i, p) in cfg.presets.iter().enumerate() {
        let n = curves[i].iter().map(|c| c.len()).min().unwrap_or(0);
        let (mut y, mut lo, mut hi) = (vec![], vec![], vec![]);
        for k in 0..n {
            let v: Vec<f64> = curves[i].iter().map(|c| c[k]).collect();
            let (m, s) = mean_std(&v);
            y.push(m);
            lo.push((m - s).max(m * 0.5));
            hi.push(m + s);
        }
        let style = if i % 2 == 0 {
            Style::Line
        } else {
            Style::Dashed
        };
        fig.series.push(
            Series::new(p.name(), epochs[..n].to_vec(), y)
                .band(lo, hi)
                .style(style)
                .color(i),
        );
    }
    res.add_figure(
        dir,
        "curves",
        "Test MSE per epoch for each preset (mean ± std band over seeds; log scale). Curves of one bundle lie on top of each other.",
        &fig,
    )?;
    Ok(())
}

/// Run T3 from its config text, writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    compare_presets(&parse(text, ExperimentId::T3)?, dir, opts, res, "MLP")
}

/// Parse T3's config without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    parse::<T3Config>(text, ExperimentId::T3).map(drop)
}
