//! The config schema (`[model]`, `[train]`, the whole run), TOML and `--set`.

use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::files::{friendly, toml_error};
use crate::nn::{Activation, Arch, BiasInit, Branch, Family, Loss, Norm, ResidualSpec};
use crate::optim::OptimConfig;
use crate::param::ScaleChoice;
use crate::tensor::Dtype;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `[model]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `mlp` (any depth), `linear3` (the tutorial's 3-layer linear net), `mlp3`
    /// (the same with ReLU), `resmlp` (pre-activation residual MLP: `blocks`, `norm`,
    /// `branch`) or `myrtle5` (a 4-conv + linear CNN; `width` = channels).
    #[serde(default)]
    pub arch: Family,
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
    /// resmlp: number of residual blocks B (default 2); the network has B + 2
    /// weight layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<usize>,
    /// resmlp: `none` (default) or `layer` (LayerNorm before every activation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<Norm>,
    /// resmlp: the branch scale β, `one` (default) or `sqrt-depth` (1/√B); gpt: `one`
    /// or `sqrt-depth` (1/√(2B), one factor per branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<Branch>,
    /// gpt: head dimension d_h (default 16; it must divide the width).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// gpt: context length T (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<usize>,
    /// gpt: vocabulary size V (default: the data's; given, it must equal it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<usize>,
    /// gpt: tie the read-out to the token embedding (`mup` gauge only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tie: bool,
    /// gpt: zero-initialised query rows of every c_attn.
    #[serde(default, skip_serializing_if = "is_false")]
    pub zero_query: bool,
    /// gpt: zero-initialised read-out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub zero_readout: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a command other than `train` and `table` refuses arch `gpt`.
pub const GPT_ONLY_TRAIN: &str = "arch `gpt` is a sequence model: only `richness train` and `richness table` build it so far (check, coord, sweep, transfer and ntk do not)";

/// gpt defaults: width, blocks, head dimension, context.
pub const GPT_DEFAULTS: (usize, usize, usize, usize) = (256, 2, 16, 64);

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Family::Mlp,
            width: None,
            depth: None,
            dims: None,
            activation: None,
            gain: None,
            bias: false,
            bias_init: BiasInit::Zero,
            blocks: None,
            norm: None,
            branch: None,
            head_dim: None,
            context: None,
            vocab: None,
            tie: false,
            zero_query: false,
            zero_readout: false,
        }
    }
}

/// Default hidden width when neither `width` nor `dims` is given.
pub const DEFAULT_WIDTH: usize = 512;

impl ModelConfig {
    /// Keys of arch `gpt` on another architecture are an error.
    fn refuse_gpt_keys(&self) -> Result<()> {
        let given: Vec<&str> = [
            ("head_dim", self.head_dim.is_some()),
            ("context", self.context.is_some()),
            ("vocab", self.vocab.is_some()),
            ("tie", self.tie),
            ("zero_query", self.zero_query),
            ("zero_readout", self.zero_readout),
        ]
        .into_iter()
        .filter_map(|(k, g)| g.then_some(k))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(Error::config(format!(
            "model.{} {} for arch `gpt`, not `{}`",
            given.join(", model."),
            if given.len() == 1 { "is" } else { "are" },
            self.arch
        )))
    }

    /// The GPT these keys give (arch `gpt`), for data with a vocabulary of
    /// `data_vocab` tokens (`None`: `model.vocab` must be given). Keys of the other
    /// architectures are refused in one line.
    pub fn resolve_gpt(&self, data_vocab: Option<usize>) -> Result<crate::nn::gpt::GptSpec> {
        if self.arch != Family::Gpt {
            return Err(Error::config(format!("arch `{}` is not a gpt", self.arch)));
        }
        let others: Vec<&str> = [
            ("depth", self.depth.is_some()),
            ("dims", self.dims.is_some()),
            ("activation", self.activation.is_some()),
            ("bias", self.bias),
            ("bias_init", self.bias_init != BiasInit::Zero),
            ("norm", self.norm.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, g)| g.then_some(k))
        .collect();
        if !others.is_empty() {
            return Err(Error::config(format!(
                "model.{} {} not for arch `gpt` (its keys: width, blocks, head_dim, context, vocab, tie, zero_query, zero_readout, branch, gain)",
                others.join(", model."),
                if others.len() == 1 { "is" } else { "are" },
            )));
        }
        let (w, b, d, t) = GPT_DEFAULTS;
        let vocab = match (self.vocab, data_vocab) {
            (Some(v), Some(d)) if v != d => {
                return Err(Error::config(format!(
                    "model.vocab = {v} but the data's vocabulary has {d} tokens"
                )))
            }
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => {
                return Err(Error::config(
                    "give model.vocab (the vocabulary size): there is no data to take it from",
                ))
            }
        };
        let spec = crate::nn::gpt::GptSpec {
            width: self.width.unwrap_or(w),
            blocks: self.blocks.unwrap_or(b),
            head_dim: self.head_dim.unwrap_or(d),
            context: self.context.unwrap_or(t),
            vocab,
            tie: self.tie,
            zero_query: self.zero_query,
            zero_readout: self.zero_readout,
            branch: self.branch.unwrap_or(Branch::One),
            gain: self
                .gain
                .unwrap_or(crate::nn::Activation::Gelu.default_gain()),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The architecture these keys give on their own, from `dims` (what `table` and
    /// `ntk empirical --dims` build): input and output sizes are dims' first and last.
    pub fn resolve_dims(&self) -> Result<Arch> {
        let dims = self.dims.as_ref().ok_or_else(|| {
            Error::config("give the layer sizes (dims: input, hidden widths…, output)")
        })?;
        let (Some(&n_in), Some(&n_out)) = (dims.first(), dims.last()) else {
            return Err(Error::config("dims is empty"));
        };
        self.resolve(n_in, n_out)
    }

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
        if self.arch == Family::Gpt {
            return Err(Error::config(GPT_ONLY_TRAIN));
        }
        self.refuse_gpt_keys()?;
        if self.arch != Family::Resmlp
            && (self.blocks.is_some() || self.norm.is_some() || self.branch.is_some())
        {
            return Err(Error::config(format!(
                "`blocks`, `norm` and `branch` are for arch `resmlp`, not `{}`",
                self.arch
            )));
        }
        if self.arch == Family::Myrtle5 {
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
        // Before any list of layers is built from them (a depth of 10⁸ was 4.8 GB).
        crate::counts::DEPTH.check_opt("model.depth", self.depth)?;
        crate::counts::BLOCKS.check_opt("model.blocks", self.blocks)?;
        if let Some(d) = &self.dims {
            crate::counts::DEPTH.check_named(
                "the weight layers of dims",
                d.len().saturating_sub(1).max(1),
            )?;
        }
        let residual = (self.arch == Family::Resmlp).then(|| ResidualSpec {
            blocks: self.blocks.unwrap_or(2),
            norm: self.norm.unwrap_or(Norm::None),
            branch: self.branch.unwrap_or(Branch::One),
        });
        if residual.is_some_and(|r| r.blocks == 0) {
            return Err(Error::config(
                "resmlp needs at least one block (blocks ≥ 1)",
            ));
        }
        let (activation, fixed_depth) = match self.arch {
            Family::Mlp => (self.activation.unwrap_or(Activation::Relu), None),
            Family::Resmlp => (
                self.activation.unwrap_or(Activation::Relu),
                residual.map(|r| r.blocks + 2),
            ),
            Family::Linear3 => {
                if self.activation.is_some_and(|a| a != Activation::Linear) {
                    return Err(Error::config(
                        "arch `linear3` is linear: drop `activation` or use arch `mlp`",
                    ));
                }
                (Activation::Linear, Some(3))
            }
            Family::Mlp3 => (self.activation.unwrap_or(Activation::Relu), Some(3)),
            Family::Myrtle5 | Family::Gpt => unreachable!("handled above"),
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
            residual,
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
