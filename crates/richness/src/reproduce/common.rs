//! What the experiments share: config parsing, check scans and their claims,
//! cached training runs.

use super::{ClaimResult, ExperimentId, ExperimentResult, Options, Table, Verdict};
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::param::ScaleChoice;
use crate::probe::check::{self, CheckConfig, CheckReport, ScanRow};
use crate::report::plot::{Figure, Series, Style};
use crate::train::{self, Outcome, RunOptions, TrainConfig};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;

pub(super) fn parse<C: DeserializeOwned>(text: &str, id: ExperimentId) -> Result<C> {
    toml::from_str(text).map_err(|e| {
        Error::config(crate::files::toml_error(
            &format!("{} config", id.name()),
            text,
            &e,
        ))
    })
}

pub(super) fn csv_path(res: &ExperimentResult, name: &str) -> String {
    format!("{}/{name}", res.id.stem())
}

/// Run a check scan at richness r (or a preset), writing its files under `dir/sub`.
pub(super) fn scan(
    base: &CheckConfig,
    choice: ScaleChoice,
    sub: &str,
    dir: &Path,
    opts: &Options,
    res: &mut ExperimentResult,
) -> Result<(CheckReport, Vec<ScanRow>)> {
    scan_with(base, choice, sub, dir, opts, res, None)
}

/// [`scan`] whose sequential rounds are also driven by the experiment's own claims
/// (judged on each look's report), e.g. a claim with its own tolerance.
pub(super) fn scan_with(
    base: &CheckConfig,
    choice: ScaleChoice,
    sub: &str,
    dir: &Path,
    opts: &Options,
    res: &mut ExperimentResult,
    extra: Option<crate::probe::sequential::ExtraClaims>,
) -> Result<(CheckReport, Vec<ScanRow>)> {
    let mut cfg = base.clone();
    let base_lr = cfg.param.base_lr;
    // The config decides centring (probes centre by default; T2 keeps the companion
    // library's uncentred protocol); the experiment decides where on the scale.
    let center = choice.center.or(cfg.param.center);
    cfg.param = ScaleChoice {
        base_lr,
        center,
        ..choice
    };
    // The GPT's probes are not yet on the sequential design: a fixed one.
    let sequential = opts
        .sequential
        .as_ref()
        .filter(|_| cfg.model.arch != crate::nn::Family::Gpt);
    let (report, rows) = match sequential {
        Some(seq) => {
            let (report, rows, outcome) = crate::probe::sequential::check_with(
                &cfg,
                opts.threads,
                opts.progress,
                seq,
                extra,
            )?;
            res.notes
                .push(format!("{sub}: sequential seeds, {}", outcome.summary()));
            (report, rows)
        }
        None => check::run(&cfg, opts.threads, opts.progress)?,
    };
    let out = dir.join(sub);
    report.write(&out, &rows)?;
    res.files.push(csv_path(res, &format!("{sub}/check.csv")));
    res.files.push(csv_path(res, &format!("{sub}/fits.csv")));
    Ok((report, rows))
}

pub(super) fn richness(r: f64) -> ScaleChoice {
    ScaleChoice {
        richness: Some(r),
        ..ScaleChoice::default()
    }
}

pub(super) fn claim<'a>(rep: &'a CheckReport, q: &str, layer: usize) -> Option<&'a check::Claim> {
    rep.claims
        .iter()
        .find(|c| c.quantity == q && c.layer == layer)
}

/// The seeds behind a check claim and why they stopped: from the sequential rounds,
/// or the fixed design's seed count.
pub(super) fn stop_of(rep: &CheckReport, c: &check::Claim) -> (usize, String) {
    let init = crate::probe::AT_INIT.contains(&c.quantity.as_str());
    let fixed = if init {
        rep.config.init_seeds.unwrap_or(rep.config.seeds)
    } else {
        rep.config.seeds
    };
    match rep
        .sequential
        .as_ref()
        .and_then(|o| o.claim(&crate::probe::sequential::claim_name(c)))
    {
        Some(s) => (s.seeds, s.why.clone()),
        None => (fixed, format!("fixed design: {fixed} seeds")),
    }
}

/// The stops of several claims of one scan as one: the most seeds, and the stop of
/// the claims with the worst verdict (or the scan's summary when all pass).
pub(super) fn stop_of_all(rep: &CheckReport, claims: &[&check::Claim]) -> (usize, String) {
    let worst = Verdict::worst(claims.iter().filter_map(|c| c.verdict()));
    // The probed seeds (the seeds at init are named in the text when they matter).
    let seeds = claims
        .iter()
        .filter(|c| !crate::probe::AT_INIT.contains(&c.quantity.as_str()))
        .map(|c| stop_of(rep, c).0)
        .max()
        .unwrap_or(rep.config.seeds);
    let mut why: Vec<String> = claims
        .iter()
        .filter(|c| c.verdict() == Some(worst) && worst != Verdict::Pass)
        .map(|c| {
            format!(
                "{}: {}",
                crate::probe::sequential::claim_name(c),
                stop_of(rep, c).1
            )
        })
        .collect();
    why.dedup();
    let stopped = if why.is_empty() {
        match &rep.sequential {
            Some(o) if worst == Verdict::Pass => {
                format!("decided with {seeds} seeds (scan: {})", o.summary())
            }
            Some(o) => o.summary(),
            None => format!("fixed design: {seeds} seeds"),
        }
    } else {
        let more = why.len().saturating_sub(3);
        why.truncate(3);
        format!(
            "{}{}",
            why.join("; "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    (seeds, stopped)
}

pub(super) fn slope_text(c: &check::Claim) -> String {
    match c.fit {
        Some(f) => format!("{:+.3} (95% [{:+.3}, {:+.3}])", f.slope, f.ci95.0, f.ci95.1),
        None => "no fit".into(),
    }
}

/// A headline claim from one fitted slope of a check.
pub(super) fn slope_claim(rep: &CheckReport, q: &str, layer: usize, what: &str) -> ClaimResult {
    match claim(rep, q, layer) {
        Some(c) => {
            let judged = c.judged.clone().unwrap_or_else(|| {
                crate::verdict::Judged::new(Verdict::Error, "no usable fit or prediction")
            });
            let (seeds, stopped) = stop_of(rep, c);
            ClaimResult::judged(
                what,
                match (c.predicted_range, c.predicted) {
                    (Some((lo, hi)), _) => format!("slope in [{lo:+.3}, {hi:+.3}]"),
                    (None, Some(p)) => format!("slope {p:+.3}"),
                    _ => "-".into(),
                },
                format!("slope {}", slope_text(c)),
                format!("95% interval inside predicted ± {}", rep.config.tolerance),
                &judged,
            )
            .seeded(seeds, stopped)
        }
        None => ClaimResult::new(what, "-", "not measured", "-", Verdict::Fail),
    }
}

/// Every claim of a check as detail-table rows.
pub(super) fn claims_table(caption: &str, rep: &CheckReport) -> Table {
    let mut t = Table {
        caption: caption.to_string(),
        header: [
            "quantity",
            "layer",
            "measured slope (95%)",
            "predicted",
            "verdict",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
    };
    for c in &rep.claims {
        t.rows.push(vec![
            c.quantity.clone(),
            if c.layer == 0 {
                "net".into()
            } else {
                format!("{} {}", c.layer, c.role)
            },
            slope_text(c),
            match (c.predicted_range, c.predicted) {
                (Some((lo, hi)), _) => format!("[{lo:+.3}, {hi:+.3}]"),
                (None, Some(p)) => format!("{p:+.3}"),
                _ => "-".into(),
            },
            c.judged
                .as_ref()
                .map(|j| j.describe())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    for c in &rep.criteria {
        t.rows.push(vec![
            c.name.clone(),
            String::new(),
            c.measured.clone(),
            String::new(),
            c.judged.describe(),
        ]);
    }
    t
}

/// Counts of a check's claim verdicts as one claim: every predicted slope passes.
pub(super) fn all_claims(rep: &CheckReport, what: &str) -> ClaimResult {
    let judged: Vec<&check::Claim> = rep
        .claims
        .iter()
        .filter(|c| c.verdict().is_some())
        .collect();
    let n = |v: Verdict| judged.iter().filter(|c| c.verdict() == Some(v)).count();
    let crit_pass = rep
        .criteria
        .iter()
        .filter(|c| c.judged.verdict == Verdict::Pass)
        .count();
    let verdict = Verdict::worst(
        judged
            .iter()
            .filter_map(|c| c.verdict())
            .chain(rep.criteria.iter().map(|c| c.judged.verdict)),
    );
    let why = if verdict == Verdict::Pass {
        String::new()
    } else {
        let mut rows: Vec<String> = rep
            .claims
            .iter()
            .filter(|c| c.verdict() == Some(verdict))
            .map(|c| {
                let layer = if c.layer == 0 {
                    "net".to_string()
                } else {
                    format!("layer {}", c.layer)
                };
                format!("{} {layer}", c.quantity)
            })
            .chain(
                rep.criteria
                    .iter()
                    .filter(|c| c.judged.verdict == verdict)
                    .map(|c| c.name.clone()),
            )
            .collect();
        let more = rows.len().saturating_sub(6);
        rows.truncate(6);
        let seeds = rep
            .claims
            .iter()
            .filter(|c| c.verdict() == Some(verdict))
            .filter_map(|c| c.judged.as_ref().and_then(|j| j.seeds_to_decide))
            .max();
        format!(
            "{}: {}{}{}",
            verdict.name(),
            rows.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            seeds
                .map(|s| format!("; up to ≈ {s} seeds would decide them"))
                .unwrap_or_default()
        )
    };
    let counts: Vec<String> = Verdict::ALL
        .into_iter()
        .filter(|v| n(*v) > 0)
        .map(|v| format!("{} {}", n(v), v.name()))
        .collect();
    let (seeds, stopped) = stop_of_all(rep, &judged);
    ClaimResult::new(
        what,
        format!("all {} slopes as theory §4", judged.len()),
        format!(
            "{}; criteria {}/{} pass",
            counts.join(", "),
            crit_pass,
            rep.criteria.len()
        ),
        format!(
            "each slope's 95% interval inside predicted ± {}",
            rep.config.tolerance
        ),
        verdict,
    )
    .because(why)
    .seeded(seeds, stopped)
}

/// Measured against predicted exponents (one series per label), with y = x.
pub(super) fn exponent_figure(title: &str, groups: &[(String, &CheckReport)]) -> Figure {
    let mut fig = Figure::new(title, "predicted exponent", "measured exponent");
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (i, (label, rep)) in groups.iter().enumerate() {
        let (mut x, mut y, mut l, mut h) = (vec![], vec![], vec![], vec![]);
        for c in &rep.claims {
            if let (Some(f), Some(p)) = (c.fit, c.predicted) {
                if c.verdict().is_none() || !f.slope.is_finite() {
                    continue;
                }
                x.push(p);
                y.push(f.slope);
                l.push(f.ci95.0.max(f.slope - 1.0));
                h.push(f.ci95.1.min(f.slope + 1.0));
                lo = lo.min(p).min(f.slope);
                hi = hi.max(p).max(f.slope);
            }
        }
        fig.series.push(
            Series::new(label.clone(), x, y)
                .style(Style::Points)
                .color(i),
        );
    }
    if lo.is_finite() {
        fig.series.push(
            Series::new(
                "measured = predicted",
                vec![lo - 0.1, hi + 0.1],
                vec![lo - 0.1, hi + 0.1],
            )
            .style(Style::Dashed)
            .color(7),
        );
    }
    fig
}

/// A training run cached in `dir/outcome.json` (so an interrupted `full` run resumes).
pub(super) fn cached_train(cfg: &TrainConfig, dir: &Path, opts: &Options) -> Result<Outcome> {
    #[derive(Serialize, Deserialize)]
    struct Cached {
        config: TrainConfig,
        outcome: Outcome,
        metrics: Vec<train::MetricRow>,
    }
    let path = dir.join("outcome.json");
    if opts.resume {
        if let Some(c) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Cached>(&t).ok())
            .filter(|c| &c.config == cfg)
        {
            let mut o = c.outcome;
            o.metrics = c.metrics;
            return Ok(o);
        }
    }
    let threads = opts.threads.max(1);
    let o = train::run(
        cfg,
        &RunOptions {
            out: Some(dir.to_path_buf()),
            // The experiment owns this folder: a rerun replaces it as a whole.
            overwrite: true,
            progress: false,
            compute: Some(Compute::new(threads)),
            ..RunOptions::default()
        },
    )?;
    let c = Cached {
        config: cfg.clone(),
        outcome: o.clone(),
        metrics: o.metrics.clone(),
    };
    let json = serde_json::to_string(&c).map_err(|e| Error::config(e.to_string()))?;
    crate::files::write_atomic(&path, json.as_bytes())?;
    Ok(o)
}

/// Run a transfer experiment's sweep spec through its store `DIR/STEM.sqlite`
/// (removed first unless `--resume`, so `--resume` continues it run by run).
pub(super) fn run_transfer_sweep(
    text: &str,
    stem: &str,
    dir: &Path,
    opts: &Options,
) -> Result<(
    crate::sweep::spec::SweepSpec,
    crate::sweep::runner::SweepReport,
    crate::sweep::store::Store,
)> {
    use crate::sweep::runner::{run_sweep, RunnerOptions};
    let spec = crate::sweep::spec::SweepSpec::from_toml(
        text,
        &format!("{} config", stem.to_uppercase()),
        None,
        stem,
    )?;
    if !opts.resume {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = dir.join(format!("{stem}.sqlite{suffix}"));
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    let mut store = crate::sweep::store::Store::create(&dir.join(format!("{stem}.sqlite")))?;
    let sweep = run_sweep(
        &spec,
        &mut store,
        &RunnerOptions {
            threads: opts.threads.max(1),
            progress: opts.progress,
            shard: None,
            resume: true,
        },
    )?;
    Ok((spec, sweep, store))
}

/// "drift +0.012 (95% [..], jackknife over 5 seeds); optima 32: 8.1, …" for one
/// group of a transfer analysis, each optimum labelled `{axis}{value}`.
pub(super) fn drift_summary(g: &crate::sweep::transfer::TransferGroup, axis: &str) -> String {
    let optima = g
        .widths
        .iter()
        .map(|w| {
            format!(
                "{axis}{}: {:.3}{}",
                w.width,
                w.optimum,
                if w.at_edge { " (edge)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    match &g.drift {
        Some(d) => format!(
            "drift {:+.3} (95% [{:+.3}, {:+.3}], {}); optima {optima}",
            d.slope, d.ci95.0, d.ci95.1, d.interval
        ),
        None => format!("no drift fit; optima {optima}"),
    }
}
