//! `richness sweep …` and `richness transfer`.

use crate::Exit;
use clap::{Args, Subcommand};
use richness::sweep::export::export_csv;
use richness::sweep::plot::{sweep_plot, PlotRequest};
use richness::sweep::runner::{run_sweep, selected_runs, RunnerOptions, Shard};
use richness::sweep::slurm::{collect, sbatch, Submission};
use richness::sweep::spec::SweepSpec;
use richness::sweep::store::Store;
use richness::sweep::transfer::{analyse, Located, Metric, TransferOptions, TransferReport};
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(after_help = "Examples:
  richness sweep plan configs/sweep-example.toml
  richness sweep run configs/sweep-example.toml --db out/example.sqlite
  richness sweep run configs/sweep-example.toml --db out/example.sqlite --resume
  richness sweep export --db out/example.sqlite --format csv --out out/example-csv
  richness sweep plot --db out/example.sqlite --x model.width --y final_test_loss --out out/example-plots
  richness sweep submit configs/sweep-example.toml --slurm --shards 4 --sbatch-arg=--time=00:30:00 --dry-run
  richness sweep collect --from sweeps/example --db sweeps/example/merged.sqlite

A spec is a base config plus [[axes]] (see docs/sweep.md and configs/sweep-example.toml).")]
pub struct SweepArgs {
    #[command(subcommand)]
    pub cmd: SweepCmd,
}

#[derive(Subcommand)]
pub enum SweepCmd {
    /// Print the runs of a spec (index, id, axis values) and their count, without running.
    Plan(PlanArgs),
    /// Run a spec (or one shard of it) into a results database.
    Run(RunArgs),
    /// Write runs.csv and metrics.csv from a results database.
    Export(ExportArgs),
    /// Write (and submit) a SLURM array job: one task per shard, each into its own database.
    Submit(SubmitArgs),
    /// Merge the shard databases of a submitted sweep; report missing and failed shards
    /// (exit 1 when any shard is incomplete).
    Collect(CollectArgs),
    /// Plot a metric against an axis (width, r, rate…) or the step, seeds averaged,
    /// with log–log fits.
    Plot(PlotArgs),
}

#[derive(Args)]
pub struct PlanArgs {
    /// Sweep spec (TOML).
    pub spec: PathBuf,
    /// Only the runs of shard I of N (0-based).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Print the runs as JSON lines (index, id, params, config).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// Sweep spec (TOML).
    pub spec: PathBuf,
    /// Results database (SQLite; created if missing).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Skip the runs the database has finished (and retry failed ones).
    #[arg(long)]
    pub resume: bool,
    /// Only shard I of N (0-based): the runs whose index is I mod N.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Results database.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Output format (csv).
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Output folder (runs.csv, metrics.csv).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct SubmitArgs {
    /// Sweep spec (TOML).
    pub spec: PathBuf,
    /// Submit to SLURM (the only scheduler supported).
    #[arg(long)]
    pub slurm: bool,
    /// Sweep folder for the script, the frozen spec, logs and shard databases
    /// [default: sweeps/NAME].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Number of array tasks (shards) [default: min(runs, 16)].
    #[arg(long, value_name = "N", value_parser = richness::counts::cli::shards)]
    pub shards: Option<usize>,
    /// An extra `#SBATCH` option, e.g. --sbatch-arg=--time=1:00:00 (repeatable).
    #[arg(long = "sbatch-arg", value_name = "OPT", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Print the script; write and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the sweep folder but do not call sbatch (submit it yourself).
    #[arg(long, conflicts_with = "dry_run")]
    pub no_submit: bool,
    /// The richness binary the tasks run [default: this one].
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
}

#[derive(Args)]
pub struct CollectArgs {
    /// The sweep folder (as written by `sweep submit`).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The merged database (created, or added to).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PlotArgs {
    /// Results database.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// The x axis: an axis key (model.width, param.richness, param.base_lr, …) or `step`.
    #[arg(long, value_name = "KEY")]
    pub x: String,
    /// The metric: final_train_loss, final_test_loss, final_test_acc, or a metric name
    /// (train_loss, test_loss, test_acc, weight_change, …) [default: final_test_loss,
    /// or train_loss against step].
    #[arg(long, value_name = "METRIC")]
    pub y: Option<String>,
    /// Layer of a per-layer metric (weight_change: 1 = read-in).
    #[arg(long)]
    pub layer: Option<i64>,
    /// Axis keys that make the series, comma-separated [default: every axis but x and seed].
    #[arg(long, value_delimiter = ',', value_name = "KEY,…")]
    pub by: Option<Vec<String>>,
    /// Keep only runs with KEY=VALUE (repeatable).
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Axis that holds the seeds (averaged, min–max band).
    #[arg(long, default_value = "seed", value_name = "KEY")]
    pub seed_key: String,
    /// Axis scales [default: from the data: log for widths, rates and positive losses].
    #[arg(long, value_enum)]
    pub scale: Option<Scale>,
    /// Output folder.
    #[arg(long, short, default_value = "out/sweep-plots", value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Scale {
    Loglog,
    Logx,
    Logy,
    Linear,
}

#[derive(Args)]
#[command(after_help = "Examples:
  richness transfer configs/experiments/t5-transfer-digits.toml --out out/t5
  richness transfer --db out/t5/transfer.sqlite --out out/t5 --metric train_loss
  richness transfer --db out/t5/transfer.sqlite --out out/t5 --against param.preset=ntp

Runs (or, with only --db, reads) a width × base-rate × seed sweep. Per group of the
other axes (e.g. param.preset) and width: the seed-mean loss against the rate, the best
grid rate refined by a parabola in log-rate, the seed spread of the optimum; then the
drift exponent of the optimum against width with a 95% interval (jackknife over
seeds, plus the rounding of optima kept at a grid point).

Each group gets a verdict on the claim \"the rate transfers\" (drift 0 ± --tolerance):
pass when the whole 95% interval lies in the band (with --against G, and also excludes
G's measured drift on the side of 0), fail when it lies wholly outside, unclear
otherwise (with the seeds that would decide it). The --against group itself is judged
on \"the rate drifts up\": its interval above +tolerance. An optimum on the edge of the
rate grid makes a group unclear. Exit status: 1 when any group is fail (or has no drift
fit); unclear alone exits 0 unless --strict. Files in --out: transfer.json,
transfer.csv, transfer.png|svg|csv (loss against rate per width, optima marked),
drift.png|svg|csv.")]
pub struct TransferArgs {
    /// Sweep spec to run (omit to analyse an existing --db).
    pub spec: Option<PathBuf>,
    /// Results database [default with a spec: OUT/transfer.sqlite].
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Skip the runs the database has finished.
    #[arg(long)]
    pub resume: bool,
    /// Output folder.
    #[arg(long, short, default_value = "out/transfer", value_name = "DIR")]
    pub out: PathBuf,
    /// The loss: test_loss (the tutorial's test MSE) or train_loss (last batch).
    #[arg(long, default_value = "test_loss")]
    pub metric: Metric,
    /// Largest |drift exponent| that counts as transfer.
    #[arg(long, default_value_t = 0.15, allow_hyphen_values = true, value_parser = crate::args::num::positive)]
    pub tolerance: f64,
    /// A group (its label or one key=value of it, e.g. param.preset=ntp) whose measured
    /// drift the other groups' transfer must be separated from; it is itself judged
    /// on drifting up.
    #[arg(long, value_name = "GROUP")]
    pub against: Option<String>,
    /// Exit 1 on unclear or crossover verdicts too, not only on fail.
    #[arg(long)]
    pub strict: bool,
    /// The loss a diverged run counts as.
    #[arg(long, default_value_t = 1e5, allow_hyphen_values = true, value_parser = crate::args::num::positive)]
    pub diverged_loss: f64,
    #[arg(long, default_value = "model.width", value_name = "KEY")]
    pub width_key: String,
    #[arg(long, default_value = "param.base_lr", value_name = "KEY")]
    pub rate_key: String,
    #[arg(long, default_value = "seed", value_name = "KEY")]
    pub seed_key: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(
    a: SweepArgs,
    threads: usize,
    explicit_threads: Option<usize>,
    progress: bool,
) -> anyhow::Result<Exit> {
    match a.cmd {
        SweepCmd::Plan(a) => plan(a),
        SweepCmd::Run(a) => run_cmd(a, threads, progress),
        SweepCmd::Export(a) => export(a),
        SweepCmd::Submit(a) => submit(a, explicit_threads),
        SweepCmd::Collect(a) => collect_cmd(a),
        SweepCmd::Plot(a) => plot(a),
    }
}

fn plan(a: PlanArgs) -> anyhow::Result<Exit> {
    let spec = SweepSpec::from_file(&a.spec)?;
    let runs = selected_runs(&spec, a.shard)?;
    if a.json {
        for r in &runs {
            let line = serde_json::json!({
                "index": r.index,
                "id": r.id,
                "params": serde_json::from_str::<serde_json::Value>(&r.params_json())?,
                "config": r.config,
            });
            println!("{line}");
        }
        return Ok(Exit::Ok);
    }
    let width = runs.last().map(|r| r.index.to_string().len()).unwrap_or(1);
    // Every run gets the checks it would meet before training; a spec none of
    // whose runs could start is an error here, not a sweep of failures.
    let cache = richness::sweep::runner::DataCache::default();
    let mut invalid = Vec::new();
    for r in &runs {
        println!("{:>width$}  {}  {}", r.index, r.id, r.label);
        if let Err(e) = richness::sweep::runner::validate_run(r, &cache) {
            invalid.push(format!("run {} ({}): {e}", r.index, r.label));
        }
    }
    if !runs.is_empty() && invalid.len() == runs.len() {
        anyhow::bail!("no run of this spec can start; {}", invalid[0]);
    }
    for w in &invalid {
        eprintln!("warning: {w}");
    }
    let shard = a
        .shard
        .map(|s| format!(" in shard {s}"))
        .unwrap_or_default();
    println!(
        "{} runs{shard} (sweep `{}`: {} = {} runs)",
        runs.len(),
        spec.name,
        spec.describe_axes(),
        spec.count()
    );
    Ok(Exit::Ok)
}

fn run_into(
    spec: &SweepSpec,
    db: &Path,
    resume: bool,
    shard: Option<Shard>,
    threads: usize,
    progress: bool,
) -> anyhow::Result<Exit> {
    let mut store = Store::create(db)?;
    let opts = RunnerOptions {
        threads,
        progress,
        shard,
        resume,
    };
    let rep = run_sweep(spec, &mut store, &opts)?;
    let ran = rep.completed + rep.diverged + rep.failed;
    println!(
        "{}: {ran} runs in {:.1}s ({} completed, {} diverged, {} failed; {} already done; {} at once × {} threads) → {}",
        spec.name,
        rep.seconds,
        rep.completed,
        rep.diverged,
        rep.failed,
        rep.skipped,
        rep.workers,
        rep.threads_per_run,
        db.display()
    );
    if let Some(f) = &rep.first_failure {
        eprintln!("failed: {f}");
        return Ok(Exit::Fail);
    }
    Ok(Exit::Ok)
}

fn run_cmd(a: RunArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    let spec = SweepSpec::from_file(&a.spec)?;
    run_into(&spec, &a.db, a.resume, a.shard, threads, progress)
}

fn export(a: ExportArgs) -> anyhow::Result<Exit> {
    if a.format != "csv" {
        anyhow::bail!("--format {}: only csv is supported", a.format);
    }
    let store = Store::open_read_only(&a.db)?;
    let e = export_csv(&store, &a.out)?;
    println!(
        "wrote {} ({} runs) and {} ({} metric rows)",
        e.runs_csv.display(),
        e.runs,
        e.metrics_csv.display(),
        e.metrics
    );
    Ok(Exit::Ok)
}

fn submit(a: SubmitArgs, threads: Option<usize>) -> anyhow::Result<Exit> {
    if !a.slurm {
        anyhow::bail!("sweep submit needs --slurm (the only scheduler supported); to run here use `richness sweep run`");
    }
    let spec = SweepSpec::from_file(&a.spec)?;
    let runs = spec.runs()?.len();
    let shards = a.shards.unwrap_or_else(|| runs.clamp(1, 16));
    if shards > runs {
        anyhow::bail!("--shards {shards} is more than the {runs} runs of the sweep");
    }
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("sweeps").join(&spec.name));
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    // Threads per task when SLURM does not set SLURM_CPUS_PER_TASK: 1, unless --threads was given.
    let per_task = threads.unwrap_or(1);
    let sub = Submission::new(&dir, shards, &binary, a.sbatch_args.clone(), per_task)?;
    if a.dry_run {
        print!("{}", sub.script(&spec));
        return Ok(Exit::Ok);
    }
    let script = sub.write(&spec)?;
    if a.no_submit {
        println!(
            "wrote {} ({shards} array tasks for {runs} runs); submit with: sbatch {}",
            sub.dir.display(),
            script.display()
        );
        return Ok(Exit::Ok);
    }
    let job = sbatch(&script)?;
    println!(
        "submitted job {job}: {shards} array tasks for {runs} runs; script {}",
        script.display()
    );
    println!(
        "when done: richness sweep collect --from {} --db {}",
        sub.dir.display(),
        sub.dir.join("merged.sqlite").display()
    );
    Ok(Exit::Ok)
}

fn collect_cmd(a: CollectArgs) -> anyhow::Result<Exit> {
    let rep = collect(&a.from, &a.db)?;
    let missing = rep.to_resubmit();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        for s in &rep.shards {
            println!("{}", s.describe());
        }
        println!(
            "merged {} new runs; {} holds {} of {} runs",
            rep.copied,
            a.db.display(),
            rep.merged_runs,
            rep.expected_runs
        );
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            println!(
                "resubmit: sbatch --array={list} {}",
                a.from.join("sweep.sbatch").display()
            );
        }
    }
    Ok(if missing.is_empty() {
        Exit::Ok
    } else {
        Exit::Fail
    })
}

fn plot(a: PlotArgs) -> anyhow::Result<Exit> {
    let store = Store::open_read_only(&a.db)?;
    let filters = a
        .filters
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow::anyhow!("--where expects KEY=VALUE, got `{f}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let y = a.y.clone().unwrap_or_else(|| {
        if a.x == "step" {
            "train_loss"
        } else {
            "final_test_loss"
        }
        .into()
    });
    let (x_log, y_log) = match a.scale {
        None => (None, None),
        Some(Scale::Loglog) => (Some(true), Some(true)),
        Some(Scale::Logx) => (Some(true), Some(false)),
        Some(Scale::Logy) => (Some(false), Some(true)),
        Some(Scale::Linear) => (Some(false), Some(false)),
    };
    let req = PlotRequest {
        x: a.x.clone(),
        y: y.clone(),
        layer: a.layer,
        by: a.by.clone(),
        filters,
        x_log,
        y_log,
        seed_key: a.seed_key.clone(),
    };
    let p = sweep_plot(&store, &req)?;
    std::fs::create_dir_all(&a.out).map_err(|e| richness::Error::io(&a.out, e))?;
    let clean = |s: &str| s.replace(['.', '/', ' '], "_");
    let layer = a.layer.map(|l| format!("-layer{l}")).unwrap_or_default();
    let stem = format!("{}{layer}-vs-{}", clean(&y), clean(&a.x));
    p.figure.save_all(&a.out, &stem)?;
    for (label, fit) in &p.fits {
        if let Some(f) = fit {
            println!(
                "{}: slope {:+.4} [{:+.4}, {:+.4}] over {} points",
                if label.is_empty() { &y } else { label },
                f.slope,
                f.ci95.0,
                f.ci95.1,
                f.points
            );
        }
    }
    println!(
        "{} runs plotted ({} left out: diverged, failed, filtered or without the metric); wrote {}",
        p.used,
        p.left_out,
        a.out.join(format!("{stem}.png")).display()
    );
    Ok(Exit::Ok)
}

pub fn transfer(a: TransferArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    if !(a.tolerance.is_finite() && a.tolerance > 0.0) {
        anyhow::bail!("--tolerance must be a positive number, got {}", a.tolerance);
    }
    let db = match (&a.spec, &a.db) {
        (_, Some(db)) => db.clone(),
        (Some(_), None) => a.out.join("transfer.sqlite"),
        (None, None) => anyhow::bail!("give a sweep spec to run, or --db with the results of one"),
    };
    if let Some(spec) = &a.spec {
        let spec = SweepSpec::from_file(spec)?;
        if let Exit::Fail = run_into(&spec, &db, a.resume, None, threads, progress)? {
            eprintln!("warning: some runs failed; they are left out of the analysis");
        }
    }
    let store = Store::open_read_only(&db)?;
    let opts = TransferOptions {
        width_key: a.width_key.clone(),
        rate_key: a.rate_key.clone(),
        seed_key: a.seed_key.clone(),
        metric: a.metric,
        diverged_loss: a.diverged_loss,
        tolerance: a.tolerance,
        against: a.against.clone(),
    };
    let rep = analyse(&store.runs()?, &opts)?;
    write_transfer(&rep, &a.out)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print_transfer(&rep);
        println!("wrote {}", a.out.join("transfer.png").display());
    }
    let worst = richness::verdict::Verdict::worst(rep.groups.iter().map(|g| g.verdict.verdict));
    Ok(if worst.fails(a.strict) {
        Exit::Fail
    } else {
        Exit::Ok
    })
}

fn write_transfer(rep: &TransferReport, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).map_err(|e| richness::Error::io(out, e))?;
    richness::files::write_atomic(
        &out.join("transfer.json"),
        serde_json::to_string_pretty(rep)?.as_bytes(),
    )?;
    richness::files::write_atomic(&out.join("transfer.csv"), rep.to_csv().as_bytes())?;
    let figs = rep.figures();
    richness::report::plot::Grid {
        figures: &figs,
        cols: figs.len().min(2),
    }
    .save_all(out, "transfer")?;
    rep.drift_figure().save_all(out, "drift")?;
    Ok(())
}

fn print_transfer(rep: &TransferReport) {
    use richness::sweep::spec::short_float as f;
    println!(
        "rate transfer ({}; diverged = {}; tolerance |drift| ≤ {})",
        rep.options.metric.name(),
        f(rep.options.diverged_loss),
        rep.options.tolerance
    );
    for g in &rep.groups {
        println!();
        println!(
            "{}  ({} seeds)",
            if g.label.is_empty() {
                "all runs"
            } else {
                &g.label
            },
            g.seeds
        );
        println!(
            "  {:>8}  {:>10}  {:>10}  {:>10}  {:>12}",
            "width", "best grid", "optimum", "loss", "seed spread"
        );
        for w in &g.widths {
            println!(
                "  {:>8}  {:>10}  {:>10}  {:>10}  {:>12}{}",
                f(w.width),
                f(w.best_grid_rate),
                f(w.optimum),
                f(w.optimum_loss),
                format!("×2^±{:.2}", w.spread_log2),
                match w.located {
                    Located::Parabola => "",
                    Located::GridEdge => "  (edge of the grid)",
                    Located::StabilityEdge => "  (next to divergence: grid point)",
                }
            );
        }
        if let Some(d) = &g.drift {
            println!(
                "  drift exponent {:+.3}, 95% CI [{:+.3}, {:+.3}] ({})",
                d.slope, d.ci95.0, d.ci95.1, d.interval
            );
        }
        let claim = match g.claim {
            richness::sweep::transfer::Claim::Transfers => format!(
                "transfers (|drift| ≤ {}{})",
                rep.options.tolerance,
                g.alternative
                    .map(|a| format!(", interval excludes {a:+.3}"))
                    .unwrap_or_default()
            ),
            richness::sweep::transfer::Claim::DriftsUp => {
                format!("drifts up (drift > {})", rep.options.tolerance)
            }
        };
        println!("  {claim}: {}", g.verdict.describe());
        for w in &g.warnings {
            println!("  warning: {w}");
        }
    }
    if rep.failed_runs > 0 {
        println!("\n{} failed runs left out", rep.failed_runs);
    }
}
