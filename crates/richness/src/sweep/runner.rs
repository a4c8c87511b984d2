//! Running a sweep on one machine: independent runs in parallel, each stored as it
//! finishes.
//!
//! Threads: with T threads and P pending runs, min(T, P) runs go at once, each with
//! ⌊T / min(T, P)⌋ threads for its matrix products (so many small runs get one
//! thread each, and a handful of big ones share the machine). Longer runs (more
//! parameters × steps) start first, so the sweep does not end on one straggler.
//! Neither the order nor the thread count changes a run's numbers: every random
//! stream comes from the config's seed, and matrix products give the same bits on
//! any thread count.
//!
//! For tests only: with `RICHNESS_TEST_PAUSE_AFTER_RUNS=N` in the environment, the
//! sweep stops storing after its N-th stored run of this call, prints
//! `richness: test pause after N stored runs` on stderr and waits until it is
//! killed. Crash-safety tests use it to SIGKILL the process at a known point
//! instead of racing the sweep (which finished before the kill on fast machines).

use super::spec::{PlannedRun, RecordConfig, SweepSpec};
use super::store::{MetricRecord, RunRecord, Store};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::tensor::Dtype;
use crate::train::{self, Outcome, RunOptions, Status};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Shard i of N (0-based): the runs whose index is i mod N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn contains(&self, run_index: usize) -> bool {
        run_index % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("shard `{s}`: expected I/N with 0 ≤ I < N (e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Threads in all (runs × matrix-product threads).
    pub threads: usize,
    pub progress: bool,
    pub shard: Option<Shard>,
    /// Skip runs the store has finished (without it, a store that holds runs is an
    /// error).
    pub resume: bool,
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepReport {
    /// Runs in the spec (or the shard).
    pub planned: usize,
    /// Finished before this call (skipped).
    pub skipped: usize,
    pub completed: usize,
    pub diverged: usize,
    pub failed: usize,
    /// The first failure's reason, for the summary line.
    pub first_failure: Option<String>,
    pub seconds: f64,
    /// Runs at once and threads per run.
    pub workers: usize,
    pub threads_per_run: usize,
}

/// Datasets loaded once per distinct `[data]` table.
#[derive(Default)]
pub struct DataCache {
    map: Mutex<HashMap<String, Arc<Split>>>,
}

impl DataCache {
    pub fn get(&self, cfg: &crate::data::DataConfig) -> Result<Split> {
        let key = toml::to_string(cfg).expect("toml");
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&key) {
            return Ok((**s).clone());
        }
        let split = Arc::new(cfg.load()?);
        map.insert(key, split.clone());
        Ok((*split).clone())
    }
}

/// The runs of `spec` (of the shard, when given).
pub fn selected_runs(spec: &SweepSpec, shard: Option<Shard>) -> Result<Vec<PlannedRun>> {
    Ok(spec
        .runs()?
        .into_iter()
        .filter(|r| shard.map_or(true, |s| s.contains(r.index)))
        .collect())
}

/// The environment variable behind the test-only pause (see the module docs).
pub const TEST_PAUSE_ENV: &str = "RICHNESS_TEST_PAUSE_AFTER_RUNS";

fn test_pause_after() -> Result<Option<usize>> {
    let Some(v) = std::env::var_os(TEST_PAUSE_ENV) else {
        return Ok(None);
    };
    // A typo here would silently let the test race again, so it is an error.
    v.to_str()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map(Some)
        .ok_or_else(|| {
            Error::config(format!(
                "{TEST_PAUSE_ENV}={}: expected a positive integer",
                v.to_string_lossy()
            ))
        })
}

/// Run every pending run of `spec` into `store`.
pub fn run_sweep(spec: &SweepSpec, store: &mut Store, opts: &RunnerOptions) -> Result<SweepReport> {
    let start = Instant::now();
    let pause_after = test_pause_after()?;
    let runs = selected_runs(spec, opts.shard)?;
    // One writer per store, held until this function returns (or the process dies).
    let _lock = WriterLock::acquire(store.path())?;
    let existing = store.run_count()?;
    if existing > 0 && !opts.resume {
        return Err(Error::file(
            store.path(),
            format!("already holds {existing} runs: pass --resume to skip the finished ones, or use a new --db"),
        ));
    }
    if existing > 0 {
        // --resume continues the same sweep; another spec's runs would be mixed in.
        if let Some(stored) = store.meta("spec")? {
            if stored != spec.to_toml() {
                let name = store.meta("name")?.unwrap_or_default();
                return Err(Error::file(
                    store.path(),
                    format!(
                        "holds {existing} runs of another sweep spec (`{name}`): --resume continues the same spec only; use a new --db"
                    ),
                ));
            }
        }
    }
    let done = store.finished_ids()?;
    let mut pending: Vec<&PlannedRun> = runs.iter().filter(|r| !done.contains(&r.id)).collect();
    let skipped = runs.len() - pending.len();
    store.set_meta("name", &spec.name)?;
    store.set_meta("spec", &spec.to_toml())?;
    store.set_meta(
        "shard",
        &opts
            .shard
            .map(|s| s.to_string())
            .unwrap_or_else(|| "all".into()),
    )?;
    store.set_meta("richness_version", env!("CARGO_PKG_VERSION"))?;
    // Biggest first; ties in spec order.
    pending.sort_by(|a, b| {
        cost(&b.config)
            .partial_cmp(&cost(&a.config))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.index.cmp(&b.index))
    });
    let threads = opts.threads.max(1);
    let workers = threads.min(pending.len()).max(1);
    let per_run = (threads / workers).max(1);
    let mut report = SweepReport {
        planned: runs.len(),
        skipped,
        workers,
        threads_per_run: per_run,
        ..Default::default()
    };
    if pending.is_empty() {
        report.seconds = start.elapsed().as_secs_f64();
        return Ok(report);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::config(format!("cannot start {threads} threads: {e}")))?;
    let bar = crate::progress::bar(pending.len() as u64, "sweep", opts.progress);
    let cache = DataCache::default();
    let stop = AtomicBool::new(false);
    let shard = opts.shard.map(|s| s.to_string());
    let record = &spec.record;
    let (tx, rx) = std::sync::mpsc::channel::<(RunRecord, Vec<MetricRecord>)>();
    let mut write_error = None;
    std::thread::scope(|scope| {
        let pending = &pending;
        let (cache, stop, shard) = (&cache, &stop, &shard);
        scope.spawn(move || {
            pool.install(|| {
                pending
                    .par_iter()
                    .with_max_len(1)
                    .for_each_with(tx, |tx, run| {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let result = execute(run, record, per_run, cache, shard.clone());
                        let _ = tx.send(result);
                    });
            })
        });
        for (row, metrics) in rx {
            if write_error.is_some() {
                continue;
            }
            match row.status.as_str() {
                "completed" => report.completed += 1,
                "diverged" => report.diverged += 1,
                _ => {
                    report.failed += 1;
                    if report.first_failure.is_none() {
                        report.first_failure = Some(format!(
                            "run {} ({}): {}",
                            row.index,
                            row.label,
                            row.reason.clone().unwrap_or_default()
                        ));
                    }
                }
            }
            if let Err(e) = store.insert_run(&row, &metrics) {
                stop.store(true, Ordering::Relaxed);
                write_error = Some(e);
                continue;
            }
            bar.inc(1);
            let stored = report.completed + report.diverged + report.failed;
            if pause_after == Some(stored) {
                bar.finish_and_clear();
                eprintln!("richness: test pause after {stored} stored runs");
                // Parked for good: the test's SIGKILL is the only way out.
                loop {
                    std::thread::park();
                }
            }
            if report.diverged + report.failed > 0 {
                bar.set_message(format!(
                    "{} diverged, {} failed",
                    report.diverged, report.failed
                ));
            }
        }
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e);
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// An exclusive `flock` on `DB.lock`: a second `sweep run` on the same store is
/// refused with the holder's pid and host instead of running everything twice. The
/// kernel drops the lock when the holder exits, however it ends (SIGKILL included),
/// so a stale `.lock` file never blocks a resume.
struct WriterLock {
    _file: std::fs::File,
}

impl WriterLock {
    fn acquire(db: &std::path::Path) -> Result<Self> {
        use std::io::{Read, Seek, Write};
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = std::path::PathBuf::from(name);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a file descriptor this function owns.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::WouldBlock {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(Error::file(
                        db,
                        format!(
                            "another sweep is writing to this store ({}): wait for it, or use another --db",
                            if holder.is_empty() { "holder unknown" } else { holder }
                        ),
                    ));
                }
                return Err(Error::io(&path, err));
            }
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {} on {}", std::process::id(), hostname());
        let _ = file.flush();
        Ok(WriterLock { _file: file })
    }
}

/// A rough cost for scheduling: weights × steps (only the order depends on it).
fn cost(cfg: &train::TrainConfig) -> f64 {
    let width = cfg.model.width.unwrap_or(train::DEFAULT_WIDTH) as f64;
    let weights = match &cfg.model.dims {
        Some(d) => d.windows(2).map(|w| (w[0] * w[1]) as f64).sum(),
        None => {
            width * width * cfg.model.depth.unwrap_or(3).saturating_sub(2).max(1) as f64
                + width * 64.0
        }
    };
    let steps = match (cfg.train.steps, cfg.train.epochs) {
        (Some(s), _) => s as f64,
        (None, Some(e)) => e as f64 * 1000.0,
        (None, None) => 10_000.0,
    };
    weights * steps
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// This machine's name, for the `host` column.
pub use crate::files::hostname;

/// The checks a run passes before it trains (config, data, architecture,
/// parameterization, memory budget), without training: what `sweep plan` reports.
pub fn validate_run(run: &PlannedRun, cache: &DataCache) -> Result<()> {
    if run.config.model.arch == crate::nn::Family::Gpt {
        // Its own model and data path (text at the model's context).
        return train::gpt::prepare(&run.config).map(drop);
    }
    let split = cache.get(&run.config.data)?;
    let prepared = train::prepare_with_data(&run.config, split)?;
    match run.config.dtype {
        Dtype::F32 => train::check_budget::<f32>(&prepared),
        Dtype::F64 => train::check_budget::<f64>(&prepared),
    }
}

/// Train one run and turn its outcome into store rows. Never fails: a run that
/// cannot start, errors or panics is a `failed` row with the reason.
pub fn execute(
    run: &PlannedRun,
    record: &RecordConfig,
    threads: usize,
    cache: &DataCache,
    shard: Option<String>,
) -> (RunRecord, Vec<MetricRecord>) {
    let started = now();
    let t0 = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if run.config.model.arch == crate::nn::Family::Gpt {
            let opts = RunOptions {
                compute: Some(Compute::new(threads)),
                ..Default::default()
            };
            let p = train::gpt::prepare(&run.config)?;
            let outcome = match run.config.dtype {
                Dtype::F32 => train::gpt::run_typed::<f32>(&p, &opts)?,
                Dtype::F64 => train::gpt::run_typed::<f64>(&p, &opts)?,
            };
            return Ok::<_, Error>((p.config, outcome));
        }
        let split = cache.get(&run.config.data)?;
        let prepared = train::prepare_with_data(&run.config, split)?;
        let opts = RunOptions {
            compute: Some(Compute::new(threads)),
            ..Default::default()
        };
        let outcome = match run.config.dtype {
            Dtype::F32 => train::run_typed::<f32>(&prepared, &opts)?,
            Dtype::F64 => train::run_typed::<f64>(&prepared, &opts)?,
        };
        Ok::<_, Error>((prepared.config, outcome))
    }));
    let mut row = RunRecord {
        run_id: run.id.clone(),
        index: run.index as i64,
        label: run.label.clone(),
        params: run.params_json(),
        config: run.config.to_toml(),
        config_json: serde_json::to_string(&run.config).expect("json"),
        status: "failed".into(),
        diverged_step: None,
        reason: None,
        steps: None,
        final_train_loss: None,
        final_test_loss: None,
        final_test_acc: None,
        num_params: None,
        seconds: 0.0,
        threads: threads as i64,
        host: hostname(),
        shard,
        started_unix: started,
        finished_unix: 0.0,
    };
    let mut metrics = Vec::new();
    match result {
        Ok(Ok((resolved, outcome))) => {
            row.config = resolved.to_toml();
            row.config_json = serde_json::to_string(&resolved).expect("json");
            match &outcome.status {
                Status::Completed => row.status = "completed".into(),
                Status::Diverged { step, reason } => {
                    row.status = "diverged".into();
                    row.diverged_step = Some(*step as i64);
                    row.reason = Some(reason.clone());
                }
            }
            row.steps = Some(outcome.steps as i64);
            row.final_train_loss = outcome.final_train_loss;
            row.final_test_loss = outcome.final_test_loss;
            row.final_test_acc = outcome.final_test_acc;
            row.num_params = Some(outcome.num_params as i64);
            row.seconds = outcome.seconds;
            metrics = outcome_metrics(&outcome, record);
        }
        Ok(Err(e)) => row.reason = Some(e.to_string()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            row.reason = Some(format!("internal error: {}", crate::files::one_line(&msg)));
        }
    }
    if row.status == "failed" {
        row.seconds = t0.elapsed().as_secs_f64();
    }
    row.finished_unix = now();
    (row, metrics)
}

/// The tidy metric rows of a run: batch train loss (every `record.every` steps and
/// the last), every evaluation (test loss and accuracy, step 0 = init), the relative
/// movement of each weight layer at the end, and NTK movement when tracked.
pub fn outcome_metrics(outcome: &Outcome, record: &RecordConfig) -> Vec<MetricRecord> {
    let mut out = Vec::new();
    let last = outcome.steps;
    let m = |step: usize, name: &str, layer: Option<usize>, value: f64| MetricRecord {
        step: step as i64,
        name: name.to_string(),
        layer: layer.map(|l| l as i64),
        value,
    };
    for row in &outcome.metrics {
        if let Some(v) = row.train_loss {
            let keep = row.step == last || (record.every > 0 && row.step % record.every == 0);
            if keep {
                out.push(m(row.step, "train_loss", None, v));
            }
        }
        if let Some(v) = row.test_loss {
            out.push(m(row.step, "test_loss", None, v));
        }
        if let Some(v) = row.test_acc {
            out.push(m(row.step, "test_acc", None, v));
        }
    }
    for (l, v) in outcome.weight_change.iter().enumerate() {
        out.push(m(last, "weight_change", Some(l + 1), *v));
    }
    for r in &outcome.ntk {
        out.push(m(r.step, "ntk_rel_change", None, r.rel_change));
        out.push(m(r.step, "ntk_kernel_distance", None, r.kernel_distance));
        out.push(m(r.step, "ntk_target_alignment", None, r.target_alignment));
        out.push(m(r.step, "ntk_frobenius_norm", None, r.frobenius_norm));
    }
    out
}
