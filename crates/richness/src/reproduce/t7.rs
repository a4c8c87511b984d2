//! Experiment T7: The richness dial.

use super::common::{cached_train, claim, csv_path, parse, richness};
use super::{ClaimResult, ExperimentId, ExperimentResult, Options, Verdict};
use crate::error::Result;
use crate::param::ScaleChoice;
use crate::probe::check::CheckConfig;
use crate::report::plot::{Figure, Series, Style};
use crate::train::{Status, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The richness dial: exponents over r (a width scan per r) and a training run
/// per r at one width.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct T7Config {
    pub rs: Vec<f64>,
    /// Width scan per r (no spectral norms needed).
    pub check: CheckConfig,
    /// Training run per r (its `param.richness` is set to each r).
    pub train: TrainConfig,
}

fn t7(cfg: &T7Config, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    let c = &cfg.check;
    let t = &cfg.train;
    let steps = t.train.steps.unwrap_or(0);
    res.setup = format!(
        "r from {} to {}: a width scan ({} on `{}`, widths {:?}, {} seeds) for the exponents of the output at init and of ‖Δh‖/‖h‖, and a training run per r at width {} ({} steps, η₀ = {}) for the loss and divergence.",
        cfg.rs.first().unwrap_or(&0.0),
        cfg.rs.last().unwrap_or(&0.0),
        c.model.arch,
        c.data,
        c.widths,
        c.seeds,
        t.model.width.unwrap_or(0),
        steps,
        t.param.base_lr
    );
    let mut csv =
        String::from("r,f_norm_slope,dh_rel_slope,init_output_rms,final_train_loss,status\n");
    let (mut rs, mut fslope, mut dslope) = (vec![], vec![], vec![]);
    let (mut ok_r, mut ok_loss, mut div_r) = (vec![], vec![], vec![]);
    let mut worst_f: f64 = 0.0;
    let mut f_judged: Vec<(f64, crate::verdict::Judged)> = Vec::new();
    let mut hi_judged: Vec<(f64, crate::verdict::Judged)> = Vec::new();
    let mut inside: Vec<(f64, f64, crate::verdict::Judged)> = Vec::new();
    let mut f0_notes: Vec<String> = Vec::new();
    // (r, seeds, why they stopped) of the f_norm and dh_rel claims of each scan.
    let mut f_stops: Vec<(f64, usize, String)> = Vec::new();
    let mut d_stops: Vec<(f64, usize, String)> = Vec::new();
    for &r in &cfg.rs {
        // The claim below judges f_norm against −r ± 0.1 (the output at init is one
        // O(1) draw per seed): that claim, not the scan's ± tolerance one, asks for
        // the (cheap) seeds at init.
        let f_claim: crate::probe::sequential::ExtraClaims = Box::new(move |rep: &crate::probe::check::CheckReport| {
            let n = rep.config.init_seeds.unwrap_or(rep.config.seeds).max(rep.config.seeds);
            claim(rep, "f_norm", 0)
                .and_then(|k| k.fit)
                .map(|f| crate::sequential::ClaimLook {
                    name: "f_norm net (T7, ± 0.1)".into(),
                    pool: 1,
                    judged: crate::verdict::judge_slope(&f, -r, 0.1, Some(n)),
                })
                .into_iter()
                .collect()
        });
        let (rep, _) = super::common::scan_with(c, richness(r), &format!("r{r}"), dir, opts, res, Some(f_claim))?;
        let fs = claim(&rep, "f_norm", 0)
            .and_then(|k| k.fit)
            .map(|f| f.slope);
        let dk = claim(&rep, "dh_rel", 2);
        let ds = dk.and_then(|k| k.fit).map(|f| f.slope);
        let missing = || crate::verdict::Judged::new(Verdict::Error, "no usable fit");
        let f_seeds = match rep
            .sequential
            .as_ref()
            .and_then(|o| o.claim("f_norm net (T7, ± 0.1)"))
        {
            Some(s) => Some((s.seeds, s.why.clone())),
            None => claim(&rep, "f_norm", 0).map(|k| super::common::stop_of(&rep, k)),
        };
        if let Some((n, why)) = &f_seeds {
            f_stops.push((r, *n, why.clone()));
        }
        if let Some((n, why)) = dk.map(|k| super::common::stop_of(&rep, k)) {
            d_stops.push((r, n, why));
        }
        if (-1e-9..=0.5 + 1e-9).contains(&r) {
            let j = dk.and_then(|k| k.judged.clone()).unwrap_or_else(missing);
            inside.push((r, ds.unwrap_or(f64::NAN), j));
        }
        if let Some(s) = fs {
            worst_f = worst_f.max((s + r).abs());
        }
        f_judged.push((
            r,
            claim(&rep, "f_norm", 0)
                .and_then(|k| k.fit)
                .map(|f| {
                    let n = f_seeds.as_ref().map_or(c.seeds, |s| s.0);
                    crate::verdict::judge_slope(&f, -r, 0.1, Some(n))
                })
                .unwrap_or_else(missing),
        ));
        if r > 0.5 + 1e-9 {
            hi_judged.push((
                r,
                dk.and_then(|k| k.fit)
                    .map(|f| {
                        crate::verdict::judge_band(
                            f.slope,
                            f.ci95,
                            (0.0, f64::INFINITY),
                            Some(c.seeds),
                        )
                    })
                    .unwrap_or_else(missing),
            ));
        }
        if let (Some(first), Some(last)) = (rep.f0_rel.first(), rep.f0_rel.last()) {
            f0_notes.push(format!(
                "r = {r}: {:.2} at n = {} → {:.2} at n = {}",
                first.1, first.0, last.1, last.0
            ));
        }
        let mut tc = t.clone();
        tc.param = ScaleChoice {
            base_lr: t.param.base_lr,
            gamma0: t.param.gamma0,
            gauge: t.param.gauge,
            ..richness(r)
        };
        let o = cached_train(&tc, &dir.join("runs").join(format!("r{r}")), opts)?;
        let init = o
            .metrics
            .iter()
            .find(|m| m.step == 0 && m.test_loss.is_some())
            .and_then(|m| m.test_loss);
        let (loss, status) = match &o.status {
            Status::Completed => (o.final_train_loss, "completed".to_string()),
            Status::Diverged { step, .. } => (None, format!("diverged at step {step}")),
        };
        csv.push_str(&format!(
            "{r},{},{},{},{},{status}\n",
            fs.map(|v| v.to_string()).unwrap_or_default(),
            ds.map(|v| v.to_string()).unwrap_or_default(),
            init.map(|v| v.to_string()).unwrap_or_default(),
            loss.map(|v| v.to_string()).unwrap_or_default(),
        ));
        rs.push(r);
        fslope.push(fs.unwrap_or(f64::NAN));
        dslope.push(ds.unwrap_or(f64::NAN));
        match loss {
            Some(l) if l.is_finite() => {
                ok_r.push(r);
                ok_loss.push(l);
            }
            _ => div_r.push(r),
        }
    }
    crate::files::write_atomic(&dir.join("dial.csv"), csv.as_bytes())?;
    res.files.push(csv_path(res, "dial.csv"));
    // The verdict of a claim made at several r: the worst, with the reasons of those.
    let worst_at = |v: &[(f64, crate::verdict::Judged)]| {
        let verdict = Verdict::worst(v.iter().map(|(_, j)| j.verdict));
        let why = v
            .iter()
            .filter(|(_, j)| j.verdict == verdict && verdict != Verdict::Pass)
            .map(|(r, j)| format!("r = {r}: {}", j.reason))
            .collect::<Vec<_>>()
            .join("; ");
        (verdict, why)
    };
    // The seeds of a claim made at several r: the most, and the stops of the r's
    // that are not a pass (all of them, briefly, when every r passes).
    let stops = |judged: &[(f64, crate::verdict::Judged)], stops: &[(f64, usize, String)]| {
        let seeds = stops.iter().map(|s| s.1).max().unwrap_or(c.seeds);
        let open: Vec<String> = judged
            .iter()
            .filter(|(_, j)| j.verdict != Verdict::Pass)
            .filter_map(|(r, _)| stops.iter().find(|s| s.0 == *r))
            .map(|(r, _, why)| format!("r = {r}: {why}"))
            .collect();
        let text = if open.is_empty() {
            format!(
                "seeds per r: {}",
                stops
                    .iter()
                    .map(|(r, n, _)| format!("{r}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            open.join("; ")
        };
        (seeds, text)
    };
    let (v, why) = worst_at(&f_judged);
    let (n, stopped) = stops(&f_judged, &f_stops);
    res.claims.push(
        ClaimResult::new(
            "output at init ~ n^−r (explodes for r < 0)",
            "f_norm slope = −r at every r",
            format!("largest |slope + r| = {worst_f:.3}"),
            "each 95% interval inside −r ± 0.1",
            v,
        )
        .because(why)
        .seeded(n, stopped),
    );
    if !f0_notes.is_empty() {
        res.notes.push(format!(
            "Width scans train centred (f − f₀; docs/theory.md §6.1), so f₀ does not bend the ‖Δh‖/‖h‖ slopes. Its size next to the targets, ‖f₀‖/‖y‖: {}.",
            f0_notes.join("; ")
        ));
    }
    let above: Vec<String> = rs
        .iter()
        .zip(&dslope)
        .filter(|(r, _)| **r > 0.5 + 1e-9)
        .map(|(r, s)| format!("r = {r}: {s:+.2}"))
        .collect();
    if !above.is_empty() {
        let (v, why) = worst_at(&hi_judged);
        res.claims.push(
            ClaimResult::new(
                "updates outgrow representations for r > 1/2",
                "‖Δh‖/‖h‖ slope r − 1/2 > 0",
                above.join(", "),
                "each 95% interval above 0",
                v,
            )
            .because(why)
            .seeded(stops(&hi_judged, &d_stops).0, stops(&hi_judged, &d_stops).1),
        );
    }
    if !inside.is_empty() {
        let judged: Vec<(f64, crate::verdict::Judged)> =
            inside.iter().map(|(r, _, j)| (*r, j.clone())).collect();
        let (v, why) = worst_at(&judged);
        res.claims.push(
            ClaimResult::new(
                "lazy → rich: ‖Δh₂‖/‖h₂‖ ~ n^(r−1/2) across 0 ≤ r ≤ 1/2 (centred)",
                "slope = r − 1/2",
                inside
                    .iter()
                    .map(|(r, s, j)| format!("r = {r}: {s:+.2} ({})", j.verdict.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
                format!("each 95% interval inside r − 1/2 ± {}", c.tolerance),
                v,
            )
            .because(why)
            .seeded(stops(&judged, &d_stops).0, stops(&judged, &d_stops).1),
        );
    }
    res.claims.push(ClaimResult::new(
        "divergence is marked, not a crash",
        "every r gives a result",
        if div_r.is_empty() {
            "no run diverged".to_string()
        } else {
            format!("diverged at r ∈ {div_r:?}; the rest completed")
        },
        "a result (completed or diverged) for every r",
        Verdict::Pass,
    ));
    let mut fig = Figure::new(
        "T7: width exponents along the richness dial",
        "richness r",
        "width exponent",
    );
    fig.series.push(
        Series::new("output at init (f_norm)", rs.clone(), fslope)
            .style(Style::Points)
            .color(0),
    );
    fig.series.push(
        Series::new("‖Δh₂‖/‖h₂‖ (dh_rel)", rs.clone(), dslope)
            .style(Style::Points)
            .color(1),
    );
    let (r0, r1) = (rs[0], rs[rs.len() - 1]);
    fig.series.push(
        Series::new("theory −r", vec![r0, r1], vec![-r0, -r1])
            .style(Style::Dashed)
            .color(0),
    );
    fig.series.push(
        Series::new("theory r − 1/2", vec![r0, r1], vec![r0 - 0.5, r1 - 0.5])
            .style(Style::Dashed)
            .color(1),
    );
    res.add_figure(dir, "dial_exponents", "Measured width exponents against r, with theory (dashed). Left of 0 the output at init grows with width; right of 1/2 the updates outgrow the representations.", &fig)?;
    let mut fig = Figure::new(
        format!(
            "T7: train loss after {steps} steps at width {}",
            t.model.width.unwrap_or(0)
        ),
        "richness r",
        "train loss",
    );
    fig.y_log = true;
    if !ok_r.is_empty() {
        fig.series
            .push(Series::new("completed", ok_r, ok_loss.clone()).color(0));
    }
    if !div_r.is_empty() {
        let top = ok_loss.iter().cloned().fold(1.0, f64::max) * 2.0;
        let n = div_r.len();
        fig.series.push(
            Series::new("diverged", div_r, vec![top; n])
                .style(Style::Markers)
                .color(3),
        );
    }
    res.add_figure(
        dir,
        "dial_loss",
        "Train loss after the run per r; diverged runs are marked at the top.",
        &fig,
    )?;
    Ok(())
}

/// Run T7 from its config text, writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    t7(&parse(text, ExperimentId::T7)?, dir, opts, res)
}

/// Parse T7's config without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    parse::<T7Config>(text, ExperimentId::T7).map(drop)
}
