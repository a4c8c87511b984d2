//! A whole run: prepare (data, architecture, parameterization), check the memory
//! budget, train, evaluate, and write the output folder.

use crate::data::Split;
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::nn::{Arch, Loss, Model};
use crate::param::Parameterization;
use crate::rng;
use crate::tensor::{Dtype, Mat, Scalar};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use super::{TrainConfig, Trainer};
/// One line of `metrics.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: usize,
    pub epoch: usize,
    pub train_loss: Option<f64>,
    pub test_loss: Option<f64>,
    /// Classification data only (see [`Outcome::final_test_acc`]).
    pub test_acc: Option<f64>,
}

impl MetricRow {
    pub const HEADER: &'static str = "step,epoch,train_loss,test_loss,test_acc";
    pub fn csv(&self) -> String {
        let o = |v: Option<f64>| v.map(|x| format!("{x:e}")).unwrap_or_default();
        format!(
            "{},{},{},{},{}",
            self.step,
            self.epoch,
            o(self.train_loss),
            o(self.test_loss),
            o(self.test_acc)
        )
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    Completed,
    Diverged { step: usize, reason: String },
}

/// What a finished run reports (also `summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub status: Status,
    pub steps: usize,
    pub final_train_loss: Option<f64>,
    pub final_test_loss: Option<f64>,
    /// Argmax accuracy on the test set; `None` without a test set and for
    /// regression data (no integer class labels), where accuracy means nothing.
    pub final_test_acc: Option<f64>,
    pub seconds: f64,
    pub threads: usize,
    pub dtype: Dtype,
    pub num_params: usize,
    pub parameterization: Parameterization,
    /// Every metrics row (also in `metrics.csv`); empty with
    /// [`RunOptions::metrics_to_file_only`].
    #[serde(skip)]
    pub metrics: Vec<MetricRow>,
    /// Relative movement of each weight layer over the run, ‖W_T − W_0‖_F / ‖W_0‖_F
    /// (multipliers are fixed, so raw and effective weights give the same ratio).
    #[serde(skip)]
    pub weight_change: Vec<f64>,
    /// Empirical-NTK movement rows, with an `[ntk]` table (also `ntk_movement.csv`).
    #[serde(skip)]
    pub ntk: Vec<crate::kernel::movement::MovementRow>,
}

/// Options of [`run`] that are not part of the config (they do not change results,
/// except `init_weights`).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Output folder; `None` keeps everything in memory.
    pub out: Option<PathBuf>,
    /// Replace a non-empty `out` folder as a whole (see [`crate::io::RunFolder`]);
    /// without it a folder that holds files is an error.
    pub overwrite: bool,
    /// Start from these weights instead of a fresh init.
    pub init_weights: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    pub compute: Option<Compute>,
    /// With `out`: keep the per-step metrics only in `metrics.csv` (written as they
    /// come), not also in [`Outcome::metrics`], which then stays empty, so memory
    /// stays flat however many steps a run has. The command-line `train` sets it.
    pub metrics_to_file_only: bool,
}

/// Everything resolved before training: data, architecture, parameterization.
pub struct Prepared {
    pub config: TrainConfig,
    pub split: Split,
    pub arch: Arch,
    pub param: Parameterization,
}

/// Load data and resolve the architecture and parameterization of a config.
pub fn prepare(config: &TrainConfig) -> Result<Prepared> {
    validate(config)?;
    prepare_with_data(config, config.data.load()?)
}

/// The checks of a config that need no data.
pub(super) fn validate(config: &TrainConfig) -> Result<()> {
    config.optim.validate()?;
    let t = &config.train;
    if !(t.diverge_above.is_finite() && t.diverge_above > 0.0) {
        return Err(Error::config(
            "train.diverge_above must be a positive number",
        ));
    }
    if t.epochs.is_some() && t.steps.is_some() {
        return Err(Error::config("give train.epochs or train.steps, not both"));
    }
    crate::counts::TRAIN_STEPS.check_opt("train.steps", t.steps)?;
    crate::counts::EPOCHS.check_opt("train.epochs", t.epochs)?;
    crate::counts::BATCH_SIZE.check_named("train.batch_size", t.batch_size)?;
    Ok(())
}

/// [`prepare`] with the data already loaded (`split` must be `config.data.load()`;
/// sweeps load each distinct `[data]` table once and hand out copies).
pub fn prepare_with_data(config: &TrainConfig, split: Split) -> Result<Prepared> {
    validate(config)?;
    if config.model.arch == crate::nn::Family::Gpt {
        // Its own model: `run` hands it to `train::gpt`; the callers of `Prepared`
        // (sweeps, probes) build only `Arch` models.
        return Err(Error::config(super::config::GPT_ONLY_TRAIN));
    }
    split.refuse_tokens(config.model.arch.name())?;
    split.check_fits(config.dtype)?;
    let arch = config.model.resolve_for(
        split.train.input_dim(),
        split.train.output_dim(),
        split.train.image_shape,
    )?;
    if config.train.loss == Loss::CrossEntropy {
        check_class_targets(&split)?;
    }
    let param = Parameterization::resolve(&arch.layer_shapes(), &config.param, config.optim.kind)?;
    let mut resolved = config.clone();
    if arch.is_mlp() {
        resolved.model.dims = Some(arch.dims.clone());
        resolved.model.width = None;
        resolved.model.depth = None;
    } else {
        resolved.model.width = Some(arch.width());
    }
    if let Some(r) = &arch.residual {
        // The resolved config names every residual key, defaults included.
        resolved.model.blocks = Some(r.blocks);
        resolved.model.norm = Some(r.norm);
        resolved.model.branch = Some(r.branch);
    }
    resolved.model.activation = Some(arch.activation);
    resolved.model.gain = Some(arch.gain);
    if resolved.train.epochs.is_none() && resolved.train.steps.is_none() {
        resolved.train.epochs = Some(10);
    }
    Ok(Prepared {
        config: resolved,
        split,
        arch,
        param,
    })
}

/// Cross-entropy needs class targets: integer labels, or rows of at least two
/// probabilities (each in [0, 1], summing to 1). On real-valued regression targets it
/// reported a loss of 0 or ran off to −10²⁴, so it is refused.
fn check_class_targets(split: &Split) -> Result<()> {
    for d in std::iter::once(&split.train).chain(split.test.as_ref()) {
        if d.labels.is_some() {
            continue;
        }
        let k = d.output_dim();
        let bad_row = (0..d.len()).find(|&i| {
            let r = d.y.row(i);
            let sum: f64 = r.iter().sum();
            k < 2 || r.iter().any(|&v| !(0.0..=1.0).contains(&v)) || (sum - 1.0).abs() > 1e-6
        });
        if let Some(i) = bad_row {
            return Err(Error::config(format!(
                "train.loss = cross-entropy needs class targets (labels, or rows of probabilities summing to 1), but {} has real-valued targets (row {i}: {:?}): use loss = \"mse\"",
                d.name,
                &d.y.row(i)[..k.min(4)]
            )));
        }
    }
    Ok(())
}

/// Train according to `config`, writing results when `opts.out` is set.
pub fn run(config: &TrainConfig, opts: &RunOptions) -> Result<Outcome> {
    if config.model.arch == crate::nn::Family::Gpt {
        return super::gpt::run(config, opts);
    }
    let prepared = prepare(config)?;
    match config.dtype {
        Dtype::F32 => run_typed::<f32>(&prepared, opts),
        Dtype::F64 => run_typed::<f64>(&prepared, opts),
    }
}

/// Training in precision `T` on prepared inputs.
pub fn run_typed<T: Scalar>(p: &Prepared, opts: &RunOptions) -> Result<Outcome> {
    let start = Instant::now();
    let cfg = &p.config;
    let cx = opts.compute.unwrap_or_else(|| Compute::new(1));
    check_budget::<T>(p)?;
    // The folder is claimed before any work: a non-empty one without `overwrite` is
    // refused, and with it the run is staged beside the old one.
    let folder = opts
        .out
        .as_deref()
        .map(|d| crate::io::RunFolder::begin(d, opts.overwrite))
        .transpose()?;
    let out_dir: Option<PathBuf> = folder.as_ref().map(|f| f.path().to_path_buf());
    let mut model = Model::<T>::init_with(&p.arch, p.param.clone(), cfg.seed)?;
    if let Some(w) = &opts.init_weights {
        crate::io::load_weights_into(&mut model, w)?;
    }
    let (x, y) = p.split.train.cast::<T>();
    let test = p.split.test.as_ref().map(|t| t.cast::<T>());
    let n = x.rows();
    let batch = if cfg.train.batch_size == 0 {
        n
    } else {
        cfg.train.batch_size.min(n)
    };
    let steps_per_epoch = n.div_ceil(batch);
    let total_steps = match (cfg.train.steps, cfg.train.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => e.saturating_mul(steps_per_epoch),
        (None, None) => 10 * steps_per_epoch,
    };
    let eval_every = if cfg.train.eval_every == 0 {
        steps_per_epoch
    } else {
        cfg.train.eval_every
    };
    if !(opts.metrics_to_file_only && out_dir.is_some()) {
        // One metrics row per step is kept for the caller: 10⁹ steps are 64 GB.
        crate::budget::ensure(
            || format!("keeping the metrics of {total_steps} steps in memory"),
            crate::budget::product(
                &[
                    total_steps.saturating_add(1),
                    std::mem::size_of::<MetricRow>(),
                ],
                1,
            ),
        )?;
    }
    let init_weights: Vec<Mat<T>> = model.weights.clone();
    let mut trainer = Trainer::new(model, &cfg.optim, cx, cfg.train.loss, batch);
    let mut ntk_track = match &cfg.ntk {
        Some(c) => Some(crate::kernel::movement::MovementTracker::new(
            c,
            &trainer.model,
            &cx,
            &x,
            &y,
        )?),
        None => None,
    };

    let mut csv = match &out_dir {
        Some(dir) => {
            crate::files::write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
            crate::files::write_atomic(
                &dir.join("parameterization.json"),
                serde_json::to_string_pretty(&p.param)
                    .expect("json")
                    .as_bytes(),
            )?;
            crate::files::write_atomic(
                &dir.join("parameterization.txt"),
                p.param.to_text().as_bytes(),
            )?;
            let path = dir.join("metrics.csv");
            let f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            let mut w = std::io::BufWriter::new(f);
            writeln!(w, "{}", MetricRow::HEADER).map_err(|e| Error::io(&path, e))?;
            Some((w, path))
        }
        None => None,
    };
    let mut rows = Vec::new();
    let keep_rows = !(opts.metrics_to_file_only && csv.is_some());
    let mut emit = |row: MetricRow,
                    csv: &mut Option<(std::io::BufWriter<std::fs::File>, PathBuf)>|
     -> Result<()> {
        if let Some((w, path)) = csv.as_mut() {
            writeln!(w, "{}", row.csv()).map_err(|e| Error::io(&*path, e))?;
        }
        if keep_rows {
            rows.push(row);
        }
        Ok(())
    };
    // Accuracy is reported for classification data only (integer class labels);
    // for real-valued targets argmax agreement means nothing (with one output
    // column it is always 1).
    let classification = p.split.train.labels.is_some();
    let evaluate = |tr: &mut Trainer<T>| {
        test.as_ref().map(|(tx, ty)| {
            let (loss, acc) = tr.evaluate(tx, ty);
            (loss, classification.then_some(acc))
        })
    };
    let init_eval = evaluate(&mut trainer);
    emit(
        MetricRow {
            step: 0,
            epoch: 0,
            train_loss: None,
            test_loss: init_eval.map(|e| e.0),
            test_acc: init_eval.and_then(|e| e.1),
        },
        &mut csv,
    )?;

    let bar = crate::progress::bar(total_steps as u64, "training", opts.progress);
    let mut status = Status::Completed;
    let mut order: Vec<usize> = (0..n).collect();
    let mut last_train = None;
    let mut last_eval = init_eval;
    let mut step = 0;
    'outer: while step < total_steps {
        let epoch = step / steps_per_epoch;
        if cfg.train.shuffle {
            order = rng::permutation(&mut rng::stream(cfg.seed, "shuffle", epoch as u64), n);
        }
        for chunk in order.chunks(batch) {
            if step >= total_steps {
                break;
            }
            let loss = trainer.step_rows(&x, &y, chunk);
            step += 1;
            let diverged = if !loss.is_finite() {
                Some(format!("training loss became {loss} at step {step}"))
            } else if loss > cfg.train.diverge_above {
                Some(format!(
                    "training loss {loss:.3e} exceeded {:.1e} at step {step}",
                    cfg.train.diverge_above
                ))
            } else {
                None
            };
            let do_eval = step % eval_every == 0 || step == total_steps;
            let eval = if do_eval && diverged.is_none() {
                evaluate(&mut trainer)
            } else {
                None
            };
            if eval.is_some() {
                last_eval = eval;
            }
            emit(
                MetricRow {
                    step,
                    epoch: epoch + 1,
                    train_loss: Some(loss),
                    test_loss: eval.map(|e| e.0),
                    test_acc: eval.and_then(|e| e.1),
                },
                &mut csv,
            )?;
            last_train = Some(loss);
            if let (Some(t), None) = (ntk_track.as_mut(), &diverged) {
                t.observe(step, &trainer.model, &cx, step == total_steps)?;
            }
            bar.inc(1);
            if step % 50 == 0 {
                bar.set_message(format!("loss {loss:.4}"));
            }
            if let Some(reason) = diverged {
                status = Status::Diverged { step, reason };
                break 'outer;
            }
        }
    }
    bar.finish_and_clear();
    if let Some((w, path)) = csv.as_mut() {
        w.flush().map_err(|e| Error::io(&*path, e))?;
    }
    if let (Some(t), Some(dir)) = (&ntk_track, &out_dir) {
        t.write_csv(&dir.join("ntk_movement.csv"))?;
    }
    let outcome = Outcome {
        status: status.clone(),
        steps: step,
        final_train_loss: last_train,
        final_test_loss: last_eval.map(|e| e.0),
        final_test_acc: last_eval.and_then(|e| e.1),
        seconds: start.elapsed().as_secs_f64(),
        threads: cx.threads,
        dtype: T::DTYPE,
        num_params: trainer.model.num_params(),
        parameterization: p.param.clone(),
        metrics: rows,
        weight_change: init_weights
            .iter()
            .zip(&trainer.model.weights)
            .map(|(w0, w)| relative_change(w0.as_slice(), w.as_slice()))
            .collect(),
        ntk: ntk_track.map(|t| t.rows).unwrap_or_default(),
    };
    if let Some(dir) = &out_dir {
        if status == Status::Completed {
            crate::io::save_weights(&trainer.model, dir.join("weights.safetensors"))?;
        }
        let mut summary = serde_json::to_value(&outcome).expect("json");
        summary["seconds"] = serde_json::json!((outcome.seconds * 1000.0).round() / 1000.0);
        crate::files::write_atomic(
            &dir.join("summary.json"),
            serde_json::to_string_pretty(&summary).unwrap().as_bytes(),
        )?;
    }
    if let Some(f) = folder {
        f.finish()?;
    }
    Ok(outcome)
}

/// Refuse a run whose model, optimizer state, batch activations, data copies and
/// NTK tracking would not fit in memory (see [`crate::budget`]), before allocating.
pub fn check_budget<T: Scalar>(p: &Prepared) -> Result<()> {
    let cfg = &p.config;
    let elem = std::mem::size_of::<T>();
    let n = p.split.train.len();
    let batch = if cfg.train.batch_size == 0 {
        n
    } else {
        cfg.train.batch_size.min(n)
    };
    let slots = match cfg.optim.kind {
        crate::param::OptimizerKind::Adam => 2,
        _ => usize::from(cfg.optim.momentum != 0.0),
    };
    let mut bytes = p.arch.training_bytes(elem, batch, slots, p.param.center);
    // The data cast to T (train and test).
    for d in std::iter::once(&p.split.train).chain(p.split.test.as_ref()) {
        let per_row = d.input_dim().saturating_add(d.output_dim());
        bytes = bytes.saturating_add(crate::budget::product(&[d.len(), per_row], elem));
    }
    if let Some(t) = &cfg.ntk {
        // Two kernels of points² for each output, and gradient rows of one block.
        let k = p.split.train.output_dim().max(1);
        bytes = bytes
            .saturating_add(crate::budget::product(&[t.points, t.points, k, 3], 8))
            .saturating_add(
                p.arch
                    .trace_values(t.points.min(256))
                    .saturating_mul(elem as u128 * 2),
            );
    }
    crate::budget::ensure(
        || {
            format!(
                "training {} with batch {batch} in {}",
                p.arch.describe(),
                T::DTYPE.name()
            )
        },
        bytes,
    )
}

/// ‖w − w0‖ / ‖w0‖ (Frobenius), accumulated in f64; NaN when w0 is zero.
fn relative_change<T: Scalar>(w0: &[T], w: &[T]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (a, b) in w0.iter().zip(w) {
        let (a, b) = (a.f64(), b.f64());
        num += (b - a) * (b - a);
        den += a * a;
    }
    if den > 0.0 {
        (num / den).sqrt()
    } else {
        f64::NAN
    }
}
