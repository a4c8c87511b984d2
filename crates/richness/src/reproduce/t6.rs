//! Experiment T6: Weight alignment and gradient sizes.

use super::common::{claims_table, exponent_figure, parse, richness, scan};
use super::{ClaimResult, ExperimentId, ExperimentResult, Options, Verdict};
use crate::error::Result;
use crate::probe::check::{self, CheckConfig, CheckReport};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct T6Config {
    rs: Vec<f64>,
    /// The quantities on weights and gradients to report.
    quantities: Vec<String>,
    /// One scan config per architecture.
    checks: Vec<CheckConfig>,
}

fn t6(cfg: &T6Config, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    res.setup = format!(
        "{} at r ∈ {:?}: {} against width.",
        cfg.checks
            .iter()
            .map(|c| format!(
                "{} on `{}` (widths {:?}, {} seeds)",
                c.model.arch, c.data, c.widths, c.seeds
            ))
            .collect::<Vec<_>>()
            .join("; "),
        cfg.rs,
        cfg.quantities.join(", ")
    );
    let mut groups_owned = Vec::new();
    for c in &cfg.checks {
        for &r in &cfg.rs {
            let sub = format!("{}-r{r}", c.model.arch);
            let (rep, rows) = scan(c, richness(r), &sub, dir, opts, res)?;
            let mut t = claims_table(&format!("{} at r = {r}", c.model.arch), &rep);
            t.rows.retain(|row| cfg.quantities.contains(&row[0]));
            res.tables.push(t);
            for q in &cfg.quantities {
                let judged: Vec<&check::Claim> = rep
                    .claims
                    .iter()
                    .filter(|k| &k.quantity == q && k.verdict().is_some())
                    .collect();
                if judged.is_empty() {
                    continue;
                }
                let per_layer = judged
                    .iter()
                    .map(|k| {
                        let pred = match (k.predicted_range, k.predicted) {
                            (Some((lo, hi)), _) => format!("[{lo:+.2}, {hi:+.2}]"),
                            (None, Some(p)) => format!("{p:+.2}"),
                            _ => "-".into(),
                        };
                        format!(
                            "ℓ{} {:+.2} (pred {pred})",
                            k.layer,
                            k.fit.map(|f| f.slope).unwrap_or(f64::NAN),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let verdict = Verdict::worst(judged.iter().filter_map(|k| k.verdict()));
                let (seeds, stopped) = super::common::stop_of_all(&rep, &judged);
                let why = judged
                    .iter()
                    .filter(|k| k.verdict() == Some(verdict) && verdict != Verdict::Pass)
                    .filter_map(|k| {
                        k.judged
                            .as_ref()
                            .map(|j| format!("ℓ{}: {}", k.layer, j.reason))
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                res.claims.push(
                    ClaimResult::new(
                        format!("{} r = {r}: {q}", c.model.arch),
                        "slopes as theory §4 (op norms of boundary layers: the finite-size bracket)",
                        per_layer,
                        format!("each 95% interval inside predicted ± {}", c.tolerance),
                        verdict,
                    )
                    .because(why)
                    .seeded(seeds, stopped),
                );
            }
            let fig = rep.figure(&rows, "dW_op_rel");
            res.add_figure(
                dir,
                &format!("dW_op_rel_{sub}"),
                &format!("‖ΔW̃‖_op/‖W̃‖_op against width, {} at r = {r}", c.model.arch),
                &fig,
            )?;
            groups_owned.push((format!("{} r = {r}", c.model.arch), rep));
        }
    }
    let groups: Vec<(String, &CheckReport)> =
        groups_owned.iter().map(|(l, r)| (l.clone(), r)).collect();
    let fig = exponent_figure(
        "T6: weight and gradient exponents, measured against predicted",
        &groups,
    );
    res.add_figure(
        dir,
        "exponents",
        "Every fitted slope of the scans against its prediction.",
        &fig,
    )?;
    Ok(())
}

/// Run T6 from its config text, writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    t6(&parse(text, ExperimentId::T6)?, dir, opts, res)
}

/// Parse T6's config without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    parse::<T6Config>(text, ExperimentId::T6).map(drop)
}
