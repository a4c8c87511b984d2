//! Training a GPT (`model.arch = "gpt"`): the per-tensor optimizer, one step at a
//! time ([`GptTrainer`]), and a whole run like [`super::run`]'s.
//!
//! The data are text ([`crate::data::text`]): the embedded Shakespeare corpus unless
//! `data.dataset` names another text, cut into sequences of the model's context.
//! The run writes the same files as any other run (`config.toml`,
//! `parameterization.json`/`.txt`, `summary.json`, `weights.safetensors` under
//! nanoGPT's names, see [`crate::io::save_gpt_weights`]), and `metrics.csv` with
//! perplexities:
//!
//! ```text
//! step,epoch,train_loss,train_ppl,test_loss,test_ppl      ppl = exp(loss), loss in nats per token
//! ```
//!
//! Rates: tensor i trains with η₀·η_i and Adam's ε_i from its row of the
//! parameterization; weight decay acts on the effective tensor (wd·g_i² on the raw
//! one), as for every model ([`crate::optim`]). A tied embedding uses its read-in
//! row's (in the `mup` gauge, the only one that ties, both rows have the same rate).

use super::run::{MetricRow, Outcome, RunOptions, Status};
use super::TrainConfig;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::nn::gpt::{Gpt, GptGrads, GptSpec, GptTrace};
use crate::optim::{OptimConfig, Optimizer};
use crate::param::{attention_scale, Parameterization};
use crate::rng;
use crate::tensor::{Dtype, Scalar};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Steps of a gpt run that names neither `train.steps` nor `train.epochs`.
pub const DEFAULT_STEPS: usize = 200;
/// Test sequences a gpt run evaluates when `data.test_size` is not given (every
/// evaluation is a forward pass over all of them; fewer when the text has fewer).
pub const DEFAULT_TEST_SEQUENCES: usize = 256;

/// `(rate, decay, ε)` of every tensor of `gpt` under `cfg`.
pub fn tensor_hypers<T: Scalar>(gpt: &Gpt<T>, cfg: &OptimConfig) -> Vec<(f64, f64, f64)> {
    let p = &gpt.param;
    (0..gpt.tensors.len())
        .map(|i| {
            let l = &p.layers[i];
            (
                p.base_lr * l.lr,
                cfg.weight_decay * l.multiplier * l.multiplier,
                l.adam_eps.unwrap_or(1e-8),
            )
        })
        .collect()
}

/// One optimizer step at a time on a GPT, with its buffers allocated once.
pub struct GptTrainer<T: Scalar> {
    pub gpt: Gpt<T>,
    pub opt: Optimizer<T>,
    pub cx: Compute,
    pub trace: GptTrace<T>,
    pub grads: GptGrads<T>,
    /// Sequences per batch the trace holds.
    pub capacity: usize,
}

impl<T: Scalar> GptTrainer<T> {
    pub fn new(gpt: Gpt<T>, optim: &OptimConfig, cx: Compute, batch: usize) -> Self {
        let sizes: Vec<usize> = gpt.tensors.iter().map(|t| t.as_slice().len()).collect();
        let opt = Optimizer::for_tensors(optim, &tensor_hypers(&gpt, optim), &sizes);
        let trace = GptTrace::new(&gpt.spec, batch);
        let grads = GptGrads::new(&gpt);
        GptTrainer {
            gpt,
            opt,
            cx,
            trace,
            grads,
            capacity: batch,
        }
    }

    /// Forward, loss and backward on `batch` sequences (`x`, `y`: [batch, T] ids);
    /// returns the loss. Does not update.
    pub fn gradient(&mut self, x: &[u32], y: &[u32], batch: usize) -> f64 {
        self.gpt
            .gradient(&self.cx, x, y, batch, &mut self.trace, &mut self.grads)
    }

    /// One step; returns the batch's loss before the update.
    pub fn step(&mut self, x: &[u32], y: &[u32], batch: usize) -> f64 {
        let loss = self.gradient(x, y, batch);
        let params = self
            .gpt
            .tensors
            .iter_mut()
            .map(|t| t.as_mut_slice())
            .collect();
        let grads = self.grads.tensors.iter().map(|t| t.as_slice()).collect();
        self.opt.step_tensors(&self.cx, params, grads);
        loss
    }

    /// Mean loss over all `x.len() / T` sequences, in chunks of the capacity.
    pub fn evaluate(&mut self, x: &[u32], y: &[u32]) -> f64 {
        let tt = self.gpt.spec.context;
        let total = x.len() / tt;
        let mut start = 0;
        let mut sum = 0.0;
        while start < total {
            let b = self.capacity.min(total - start);
            let r = start * tt..(start + b) * tt;
            sum += self
                .gpt
                .evaluate(&self.cx, &x[r.clone()], &y[r], b, &mut self.trace)
                * b as f64;
            start += b;
        }
        sum / total.max(1) as f64
    }
}

/// A gpt run resolved before training.
pub struct GptPrepared {
    /// The config with every gpt default filled in.
    pub config: TrainConfig,
    pub split: Split,
    pub spec: GptSpec,
    pub param: Parameterization,
    pub c_att: f64,
}

/// Resolve a gpt config: its text data at the model's context, the spec (vocabulary
/// from the data), the scale and c_att.
pub fn prepare(config: &TrainConfig) -> Result<GptPrepared> {
    super::run::validate(config)?;
    if config.ntk.is_some() {
        return Err(Error::config(
            "an [ntk] table (empirical-NTK movement) is not supported for arch `gpt`",
        ));
    }
    let mut data = config.data.for_sequences()?;
    let context = config
        .model
        .context
        .unwrap_or(super::config::GPT_DEFAULTS.3);
    if context == 0 {
        return Err(Error::config("model.context must be positive"));
    }
    let mut split = data.load_with_context(Some(context))?;
    if data.test_size.is_none() {
        // At most the default, and never more than the text has.
        let available = split.test.as_ref().map_or(0, |t| t.len());
        let keep = DEFAULT_TEST_SEQUENCES.min(available);
        split = split.limit(None, Some(keep))?;
        data.test_size = Some(keep);
    }
    let spec = config.model.resolve_gpt(split.train.vocab_size())?;
    let param = spec.resolve(&config.param, config.optim.kind)?;
    let c_att = attention_scale(&param, spec.head_dim, config.param.attention_scale);
    let mut resolved = config.clone();
    resolved.data = data;
    let m = &mut resolved.model;
    m.width = Some(spec.width);
    m.blocks = Some(spec.blocks);
    m.head_dim = Some(spec.head_dim);
    m.context = Some(spec.context);
    m.vocab = Some(spec.vocab);
    m.branch = Some(spec.branch);
    m.gain = Some(spec.gain);
    if resolved.train.epochs.is_none() && resolved.train.steps.is_none() {
        resolved.train.steps = Some(DEFAULT_STEPS);
    }
    Ok(GptPrepared {
        config: resolved,
        split,
        spec,
        param,
        c_att,
    })
}

/// The initial model of a prepared run (its seed's draw, or `init` weights).
pub fn initial<T: Scalar>(p: &GptPrepared, init: Option<&Path>) -> Result<Gpt<T>> {
    let mut g = Gpt::<T>::zeros(&p.spec, p.param.clone(), p.c_att)?;
    g.reinit(p.config.seed);
    if let Some(w) = init {
        crate::io::load_gpt_weights_into(&mut g, w)?;
    }
    Ok(g)
}

/// Write the weights a gpt run starts from (`richness train --save-init`).
pub fn save_init(config: &TrainConfig, init: Option<&Path>, path: &Path) -> Result<()> {
    let p = prepare(config)?;
    match config.dtype {
        Dtype::F32 => crate::io::save_gpt_weights(&initial::<f32>(&p, init)?, path),
        Dtype::F64 => crate::io::save_gpt_weights(&initial::<f64>(&p, init)?, path),
    }
}

/// Train a gpt config (what [`super::run`] does for `model.arch = "gpt"`).
pub fn run(config: &TrainConfig, opts: &RunOptions) -> Result<Outcome> {
    let p = prepare(config)?;
    match config.dtype {
        Dtype::F32 => run_typed::<f32>(&p, opts),
        Dtype::F64 => run_typed::<f64>(&p, opts),
    }
}

fn ids(m: &crate::tensor::Mat<f64>) -> Vec<u32> {
    m.as_slice().iter().map(|&v| v as u32).collect()
}

/// Refuse a run whose weights, optimizer state, trace and data would not fit.
fn check_budget<T: Scalar>(p: &GptPrepared, batch: usize) -> Result<()> {
    let elem = std::mem::size_of::<T>() as u128;
    let slots = match p.config.optim.kind {
        crate::param::OptimizerKind::Adam => 2,
        _ => u128::from(p.config.optim.momentum != 0.0),
    };
    let weights = p.spec.num_params() as u128 * elem * (2 + slots);
    let trace = crate::nn::gpt::trace_bytes(&p.spec, batch, elem as usize);
    let tokens = (p.split.train.x.as_slice().len() as u128) * 2 * 4;
    crate::budget::ensure(
        || {
            format!(
                "training {} with batch {batch} in {}",
                p.spec.describe(),
                T::DTYPE.name()
            )
        },
        weights.saturating_add(trace).saturating_add(tokens),
    )
}

fn row_csv(step: usize, epoch: usize, train: Option<f64>, test: Option<f64>) -> String {
    let o = |v: Option<f64>| v.map(|x| format!("{x:e}")).unwrap_or_default();
    let ppl = |v: Option<f64>| o(v.map(f64::exp));
    format!(
        "{step},{epoch},{},{},{},{}",
        o(train),
        ppl(train),
        o(test),
        ppl(test)
    )
}

/// Training in precision `T` on a prepared gpt run.
pub fn run_typed<T: Scalar>(p: &GptPrepared, opts: &RunOptions) -> Result<Outcome> {
    let start = Instant::now();
    let cfg = &p.config;
    let cx = opts.compute.unwrap_or_else(|| Compute::new(1));
    let tt = p.spec.context;
    let (x, y) = (ids(&p.split.train.x), ids(&p.split.train.y));
    let test = p
        .split
        .test
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(|t| (ids(&t.x), ids(&t.y)));
    let n = x.len() / tt;
    let batch = if cfg.train.batch_size == 0 {
        n
    } else {
        cfg.train.batch_size.min(n)
    };
    check_budget::<T>(p, batch)?;
    let folder = opts
        .out
        .as_deref()
        .map(|d| crate::io::RunFolder::begin(d, opts.overwrite))
        .transpose()?;
    let out_dir: Option<PathBuf> = folder.as_ref().map(|f| f.path().to_path_buf());
    let gpt = initial::<T>(p, opts.init_weights.as_deref())?;
    let init_tensors = gpt.tensors.clone();
    let steps_per_epoch = n.div_ceil(batch);
    let total_steps = match (cfg.train.steps, cfg.train.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => e.saturating_mul(steps_per_epoch),
        (None, None) => DEFAULT_STEPS,
    };
    let eval_every = if cfg.train.eval_every == 0 {
        steps_per_epoch
    } else {
        cfg.train.eval_every
    };
    let mut trainer = GptTrainer::new(gpt, &cfg.optim, cx, batch);
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
                format!(
                    "{}# attention multiplier c_att = {}\n",
                    p.param.to_text(),
                    crate::param::fmt_num(p.c_att)
                )
                .as_bytes(),
            )?;
            let path = dir.join("metrics.csv");
            let f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            let mut w = std::io::BufWriter::new(f);
            writeln!(w, "step,epoch,train_loss,train_ppl,test_loss,test_ppl")
                .map_err(|e| Error::io(&path, e))?;
            Some((w, path))
        }
        None => None,
    };
    let keep_rows = !(opts.metrics_to_file_only && csv.is_some());
    let mut rows = Vec::new();
    let mut emit = |row: MetricRow,
                    csv: &mut Option<(std::io::BufWriter<std::fs::File>, PathBuf)>|
     -> Result<()> {
        if let Some((w, path)) = csv.as_mut() {
            writeln!(
                w,
                "{}",
                row_csv(row.step, row.epoch, row.train_loss, row.test_loss)
            )
            .map_err(|e| Error::io(&*path, e))?;
        }
        if keep_rows {
            rows.push(row);
        }
        Ok(())
    };
    let evaluate = |tr: &mut GptTrainer<T>| test.as_ref().map(|(tx, ty)| tr.evaluate(tx, ty));
    let init_eval = evaluate(&mut trainer);
    emit(
        MetricRow {
            step: 0,
            epoch: 0,
            train_loss: None,
            test_loss: init_eval,
            test_acc: None,
        },
        &mut csv,
    )?;
    let bar = crate::progress::bar(total_steps as u64, "training", opts.progress);
    let mut status = Status::Completed;
    let mut order: Vec<usize> = (0..n).collect();
    let (mut xb, mut yb) = (
        Vec::with_capacity(batch * tt),
        Vec::with_capacity(batch * tt),
    );
    let (mut last_train, mut last_eval) = (None, init_eval);
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
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&x[i * tt..(i + 1) * tt]);
                yb.extend_from_slice(&y[i * tt..(i + 1) * tt]);
            }
            let loss = trainer.step(&xb, &yb, chunk.len());
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
            let eval = if (step % eval_every == 0 || step == total_steps) && diverged.is_none() {
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
                    test_loss: eval,
                    test_acc: None,
                },
                &mut csv,
            )?;
            last_train = Some(loss);
            bar.inc(1);
            if step % 10 == 0 {
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
    let outcome = Outcome {
        status: status.clone(),
        steps: step,
        final_train_loss: last_train,
        final_test_loss: last_eval,
        final_test_acc: None,
        seconds: start.elapsed().as_secs_f64(),
        threads: cx.threads,
        dtype: T::DTYPE,
        num_params: trainer.gpt.num_params(),
        parameterization: p.param.clone(),
        metrics: rows,
        weight_change: init_tensors
            .iter()
            .zip(&trainer.gpt.tensors)
            .map(|(w0, w)| {
                let d = crate::tensor::dist(w0.as_slice(), w.as_slice());
                let n0 = w0.norm();
                if n0 > 0.0 {
                    d / n0
                } else {
                    f64::NAN
                }
            })
            .collect(),
        ntk: Vec::new(),
    };
    if let Some(dir) = &out_dir {
        if status == Status::Completed {
            crate::io::save_gpt_weights(&trainer.gpt, dir.join("weights.safetensors"))?;
        }
        let mut summary = serde_json::to_value(&outcome).expect("json");
        summary["seconds"] = serde_json::json!((outcome.seconds * 1000.0).round() / 1000.0);
        summary["attention_scale"] = serde_json::json!(p.c_att);
        summary["final_train_ppl"] = serde_json::json!(outcome.final_train_loss.map(f64::exp));
        summary["final_test_ppl"] = serde_json::json!(outcome.final_test_loss.map(f64::exp));
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
