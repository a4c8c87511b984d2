//! Sequential seeds for width scans: `check` and `coord` as designs of
//! [`crate::sequential`] (rounds of seeds, each look judged at 1 − α/K; see there and
//! docs/theory.md §6.2).
//!
//! A check scan has two seed pools: the probed seeds (`seeds`, with
//! `seed_exponent`'s extra seeds at small widths) and the cheap seeds that measure
//! only the output at init (`init_seeds`). Later rounds measure only the new
//! (width, seed) probes, so the last look equals a fixed scan at the final seed
//! counts.
//!
//! ```no_run
//! use richness::probe::check::CheckConfig;
//! use richness::probe::sequential;
//! use richness::sequential::SequentialOptions;
//! let (report, _rows, outcome) =
//!     sequential::check(&CheckConfig::default(), 2, false, &SequentialOptions::default()).unwrap();
//! println!("{}: {}", report.verdict, outcome.summary());
//! ```

use crate::error::{Error, Result};
use crate::probe::check::{self, CheckConfig, CheckReport, Diverged, Job, ScanRow};
use crate::probe::coord::{self, CoordReport, CoordRow};
use crate::sequential::{run, ClaimLook, Design, Outcome, SequentialOptions};
use std::collections::BTreeSet;

/// A `check` width scan as a sequential design: pool 0 the probed seeds (`seeds`,
/// with `seed_exponent`'s extra seeds at small widths), pool 1 the seeds that measure
/// only the output at init (`init_seeds`, cheap).
pub struct CheckDesign {
    pub cfg: CheckConfig,
    threads: usize,
    progress: bool,
    rows: Vec<ScanRow>,
    diverged: Vec<Diverged>,
    done: BTreeSet<Job>,
    /// The report of the last look.
    pub report: Option<CheckReport>,
    /// Claims of the caller's own, judged on each look's report (e.g. an experiment's
    /// claim with its own tolerance), that drive the rounds too.
    pub extra: Option<ExtraClaims>,
    n_in: usize,
    n_out: usize,
}

impl CheckDesign {
    pub fn new(cfg: &CheckConfig, threads: usize, progress: bool) -> Result<Self> {
        let split = crate::data::DataConfig {
            dataset: cfg.data.clone(),
            ..Default::default()
        }
        .load()?;
        Ok(CheckDesign {
            cfg: cfg.clone(),
            threads,
            progress,
            rows: Vec::new(),
            diverged: Vec::new(),
            done: BTreeSet::new(),
            report: None,
            extra: None,
            n_in: split.train.input_dim(),
            n_out: split.train.output_dim(),
        })
    }

    /// The rows measured so far.
    pub fn rows(&self) -> &[ScanRow] {
        &self.rows
    }

    fn config_at(&self, seeds: &[usize]) -> CheckConfig {
        let mut c = self.cfg.clone();
        c.seeds = seeds[0];
        let init = seeds[1].max(seeds[0]);
        c.init_seeds = (init > seeds[0] || self.cfg.init_seeds.is_some()).then_some(init);
        c
    }

    fn jobs(cfg: &CheckConfig) -> BTreeSet<Job> {
        let mut widths = cfg.widths.clone();
        widths.sort_unstable();
        widths.dedup();
        widths
            .iter()
            .flat_map(|&w| {
                let probed = check::seeds_at(cfg, w);
                (0..check::init_seeds_at(cfg, w)).map(move |s| (w, s, s < probed))
            })
            .collect()
    }

    /// Estimated flops of a scan's jobs (as `check` estimates them: ~6 flops per
    /// weight and row for each of steps + 4 passes of a probe, 2 for a forward at init).
    fn cost(&self, cfg: &CheckConfig) -> f64 {
        let b = cfg.batch as f64;
        Self::jobs(cfg)
            .iter()
            .map(|&(w, _, probed)| {
                let params = check::arch_at(&cfg.model, w, self.n_in, self.n_out)
                    .map(|a| a.param_values() as f64)
                    .unwrap_or(0.0);
                if probed {
                    6.0 * params * b * (cfg.steps as f64 + 4.0)
                } else {
                    2.0 * params * b
                }
            })
            .sum()
    }
}

impl Design for CheckDesign {
    fn initial(&self) -> Vec<usize> {
        vec![
            self.cfg.seeds,
            self.cfg.init_seeds.unwrap_or(self.cfg.seeds),
        ]
    }

    fn look(&mut self, seeds: &[usize], level: f64) -> Result<Vec<ClaimLook>> {
        let mut cfg = self.config_at(seeds);
        cfg.ci_level = Some(level);
        let jobs = Self::jobs(&cfg);
        // Earlier jobs that are still jobs of this look keep their rows; a seed that
        // measured only the output at init and is now probed runs again as a probe.
        let keep: BTreeSet<Job> = self.done.intersection(&jobs).copied().collect();
        let kept_seeds: BTreeSet<(usize, usize)> = keep.iter().map(|j| (j.0, j.1)).collect();
        self.rows
            .retain(|r| kept_seeds.contains(&(r.width, r.seed)));
        self.diverged.retain(|d| kept_seeds.contains(&(d.0, d.1)));
        let (rows, diverged) = check::scan_skipping(&cfg, self.threads, self.progress, &keep)?;
        self.rows.extend(rows);
        self.diverged.extend(diverged);
        self.rows.sort_by(|a, b| {
            (a.width, a.seed, a.layer, &a.quantity).cmp(&(b.width, b.seed, b.layer, &b.quantity))
        });
        self.diverged.sort();
        self.done = jobs;
        let report = check::judge(&cfg, &self.rows, self.diverged.clone())?;
        let mut out = Vec::new();
        for c in &report.claims {
            if let Some(j) = &c.judged {
                out.push(ClaimLook {
                    name: claim_name(c),
                    pool: usize::from(crate::probe::AT_INIT.contains(&c.quantity.as_str())),
                    judged: j.clone(),
                });
            }
        }
        // Criteria whose parts are all claims above (stable init, stability: h_rms,
        // f_norm, dh_rel) are decided with them; the others (MAX: layer_share; NTC
        // and UUC repeat claims) drive the probe seeds.
        for c in report
            .criteria
            .iter()
            .filter(|c| c.name != "stable init" && c.name != "stability")
        {
            out.push(ClaimLook {
                name: c.name.clone(),
                pool: 0,
                judged: c.judged.clone(),
            });
        }
        if let Some(extra) = &self.extra {
            out.extend(extra(&report));
        }
        self.report = Some(report);
        Ok(out)
    }

    fn normalize(&self, seeds: &mut [usize]) {
        // The output at init is measured on every probed seed too.
        seeds[1] = seeds[1].max(seeds[0]);
    }

    fn work(&self, from: &[usize], to: &[usize]) -> f64 {
        (self.cost(&self.config_at(to)) - self.cost(&self.config_at(from))).max(0.0)
    }
}

/// The name a check claim has in an [`Outcome`]: `quantity layer` (`dh_norm 2`,
/// `f_norm net`).
pub fn claim_name(c: &check::Claim) -> String {
    if c.layer == 0 {
        format!("{} net", c.quantity)
    } else {
        format!("{} {}", c.quantity, c.layer)
    }
}

/// A check scan with sequential seeds: the report and rows of the last look, and the
/// rounds' outcome. The report's config holds the final seed counts and `ci_level`.
pub fn check(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
    opts: &SequentialOptions,
) -> Result<(CheckReport, Vec<ScanRow>, Outcome)> {
    check_with(cfg, threads, progress, opts, None)
}

/// Claims a caller judges on each look's report ([`CheckDesign::extra`]).
pub type ExtraClaims = Box<dyn Fn(&CheckReport) -> Vec<ClaimLook>>;

/// [`check`] with the caller's own claims driving the rounds as well.
pub fn check_with(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
    opts: &SequentialOptions,
    extra: Option<ExtraClaims>,
) -> Result<(CheckReport, Vec<ScanRow>, Outcome)> {
    if cfg.model.arch == crate::nn::Family::Gpt {
        return Err(crate::error::Error::config(
            "sequential seeds are not available for arch `gpt` yet: run a fixed number of seeds (drop --sequential)",
        ));
    }
    let mut design = CheckDesign::new(cfg, threads, progress)?;
    design.extra = extra;
    let outcome = run(&mut design, opts)?;
    let mut report = design
        .report
        .take()
        .ok_or_else(|| Error::config("a sequential scan made no look"))?;
    report.sequential = Some(outcome.clone());
    Ok((report, design.rows, outcome))
}

// ------------------------------------------------------------ coordinate checks

/// `richness coord` as a sequential design: one pool of seeds; each look reruns the
/// coordinate check at the new seed count (its probes are a few steps each, so the
/// rerun costs what the seeds cost, and the work estimate counts it in full).
pub struct CoordDesign {
    pub cfg: CheckConfig,
    threads: usize,
    progress: bool,
    /// The report and rows of the last look.
    pub last: Option<(CoordReport, Vec<CoordRow>)>,
    n_in: usize,
    n_out: usize,
}

impl CoordDesign {
    pub fn new(cfg: &CheckConfig, threads: usize, progress: bool) -> Result<Self> {
        let split = crate::data::DataConfig {
            dataset: cfg.data.clone(),
            ..Default::default()
        }
        .load()?;
        Ok(CoordDesign {
            cfg: cfg.clone(),
            threads,
            progress,
            last: None,
            n_in: split.train.input_dim(),
            n_out: split.train.output_dim(),
        })
    }

    fn cost(&self, seeds: usize) -> f64 {
        let mut c = self.cfg.clone();
        c.seeds = seeds;
        let b = c.batch as f64;
        let mut widths = c.widths.clone();
        widths.sort_unstable();
        widths.dedup();
        widths
            .iter()
            .map(|&w| {
                let params = check::arch_at(&c.model, w, self.n_in, self.n_out)
                    .map(|a| a.param_values() as f64)
                    .unwrap_or(0.0);
                check::seeds_at(&c, w) as f64 * 6.0 * params * b * (c.steps as f64 + 1.0)
            })
            .sum()
    }
}

impl Design for CoordDesign {
    fn initial(&self) -> Vec<usize> {
        vec![self.cfg.seeds]
    }

    fn look(&mut self, seeds: &[usize], level: f64) -> Result<Vec<ClaimLook>> {
        let mut cfg = self.cfg.clone();
        cfg.seeds = seeds[0];
        cfg.ci_level = Some(level);
        let (report, rows) = coord::run(&cfg, self.threads, self.progress)?;
        let out = report
            .slopes
            .iter()
            .map(|s| ClaimLook {
                name: format!("step {} layer {}", s.step, s.layer),
                pool: 0,
                judged: s.judged.clone(),
            })
            .collect();
        self.last = Some((report, rows));
        Ok(out)
    }

    fn work(&self, _from: &[usize], to: &[usize]) -> f64 {
        // Each look reruns the whole check.
        self.cost(to[0])
    }
}

/// A coordinate check with sequential seeds: the last look's report and rows, and
/// the rounds' outcome.
pub fn coord(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
    opts: &SequentialOptions,
) -> Result<(CoordReport, Vec<CoordRow>, Outcome)> {
    let mut design = CoordDesign::new(cfg, threads, progress)?;
    let outcome = run(&mut design, opts)?;
    let (report, rows) = design
        .last
        .take()
        .ok_or_else(|| Error::config("a sequential coordinate check made no look"))?;
    Ok((report, rows, outcome))
}
