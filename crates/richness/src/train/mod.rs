//! Training: a config, a step function, and a run that writes its results.
//!
//! [`Trainer::step`] is one optimizer step on one batch (forward, loss, backward,
//! update) with no allocation. [`run`] drives a whole training from a
//! [`TrainConfig`] and writes to an output folder:
//!
//! | file | contents |
//! |---|---|
//! | `config.toml` | the fully resolved config (every default filled in, dims resolved) |
//! | `parameterization.json`, `.txt` | the per-layer scaling, as `richness table` prints it |
//! | `metrics.csv` | `step,epoch,train_loss,test_loss,test_acc`: one row per step (train loss of that step's batch, before the update) plus evaluation rows (step 0 = init); `test_acc` only for classification data (integer labels), empty for regression |
//! | `summary.json` | status (`completed` / `diverged`), final metrics, timing |
//! | `weights.safetensors` | final raw weights (not written for a diverged run) |
//! | `ntk_movement.csv` | with an `[ntk]` table only: empirical-NTK movement (see [`crate::kernel::movement`]) |
//!
//! Reproducibility: the same config, seed and thread count give bitwise-identical
//! metrics and weights (all randomness comes from [`crate::rng`] streams).

use crate::data::{DataConfig, Split};
use crate::error::{Error, Result};
use crate::files::friendly;
pub use crate::files::{one_line, toml_error};
use crate::linalg::Compute;
use crate::nn::{accuracy, Activation, Arch, BiasInit, Grads, Loss, Model, Trace};
use crate::optim::{OptimConfig, Optimizer};
use crate::param::{Parameterization, ScaleChoice};
use crate::rng;
use crate::tensor::{Dtype, Mat, Scalar};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The `[model]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `mlp` (any depth), `linear3` (the tutorial's 3-layer linear net), `mlp3`
    /// (the same with ReLU) or `myrtle5` (a 4-conv + linear CNN; `width` = channels).
    #[serde(default = "default_arch")]
    pub arch: String,
    /// Hidden width n (every hidden layer), when `dims` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// Number of weight layers L (default 3), when `dims` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// All layer sizes [input, hidden…, output]; input and output must match the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<Vec<usize>>,
    /// Hidden activation (default relu; `linear3` forces linear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// Activation gain c_φ (default: the activation's variance-preserving gain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gain: Option<f64>,
    /// Biases on every layer (default false).
    #[serde(default)]
    pub bias: bool,
    /// `zero` (default) or `normal` (σ_b from the parameterization).
    #[serde(default)]
    pub bias_init: BiasInit,
}

fn default_arch() -> String {
    "mlp".into()
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: default_arch(),
            width: None,
            depth: None,
            dims: None,
            activation: None,
            gain: None,
            bias: false,
            bias_init: BiasInit::Zero,
        }
    }
}

/// Default hidden width when neither `width` nor `dims` is given.
pub const DEFAULT_WIDTH: usize = 512;

impl ModelConfig {
    /// The architecture for data with `n_in` inputs and `n_out` outputs.
    pub fn resolve(&self, n_in: usize, n_out: usize) -> Result<Arch> {
        self.resolve_for(n_in, n_out, None)
    }

    /// The architecture for data with `n_in` inputs, `n_out` outputs and, for
    /// convolutional architectures, images of shape [C, H, W].
    pub fn resolve_for(
        &self,
        n_in: usize,
        n_out: usize,
        image: Option<[usize; 3]>,
    ) -> Result<Arch> {
        if self.arch == "myrtle5" {
            let image = image.ok_or_else(|| {
                Error::config("arch `myrtle5` needs image data (digits, mnist, fashion-mnist, cifar10, or npy with [N, C, H, W] inputs)")
            })?;
            if self.dims.is_some() || self.depth.is_some_and(|d| d != 5) {
                return Err(Error::config(
                    "arch `myrtle5` has 5 weight layers: give its channel count as `width`",
                ));
            }
            if self.activation.is_some_and(|a| a != Activation::Relu) {
                return Err(Error::config("arch `myrtle5` uses ReLU"));
            }
            let width = self.width.unwrap_or(128);
            if width == 0 {
                return Err(Error::config("width must be positive"));
            }
            let mut arch = Arch::myrtle5(image, width, n_out);
            if arch.dims[0] != n_in {
                return Err(Error::Shape(format!(
                    "image shape {image:?} does not match {n_in} input features"
                )));
            }
            arch.gain = self.gain.unwrap_or(arch.gain);
            arch.bias = self.bias;
            arch.bias_init = self.bias_init;
            arch.validate()?;
            return Ok(arch);
        }
        let (activation, fixed_depth) = match self.arch.as_str() {
            "mlp" => (self.activation.unwrap_or(Activation::Relu), None),
            "linear3" => {
                if self.activation.is_some_and(|a| a != Activation::Linear) {
                    return Err(Error::config(
                        "arch `linear3` is linear: drop `activation` or use arch `mlp`",
                    ));
                }
                (Activation::Linear, Some(3))
            }
            "mlp3" => (self.activation.unwrap_or(Activation::Relu), Some(3)),
            a => {
                return Err(Error::config(format!(
                    "unknown arch `{a}` (expected mlp, linear3, mlp3 or myrtle5)"
                )))
            }
        };
        let dims = match &self.dims {
            Some(d) => {
                if self.width.is_some() || self.depth.is_some() {
                    return Err(Error::config("give `dims`, or `width`/`depth`, not both"));
                }
                if d.len() < 3 {
                    return Err(Error::config(format!(
                        "dims {d:?}: need input, at least one hidden width, output"
                    )));
                }
                if let Some(k) = fixed_depth {
                    if d.len() != k + 1 {
                        return Err(Error::config(format!(
                            "arch `{}` has {k} weight layers; dims {d:?} has {}",
                            self.arch,
                            d.len() - 1
                        )));
                    }
                }
                if d[0] != n_in || *d.last().unwrap() != n_out {
                    return Err(Error::Shape(format!(
                        "dims {d:?} do not fit the data: it has {n_in} inputs and {n_out} outputs"
                    )));
                }
                d.clone()
            }
            None => {
                let width = self.width.unwrap_or(DEFAULT_WIDTH);
                let depth = match (fixed_depth, self.depth) {
                    (Some(k), Some(d)) if d != k => {
                        return Err(Error::config(format!(
                            "arch `{}` has depth {k}, not {d}",
                            self.arch
                        )))
                    }
                    (Some(k), _) => k,
                    (None, d) => d.unwrap_or(3),
                };
                if depth < 2 {
                    return Err(Error::config(format!(
                        "depth must be at least 2 weight layers, got {depth}"
                    )));
                }
                if width == 0 {
                    return Err(Error::config("width must be positive"));
                }
                let mut dims = vec![n_in];
                dims.extend(std::iter::repeat(width).take(depth - 1));
                dims.push(n_out);
                dims
            }
        };
        let arch = Arch {
            conv: None,
            residual: None,
            dims,
            activation,
            gain: self.gain.unwrap_or(activation.default_gain()),
            bias: self.bias,
            bias_init: self.bias_init,
        };
        arch.validate()?;
        Ok(arch)
    }
}

/// The `[train]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// Passes over the training set (default 10 when `steps` is not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Total optimizer steps (instead of `epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Minibatch size; 0 = full batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Drop the order shuffle (default: reshuffle every epoch).
    #[serde(default = "yes")]
    pub shuffle: bool,
    #[serde(default)]
    pub loss: Loss,
    /// Evaluate on the test set every this many steps (0 = at the end of each epoch).
    #[serde(default)]
    pub eval_every: usize,
    /// A batch loss above this (or NaN/Inf) stops the run as diverged.
    #[serde(default = "default_diverge")]
    pub diverge_above: f64,
}

fn default_batch() -> usize {
    64
}
fn yes() -> bool {
    true
}
fn default_diverge() -> f64 {
    1e6
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            epochs: None,
            steps: None,
            batch_size: default_batch(),
            shuffle: true,
            loss: Loss::Mse,
            eval_every: 0,
            diverge_above: default_diverge(),
        }
    }
}

/// A whole training run, as read from TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds every random stream of the run (init, data order).
    #[serde(default)]
    pub seed: u64,
    /// `f32` (default) or `f64`.
    #[serde(default)]
    pub dtype: Dtype,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub param: ScaleChoice,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub train: LoopConfig,
    /// Record empirical-NTK movement (`[ntk] every = N, points = M`); absent = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntk: Option<crate::kernel::movement::NtkTrackConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 0,
            dtype: Dtype::F32,
            model: ModelConfig::default(),
            param: ScaleChoice::default(),
            optim: OptimConfig::default(),
            data: DataConfig::default(),
            train: LoopConfig::default(),
            ntk: None,
        }
    }
}

impl TrainConfig {
    /// Parse TOML; unknown keys and bad values are one-line errors naming the key.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::config(toml_error(origin, text, &e)))
    }

    /// Read a TOML config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::files::read_config_text(path)?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    /// Set one value by dotted key (`param.richness=0.25`, `train.epochs=3`), as the
    /// command line's `--set` does. The value is parsed as TOML (strings may be bare).
    ///
    /// Like the command-line flags, an override replaces the keys it is an
    /// alternative to (see [`clear_alternatives`](Self::clear_alternatives)): on a
    /// config with `preset = "mup"`, `param.richness=0.25` drops the preset.
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| Error::config(format!("--set expects key=value, got `{assignment}`")))?;
        let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
            Ok(t) => t["v"].clone(),
            Err(_) => toml::Value::String(value.to_string()),
        };
        let mut next = self.clone();
        next.clear_alternatives(key.trim());
        next.set_value(key, parsed, &format!("--set {assignment}"))?;
        *self = next;
        Ok(())
    }

    /// Forget the keys that `key` is an alternative to, so that setting it
    /// overrides them instead of conflicting with them:
    ///
    /// | setting | clears |
    /// |---|---|
    /// | `param.…` | as [`ScaleChoice::clear_alternatives`] |
    /// | `model.width`, `model.depth` | `model.dims` |
    /// | `model.dims` | `model.width`, `model.depth` |
    /// | `train.epochs` / `train.steps` | the other one |
    pub fn clear_alternatives(&mut self, key: &str) {
        if let Some(field) = key.strip_prefix("param.") {
            self.param.clear_alternatives(field);
            return;
        }
        match key {
            "model.width" | "model.depth" => self.model.dims = None,
            "model.dims" => (self.model.width, self.model.depth) = (None, None),
            "train.epochs" => self.train.steps = None,
            "train.steps" => self.train.epochs = None,
            _ => {}
        }
    }

    /// Set one value by dotted key to a TOML value (what [`set`](Self::set) does
    /// after parsing). `origin` names the assignment in error messages.
    pub fn set_value(&mut self, key: &str, value: toml::Value, origin: &str) -> Result<()> {
        let mut doc: toml::Table = toml::from_str(&self.to_toml()).expect("round trip");
        let parts: Vec<&str> = key.trim().split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Error::config(format!(
                "{origin}: `{key}` is not a dotted config key"
            )));
        }
        let mut table = &mut doc;
        for p in &parts[..parts.len() - 1] {
            table = table
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .ok_or_else(|| Error::config(format!("{origin}: `{p}` is not a table")))?;
        }
        table.insert(parts.last().unwrap().to_string(), value);
        // The document is our re-serialisation, which the user never saw: errors
        // name the assignment (`origin`), not a line of that text.
        *self = toml::from_str(&toml::to_string(&doc).expect("toml"))
            .map_err(|e| Error::config(format!("{origin}: {}", friendly(e.message()))))?;
        Ok(())
    }
}

/// One optimizer step at a time, with every buffer allocated up front.
pub struct Trainer<T: Scalar> {
    pub model: Model<T>,
    /// Per-layer (η_w, wd_w, η_b, wd_b) when plain SGD is fused into backward.
    fused: Option<Vec<(T, T, T, T)>>,
    pub opt: Optimizer<T>,
    pub cx: Compute,
    pub loss: Loss,
    pub trace: Trace<T>,
    pub grads: Grads<T>,
    xb: Mat<T>,
    yb: Mat<T>,
}

impl<T: Scalar> Trainer<T> {
    /// A trainer for batches of up to `batch_capacity` rows.
    pub fn new(
        model: Model<T>,
        optim: &OptimConfig,
        cx: Compute,
        loss: Loss,
        batch_capacity: usize,
    ) -> Self {
        let opt = Optimizer::new(&model, optim);
        let fused = opt.fusable_sgd(&model);
        let trace = Trace::new(&model, batch_capacity);
        let grads = Grads::new(&model);
        let xb = Mat::zeros(batch_capacity, model.input_dim());
        let yb = Mat::zeros(batch_capacity, model.output_dim());
        Trainer {
            model,
            fused,
            opt,
            cx,
            loss,
            trace,
            grads,
            xb,
            yb,
        }
    }

    /// Forward + loss + backward on `batch` rows, filling `trace` and `grads`;
    /// returns the loss. Does not update.
    pub fn gradient(&mut self, x: &[T], y: &[T], batch: usize) -> f64 {
        self.model.forward(&self.cx, x, batch, &mut self.trace);
        let k = self.model.output_dim();
        let out = self.trace.z.last().unwrap().as_slice();
        let dout = self.trace.dz.last_mut().unwrap().as_mut_slice();
        let loss = self.loss.value_and_grad(out, y, batch, k, Some(dout));
        self.model
            .backward(&self.cx, &mut self.trace, &mut self.grads, false);
        loss
    }

    /// One optimizer step on `batch` rows of `x`, `y`; returns the batch loss
    /// before the update. Plain SGD takes the fused path (the update happens inside
    /// the backward pass, so `grads` is not filled); use [`gradient`](Self::gradient)
    /// when the gradients themselves are wanted.
    pub fn step(&mut self, x: &[T], y: &[T], batch: usize) -> f64 {
        match &self.fused {
            Some(rates) => {
                self.model.forward(&self.cx, x, batch, &mut self.trace);
                let k = self.model.output_dim();
                let out = self.trace.z.last().unwrap().as_slice();
                let dout = self.trace.dz.last_mut().unwrap().as_mut_slice();
                let loss = self.loss.value_and_grad(out, y, batch, k, Some(dout));
                self.model
                    .backward_sgd_update(&self.cx, &mut self.trace, rates);
                self.opt.count_step();
                loss
            }
            None => {
                let loss = self.gradient(x, y, batch);
                self.opt.step(&self.cx, &mut self.model, &self.grads);
                loss
            }
        }
    }

    /// Switch the fused SGD path off (the step then fills `grads` every time).
    pub fn unfused(mut self) -> Self {
        self.fused = None;
        self
    }

    /// One step on the rows `idx` of (`x`, `y`), gathered into the batch buffers.
    pub fn step_rows(&mut self, x: &Mat<T>, y: &Mat<T>, idx: &[usize]) -> f64 {
        let b = idx.len();
        self.xb.set_rows(b);
        self.yb.set_rows(b);
        for (r, &i) in idx.iter().enumerate() {
            self.xb.row_mut(r).copy_from_slice(x.row(i));
            self.yb.row_mut(r).copy_from_slice(y.row(i));
        }
        let (xb, yb) = (std::mem::take(&mut self.xb), std::mem::take(&mut self.yb));
        let loss = self.step(xb.as_slice(), yb.as_slice(), b);
        self.xb = xb;
        self.yb = yb;
        loss
    }

    /// Mean loss and accuracy on a whole set, in chunks of the batch capacity.
    pub fn evaluate(&mut self, x: &Mat<T>, y: &Mat<T>) -> (f64, f64) {
        let k = self.model.output_dim();
        let cap = self.trace.capacity();
        let (mut loss, mut hits) = (0.0, 0.0);
        let mut start = 0;
        while start < x.rows() {
            let b = cap.min(x.rows() - start);
            self.model.forward(
                &self.cx,
                &x.as_slice()[start * x.cols()..(start + b) * x.cols()],
                b,
                &mut self.trace,
            );
            let ys = &y.as_slice()[start * k..(start + b) * k];
            let out = self.trace.output().as_slice();
            loss += self.loss.value_and_grad(out, ys, b, k, None) * b as f64;
            hits += accuracy(out, ys, b, k) * b as f64;
            start += b;
        }
        let n = x.rows().max(1) as f64;
        (loss / n, hits / n)
    }
}

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
    /// Every metrics row (also in `metrics.csv`).
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
fn validate(config: &TrainConfig) -> Result<()> {
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
    Ok(())
}

/// [`prepare`] with the data already loaded (`split` must be `config.data.load()`;
/// sweeps load each distinct `[data]` table once and hand out copies).
pub fn prepare_with_data(config: &TrainConfig, split: Split) -> Result<Prepared> {
    validate(config)?;
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
        (None, Some(e)) => e * steps_per_epoch,
        (None, None) => 10 * steps_per_epoch,
    };
    let eval_every = if cfg.train.eval_every == 0 {
        steps_per_epoch
    } else {
        cfg.train.eval_every
    };
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
    let mut emit = |row: MetricRow,
                    csv: &mut Option<(std::io::BufWriter<std::fs::File>, PathBuf)>|
     -> Result<()> {
        if let Some((w, path)) = csv.as_mut() {
            writeln!(w, "{}", row.csv()).map_err(|e| Error::io(&*path, e))?;
        }
        rows.push(row);
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
    let mut bytes = crate::budget::training_bytes(&p.arch, elem, batch, slots, p.param.center);
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
                crate::budget::trace_values(&p.arch, t.points.min(256))
                    .saturating_mul(elem as u128 * 2),
            );
    }
    crate::budget::ensure(
        || {
            format!(
                "training {} with batch {batch} in {}",
                crate::budget::describe(&p.arch),
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
