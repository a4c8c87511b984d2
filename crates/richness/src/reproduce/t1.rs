//! Experiment T1: Table 1 on the 3-layer linear model.

use super::common::{all_claims, claims_table, exponent_figure, parse, richness, scan, slope_claim};
use super::{ClaimResult, ExperimentId, ExperimentResult, Options, Verdict};
use crate::error::Result;
use crate::probe::check::{self, CheckConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct T1Config {
    /// Richness exponents to scan.
    rs: Vec<f64>,
    check: CheckConfig,
}

fn t1(cfg: &T1Config, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    let c = &cfg.check;
    res.setup = format!(
        "{} on `{}`, widths {:?}, {} seeds, {} step(s) at η₀ = {}, {}; every quantity of theory §4 per layer, log–log slopes with jackknife intervals.",
        c.model.arch, c.data, c.widths, c.seeds, c.steps, c.param.base_lr, c.dtype.name()
    );
    let mut groups = Vec::new();
    let mut reports = Vec::new();
    for &r in &cfg.rs {
        let (rep, rows) = scan(c, richness(r), &format!("r{r}"), dir, opts, res)?;
        res.claims.push(slope_claim(
            &rep,
            "dh_norm",
            2,
            &format!("r = {r}: ‖Δh₂‖ ~ n^r (hidden)"),
        ));
        if let Some((m, s)) = rep.estimated_r {
            // The estimate is the mean of the read-in and hidden ‖Δh‖ slopes: it is
            // decided when each of them is (the worst of their verdicts).
            let parts: Vec<&check::Claim> = rep
                .claims
                .iter()
                .filter(|k| k.quantity == "dh_norm" && k.role != "read-out")
                .collect();
            let verdict =
                Verdict::worst(parts.iter().map(|k| k.verdict().unwrap_or(Verdict::Error)));
            let why = parts
                .iter()
                .filter(|k| k.verdict() == Some(verdict) && verdict != Verdict::Pass)
                .filter_map(|k| {
                    k.judged
                        .as_ref()
                        .map(|j| format!("‖Δh_{}‖: {}", k.layer, j.reason))
                })
                .collect::<Vec<_>>()
                .join("; ");
            res.claims.push(
                ClaimResult::new(
                    format!("r = {r}: estimated r"),
                    format!("{r}"),
                    format!("{m:.3} (spread {s:.3})"),
                    format!(
                        "every read-in and hidden ‖Δh‖ slope's 95% interval inside r ± {}",
                        c.tolerance
                    ),
                    verdict,
                )
                .because(why)
                .seeded(
                    super::common::stop_of_all(&rep, &parts).0,
                    super::common::stop_of_all(&rep, &parts).1,
                ),
            );
        }
        res.claims
            .push(all_claims(&rep, &format!("r = {r}: every Table-1 slope")));
        res.tables.push(claims_table(
            &format!("Every fitted slope at r = {r}"),
            &rep,
        ));
        let fig = rep.figure(&rows, "dh_norm");
        res.add_figure(
            dir,
            &format!("dh_norm_r{r}"),
            &format!("‖Δh_ℓ‖ against width at r = {r}: seed means, min–max bands, fits and theory slopes"),
            &fig,
        )?;
        reports.push((r, rep));
    }
    for (r, rep) in &reports {
        groups.push((format!("r = {r}"), rep));
    }
    let fig = exponent_figure("T1: measured against predicted width exponents", &groups);
    res.add_figure(
        dir,
        "exponents",
        "Every fitted slope of Table 1 against its prediction (one point per quantity and layer); on the dashed line the measurement equals theory.",
        &fig,
    )?;
    res.notes.push(
        "Original (a simulation of the same model): slopes 0.47–0.52 for r = 1/2, −0.04…0.05 for r = 0, 0.30 for r = 1/4."
            .into(),
    );
    Ok(())
}

/// Run T1 from its config text, writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    t1(&parse(text, ExperimentId::T1)?, dir, opts, res)
}

/// Parse T1's config without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    parse::<T1Config>(text, ExperimentId::T1).map(drop)
}
