//! `richness reproduce`: the tutorial's experiments T1–T8 (and T9, T10, extensions; T10
//! the GPT, run when named) as one call, each with
//! its expected result, our measurement and a verdict, and a self-contained HTML
//! report.
//!
//! Every experiment is a checked-in TOML config (`configs/reproduce/<scale>/tN.toml`,
//! compiled into the binary so `reproduce` works from any folder; `config_dir`
//! reads edited copies instead). Each writes its raw data (CSV) under `out/tN/`,
//! and its result to `out/tN/result.json`; with `resume`, an experiment whose result
//! is already there is not run again, and training runs inside T3/T4 are cached
//! one by one (`out/tN/runs/NAME/outcome.json`), so an interrupted `full` run
//! loses at most the run in progress.
//!
//! Each experiment is one file, `tN.rs` (T4 reuses T3's protocol; T8 also holds
//! the kernel comparison behind `richness ntk compare`), with the helpers they share
//! in `common.rs`. This module lists them (the `experiments!` table), runs them and
//! assembles the report.
//!
//! ```no_run
//! use richness::reproduce::{reproduce, ExperimentId, Options, Scale};
//! let opts = Options { scale: Scale::Small, out: "out/reproduce".into(), ..Options::default() };
//! let report = reproduce(&[ExperimentId::T2], &opts).unwrap();
//! println!("{}", report.overview_text());
//! report.write_html(&opts.out).unwrap();
//! ```

mod common;
mod html;

use crate::error::{Error, Result};
use crate::report::plot::Figure;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

pub use t3::T3Config;
pub use t7::T7Config;

/// Which size of the experiments to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Embedded digits and synthetic data; about 5 minutes on 2 cores.
    #[default]
    Small,
    /// The original sizes, MNIST / Fashion-MNIST (fetched with `richness data fetch`).
    Full,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Full => "full",
        }
    }
}

impl FromStr for Scale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "small" => Ok(Scale::Small),
            "full" => Ok(Scale::Full),
            _ => Err(Error::config(format!(
                "unknown scale `{s}` (expected small or full)"
            ))),
        }
    }
}

/// The experiments, one file each (`tN.rs`): each has `run(text, dir, opts, res)`
/// and `check_config(text)`, and configs `configs/reproduce/{small,full}/tN.toml`.
/// Adding an experiment is its file, its configs and one line here.
macro_rules! experiments {
    ($($vis:vis $id:ident $stem:ident $title:literal;)*) => {
        $($vis mod $stem;)*

        /// The experiments of experiments.md.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum ExperimentId {
            $($id,)*
        }

        impl ExperimentId {
            pub const ALL: [ExperimentId; [$(stringify!($id)),*].len()] = [$(ExperimentId::$id),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(ExperimentId::$id => stringify!($id),)*
                }
            }

            pub fn title(self) -> &'static str {
                match self {
                    $(ExperimentId::$id => $title,)*
                }
            }

            /// The embedded config of this experiment at a scale.
            pub fn embedded_config(self, scale: Scale) -> &'static str {
                match (scale, self) {
                    $(
                        (Scale::Small, ExperimentId::$id) => include_str!(concat!(
                            env!("CARGO_MANIFEST_DIR"),
                            "/../../configs/reproduce/small/",
                            stringify!($stem),
                            ".toml"
                        )),
                        (Scale::Full, ExperimentId::$id) => include_str!(concat!(
                            env!("CARGO_MANIFEST_DIR"),
                            "/../../configs/reproduce/full/",
                            stringify!($stem),
                            ".toml"
                        )),
                    )*
                }
            }

            /// Run this experiment from its config text, writing under `dir`.
            fn run(
                self,
                text: &str,
                dir: &Path,
                opts: &Options,
                res: &mut ExperimentResult,
            ) -> Result<()> {
                match self {
                    $(ExperimentId::$id => $stem::run(text, dir, opts, res),)*
                }
            }

            /// Parse this experiment's config without running anything, so that
            /// `reproduce` can refuse a bad file in a `config_dir` before the
            /// experiments ahead of it have run (minutes to hours) instead of as an
            /// error row in the report.
            fn check_config(self, text: &str) -> Result<()> {
                match self {
                    $(ExperimentId::$id => $stem::check_config(text),)*
                }
            }
        }
    };
}

experiments! {
    T1 t1 "Table 1 on the 3-layer linear model";
    T2 t2 "Scaling of representation updates (ReLU MLP)";
    T3 t3 "Gauge equivalence and lazy vs rich (MLP)";
    T4 t4 "CNN: Myrtle-5 lazy vs rich";
    T5 t5 "Hyperparameter transfer across width";
    T6 t6 "Weight alignment and gradient sizes";
    T7 t7 "The richness dial";
    pub T8 t8 "Lazy limit against kernel regression";
    T9 t9 "Learning-rate transfer across depth (resmlp) [extension]";
    T10 t10 "The GPT on the richness scale [extension]";
}

impl ExperimentId {
    /// What `reproduce` runs when no experiment is named: the tutorial's T1–T9. T10
    /// (the GPT, about a minute and a half more at small scale) runs when named, so
    /// the front door keeps its time budget.
    pub const DEFAULT: [ExperimentId; 9] = [
        ExperimentId::T1,
        ExperimentId::T2,
        ExperimentId::T3,
        ExperimentId::T4,
        ExperimentId::T5,
        ExperimentId::T6,
        ExperimentId::T7,
        ExperimentId::T8,
        ExperimentId::T9,
    ];

    /// Lower-case stem used for files and folders (`t1`).
    pub fn stem(self) -> String {
        self.name().to_ascii_lowercase()
    }
}

impl FromStr for ExperimentId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ExperimentId::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown experiment `{s}` (expected one of {}…{})",
                    ExperimentId::ALL[0].name(),
                    ExperimentId::ALL[ExperimentId::ALL.len() - 1].name()
                ))
            })
    }
}

pub use crate::verdict::Verdict;

/// One claim of the tutorial with our measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    pub claim: String,
    /// What the tutorial (or theory) expects.
    pub expected: String,
    /// What we measured.
    pub measured: String,
    /// The rule that decides the verdict.
    pub tolerance: String,
    pub verdict: Verdict,
    /// Why a verdict is not a pass (the interval, the regime, the seeds that would
    /// decide); empty for a pass.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// Seeds behind the verdict (at the largest width; the most of any part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<usize>,
    /// How the seeds were chosen and why they stopped (sequential rounds: decided,
    /// max seeds, budget, looks spent; or a fixed design).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stopped: String,
}

impl ClaimResult {
    pub fn new(
        claim: impl Into<String>,
        expected: impl Into<String>,
        measured: impl Into<String>,
        tolerance: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        ClaimResult {
            claim: claim.into(),
            expected: expected.into(),
            measured: measured.into(),
            tolerance: tolerance.into(),
            verdict,
            why: String::new(),
            seeds: None,
            stopped: String::new(),
        }
    }

    /// A claim judged by a [`crate::verdict::Judged`]: its verdict and its reason.
    pub fn judged(
        claim: impl Into<String>,
        expected: impl Into<String>,
        measured: impl Into<String>,
        tolerance: impl Into<String>,
        judged: &crate::verdict::Judged,
    ) -> Self {
        ClaimResult::new(claim, expected, measured, tolerance, judged.verdict)
            .because(&judged.reason)
    }

    /// Attach the reason for a verdict that is not a pass.
    pub fn because(mut self, why: impl Into<String>) -> Self {
        self.why = why.into();
        self
    }

    /// Attach the seeds behind the verdict and why they stopped there.
    pub fn seeded(mut self, seeds: usize, stopped: impl Into<String>) -> Self {
        self.seeds = Some(seeds);
        self.stopped = stopped.into();
        self
    }

    /// The report's "why" column: the reason of a verdict that is not a pass, then
    /// the seeds and why they stopped.
    pub fn why_column(&self) -> String {
        let seeds = match (self.seeds, self.stopped.is_empty()) {
            (Some(n), true) => format!("{n} seeds"),
            (_, false) => self.stopped.clone(),
            (None, true) => String::new(),
        };
        match (self.why.is_empty(), seeds.is_empty()) {
            (true, _) => seeds,
            (false, true) => self.why.clone(),
            (false, false) => format!("{}; {seeds}", self.why),
        }
    }
}

/// A detail table (e.g. every fitted slope of a scan).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A figure of an experiment, kept as SVG (inlined into the report).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FigureRef {
    pub stem: String,
    pub caption: String,
    pub svg: String,
}

/// Everything one experiment produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    pub id: ExperimentId,
    pub title: String,
    pub scale: Scale,
    /// What was run, in a sentence or two (data, model, sizes).
    pub setup: String,
    /// The command that reruns exactly this experiment.
    pub command: String,
    /// The config text used (also written to `out/configs/tN.toml`).
    pub config: String,
    pub claims: Vec<ClaimResult>,
    pub tables: Vec<Table>,
    pub figures: Vec<FigureRef>,
    /// Data files, relative to the report folder.
    pub files: Vec<String>,
    /// Notes (deviations from the original, honest misses explained).
    pub notes: Vec<String>,
    pub seconds: f64,
    /// Set when the experiment could not run (missing data, bad config).
    pub error: Option<String>,
}

impl ExperimentResult {
    fn new(id: ExperimentId, scale: Scale, config: &str) -> Self {
        ExperimentResult {
            id,
            title: id.title().to_string(),
            scale,
            setup: String::new(),
            command: format!("richness reproduce {} --scale {}", id.name(), scale.name()),
            config: config.to_string(),
            claims: Vec::new(),
            tables: Vec::new(),
            figures: Vec::new(),
            files: Vec::new(),
            notes: Vec::new(),
            seconds: 0.0,
            error: None,
        }
    }

    /// pass only when every claim passes (an error or no claim at all is not a pass).
    pub fn verdict(&self) -> Verdict {
        if self.error.is_some() || self.claims.is_empty() {
            return Verdict::Error;
        }
        Verdict::worst(self.claims.iter().map(|c| c.verdict))
    }

    /// Save a figure: PNG, SVG and CSV under `dir`, SVG kept for the report.
    fn add_figure(&mut self, dir: &Path, stem: &str, caption: &str, fig: &Figure) -> Result<()> {
        fig.save_all(dir, stem)?;
        self.figures.push(FigureRef {
            stem: stem.to_string(),
            caption: caption.to_string(),
            svg: fig.to_svg()?,
        });
        self.files.push(format!("{}/{stem}.csv", self.id.stem()));
        Ok(())
    }
}

/// Options of [`reproduce`].
#[derive(Clone, Debug)]
pub struct Options {
    pub scale: Scale,
    pub out: PathBuf,
    /// Read `tN.toml` from here instead of the embedded configs.
    pub config_dir: Option<PathBuf>,
    /// Skip experiments whose `result.json` exists; reuse cached training runs.
    pub resume: bool,
    pub threads: usize,
    pub progress: bool,
    /// Sequential seeds for the experiments built on width scans (T1, T2, T6, T7):
    /// rounds until each claim is decided ([`crate::sequential`]); `None`: the fixed
    /// seeds of the configs.
    pub sequential: Option<crate::sequential::SequentialOptions>,
}

/// The sequential rounds `reproduce` runs by default: 3 looks, at most 64 seeds, and
/// extra rounds worth at most the first round's work, so a scan costs at most twice
/// its fixed design (the README's time budget).
pub fn default_sequential() -> crate::sequential::SequentialOptions {
    crate::sequential::SequentialOptions {
        max_extra_factor: Some(1.0),
        ..Default::default()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scale: Scale::Small,
            out: PathBuf::from("out/reproduce"),
            config_dir: None,
            resume: false,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            progress: false,
            sequential: Some(default_sequential()),
        }
    }
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scale: Scale,
    pub experiments: Vec<ExperimentResult>,
    pub seconds: f64,
    pub version: String,
    /// `threads` the run used.
    pub threads: usize,
}

impl Report {
    /// Every claim passed in every experiment.
    pub fn all_pass(&self) -> bool {
        self.verdict() == Verdict::Pass
    }

    /// The worst verdict of every experiment.
    pub fn verdict(&self) -> Verdict {
        Verdict::worst(self.experiments.iter().map(|e| e.verdict()))
    }

    /// How many claims got each verdict, in [`Verdict::ALL`] order.
    pub fn counts(&self) -> Vec<(Verdict, usize)> {
        Verdict::ALL
            .into_iter()
            .map(|v| {
                let n = self
                    .experiments
                    .iter()
                    .flat_map(|e| &e.claims)
                    .filter(|c| c.verdict == v)
                    .count()
                    + self
                        .experiments
                        .iter()
                        .filter(|e| v == Verdict::Error && e.error.is_some())
                        .count();
                (v, n)
            })
            .collect()
    }

    /// Plain-text overview: one line per claim.
    pub fn overview_text(&self) -> String {
        let mut s = String::new();
        for e in &self.experiments {
            s.push_str(&format!(
                "{}  {}  [{}]  {:.0}s\n",
                e.id.name(),
                e.title,
                e.verdict().name(),
                e.seconds
            ));
            if let Some(err) = &e.error {
                s.push_str(&format!("    error: {err}\n"));
            }
            for c in &e.claims {
                s.push_str(&format!(
                    "    {:<9} {}: expected {}; measured {} (rule: {})\n",
                    c.verdict.name(),
                    c.claim,
                    c.expected,
                    c.measured,
                    c.tolerance
                ));
                if !c.why.is_empty() {
                    s.push_str(&format!("              why: {}\n", c.why));
                }
                if !c.stopped.is_empty() {
                    s.push_str(&format!("              seeds: {}\n", c.stopped));
                }
            }
        }
        let counts: Vec<String> = self
            .counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(v, n)| format!("{n} {}", v.name()))
            .collect();
        s.push_str(&format!("\nclaims: {}\n", counts.join(", ")));
        s
    }

    /// The overview as a Markdown table (for the README's results section).
    pub fn markdown(&self) -> String {
        let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
        let mut s = format!(
            "Scale `{}`, {} experiments, {:.0} s of compute on {} threads (richness {}).\n\n",
            self.scale.name(),
            self.experiments.len(),
            self.experiments.iter().map(|e| e.seconds).sum::<f64>(),
            self.threads,
            self.version
        );
        s.push_str(
            "| exp. | claim | expected | measured | verdict | why |\n|---|---|---|---|---|---|\n",
        );
        for e in &self.experiments {
            if let Some(err) = &e.error {
                s.push_str(&format!(
                    "| {} | could not run | | {} | **error** | |\n",
                    e.id.name(),
                    cell(err)
                ));
            }
            for c in &e.claims {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | **{}** | {} |\n",
                    e.id.name(),
                    cell(&c.claim),
                    cell(&c.expected),
                    cell(&c.measured),
                    c.verdict.name(),
                    cell(&c.why_column())
                ));
            }
        }
        s
    }

    /// Write `index.html` and `report.json` into `dir`.
    pub fn write_html(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::files::write_atomic(&dir.join("index.html"), html::render(self).as_bytes())?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::config(format!("serialising the report: {e}")))?;
        crate::files::write_atomic(&dir.join("report.json"), json.as_bytes())
    }
}

/// The config text of an experiment: the user's copy in `config_dir`, or the embedded one.
pub fn config_text(id: ExperimentId, opts: &Options) -> Result<String> {
    match &opts.config_dir {
        Some(dir) => {
            let p = dir.join(format!("{}.toml", id.stem()));
            crate::files::read_config_text(&p)
        }
        None => Ok(id.embedded_config(opts.scale).to_string()),
    }
}

/// Run one experiment; failures become an `error` in the result, never a panic.
pub fn run_experiment(id: ExperimentId, opts: &Options) -> ExperimentResult {
    let start = Instant::now();
    let text = match config_text(id, opts) {
        Ok(t) => t,
        Err(e) => {
            let mut r = ExperimentResult::new(id, opts.scale, "");
            r.error = Some(e.to_string());
            return r;
        }
    };
    let mut res = ExperimentResult::new(id, opts.scale, &text);
    if let Some(d) = &opts.config_dir {
        res.command
            .push_str(&format!(" --config-dir {}", d.display()));
    }
    let dir = opts.out.join(id.stem());
    let outcome = std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(&dir, e))
        .and_then(|_| id.run(&text, &dir, opts, &mut res));
    if let Err(e) = outcome {
        res.error = Some(e.to_string());
    }
    // Claims that are not width-scan slopes (training runs, sweeps, kernels) keep
    // the config's seeds.
    for c in res.claims.iter_mut().filter(|c| c.stopped.is_empty()) {
        c.stopped =
            "fixed design: the config's seeds (no sequential rounds for this experiment)".into();
    }
    res.seconds = start.elapsed().as_secs_f64();
    res
}

/// Run the experiments `ids` (T1–T9 when empty: [`ExperimentId::DEFAULT`]), writing
/// under `opts.out`, and return the report (also written as `index.html` and
/// `report.json`).
pub fn reproduce(ids: &[ExperimentId], opts: &Options) -> Result<Report> {
    let start = Instant::now();
    let ids: Vec<ExperimentId> = if ids.is_empty() {
        ExperimentId::DEFAULT.to_vec()
    } else {
        let mut v = ids.to_vec();
        v.sort();
        v.dedup();
        v
    };
    // A bad file in --config-dir fails here, before any experiment runs, rather than
    // as an error row in a report that took an hour to produce.
    if let Some(dir) = &opts.config_dir {
        for &id in &ids {
            let text = config_text(id, opts)?;
            id.check_config(&text).map_err(|e| match e {
                Error::Config(m) => Error::file(dir.join(format!("{}.toml", id.stem())), m),
                other => other,
            })?;
        }
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let cfg_dir = opts.out.join("configs");
    std::fs::create_dir_all(&cfg_dir).map_err(|e| Error::io(&cfg_dir, e))?;
    // Results of experiments not rerun this time stay in the report.
    let mut experiments: Vec<ExperimentResult> = Vec::new();
    for id in ExperimentId::ALL {
        let saved = opts.out.join(id.stem()).join("result.json");
        let cached: Option<ExperimentResult> = std::fs::read_to_string(&saved)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .filter(|r: &ExperimentResult| r.scale == opts.scale && r.error.is_none());
        let rerun = ids.contains(&id) && !(opts.resume && cached.is_some());
        if rerun {
            if opts.progress {
                eprintln!("{} {} …", id.name(), id.title());
            }
            let r = run_experiment(id, opts);
            if opts.progress {
                eprintln!("{} {} in {:.0}s", id.name(), r.verdict().name(), r.seconds);
            }
            if r.error.is_none() {
                let json = serde_json::to_string_pretty(&r)
                    .map_err(|e| Error::config(format!("serialising {}: {e}", id.name())))?;
                crate::files::write_atomic(&saved, json.as_bytes())?;
            }
            crate::files::write_atomic(
                &cfg_dir.join(format!("{}.toml", id.stem())),
                r.config.as_bytes(),
            )?;
            experiments.push(r);
        } else if let Some(r) = cached {
            experiments.push(r);
        }
    }
    let report = Report {
        scale: opts.scale,
        experiments,
        seconds: start.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        threads: opts.threads,
    };
    report.write_html(&opts.out)?;
    Ok(report)
}
