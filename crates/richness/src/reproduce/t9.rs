//! Experiment T9 [extension]: learning-rate transfer across depth.
//!
//! A pre-activation residual MLP (docs/layers.md) at fixed width with μP width
//! scaling, B blocks for B in the config's `model.blocks` axis, with branch scale
//! β = 1 and β = 1/√B. Each depth's optimal base rate is located as in T5 (seed-mean
//! test MSE against the rate, refined by a parabola in log-rate), and its drift
//! exponent against B is fitted: ln η*(B) = c + drift·ln B.
//!
//! Claims, both judged on the 95% interval of the drift (tolerance as T5's, 0.15):
//! - β = 1/√B: the optimum transfers across depth, drift inside 0 ± tolerance
//!   (Bordelon et al. 2023; Yang et al. 2023);
//! - β = 1: the optimum moves to smaller rates as B grows, drift below −tolerance
//!   (without normalization the stream's variance grows like (1 + β²)^B and every
//!   block adds a β²-weighted term to the tangent kernel; docs/theory.md §8.1).
//!
//! A depth at which no rate trains (no dip in the loss curve) is reported and left
//! out of its group's fit.

use super::common::{csv_path, drift_summary, run_transfer_sweep};
use super::{ClaimResult, ExperimentResult, Options};
use crate::error::Result;
use crate::sweep::transfer::Drift;
use crate::verdict::{judge_band, Judged};
use std::path::Path;

/// Run T9 from its config text (a sweep spec with `model.blocks` and `model.branch`
/// axes), writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    use crate::sweep::transfer::{analyse, TransferOptions};
    let (spec, sweep, store) = run_transfer_sweep(text, "t9", dir, opts)?;
    let topts = TransferOptions {
        width_key: "model.blocks".into(),
        ..TransferOptions::default()
    };
    let runs = store.runs()?;
    let first = analyse(&runs, &topts)?;
    // A depth at which no rate of the grid trains has no optimum to transfer: its loss
    // curve has no dip (the best loss is within 5% of the worst loss of the rates at
    // which no seed diverged; e.g. small rates diverge and large ones kill every
    // ReLU, leaving the zero predictor). It is named in the report and left out of
    // that group's drift fit.
    let mut untrainable: Vec<(String, f64, f64)> = Vec::new();
    for g in &first.groups {
        for w in &g.widths {
            let worst = w
                .mean_loss
                .iter()
                .zip(&w.diverged)
                .filter(|(_, &d)| d == 0)
                .map(|(&l, _)| l)
                .fold(f64::NAN, f64::max);
            if !(w.optimum_loss < 0.95 * worst) {
                untrainable.push((g.label.clone(), w.width, w.optimum_loss));
            }
        }
    }
    let rep = if untrainable.is_empty() {
        first
    } else {
        let kept: Vec<_> = runs
            .iter()
            .filter(|r| {
                let p = r.params_map();
                let blocks = p.get("model.blocks").and_then(|v| v.as_f64());
                let branch = p.get("model.branch").and_then(|v| v.as_str()).unwrap_or("");
                !untrainable.iter().any(|(label, b, _)| {
                    Some(*b) == blocks && label == &format!("model.branch={branch}")
                })
            })
            .cloned()
            .collect();
        analyse(&kept, &topts)?
    };
    for (label, b, loss) in &untrainable {
        res.notes.push(format!(
            "{label}, B = {b}: no rate of the grid trains (best seed-mean test MSE {loss:.4}, within 5% of the worst rate's that did not diverge): this depth is left out of the drift fit"
        ));
    }
    let tol = topts.tolerance;
    res.setup = format!(
        "Sweep `{}` ({} runs: {} completed, {} diverged this time, {} reused): a resmlp at fixed width with μP width scaling, test MSE after training against the base rate for every number of blocks B, with branch scale β = 1 and β = 1/√B; each depth's optimum refined by a parabola in log-rate; drift exponent of the optimum against B (95% interval by a jackknife over seeds, plus the rounding of optima kept at a grid point). A diverged run counts as test MSE {:e}. Not a claim of the tutorial: an [extension] the tool tests.",
        spec.name,
        sweep.completed + sweep.diverged + sweep.failed + sweep.skipped,
        sweep.completed,
        sweep.diverged,
        sweep.skipped,
        topts.diverged_loss
    );
    if sweep.failed > 0 {
        res.notes.push(format!(
            "{} runs failed and are left out of the analysis",
            sweep.failed
        ));
    }
    crate::io::write_atomic(&dir.join("transfer.csv"), rep.to_csv().as_bytes())?;
    res.files.push(csv_path(res, "transfer.csv"));
    for g in &rep.groups {
        let measured = drift_summary(g, "B = ");
        let sqrt_depth = g.label.contains("sqrt-depth");
        let claim = if sqrt_depth {
            ClaimResult::judged(
                format!("{}: the optimal rate transfers across depth", g.label),
                "β = 1/√B: the optimum stays put as blocks are added, drift 0 [extension]",
                measured,
                format!("95% interval of the drift inside 0 ± {tol}"),
                &g.verdict,
            )
        } else {
            let judged = match &g.drift {
                Some(d) => drifts_down(d, tol),
                None => Judged::new(crate::verdict::Verdict::Error, "too few depths with a located optimum to fit a drift"),
            };
            ClaimResult::judged(
                format!("{}: the optimal rate drifts down with depth", g.label),
                "β = 1: the residual stream grows with B (its variance like 2^B for ReLU without normalization) and the optimum moves to smaller rates [extension]",
                measured,
                format!("95% interval of the drift below −{tol} (outside the transfer band)"),
                &judged,
            )
        };
        res.claims.push(claim);
        for w in g.warnings.iter() {
            res.notes.push(format!("{}: {w}", g.label));
        }
    }
    for (i, fig) in rep.figures().iter().enumerate() {
        let label = rep
            .groups
            .get(i)
            .map(|g| g.label.clone())
            .unwrap_or_default();
        let mut fig = fig.clone();
        for s in fig.series.iter_mut() {
            s.label = s.label.replace("n = ", "B = ");
        }
        let stem = format!("transfer_{}", label.rsplit('=').next().unwrap_or("all"));
        res.add_figure(
            dir,
            &stem,
            &format!("{label}: test MSE against the base rate, one curve per number of blocks B (seed means, min–max band), optima marked."),
            &fig,
        )?;
    }
    let mut drift = rep.drift_figure();
    drift.title = "optimal base rate against depth".into();
    drift.x_label = "blocks B".into();
    res.add_figure(
        dir,
        "drift",
        "Optimal base rate against the number of blocks B, for β = 1 and β = 1/√B, with the fitted drifts.",
        &drift,
    )?;
    Ok(())
}

/// The claim "the rate drifts down with depth": the band (−∞, −tol), the complement
/// of the transfer band on the negative side, so one interval never passes both.
fn drifts_down(d: &Drift, tol: f64) -> Judged {
    judge_band(d.slope, d.ci95, (f64::NEG_INFINITY, -tol), d.seeds)
}

/// Parse T9's config (a sweep spec) without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    crate::sweep::spec::SweepSpec::from_toml(text, "T9 config", None, "t9").map(drop)
}
