//! Width scans: the probe over widths × seeds, log–log fits, predictions, verdicts.
//!
//! For each (quantity, layer) the seed means at each width are fitted by least
//! squares in log–log space ([`crate::fit`]); the slope is compared with the width
//! exponent predicted for the parameterization by [`crate::param::diagnose`] (which
//! gives theory.md §4 on the scale), and passes when |slope − predicted| ≤ tolerance.
//! The criteria of theory.md §2 are named rows:
//!
//! | criterion | passes when |
//! |---|---|
//! | stable init | every hidden `h_rms` slope within tolerance of 0, and the `f_norm` slope ≤ tolerance |
//! | stability | every read-in and hidden `dh_rel` (‖Δh‖/‖h‖) slope ≤ tolerance, and the `f_norm` slope ≤ tolerance |
//! | on the scale (diagnose) | present only when [`crate::param::diagnose`] puts the parameterization off the scale: `fail`, with its findings |
//! | NTC | `df_norm` slope within tolerance of 0 |
//! | UUC ℓ | `uuc` slope of layer ℓ within tolerance of 0 |
//! | MAX ℓ (ℓ ≥ 2) | `layer_share` (layer term / ‖Δh‖) slope within tolerance of 0 |
//!
//! r itself is estimated as the mean `dh_norm` slope of the read-in and hidden layers.
//! Independent (width, seed) probes run in parallel, each single-threaded, so the
//! results do not depend on the thread count: the same configuration writes
//! identical files.

use super::{Measurement, ProbeSpec};
use crate::error::{Error, Result};
use crate::fit::{fit_loglog, mean_std, LineFit};
use crate::linalg::Compute;
use crate::nn::{Loss, Model};
use crate::optim::OptimConfig;
use crate::param::{diagnose, Diagnosis, Exponents, OptimizerKind, Parameterization, ScaleChoice};
use crate::report::plot::{power_line, Figure, Series, Style};
use crate::tensor::{Dtype, Mat, Scalar};
use crate::train::ModelConfig;
use crate::verdict::{Judged, Verdict};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything that defines a scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Architecture (its width is replaced by each scan width).
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub param: ScaleChoice,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub loss: Loss,
    #[serde(default)]
    pub dtype: Dtype,
    /// Data spec; the probe batch is the first `batch` training examples.
    #[serde(default = "default_data")]
    pub data: String,
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// Seeds 0..seeds.
    #[serde(default = "default_seeds")]
    pub seeds: usize,
    /// Optimizer steps between the two measurements.
    #[serde(default = "one")]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Measure spectral norms.
    #[serde(default = "yes")]
    pub spectral: bool,
    /// Largest |measured − predicted| slope that passes.
    #[serde(default = "default_tol")]
    pub tolerance: f64,
    /// A width-dependent base rate η₀(n) = base_lr · n^{−lr_exponent} (0: fixed).
    #[serde(default)]
    pub lr_exponent: f64,
    /// More seeds where they are cheap: width n gets ⌈seeds·(n_max/n)^e⌉ seeds (at most
    /// 64 × seeds). Seed-to-seed spread of most quantities falls like n^{−1/2} while a
    /// probe costs ~n², so e = 1 narrows slope intervals at a small extra cost
    /// (0: the same seeds at every width).
    #[serde(default)]
    pub seed_exponent: f64,
    /// Measure, fit and judge only these quantities (names from
    /// [`crate::probe::QUANTITIES`]); unset: all. A criterion is judged only when
    /// its quantity is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantities: Option<Vec<String>>,
    /// Seeds for the output at init ([`crate::probe::AT_INIT`]: ‖f₀‖, ‖f₀‖/‖y‖), at
    /// least `seeds`, at every width (`seed_exponent` does not apply): the seeds beyond
    /// the probed ones measure only it. The output at init is one random draw per seed
    /// whose spread does not shrink with width, so its slope needs far more seeds than
    /// the updates do, and it costs little (no step). Unset: `seeds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_seeds: Option<usize>,
    /// Two-sided level of the slope intervals the verdicts use (unset: 0.95). A
    /// sequential design ([`crate::sequential`]) judges each of its K looks at
    /// 1 − 0.05/K so that the whole sequence keeps the 95% guarantee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_level: Option<f64>,
}

fn default_data() -> String {
    "digits".into()
}
fn default_widths() -> Vec<usize> {
    vec![128, 256, 512, 1024, 2048, 4096]
}
fn default_seeds() -> usize {
    8
}
fn one() -> usize {
    1
}
fn default_batch() -> usize {
    256
}
fn yes() -> bool {
    true
}
fn default_tol() -> f64 {
    0.05
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            model: ModelConfig {
                arch: crate::nn::Family::Mlp3,
                ..ModelConfig::default()
            },
            param: ScaleChoice::default(),
            optim: OptimConfig::default(),
            loss: Loss::Mse,
            dtype: Dtype::F32,
            data: default_data(),
            widths: default_widths(),
            seeds: default_seeds(),
            steps: 1,
            batch: default_batch(),
            spectral: true,
            tolerance: default_tol(),
            lr_exponent: 0.0,
            seed_exponent: 0.0,
            quantities: None,
            init_seeds: None,
            ci_level: None,
        }
    }
}

/// One raw measurement of the scan (a row of `check.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanRow {
    pub width: usize,
    pub seed: usize,
    pub layer: usize,
    pub quantity: String,
    pub value: f64,
}

/// A fitted slope with its prediction and verdict (a row of the printed table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub quantity: String,
    /// 1..L, or 0 for network-level quantities.
    pub layer: usize,
    pub role: String,
    pub fit: Option<LineFit>,
    pub predicted: Option<f64>,
    /// An interval prediction (docs/theory.md §6.1: where only a bracket is known), judged
    /// with the tolerance added on both sides; `predicted` is then its asymptotic end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_range: Option<(f64, f64)>,
    /// The n → ∞ exponent, when `predicted` carries a finite-size correction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asymptotic: Option<f64>,
    /// The verdict ([`crate::verdict`]); `None` when nothing is predicted or too few
    /// widths were usable (printed as `-`).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<Judged>,
}

impl Claim {
    /// The verdict, if the claim was judged.
    pub fn verdict(&self) -> Option<Verdict> {
        self.judged.as_ref().map(|j| j.verdict)
    }
}

/// A criterion of theory.md §2 with its verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    /// What was measured (slopes), in words.
    pub measured: String,
    #[serde(flatten)]
    pub judged: Judged,
}

/// (width, seed, reason) of a probe that diverged.
pub type Diverged = (usize, usize, String);

/// The whole result of a check (also `check.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub config: CheckConfig,
    /// The parameterization at the largest width.
    pub parameterization: Parameterization,
    /// The analytic prediction (SGD calculus; for Adam, of the SGD point with the same r).
    pub diagnosis: Option<Diagnosis>,
    /// Why there is no prediction, when `diagnosis` is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_note: Option<String>,
    pub claims: Vec<Claim>,
    pub criteria: Vec<Criterion>,
    /// r estimated from the read-in and hidden `dh_norm` slopes (mean, spread).
    pub estimated_r: Option<(f64, f64)>,
    /// (width, seed, reason) of probes that diverged.
    pub diverged: Vec<Diverged>,
    pub spectral_method: String,
    /// How slopes and intervals are computed.
    pub fit_method: String,
    /// Whether outputs were centred (f − f₀) during the probes.
    #[serde(default)]
    pub centred: bool,
    /// ‖f₀‖/‖y‖ per width (seed mean): the network's own output at init against the
    /// targets (uncentred, whether or not training was centred).
    #[serde(default)]
    pub f0_rel: Vec<(usize, f64)>,
    /// A note when an uncentred f₀ is large enough, and changes enough with width, to
    /// bend the one-step exponents (docs/theory.md §6.1), with the remedies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f0_note: Option<String>,
    /// The rounds of a sequential scan ([`crate::sequential::check`]): seeds per look,
    /// why they stopped, and each claim's seeds; absent for a fixed design.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::sequential::Outcome>,
    /// The worst verdict of every claim and criterion (`fail` also when a probe diverged).
    pub verdict: Verdict,
    /// `verdict == pass`.
    pub pass: bool,
}

/// Quantities the printed table reports, in order (network-level ones use layer 0).
pub const CLAIMS: [&str; 16] = [
    "h_rms",
    "f_norm",
    "dh_norm",
    "dh_rel",
    "da_rel",
    "df_norm",
    "layer_term",
    "passthrough_term",
    "interaction_ratio",
    "grad_norm",
    "uuc",
    "dW_op_rel",
    "dW_fro_rel",
    "align",
    "loss_decrease",
    "dh_rms",
];

/// The architecture at one width.
pub(crate) fn arch_at(
    model: &ModelConfig,
    width: usize,
    n_in: usize,
    n_out: usize,
) -> Result<crate::nn::Arch> {
    let mut m = model.clone();
    if m.dims.is_some() {
        return Err(Error::config(
            "a width scan sets the widths itself: give the architecture without `dims`",
        ));
    }
    m.width = Some(width);
    m.resolve(n_in, n_out)
}

/// The parameterization at one width (with the width-dependent base rate, if any).
fn param_at(
    cfg: &CheckConfig,
    arch: &crate::nn::Arch,
    optimizer: OptimizerKind,
) -> Result<Parameterization> {
    let mut choice = cfg.param.clone();
    choice.base_lr = cfg.param.base_lr * (arch.width() as f64).powf(-cfg.lr_exponent);
    // Probes are centred unless asked otherwise (docs/theory.md §6.1).
    choice.center = Some(cfg.param.center.unwrap_or(true));
    Parameterization::resolve(&arch.layer_shapes(), &choice, optimizer)
}

/// The prediction for this configuration, if the calculus covers it.
pub fn prediction(cfg: &CheckConfig, arch: &crate::nn::Arch) -> Result<Option<Diagnosis>> {
    let sgd = param_at(cfg, arch, OptimizerKind::Sgd)?;
    Ok(match cfg.optim.kind {
        OptimizerKind::Sgd => Some(diagnose(&Exponents::from_param(&sgd, cfg.lr_exponent))),
        // theory.md §3.4: Adam's rates keep ‖Δh‖ = α, so on the scale its exponents are
        // those of SGD at the same r (an extension this check tests).
        OptimizerKind::Adam if sgd.on_scale => {
            Some(diagnose(&Exponents::from_param(&sgd, cfg.lr_exponent)))
        }
        OptimizerKind::Adam => None,
    })
}

/// Run the scan (no fitting): raw rows and divergences.
pub fn scan(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(Vec<ScanRow>, Vec<Diverged>)> {
    scan_skipping(cfg, threads, progress, &Default::default())
}

/// A (width, seed, probed) job of a scan: `probed` false for the seeds that measure
/// only the quantities at init (`init_seeds`).
pub type Job = (usize, usize, bool);

/// [`scan`] without the jobs in `skip` (already measured by an earlier round of a
/// sequential design: every job is deterministic in its seed, so its rows would be
/// the same).
pub fn scan_skipping(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
    skip: &std::collections::BTreeSet<Job>,
) -> Result<(Vec<ScanRow>, Vec<Diverged>)> {
    match cfg.dtype {
        Dtype::F32 => scan_typed::<f32>(cfg, threads, progress, skip),
        Dtype::F64 => scan_typed::<f64>(cfg, threads, progress, skip),
    }
}

/// How many different values `v` holds.
pub fn distinct(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.dedup();
    s.len()
}

/// The counts of a scan inside their ranges ([`crate::counts`]), before any of
/// them sizes a list of jobs.
pub fn validate_counts(cfg: &CheckConfig) -> Result<()> {
    use crate::counts;
    counts::SEEDS.check(cfg.seeds)?;
    counts::INIT_SEEDS.check_opt("init_seeds", cfg.init_seeds)?;
    counts::PROBE_STEPS.check(cfg.steps)?;
    counts::PROBE_BATCH.check(cfg.batch)?;
    counts::DEPTH.check_opt("model.depth", cfg.model.depth)?;
    counts::BLOCKS.check_opt("model.blocks", cfg.model.blocks)
}

/// Refuse a scan whose list of (width, seed) jobs, measurements and rows would not
/// fit in memory ([`crate::budget`]), before any is built. `rows_per_job` is an
/// upper bound on one job's rows, `row_bytes` the bytes a row holds while the scan
/// gathers them (each is built twice: by its job and in the merged list).
pub(crate) fn ensure_scan_fits(
    what: &str,
    jobs: u128,
    rows_per_job: u128,
    row_bytes: usize,
) -> Result<()> {
    let bytes = jobs
        .saturating_mul(rows_per_job)
        .saturating_mul(2 * row_bytes as u128)
        .saturating_add(jobs.saturating_mul(64));
    crate::budget::ensure(
        || {
            format!(
                "{what} of {jobs} (width, seed) probes with up to {rows_per_job} measurements each"
            )
        },
        bytes,
    )
}

fn validate(cfg: &CheckConfig) -> Result<()> {
    validate_counts(cfg)?;
    if distinct(&cfg.widths) < 2 {
        return Err(Error::config(format!(
            "widths {:?}: a scan needs at least two distinct widths to fit a slope",
            cfg.widths
        )));
    }
    if cfg.widths.contains(&0) {
        return Err(Error::config("widths must be positive"));
    }
    if cfg.seeds == 0 || cfg.steps == 0 || cfg.batch == 0 {
        return Err(Error::config("seeds, steps and batch must be at least 1"));
    }
    if !cfg.lr_exponent.is_finite() {
        return Err(Error::config(format!(
            "lr_exponent must be a finite number, got {}",
            cfg.lr_exponent
        )));
    }
    if !(cfg.seed_exponent.is_finite() && (0.0..=2.0).contains(&cfg.seed_exponent)) {
        return Err(Error::config(format!(
            "seed_exponent must be in [0, 2], got {}",
            cfg.seed_exponent
        )));
    }
    if !(cfg.tolerance.is_finite() && cfg.tolerance > 0.0) {
        return Err(Error::config("tolerance must be a positive number"));
    }
    if cfg.ci_level.is_some_and(|l| !(l > 0.0 && l < 1.0)) {
        return Err(Error::config("ci_level must lie strictly between 0 and 1"));
    }
    if let Some(qs) = &cfg.quantities {
        crate::probe::validate_quantities(qs)?;
    }
    if cfg.init_seeds.is_some_and(|i| i < cfg.seeds) {
        return Err(Error::config(format!(
            "init_seeds ({}) must be at least seeds ({})",
            cfg.init_seeds.unwrap_or(0),
            cfg.seeds
        )));
    }
    if cfg.model.arch == crate::nn::Family::Myrtle5 {
        return Err(Error::config("width scans probe dense networks (linear3, mlp3, mlp, resmlp); train CNNs with `richness train`"));
    }
    cfg.optim.validate()
}

fn scan_typed<T: Scalar>(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
    skip: &std::collections::BTreeSet<Job>,
) -> Result<(Vec<ScanRow>, Vec<Diverged>)> {
    validate(cfg)?;
    let split = crate::data::DataConfig {
        dataset: cfg.data.clone(),
        ..Default::default()
    }
    .load()?;
    split.refuse_tokens(cfg.model.arch.name())?;
    split.train.check_fits(cfg.dtype)?;
    let b = cfg.batch.min(split.train.len());
    let (x, y) = split.train.head(b).cast::<T>();
    let (n_in, n_out) = (x.cols(), y.cols());
    let mut widths = cfg.widths.clone();
    widths.sort_unstable();
    widths.dedup();
    // Resolve every architecture up front so bad configs fail before any work.
    let mut archs = Vec::with_capacity(widths.len());
    for &w in &widths {
        let arch = arch_at(&cfg.model, w, n_in, n_out)?;
        param_at(cfg, &arch, cfg.optim.kind)?;
        archs.push(arch);
    }
    let depth = archs.first().map_or(1, |a| a.depth()) as u128;
    let n_jobs: u128 = widths.iter().map(|&w| init_seeds_at(cfg, w) as u128).sum();
    // Each quantity at most once per layer (and the network-level ones).
    let per_job = (crate::probe::QUANTITIES.len() as u128 + 4).saturating_mul(depth + 1);
    ensure_scan_fits(
        "a width scan",
        n_jobs,
        per_job,
        std::mem::size_of::<ScanRow>() + 24,
    )?;
    // Work: a step is a forward, a backward and an update, ~6 flops per weight and
    // row; each probe also measures before and after (~ a few steps' worth).
    let flops: f64 = widths
        .iter()
        .zip(&archs)
        .map(|(&w, a)| {
            let per_step = 6.0 * a.param_values() as f64 * b as f64;
            seeds_at(cfg, w) as f64 * (cfg.steps as f64 + 4.0) * per_step
        })
        .sum();
    if progress {
        if let Some(t) = crate::counts::rough_duration(flops, threads, 180.0) {
            eprintln!(
                "estimated work: {:.1e} flops over {n_jobs} probes of {} step(s), {t} on {threads} thread(s)",
                flops, cfg.steps
            );
        }
    }
    // (width, seed, probed): seeds past the probed ones measure the quantities at
    // init only (`init_seeds`).
    let mut jobs: Vec<(usize, usize, bool)> = widths
        .iter()
        .flat_map(|&w| {
            let probed = seeds_at(cfg, w);
            (0..init_seeds_at(cfg, w)).map(move |s| (w, s, s < probed))
        })
        .collect();
    jobs.retain(|j| !skip.contains(j));
    // Probes first, largest first: better load balance.
    jobs.sort_by_key(|&(w, s, p)| (!p, std::cmp::Reverse(w), s));
    // The bar counts optimizer steps (a probe at init counts one), so one long probe
    // moves it too.
    let units: u64 = jobs
        .iter()
        .map(|&(_, _, p)| if p { cfg.steps as u64 } else { 1 })
        .fold(0u64, u64::saturating_add);
    let bar = crate::progress::bar(units, "probe steps", progress);
    let run_one = |&(w, s, probed): &(usize, usize, bool)| -> Result<(usize, usize, Vec<Measurement>, Option<String>)> {
            let arch = arch_at(&cfg.model, w, n_in, n_out)?;
            let param = param_at(cfg, &arch, cfg.optim.kind)?;
            if !probed {
                // The raw output: no centring reference to copy.
                let param = Parameterization { center: false, ..param };
                let model = Model::<T>::init_with(&arch, param, s as u64)?;
                let values = crate::probe::at_init(&model, &x, &y, cfg.quantities.as_deref(), Compute::new(1));
                bar.inc(1);
                return Ok((w, s, values, None));
            }
            let model = Model::<T>::init_with(&arch, param, s as u64)?;
            let spec = ProbeSpec {
                steps: cfg.steps,
                spectral: cfg.spectral,
                seed: s as u64,
                quantities: cfg.quantities.clone(),
            };
            let p = crate::probe::probe_ticking(&model, &cfg.optim, cfg.loss, &x, &y, &spec, Compute::new(1), &|k| bar.inc(k));
            Ok((w, s, p.values, p.diverged))
        };
    let pool = thread_pool(threads)?;
    // One job per task: the jobs differ in cost by width² (rayon's default halving
    // left one thread idle behind the widest ones: 1.16 of 2 cores busy on T1).
    let results: Vec<Result<_>> =
        pool.install(|| jobs.par_iter().with_max_len(1).map(run_one).collect());
    bar.finish_and_clear();
    let mut rows = Vec::new();
    let mut diverged = Vec::new();
    for r in results {
        let (w, s, values, div) = r?;
        if let Some(reason) = div {
            diverged.push((w, s, reason));
        }
        rows.extend(values.into_iter().map(|m| ScanRow {
            width: w,
            seed: s,
            layer: m.layer,
            quantity: m.quantity,
            value: m.value,
        }));
    }
    rows.sort_by(|a, b| {
        (a.width, a.seed, a.layer, &a.quantity).cmp(&(b.width, b.seed, b.layer, &b.quantity))
    });
    diverged.sort();
    Ok((rows, diverged))
}

/// Seed statistics at each width of one (quantity, layer): (width, mean, min, max, n).
pub fn per_width(
    rows: &[ScanRow],
    quantity: &str,
    layer: usize,
    skip: &[(usize, usize, String)],
) -> Vec<(f64, f64, f64, f64, usize)> {
    let mut widths: Vec<usize> = rows.iter().map(|r| r.width).collect();
    widths.sort_unstable();
    widths.dedup();
    widths
        .into_iter()
        .filter_map(|w| {
            // A width with any diverged seed is excluded from fits.
            if skip.iter().any(|d| d.0 == w) {
                return None;
            }
            let vals: Vec<f64> = rows
                .iter()
                .filter(|r| r.width == w && r.layer == layer && r.quantity == quantity)
                .map(|r| r.value)
                .filter(|v| v.is_finite())
                .collect();
            if vals.is_empty() {
                return None;
            }
            let (m, _) = mean_std(&vals);
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some((w as f64, m, lo, hi, vals.len()))
        })
        .collect()
}

/// The finite-width bias of the ‖W̃_ℓ‖_op exponent over the scanned widths.
///
/// ‖W̃‖_op of a Gaussian rows × cols matrix grows as n^{1/2} only when both sides
/// grow; a fixed side (the input or output dimension) bends the law at finite n
/// (≈ √rows + √cols for two large sides, exactly √n for a single row). We measure
/// E‖G‖_op of standard Gaussian matrices of the layer's shapes (16 draws per width,
/// fixed seeds) and return the fitted slope minus 1/2; zero when both sides scale.
fn op_norm_finite_size(
    model: &ModelConfig,
    widths: &[usize],
    layer: usize,
    n_in: usize,
    n_out: usize,
) -> Option<f64> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for &w in widths {
        let arch = arch_at(model, w, n_in, n_out).ok()?;
        let (rows, cols) = (*arch.dims.get(layer)?, *arch.dims.get(layer - 1)?);
        if layer > 1 && layer < arch.depth() {
            return Some(0.0);
        }
        let draws = 16;
        let mean = (0..draws)
            .map(|d| {
                let g = Mat::from_vec(
                    rows,
                    cols,
                    crate::rng::normal_vec(
                        d,
                        "finite-size",
                        (rows * 31 + cols) as u64,
                        rows * cols,
                        1.0,
                    ),
                );
                crate::linalg::spectral::op_norm(&g, 1e-9, d).value
            })
            .sum::<f64>()
            / draws as f64;
        xs.push(w as f64);
        ys.push(mean);
    }
    fit_loglog(&xs, &ys).map(|f| f.slope - 0.5)
}

/// Fit one (quantity, layer): least squares on log seed means, with a delete-one-seed
/// jackknife 95% interval ([`crate::fit::fit_loglog_jackknife`]). Widths where a seed
/// diverged or a value is missing are left out.
pub fn fit(
    rows: &[ScanRow],
    quantity: &str,
    layer: usize,
    skip: &[(usize, usize, String)],
) -> Option<LineFit> {
    fit_at(rows, quantity, layer, skip, 0.95)
}

/// [`fit`] with a two-sided `level` interval (see [`CheckConfig::ci_level`]).
pub fn fit_at(
    rows: &[ScanRow],
    quantity: &str,
    layer: usize,
    skip: &[(usize, usize, String)],
    level: f64,
) -> Option<LineFit> {
    // Seeds measured at each width (0..S_w, nested: more at small widths with
    // `seed_exponent`, more for the quantities at init with `init_seeds`): every seed
    // with a row of this quantity, or, for a probe that diverged and reported only its
    // losses, of the losses (a width with a seed missing is left out).
    let mut probed: std::collections::BTreeMap<usize, std::collections::BTreeSet<usize>> =
        std::collections::BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.quantity == quantity || r.quantity == "loss_before")
    {
        probed.entry(r.width).or_default().insert(r.seed);
    }
    let mut table: std::collections::BTreeMap<(usize, usize), f64> =
        std::collections::BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.quantity == quantity && r.layer == layer && r.value.is_finite())
    {
        table.insert((r.width, r.seed), r.value);
    }
    let mut xs = Vec::new();
    let mut per_width = Vec::new();
    for (w, seeds) in &probed {
        if skip.iter().any(|d| d.0 == *w) {
            continue;
        }
        let values: Option<Vec<f64>> = seeds
            .iter()
            .map(|s| table.get(&(*w, *s)).copied())
            .collect();
        if let Some(v) = values {
            xs.push(*w as f64);
            per_width.push(v);
        }
    }
    crate::fit::fit_loglog_jackknife_nested_at(&xs, &per_width, level)
}

/// Judge the slope of (`quantity`, `layer`) against `band`, with the small-width rule
/// (issue 27, docs/check.md "crossover from local slopes"): a `fail` whose miss hinges
/// on the smallest widths is a `crossover`. After a fail, the smallest widths are left
/// out one at a time while at least three remain; when the remaining widths' slope
/// lies inside the band (its estimate, and its interval not wholly outside), the
/// finite-width corrections of theory.md §4.1 are still large at the dropped widths and
/// the exponent is judged only from the width where the local slopes settle. A miss
/// that persists at every range of widths stays a fail. A prediction with rows but no
/// possible fit (too few widths with every seed finite) is an `error` with the reason.
pub(crate) fn judge_settled(
    rows: &[ScanRow],
    quantity: &str,
    layer: usize,
    skip: &[Diverged],
    band: (f64, f64),
    seeds: usize,
) -> Judged {
    let Some(f) = fit(rows, quantity, layer, skip) else {
        return no_fit(rows, quantity, layer, skip);
    };
    let judged = crate::verdict::judge_band(f.slope, f.ci95, band, Some(seeds));
    if judged.verdict != Verdict::Fail {
        return judged;
    }
    let mut widths: Vec<usize> = rows
        .iter()
        .filter(|r| r.quantity == quantity && r.layer == layer && r.value.is_finite())
        .map(|r| r.width)
        .filter(|w| !skip.iter().any(|d| d.0 == *w))
        .collect();
    widths.sort_unstable();
    widths.dedup();
    let inside = |x: f64| band.0 <= x && x <= band.1;
    for k in 1..widths.len().saturating_sub(2) {
        let mut dropped: Vec<Diverged> = skip.to_vec();
        dropped.extend(
            widths[..k]
                .iter()
                .map(|&w| (w, 0, "small width".to_string())),
        );
        let Some(g) = fit(rows, quantity, layer, &dropped) else {
            break;
        };
        let rest = crate::verdict::judge_band(g.slope, g.ci95, band, Some(seeds));
        if inside(g.slope) && rest.verdict != Verdict::Fail {
            let local = local_slopes(rows, quantity, layer, skip, &widths[..=k]);
            return Judged::crossover(format!(
                "the miss hinges on the smallest width{}: local slopes {local}; from width {} on the slope is {:+.3} [{:+.3}, {:+.3}] ({}), inside the band [{:+.3}, {:+.3}]",
                if k > 1 { "s" } else { "" },
                widths[k],
                g.slope,
                g.ci95.0,
                g.ci95.1,
                rest.verdict.name(),
                band.0,
                band.1
            ));
        }
    }
    // With too few widths to refit, the local slopes decide: the largest pair's slope
    // (its own jackknife interval) inside the band while the smallest pair's lies
    // outside it is a correction that dies away with width.
    if widths.len() >= 3 {
        let pair = |a: usize, b: usize| {
            let mut keep: Vec<Diverged> = skip.to_vec();
            keep.extend(
                widths
                    .iter()
                    .filter(|&&w| w != a && w != b)
                    .map(|&w| (w, 0, "other width".to_string())),
            );
            fit(rows, quantity, layer, &keep)
        };
        let m = widths.len();
        if let (Some(first), Some(last)) = (
            pair(widths[0], widths[1]),
            pair(widths[m - 2], widths[m - 1]),
        ) {
            let rest = crate::verdict::judge_band(last.slope, last.ci95, band, Some(seeds));
            if !inside(first.slope) && inside(last.slope) && rest.verdict != Verdict::Fail {
                let local = local_slopes(rows, quantity, layer, skip, &widths);
                return Judged::crossover(format!(
                    "the miss fades with width: local slopes {local}; the largest pair {}→{} has slope {:+.3} [{:+.3}, {:+.3}] ({}), inside the band [{:+.3}, {:+.3}]: wider widths decide",
                    widths[m - 2],
                    widths[m - 1],
                    last.slope,
                    last.ci95.0,
                    last.ci95.1,
                    rest.verdict.name(),
                    band.0,
                    band.1
                ));
            }
        }
    }
    judged
}

/// Finite-width crossover between the two terms of Δh_ℓ (theory.md §4.1): `diagnose`
/// gives the layer term ‖g ΔW a‖ and the passthrough ‖g W Δa‖ different exponents,
/// so ‖Δh_ℓ‖ follows the larger one only where the other is negligible. When the
/// smaller term is still ≥ 20% of the dominant one at the smallest width, and the
/// dominant term's own claim is not a fail (its exponent is right), the reason why
/// the ‖Δh_ℓ‖ rows cannot yet show the asymptotic exponent; else `None`.
fn two_term_crossover(
    rows: &[ScanRow],
    layer: usize,
    d: &Diagnosis,
    skip: &[Diverged],
    claims: &[Claim],
    tol: f64,
) -> Option<String> {
    let ld = d.layers.get(layer.checked_sub(1)?)?;
    let pt = ld.passthrough?;
    let lt = ld.layer_term;
    if (lt - pt).abs() < 2.0 * tol {
        return None;
    }
    let (dom, sub, dom_e, sub_e) = if lt > pt {
        ("layer_term", "passthrough_term", lt, pt)
    } else {
        ("passthrough_term", "layer_term", pt, lt)
    };
    let means = |q: &str| per_width(rows, q, layer, skip);
    let (dm, sm) = (means(dom), means(sub));
    let ratio = |i: usize| -> Option<(usize, f64)> {
        let (w, a) = (dm.get(i)?.0, dm.get(i)?.1);
        let b = sm.iter().find(|p| p.0 == w)?.1;
        (a > 0.0).then_some((w as usize, b / a))
    };
    let (w0, r0) = ratio(0)?;
    let (w1, r1) = ratio(dm.len().checked_sub(1)?)?;
    if r0 < 0.2 {
        return None;
    }
    let own = claims
        .iter()
        .find(|c| c.quantity == dom && c.layer == layer)
        .and_then(|c| c.judged.as_ref())?;
    if matches!(own.verdict, Verdict::Fail | Verdict::Error) {
        return None;
    }
    let name = |q: &str| {
        if q == "layer_term" {
            "layer term"
        } else {
            "passthrough"
        }
    };
    Some(format!(
        "Δh_{layer} = layer term + passthrough with exponents {lt:+} and {pt:+} (diagnose): the {} is {:.0}% of the {} at width {w0} and {:.0}% at {w1}, so ‖Δh_{layer}‖ has not reached the {} exponent {dom_e:+} at these widths (the {} alone: {}; the {sub_e:+} term is judged on its own row)",
        name(sub),
        100.0 * r0,
        name(dom),
        100.0 * r1,
        name(dom),
        name(dom),
        own.verdict.name()
    ))
}

/// The slopes between successive widths of `widths` (seed means), e.g.
/// `128→256 −0.21, 256→512 −0.02`.
fn local_slopes(
    rows: &[ScanRow],
    quantity: &str,
    layer: usize,
    skip: &[Diverged],
    widths: &[usize],
) -> String {
    let means = per_width(rows, quantity, layer, skip);
    let at = |w: usize| means.iter().find(|p| p.0 as usize == w).map(|p| p.1);
    widths
        .windows(2)
        .map(|p| match (at(p[0]), at(p[1])) {
            (Some(a), Some(b)) if a > 0.0 && b > 0.0 => format!(
                "{}→{} {:+.3}",
                p[0],
                p[1],
                (b / a).ln() / (p[1] as f64 / p[0] as f64).ln()
            ),
            _ => format!("{}→{} n/a", p[0], p[1]),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verdict of a prediction whose rows exist but admit no fit; `None`-like silence
/// would hide a measurement that went wrong (e.g. a NaN at some seed), so it is an
/// error naming the cause.
fn no_fit(rows: &[ScanRow], quantity: &str, layer: usize, skip: &[Diverged]) -> Judged {
    let mine: Vec<&ScanRow> = rows
        .iter()
        .filter(|r| r.quantity == quantity && r.layer == layer)
        .collect();
    let bad: std::collections::BTreeSet<usize> = mine
        .iter()
        .filter(|r| !r.value.is_finite())
        .map(|r| r.width)
        .collect();
    let usable: std::collections::BTreeSet<usize> = mine
        .iter()
        .map(|r| r.width)
        .filter(|w| !bad.contains(w) && !skip.iter().any(|d| d.0 == *w))
        .collect();
    let why = if mine.is_empty() {
        format!("no rows of {quantity} were measured")
    } else if !bad.is_empty() {
        format!(
            "no fit of {quantity}: a non-finite value at width{} {} leaves {} usable width{}",
            if bad.len() > 1 { "s" } else { "" },
            bad.iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            usable.len(),
            if usable.len() == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "no fit of {quantity}: {} usable width{} (diverged or missing seeds elsewhere)",
            usable.len(),
            if usable.len() == 1 { "" } else { "s" }
        )
    };
    Judged::new(Verdict::Error, why)
}

/// Seeds probed at `width`: `seeds` at the largest width, ⌈seeds·(w_max/w)^e⌉ at
/// smaller ones (e = `seed_exponent`, at most 64 × `seeds`).
pub fn seeds_at(cfg: &CheckConfig, width: usize) -> usize {
    nested_seeds(cfg, width, cfg.seeds)
}

/// Seeds at `width` for the output at init: `init_seeds` at every width (its spread
/// does not shrink with width, so small widths gain nothing from more), never fewer
/// than the probed seeds.
pub fn init_seeds_at(cfg: &CheckConfig, width: usize) -> usize {
    cfg.init_seeds.unwrap_or(0).max(seeds_at(cfg, width))
}

fn nested_seeds(cfg: &CheckConfig, width: usize, base: usize) -> usize {
    let wmax = cfg.widths.iter().copied().max().unwrap_or(width).max(1) as f64;
    let factor = (wmax / width.max(1) as f64)
        .powf(cfg.seed_exponent)
        .min(64.0);
    ((base as f64 * factor).ceil() as usize).max(base)
}

/// Run a check: scan, fit, compare, judge.
pub fn run(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(CheckReport, Vec<ScanRow>)> {
    if cfg.model.arch == crate::nn::Family::Gpt {
        return super::gpt::check(cfg, threads, progress);
    }
    let (rows, diverged) = scan(cfg, threads, progress)?;
    let report = judge(cfg, &rows, diverged)?;
    Ok((report, rows))
}

/// The pool a scan runs its (width, seed) jobs on.
pub(crate) fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::config(e.to_string()))
}

/// The worst of several verdicts, with the reasons of those that are not a pass.
pub(crate) fn worst_of(parts: Vec<Judged>) -> Judged {
    let verdict = Verdict::worst(parts.iter().map(|j| j.verdict));
    let reason = parts
        .iter()
        .filter(|j| j.verdict == verdict && !j.reason.is_empty())
        .map(|j| j.reason.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Judged {
        verdict,
        reason,
        seeds_to_decide: parts.iter().filter_map(|j| j.seeds_to_decide).max(),
    }
}

/// Fits, predictions and verdicts for scan rows.
pub fn judge(cfg: &CheckConfig, rows: &[ScanRow], diverged: Vec<Diverged>) -> Result<CheckReport> {
    let split = crate::data::DataConfig {
        dataset: cfg.data.clone(),
        ..Default::default()
    }
    .load()?;
    judge_with_dims(
        cfg,
        rows,
        diverged,
        split.train.input_dim(),
        split.train.output_dim(),
    )
}

/// [`judge`] for rows measured elsewhere (e.g. by `richness.torch.check` on a PyTorch
/// model), on data with `n_in` inputs and `n_out` outputs: `cfg.data` is not loaded.
/// The predictions are those of `cfg.model` (an MLP of the same depth has the same
/// exponents on the scale).
pub fn judge_with_dims(
    cfg: &CheckConfig,
    rows: &[ScanRow],
    diverged: Vec<Diverged>,
    n_in: usize,
    n_out: usize,
) -> Result<CheckReport> {
    // Every fit below at the configured level (a sequential design's per-look level).
    let level = cfg.ci_level.unwrap_or(0.95);
    let fit = move |rows: &[ScanRow], q: &str, l: usize, skip: &[Diverged]| {
        fit_at(rows, q, l, skip, level)
    };
    let wmax = *cfg.widths.iter().max().unwrap_or(&1);
    let arch = arch_at(&cfg.model, wmax, n_in, n_out)?;
    let param = param_at(cfg, &arch, cfg.optim.kind)?;
    let diagnosis = prediction(cfg, &arch)?;
    let depth = arch.depth();
    let tol = cfg.tolerance;
    let role = |l: usize| {
        if l == 0 {
            "net".to_string()
        } else {
            param.layers[l - 1].role.name().to_string()
        }
    };
    let r = param.richness;
    let seeds = cfg.seeds;
    let init_seeds = cfg.init_seeds.unwrap_or(seeds);
    let seeds_for = |q: &str| {
        if crate::probe::AT_INIT.contains(&q) {
            init_seeds
        } else {
            seeds
        }
    };
    let mut claims = Vec::new();
    let measured = |q: &str| {
        cfg.quantities
            .as_ref()
            .is_none_or(|qs| qs.iter().any(|x| x == q))
    };
    for q in CLAIMS {
        if !measured(q) {
            continue;
        }
        let layers: Vec<usize> = match q {
            "f_norm" | "df_norm" | "loss_decrease" => vec![0],
            "h_rms" | "dh_rel" | "da_rel" | "dh_norm" | "dh_rms" => (1..depth).collect(),
            "passthrough_term" | "interaction_ratio" => (2..=depth).collect(),
            _ => (1..=depth).collect(),
        };
        for l in layers {
            let f = fit(rows, q, l, &diverged);
            let mut predicted = diagnosis.as_ref().and_then(|d| match q {
                "f_norm" => Some(d.output_init),
                "df_norm" => Some(d.delta_f),
                "loss_decrease" => Some(d.loss_decrease),
                _ => d.predicted(q, l),
            });
            let mut asymptotic = None;
            let mut predicted_range = None;
            if q == "dW_op_rel" || q == "W_op" {
                // ‖W̃‖_op of a Gaussian rows × cols matrix is σ(√rows + √cols) to leading
                // order; a fixed side (input or output dimension) bends the n^{1/2} law at
                // finite n by `b` over the scanned widths. That is exact for ‖W̃‖_op (a
                // Gaussian matrix), but ΔW̃ of a boundary layer is itself rows × cols of
                // rank ≤ the fixed side and bends in the same direction, by an amount the
                // Gaussian model does not give: correcting only the denominator
                // over-corrects. So ‖ΔW̃‖/‖W̃‖ is predicted as the bracket between the
                // asymptotic exponent and the denominator-only correction.
                let bias = op_norm_finite_size(&cfg.model, &cfg.widths, l, n_in, n_out);
                if let (Some(p), Some(b)) = (predicted, bias) {
                    if b.abs() > 1e-3 {
                        asymptotic = Some(p);
                        if q == "W_op" {
                            predicted = Some(p + b);
                        } else {
                            predicted_range = Some(((p - b).min(p), (p - b).max(p)));
                        }
                    }
                }
            }
            let band = match (q, predicted) {
                // theory.md §4: interaction / layer term → 0 for r < 1/2 (no exponent
                // given): the slope must be negative.
                ("interaction_ratio", _) if r.is_some_and(|r| r < 0.5 - 1e-12) => {
                    Some(((f64::NEG_INFINITY, 0.0), seeds))
                }
                (_, Some(p)) => Some((
                    match predicted_range {
                        Some((lo, hi)) => (lo.min(hi) - tol, lo.max(hi) + tol),
                        None => (p - tol, p + tol),
                    },
                    seeds_for(q),
                )),
                _ => None,
            };
            // A quantity not measured at all (spectral norms under --no-spectral) has
            // no verdict; one measured but unfittable is an error (judge_settled).
            let has_rows = rows.iter().any(|x| x.quantity == *q && x.layer == l);
            let judged = band
                .filter(|_| has_rows)
                .map(|(band, s)| judge_settled(rows, q, l, &diverged, band, s));
            claims.push(Claim {
                quantity: q.to_string(),
                layer: l,
                role: role(l),
                fit: f,
                predicted,
                predicted_range,
                asymptotic,
                judged,
            });
        }
    }
    // Two terms of different exponents still comparable at the scanned widths: the
    // ‖Δh_ℓ‖-derived rows of that layer (and the next layer's passthrough) are a
    // crossover when they fail, provided the dominant term has its own exponent.
    let two_terms: Vec<Option<String>> = (0..=depth)
        .map(|l| {
            let d = diagnosis.as_ref()?;
            two_term_crossover(rows, l, d, &diverged, &claims, tol)
        })
        .collect();
    for c in claims.iter_mut() {
        let l = c.layer;
        let why = match c.quantity.as_str() {
            "dh_norm" | "dh_rms" | "dh_rel" | "da_rel" => two_terms.get(l),
            "passthrough_term" if l >= 1 => two_terms.get(l - 1),
            _ => None,
        };
        if let (Some(Some(why)), Some(j)) = (why, c.judged.as_mut()) {
            if j.verdict == Verdict::Fail {
                *j = Judged::crossover(format!("{}; {why}", j.reason));
            }
        }
    }
    let slope = |q: &str, l: usize| fit(rows, q, l, &diverged).map(|f| f.slope);
    let judge0 =
        |q: &str, l: usize| judge_settled(rows, q, l, &diverged, (-tol, tol), seeds_for(q));
    let judge_le = |q: &str, l: usize| {
        judge_settled(
            rows,
            q,
            l,
            &diverged,
            (f64::NEG_INFINITY, tol),
            seeds_for(q),
        )
    };
    let fmt = |s: Option<f64>| {
        s.map(|v| format!("{v:+.3}"))
            .unwrap_or_else(|| "n/a".into())
    };
    let mut criteria = Vec::new();
    let hidden: Vec<Option<f64>> = (1..depth).map(|l| slope("h_rms", l)).collect();
    let f_slope = slope("f_norm", 0);
    // Stable init: every hidden RMS coordinate flat, and the output at init not
    // growing (its slope below +tolerance).
    let mut parts: Vec<Judged> = Vec::new();
    if measured("h_rms") {
        parts.extend((1..depth).map(|l| judge0("h_rms", l)));
    }
    if measured("f_norm") {
        parts.push(judge_le("f_norm", 0));
    }
    if !parts.is_empty() {
        criteria.push(Criterion {
            name: "stable init".into(),
            measured: format!(
                "h_rms slopes {} (want 0), f_norm slope {} (want ≤ 0)",
                hidden
                    .iter()
                    .map(|s| fmt(*s))
                    .collect::<Vec<_>>()
                    .join(", "),
                fmt(f_slope)
            ),
            judged: worst_of(parts),
        });
    }
    // Stability (theory.md §3): updates must not outgrow the representations they
    // modify (‖Δh‖/‖h‖ slope ≤ +τ, read-in and hidden layers) and the output at init
    // must not blow up (‖f₀‖ slope ≤ +τ). Off the scale (r > 1/2, r < 0) every slope
    // can match its own prediction, so only this row says the network is unstable.
    let mut parts: Vec<Judged> = Vec::new();
    let rel: Vec<Option<f64>> = (1..depth).map(|l| slope("dh_rel", l)).collect();
    if measured("dh_rel") {
        parts.extend((1..depth).map(|l| judge_le("dh_rel", l)));
    }
    if measured("f_norm") {
        parts.push(judge_le("f_norm", 0));
    }
    if !parts.is_empty() {
        criteria.push(Criterion {
            name: "stability".into(),
            measured: format!(
                "‖Δh‖/‖h‖ slopes {} (want ≤ 0), f_norm slope {} (want ≤ 0)",
                rel.iter().map(|s| fmt(*s)).collect::<Vec<_>>().join(", "),
                fmt(f_slope)
            ),
            judged: worst_of(parts),
        });
    }
    // The analysis of the parameterization itself: off the scale, a run whose
    // measured rows all pass (the widths too small to show the failure) is still
    // not a pass.
    let off_scale = match &diagnosis {
        Some(d) => (!d.on_scale).then(|| d.findings.join("; ")),
        None => (!param.on_scale).then(|| format!("{} is not a point of the scale", param.gauge)),
    };
    if let Some(why) = off_scale {
        criteria.push(Criterion {
            name: "on the scale (diagnose)".into(),
            measured: "analytic: off the richness scale".into(),
            judged: Judged::new(Verdict::Fail, why),
        });
    }
    let df = slope("df_norm", 0);
    if measured("df_norm") {
        criteria.push(Criterion {
            name: "NTC".into(),
            measured: format!("‖Δf‖ slope {} (want 0)", fmt(df)),
            judged: judge0("df_norm", 0),
        });
    }
    for l in (1..=depth).filter(|_| measured("uuc")) {
        let u = slope("uuc", l);
        criteria.push(Criterion {
            name: format!("UUC layer {l} ({})", role(l)),
            measured: format!("⟨∂L/∂h, Δh⟩ slope {} (want 0)", fmt(u)),
            judged: judge0("uuc", l),
        });
    }
    for l in (2..=depth).filter(|_| measured("layer_share")) {
        let m = slope("layer_share", l);
        criteria.push(Criterion {
            name: format!("MAX layer {l} ({})", role(l)),
            measured: format!("layer term / ‖Δh‖ slope {} (want 0)", fmt(m)),
            judged: {
                let j = judge0("layer_share", l);
                match &two_terms[l] {
                    Some(why) if j.verdict == Verdict::Fail => {
                        Judged::crossover(format!("{}; {why}", j.reason))
                    }
                    _ => j,
                }
            },
        });
    }
    let rs: Vec<f64> = (1..depth).filter_map(|l| slope("dh_norm", l)).collect();
    let estimated_r = (!rs.is_empty()).then(|| {
        let (m, s) = mean_std(&rs);
        (m, s)
    });
    let mut verdict = Verdict::worst(
        claims
            .iter()
            .filter_map(|c| c.verdict())
            .chain(criteria.iter().map(|c| c.judged.verdict)),
    );
    if !diverged.is_empty() {
        verdict = Verdict::Fail;
    }
    let pass = verdict == Verdict::Pass;
    let centred = param.center;
    let f0_rel: Vec<(usize, f64)> = per_width(rows, "f0_rel", 0, &[])
        .into_iter()
        .map(|p| (p.0 as usize, p.1))
        .collect();
    let f0_note = f0_bias_note(&f0_rel, centred);
    let prediction_note = diagnosis.is_none().then(|| {
        format!(
            "no per-layer predictions: under Adam the calculus (docs/theory.md §7) gives the exponents only on the scale, where Adam's rates keep ‖Δh‖ = α as SGD's do; {} is off the scale, and Adam's sign-like steps make the exponents of an arbitrary (a, b, c) depend on the gradients' correlations, which the calculus does not track. The criteria rows below are still measured; `richness diagnose` gives the SGD point's analysis.",
            param.gauge
        )
    });
    Ok(CheckReport {
        config: cfg.clone(),
        parameterization: param,
        diagnosis,
        prediction_note,
        claims,
        criteria,
        estimated_r,
        diverged,
        spectral_method: crate::linalg::spectral::METHOD.into(),
        fit_method: "least squares of ln(seed mean) on ln(width); 95% interval from a delete-one-seed jackknife (Student t, seeds − 1 degrees of freedom)".into(),
        centred,
        f0_rel,
        f0_note,
        sequential: None,
        verdict,
        pass,
    })
}

/// The printed line of ‖f₀‖/‖y‖ per width (`check` and `coord`).
pub fn f0_line(f0_rel: &[(usize, f64)], centred: bool) -> String {
    format!(
        "‖f₀‖/‖y‖ by width ({}): {}\n",
        if centred {
            "outputs centred: f − f₀ trained, so f₀ does not bias the slopes"
        } else {
            "outputs not centred"
        },
        f0_rel
            .iter()
            .map(|(w, v)| format!("{w}: {v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Largest ‖f₀‖/‖y‖ that cannot bias a one-step exponent by more than rounding.
const F0_SMALL: f64 = 0.05;

/// The note on f₀ for an uncentred scan: `Some` when ‖f₀‖/‖y‖ is not small at the
/// smallest width and changes with width (by more than 20% across the scan), so
/// that the residual it drives bends the one-step slopes (docs/theory.md §6.1).
pub fn f0_bias_note(f0_rel: &[(usize, f64)], centred: bool) -> Option<String> {
    if centred || f0_rel.len() < 2 {
        return None;
    }
    let (w0, first) = f0_rel[0];
    let (w1, last) = f0_rel[f0_rel.len() - 1];
    let big = first.max(last);
    let changes = (first / last).ln().abs() > 1.2f64.ln();
    (big > F0_SMALL && changes).then(|| {
        format!(
            "the output at init is not small next to the targets (‖f₀‖/‖y‖ = {first:.2} at width {w0}, {last:.2} at {w1}) and shrinks with width: its residual drives an extra, r-independent update that bends the one-step exponents (‖Δh‖, ‖Δf‖, UUC) at intermediate r (docs/theory.md §6.1). Remedies: --center (train f − f₀, the default for probes) or a larger --gamma0."
        )
    })
}

impl CheckReport {
    /// The printed table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "# check: {} | widths {:?} | {} seeds{}{} | {} step(s) | {} | tolerance ±{}\n",
            self.parameterization.summary(),
            self.config.widths,
            self.config.seeds,
            if self.config.seed_exponent > 0.0 {
                format!(
                    " ({} at the smallest width)",
                    seeds_at(
                        &self.config,
                        self.config.widths.iter().copied().min().unwrap_or(1)
                    )
                )
            } else {
                String::new()
            },
            match self.config.init_seeds {
                Some(i) if i > self.config.seeds => format!(" ({i} for the output at init)"),
                _ => String::new(),
            },
            self.config.steps,
            self.config.dtype.name(),
            self.config.tolerance
        ));
        if let Some(n) = &self.prediction_note {
            s.push_str(&format!("# {n}\n"));
        }
        let mut notes = Vec::new();
        let mut rows = vec![vec![
            "quantity".to_string(),
            "layer".into(),
            "measured slope ± 95% CI".into(),
            "predicted".into(),
            "verdict".into(),
        ]];
        for c in &self.claims {
            let layer = if c.layer == 0 {
                "net".to_string()
            } else {
                format!("{} {}", c.layer, c.role)
            };
            let m = match &c.fit {
                Some(f) => format!(
                    "{:+.3} ± {:.3}",
                    f.slope,
                    (f.ci95.1 - f.slope).abs().min(9.999)
                ),
                None => "n/a".into(),
            };
            let p = match (
                c.quantity.as_str(),
                c.predicted,
                c.asymptotic,
                c.predicted_range,
            ) {
                ("interaction_ratio", ..) => "→ 0 (< 0)".to_string(),
                (_, _, Some(a), Some((lo, hi))) => format!("[{lo:+.3}, {hi:+.3}] (n→∞: {a:+.3})"),
                (_, Some(p), Some(a), None) => format!("{p:+.3} (n→∞: {a:+.3})"),
                (_, Some(p), None, _) => format!("{p:+.3}"),
                _ => "-".into(),
            };
            let v = c.verdict().map(|v| v.name()).unwrap_or("-").to_string();
            if let Some(j) = c.judged.as_ref().filter(|j| !j.reason.is_empty()) {
                notes.push(format!("{} {}: {}", c.quantity, layer.trim(), j.describe()));
            }
            rows.push(vec![c.quantity.clone(), layer, m, p, v]);
        }
        s.push_str(&crate::param::align(&rows));
        s.push('\n');
        let mut crit = vec![vec![
            "criterion".to_string(),
            "measured".into(),
            "verdict".into(),
        ]];
        for c in &self.criteria {
            if !c.judged.reason.is_empty() {
                notes.push(format!("{}: {}", c.name, c.judged.describe()));
            }
            crit.push(vec![
                c.name.clone(),
                c.measured.clone(),
                c.judged.verdict.name().to_string(),
            ]);
        }
        if crit.len() > 1 {
            s.push_str(&crate::param::align(&crit));
        }
        if let Some((r, spread)) = self.estimated_r {
            let set = self
                .parameterization
                .richness
                .map(|r| format!(" (set: {r})"))
                .unwrap_or_default();
            s.push_str(&format!(
                "\nestimated r = {r:.3} (spread over layers {spread:.3}){set}\n"
            ));
        }
        for (w, seed, why) in &self.diverged {
            s.push_str(&format!("diverged at width {w}, seed {seed}: {why}\n"));
        }
        if !self.f0_rel.is_empty() {
            s.push('\n');
            s.push_str(&f0_line(&self.f0_rel, self.centred));
        }
        if !notes.is_empty() {
            s.push_str("\nwhy not a pass:\n");
            for n in &notes {
                s.push_str(&format!("  {n}\n"));
            }
        }
        if let Some(note) = &self.f0_note {
            s.push_str(&format!("\nnote: {note}\n"));
        }
        s.push_str(&format!(
            "\noverall: {} ({})\n",
            self.verdict.name().to_uppercase(),
            crate::verdict::Verdict::LEGEND
        ));
        s
    }

    /// Write `check.json`, `check.csv` (raw rows), `fits.csv` and plots into `dir`.
    pub fn write(&self, dir: &Path, rows: &[ScanRow]) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::io::write_atomic(
            &dir.join("check.json"),
            serde_json::to_string_pretty(self).expect("json").as_bytes(),
        )?;
        let mut csv = String::from("width,seed,layer,quantity,value\n");
        for r in rows {
            csv.push_str(&format!(
                "{},{},{},{},{:e}\n",
                r.width, r.seed, r.layer, r.quantity, r.value
            ));
        }
        crate::io::write_atomic(&dir.join("check.csv"), csv.as_bytes())?;
        let mut fits = String::from(
            "quantity,layer,role,slope,slope_se,ci_lo,ci_hi,predicted,predicted_lo,predicted_hi,asymptotic,verdict,seeds_to_decide,reason\n",
        );
        for c in &self.claims {
            let f = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
            let reason = c
                .judged
                .as_ref()
                .map(|j| format!("\"{}\"", j.reason.replace('"', "'")))
                .unwrap_or_default();
            fits.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                c.quantity,
                c.layer,
                c.role,
                f(c.fit.map(|f| f.slope)),
                f(c.fit.map(|f| f.slope_se)),
                f(c.fit.map(|f| f.ci95.0)),
                f(c.fit.map(|f| f.ci95.1)),
                f(c.predicted),
                f(c.predicted_range.map(|r| r.0)),
                f(c.predicted_range.map(|r| r.1)),
                f(c.asymptotic),
                c.verdict().map(|v| v.name()).unwrap_or("-"),
                c.judged
                    .as_ref()
                    .and_then(|j| j.seeds_to_decide)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                reason
            ));
        }
        crate::io::write_atomic(&dir.join("fits.csv"), fits.as_bytes())?;
        let mut f0 = String::from("width,f0_rel,centred\n");
        for (w, v) in &self.f0_rel {
            f0.push_str(&format!("{w},{v:e},{}\n", self.centred));
        }
        crate::io::write_atomic(&dir.join("f0.csv"), f0.as_bytes())?;
        let plots = dir.join("plots");
        std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
        for q in CLAIMS {
            let fig = self.figure(rows, q);
            if !fig.series.is_empty() {
                fig.save_all(&plots, q)?;
            }
        }
        Ok(())
    }

    /// Log–log figure of one quantity: seed means with min–max bands per layer,
    /// fitted lines, and the predicted slope through the fit's middle.
    pub fn figure(&self, rows: &[ScanRow], quantity: &str) -> Figure {
        let mut fig = Figure::loglog(
            format!(
                "{quantity} against width ({})",
                self.parameterization.summary()
            ),
            "width n",
            quantity,
        );
        let mut color = 0;
        for c in self.claims.iter().filter(|c| c.quantity == quantity) {
            let pts = per_width(rows, quantity, c.layer, &self.diverged);
            if pts.len() < 2 {
                continue;
            }
            let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
            let name = if c.layer == 0 {
                "network".to_string()
            } else {
                format!("layer {} ({})", c.layer, c.role)
            };
            fig.series.push(
                Series::new(&name, xs.clone(), pts.iter().map(|p| p.1).collect())
                    .style(Style::Points)
                    .band(
                        pts.iter().map(|p| p.2).collect(),
                        pts.iter().map(|p| p.3).collect(),
                    )
                    .color(color),
            );
            if let Some(f) = c.fit {
                let ys = xs
                    .iter()
                    .map(|x| (f.intercept + f.slope * x.ln()).exp())
                    .collect();
                fig.series.push(
                    Series::new(format!("fit {:+.3}", f.slope), xs.clone(), ys)
                        .style(Style::Line)
                        .color(color),
                );
                if let Some(p) = c.predicted {
                    let mid = (xs[0] * xs[xs.len() - 1]).sqrt();
                    let ymid = (f.intercept + f.slope * mid.ln()).exp();
                    fig.series.push(
                        power_line(
                            &format!("theory {p:+.2}"),
                            xs[0],
                            xs[xs.len() - 1],
                            mid,
                            ymid,
                            p,
                        )
                        .color(color),
                    );
                }
            }
            color += 1;
        }
        fig
    }
}

impl CheckConfig {
    /// Read a scan config (TOML); errors name the file, line and key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::io::read_config_text(path)?;
        toml::from_str(&text).map_err(|e| {
            Error::config(crate::train::toml_error(
                &path.display().to_string(),
                &text,
                &e,
            ))
        })
    }
}

/// The probe batch of a config, for callers that want it (first `batch` examples).
pub fn probe_batch<T: Scalar>(cfg: &CheckConfig) -> Result<(Mat<T>, Mat<T>)> {
    let split = crate::data::DataConfig {
        dataset: cfg.data.clone(),
        ..Default::default()
    }
    .load()?;
    split.train.check_fits(cfg.dtype)?;
    Ok(split
        .train
        .head(cfg.batch.min(split.train.len()))
        .cast::<T>())
}
