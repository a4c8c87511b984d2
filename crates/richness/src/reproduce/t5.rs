//! Experiment T5: Hyperparameter transfer across width.

use super::common::{csv_path, drift_summary, run_transfer_sweep};
use super::{ClaimResult, ExperimentResult, Options};
use crate::error::Result;
use std::path::Path;

/// T5 runs through the sweep store (`tN/t5.sqlite`), so `--resume` continues an
/// interrupted sweep run by run.
fn t5(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    use crate::sweep::transfer::{analyse, TransferOptions};
    let (spec, sweep, store) = run_transfer_sweep(text, "t5", dir, opts)?;
    let mut topts = TransferOptions::default();
    let runs = store.runs()?;
    let mut rep = analyse(&runs, &topts)?;
    // μP's transfer is decided only against NTP's measured drift (the alternative the
    // theory offers), so NTP's group is the reference when the config has one.
    let lazy: Vec<String> = rep
        .groups
        .iter()
        .map(|g| g.label.clone())
        .filter(|l| l.contains("ntp"))
        .collect();
    if let [ntp] = lazy.as_slice() {
        topts.against = Some(ntp.clone());
        rep = analyse(&runs, &topts)?;
    }
    res.setup = format!(
        "Sweep `{}` ({} runs: {} completed, {} diverged this time, {} reused): test MSE after training against the base rate for every width, per parameterization; each width's optimum refined by a parabola in log-rate; drift exponent of the optimum against width (95% interval by a jackknife over seeds, plus the rounding of optima kept at a grid point). A diverged run counts as test MSE {:e}.",
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
    crate::files::write_atomic(&dir.join("transfer.csv"), rep.to_csv().as_bytes())?;
    res.files.push(csv_path(res, "transfer.csv"));
    for g in &rep.groups {
        let measured = drift_summary(g, "");
        // The same tolerance decides both claims, so one interval cannot pass both.
        let claim = if g.claim == crate::sweep::transfer::Claim::DriftsUp {
            ClaimResult::judged(
                format!("{}: the optimal rate drifts up with width", g.label),
                "NTP optimum moves to larger rates with width (drift clearly positive)",
                measured,
                format!(
                    "95% interval of the drift above +{} (outside the transfer band)",
                    topts.tolerance
                ),
                &g.verdict,
            )
        } else {
            ClaimResult::judged(
                format!("{}: the optimal rate transfers across width", g.label),
                "μP optimum stays put (≈ 8–10 on MNIST): drift 0",
                measured,
                match g.alternative {
                    Some(a) => format!(
                        "95% interval of the drift inside 0 ± {} and excluding NTP's measured drift {a:+.3}",
                        topts.tolerance
                    ),
                    None => format!("95% interval of the drift inside 0 ± {}", topts.tolerance),
                },
                &g.verdict,
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
        let stem = format!("transfer_{}", label.rsplit('=').next().unwrap_or("all"));
        res.add_figure(
            dir,
            &stem,
            &format!("{label}: test MSE against the base rate, one curve per width (seed means, min–max band), optima marked."),
            fig,
        )?;
    }
    res.add_figure(
        dir,
        "drift",
        "Optimal base rate against width, per parameterization, with the fitted drift.",
        &rep.drift_figure(),
    )?;
    Ok(())
}

/// Run T5 from its config text (a sweep spec), writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    t5(text, dir, opts, res)
}

/// Parse T5's config (a sweep spec) without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    crate::sweep::spec::SweepSpec::from_toml(text, "T5 config", None, "t5").map(drop)
}
