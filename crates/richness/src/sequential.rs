//! Sequential seeds: measure in rounds, give more seeds only to the claims that are
//! still `unclear`, and keep the intervals honest under this optional stopping.
//!
//! A fixed design measures S seeds once and judges every claim on its 95% interval
//! ([`crate::verdict`]). A sequential design looks after each round: claims whose
//! interval straddles a band edge ask for ≈ the seeds that would decide them
//! (`seeds_to_decide`), the next round measures only the new seeds (earlier ones are
//! reused: every probe is deterministic in its seed), and the rounds stop when
//!
//! | stop | when |
//! |---|---|
//! | `decided` | no claim is `unclear` |
//! | `looks` | the K planned looks are spent |
//! | `max-seeds` | every unclear claim needs more seeds than `max_seeds` (or sits on the edge) |
//! | `budget` | the next round's estimated work would exceed the budget |
//!
//! **Honest intervals (alpha-spending).** Looking repeatedly and stopping when an
//! interval happens to fall inside the band gives the noise K chances: at 95% per
//! look the false-pass rate grows with K. The error rate α = 0.05 is therefore spent
//! equally over the K planned looks (Bonferroni): every look judges with the
//! two-sided 1 − α/K interval (K = 3: 98.3%, Student t quantile 2.39 instead of 1.96
//! for many seeds), so P(some look's interval misses the true slope) ≤ Σₖ α/K = α
//! whatever the data make the rule do. A `pass` (interval inside the band) or `fail`
//! (outside) reached at any look is then wrong with probability ≤ α/2, the fixed
//! design's bound. The price: intervals ~20% wider at each look than a single 95%
//! look, so a claim that a fixed design decides just barely may need a second round.
//! Measured by `crates/richness/tests/sequential.rs` (docs/theory.md §6.2). The
//! designs for width scans (`check`, `coord`) are in [`crate::probe::sequential`].
//!
//! ```
//! use richness::sequential::{run, ClaimLook, Design, SequentialOptions, Stop};
//! use richness::verdict::judge_band;
//! // One claim whose interval half-width shrinks like 1/√seeds.
//! struct Toy;
//! impl Design for Toy {
//!     fn initial(&self) -> Vec<usize> { vec![8] }
//!     fn look(&mut self, seeds: &[usize], level: f64) -> richness::Result<Vec<ClaimLook>> {
//!         let half = richness::fit::t_two_sided(level, seeds[0] - 1) * 0.03 / (seeds[0] as f64).sqrt();
//!         let judged = judge_band(0.02, (0.02 - half, 0.02 + half), (-0.05, 0.05), Some(seeds[0]));
//!         Ok(vec![ClaimLook { name: "slope".into(), pool: 0, judged }])
//!     }
//!     fn work(&self, from: &[usize], to: &[usize]) -> f64 { (to[0] - from[0]) as f64 }
//! }
//! let out = run(&mut Toy, &SequentialOptions::default()).unwrap();
//! assert_eq!(out.stop, Stop::Decided);
//! assert!(out.seeds[0] > 8);
//! ```

use crate::error::{Error, Result};
use crate::verdict::{Judged, Verdict};

use serde::{Deserialize, Serialize};

/// The error rate the looks share (two-sided, as the fixed design's 95% interval).
pub const ALPHA: f64 = 0.05;

/// How the rounds run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialOptions {
    /// Looks planned in advance, the first round included; α is spent equally over
    /// them, so every look judges at 1 − α/looks. 1 is the fixed design.
    #[serde(default = "default_looks")]
    pub looks: usize,
    /// Most seeds a round may ask for (per seed pool); claims that would need more
    /// stay `unclear` with the number they need.
    #[serde(default = "default_max_seeds")]
    pub max_seeds: usize,
    /// Most estimated work (flops) all rounds together may take; `None`: no limit. A
    /// work estimate, not wall-clock, so a budgeted run is deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_flops: Option<f64>,
    /// Each round asks for at least this factor more seeds than the last (a round
    /// costs a look, so small steps waste them).
    #[serde(default = "default_growth")]
    pub min_growth: f64,
    /// The extra rounds may take at most this many times the first round's work (a
    /// budget relative to the fixed design, e.g. 1: at most twice its cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_extra_factor: Option<f64>,
}

fn default_looks() -> usize {
    3
}
fn default_max_seeds() -> usize {
    64
}
fn default_growth() -> f64 {
    1.5
}

impl Default for SequentialOptions {
    fn default() -> Self {
        SequentialOptions {
            looks: default_looks(),
            max_seeds: default_max_seeds(),
            budget_flops: None,
            min_growth: default_growth(),
            max_extra_factor: None,
        }
    }
}

impl SequentialOptions {
    /// The two-sided level every look judges at: 1 − α/looks.
    pub fn level(&self) -> f64 {
        1.0 - ALPHA / self.looks.max(1) as f64
    }

    /// One-line description for reports.
    pub fn describe(&self) -> String {
        format!(
            "sequential seeds: up to {} looks, each judged at the {:.1}% interval (α = {ALPHA} spent equally over the looks), at most {} seeds{}",
            self.looks,
            100.0 * self.level(),
            self.max_seeds,
            match (self.budget_flops, self.max_extra_factor) {
                (Some(f), _) => format!(", budget {f:.2e} flops"),
                (None, Some(x)) => format!(", extra rounds at most {x}× the first round's work"),
                (None, None) => String::new(),
            }
        )
    }

    pub fn validate(&self) -> Result<()> {
        if self.looks == 0 || self.looks > 20 {
            return Err(Error::config(format!(
                "looks must be 1 to 20, got {}",
                self.looks
            )));
        }
        crate::counts::SEEDS.check_named("max_seeds", self.max_seeds)?;
        if self
            .budget_flops
            .is_some_and(|b| !(b >= 0.0 && b.is_finite()))
        {
            return Err(Error::config(
                "the budget must be a finite, non-negative amount",
            ));
        }
        if self
            .max_extra_factor
            .is_some_and(|f| !(f >= 0.0 && f.is_finite()))
        {
            return Err(Error::config(
                "max_extra_factor must be a finite, non-negative number",
            ));
        }
        if !(self.min_growth.is_finite() && self.min_growth >= 1.0) {
            return Err(Error::config("min_growth must be at least 1"));
        }
        Ok(())
    }
}

/// Parse a time budget: `90s`, `3m`, `1.5h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<f64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let scale = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(Error::config(format!(
                "budget `{text}`: expected a duration such as 90s, 3m or 1.5h"
            )))
        }
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale < 1e9 => Ok(v * scale),
        _ => Err(Error::config(format!(
            "budget `{text}`: expected a duration such as 90s, 3m or 1.5h"
        ))),
    }
}

/// A time budget as work: `seconds` of `threads` threads at the nominal rate of
/// [`crate::counts::FLOPS_PER_THREAD`] (an estimate of work, so a run does not depend
/// on how loaded the machine is).
pub fn budget_flops(seconds: f64, threads: usize) -> f64 {
    seconds * crate::counts::FLOPS_PER_THREAD * threads.max(1) as f64
}

/// One claim at one look.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimLook {
    pub name: String,
    /// The seed pool whose count its interval depends on (e.g. probes, or the cheap
    /// seeds that measure only the output at init).
    pub pool: usize,
    pub judged: Judged,
}

/// A measurement that can be extended by seeds.
pub trait Design {
    /// Seeds per pool at the first look.
    fn initial(&self) -> Vec<usize>;
    /// Measure up to `seeds` per pool (only what is new) and judge every claim with
    /// two-sided `level` intervals.
    fn look(&mut self, seeds: &[usize], level: f64) -> Result<Vec<ClaimLook>>;
    /// Estimated work (flops) of going from `from` to `to` seeds per pool.
    fn work(&self, from: &[usize], to: &[usize]) -> f64;
    /// The seed counts the design will actually use for a request (e.g. a pool that
    /// can never have fewer seeds than another); the identity by default.
    fn normalize(&self, _seeds: &mut [usize]) {}
}

/// Why the rounds stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Every claim decided (or not a question of seeds: crossover, error).
    Decided,
    /// The planned looks are spent.
    Looks,
    /// Every unclear claim needs more than `max_seeds` seeds.
    MaxSeeds,
    /// The next round would exceed the work budget.
    Budget,
}

impl Stop {
    pub fn name(&self) -> &'static str {
        match self {
            Stop::Decided => "all decided",
            Stop::Looks => "looks spent",
            Stop::MaxSeeds => "max seeds",
            Stop::Budget => "budget spent",
        }
    }
}

/// One look: the seeds it had and how many claims were still unclear.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LookRecord {
    pub seeds: Vec<usize>,
    pub unclear: usize,
    /// Estimated work up to and including this look (flops).
    pub work: f64,
}

/// Per claim: its seeds at the last look and why it stopped there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimStop {
    pub name: String,
    pub verdict: Verdict,
    pub seeds: usize,
    /// The look (1-based) at which the verdict was reached and kept.
    pub look: usize,
    pub why: String,
}

/// The result of [`run`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub looks: Vec<LookRecord>,
    pub planned_looks: usize,
    pub level: f64,
    pub stop: Stop,
    /// Seeds per pool at the last look.
    pub seeds: Vec<usize>,
    pub work: f64,
    pub claims: Vec<ClaimStop>,
}

impl Outcome {
    /// The stop line of a report: `3 looks (8 → 20 → 48 seeds), stopped: all decided`.
    pub fn summary(&self) -> String {
        let seeds: Vec<String> = self
            .looks
            .iter()
            .map(|l| {
                l.seeds
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        format!(
            "{} of {} looks at the {:.1}% level (seeds {}), stopped: {}",
            self.looks.len(),
            self.planned_looks,
            100.0 * self.level,
            seeds.join(" → "),
            self.stop.name()
        )
    }

    /// The stop of the claim named `name`.
    pub fn claim(&self, name: &str) -> Option<&ClaimStop> {
        self.claims.iter().find(|c| c.name == name)
    }
}

/// Run `design` in rounds (see the module docs).
pub fn run<D: Design + ?Sized>(design: &mut D, opts: &SequentialOptions) -> Result<Outcome> {
    opts.validate()?;
    let level = opts.level();
    let mut seeds = design.initial();
    design.normalize(&mut seeds);
    let pools = seeds.len();
    let mut work = design.work(&vec![0; pools], &seeds);
    // The budget: absolute, and relative to the first round's work.
    let budget = match (opts.budget_flops, opts.max_extra_factor) {
        (Some(b), Some(f)) => Some(b.min(work * (1.0 + f))),
        (Some(b), None) => Some(b),
        (None, Some(f)) => Some(work * (1.0 + f)),
        (None, None) => None,
    };
    let mut looks = Vec::new();
    // For each claim: the look since which its verdict has not changed.
    let mut since: std::collections::BTreeMap<String, (Verdict, usize)> = Default::default();
    let mut last: Vec<ClaimLook>;
    let mut blocked: Vec<(String, String)> = Vec::new();
    let stop = loop {
        let k = looks.len() + 1;
        last = design.look(&seeds, level)?;
        for c in &last {
            let e = since.entry(c.name.clone()).or_insert((c.judged.verdict, k));
            if e.0 != c.judged.verdict {
                *e = (c.judged.verdict, k);
            }
        }
        let unclear: Vec<&ClaimLook> = last
            .iter()
            .filter(|c| c.judged.verdict == Verdict::Unclear)
            .collect();
        looks.push(LookRecord {
            seeds: seeds.clone(),
            unclear: unclear.len(),
            work,
        });
        if unclear.is_empty() {
            break Stop::Decided;
        }
        if k >= opts.looks {
            break Stop::Looks;
        }
        // The seeds each pool needs: the most any of its decidable claims asks for.
        blocked.clear();
        let mut next = seeds.clone();
        for c in &unclear {
            match c.judged.seeds_to_decide {
                Some(n) if n <= opts.max_seeds => {
                    let grown = ((seeds[c.pool] as f64) * opts.min_growth).ceil() as usize;
                    next[c.pool] = next[c.pool].max(n.max(grown).min(opts.max_seeds));
                }
                Some(n) => blocked.push((
                    c.name.clone(),
                    format!(
                        "≈ {n} seeds would decide it, more than the {} allowed",
                        opts.max_seeds
                    ),
                )),
                None => blocked.push((
                    c.name.clone(),
                    "its estimate sits on the band's edge: no practical number of seeds decides it"
                        .into(),
                )),
            }
        }
        design.normalize(&mut next);
        if next == seeds {
            break Stop::MaxSeeds;
        }
        let cost = |to: &[usize]| design.work(&seeds, to);
        if let Some(budget) = budget {
            if work + cost(&next) > budget {
                // Shrink the round to what the budget still allows (bisection on the
                // fraction of the step every pool takes).
                let step = |f: f64| -> Vec<usize> {
                    seeds
                        .iter()
                        .zip(&next)
                        .map(|(&a, &b)| a + ((b - a) as f64 * f).floor() as usize)
                        .collect()
                };
                let (mut lo, mut hi) = (0.0, 1.0);
                for _ in 0..40 {
                    let mid = 0.5 * (lo + hi);
                    if work + cost(&step(mid)) <= budget {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let mut fit = step(lo);
                design.normalize(&mut fit);
                // A round that cannot reach the smallest growth is not worth a look.
                let useful = fit.iter().zip(&seeds).any(|(&b, &a)| {
                    b > a && b as f64 >= (a as f64 * opts.min_growth.min(1.25)).ceil()
                });
                if !useful {
                    break Stop::Budget;
                }
                next = fit;
            }
        }
        work += cost(&next);
        seeds = next;
    };
    let k = looks.len();
    let claims = last
        .iter()
        .map(|c| {
            let (_, at) = since.get(&c.name).copied().unwrap_or((c.judged.verdict, k));
            let n = seeds[c.pool];
            let why = match c.judged.verdict {
                Verdict::Pass | Verdict::Fail if at == k => {
                    format!("decided at look {k} ({n} seeds)")
                }
                Verdict::Pass | Verdict::Fail => format!(
                    "decided at look {at}, unchanged through look {k} ({n} seeds at look {k})"
                ),
                Verdict::Unclear => {
                    let because = blocked
                        .iter()
                        .find(|(name, _)| name == &c.name)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_else(|| match stop {
                            Stop::Looks => format!("the {} planned looks are spent", opts.looks),
                            Stop::Budget => "the work budget is spent".to_string(),
                            _ => "more seeds were not allowed".to_string(),
                        });
                    format!("still unclear after {k} look(s) ({n} seeds): {because}")
                }
                Verdict::Crossover => format!("not a question of seeds: the regime ({n} seeds)"),
                Verdict::Error => format!("nothing to judge ({n} seeds)"),
            };
            ClaimStop {
                name: c.name.clone(),
                verdict: c.judged.verdict,
                seeds: n,
                look: at,
                why,
            }
        })
        .collect();
    Ok(Outcome {
        looks,
        planned_looks: opts.looks,
        level,
        stop,
        seeds,
        work,
        claims,
    })
}
