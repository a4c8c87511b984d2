//! Command-line arguments (clap).

use clap::{Args, Parser, Subcommand};
use richness::param::{Gauge, OptimizerKind, Preset, Role, ScaleChoice};
use std::path::PathBuf;

const ABOUT: &str = "Train wide neural networks anywhere on the richness scale (lazy/NTK at r = 0, rich/μP at r = 1/2) and measure where they sit.";

const LONG_ABOUT: &str = "\
richness: one knob, the richness exponent r (hidden updates ‖Δh‖ = γ₀·n^r), sets every
width-dependent hyperparameter of a wide network. r = 0 trains lazily like a kernel
machine (NTK); r = 1/2 learns features (μP). Multipliers, init scales and per-layer
rates follow from r, up to a gauge that does not change training.

Theory: D. Karkada, \"The lazy (NTK) and rich (μP) regimes: a gentle tutorial\",
arXiv 2404.19719; the project's own account is docs/theory.md.

Exit status: 0 success; 1 a check whose verdict failed; 2 bad input or an error;
3 a training run that diverged.";

#[derive(Parser)]
#[command(name = "richness", version, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
    /// Worker threads for matrix products and parallel work [default: all cores].
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl Cli {
    pub fn threads_or_default(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Print every layer's role, fan-in/out, multiplier, init std, rate, effective
    /// quantities and Yang–Hu (a, b, c) for a parameterization.
    Table(TableArgs),
    /// Train a network from a TOML config (see configs/) with command-line overrides.
    Train(TrainArgs),
    /// A quick tour: train a lazy (ntp) and a rich (mup) network on the embedded
    /// digits and compare them.
    Demo(DemoArgs),
    /// Tangent kernels: empirical and infinite-width NTK/NNGP, linearised
    /// predictions, and experiment T8 (network vs kernel across widths).
    Ntk(crate::cmd::ntk::NtkArgs),
}

/// Where on the richness scale: a preset, or r (or α) with a gauge.
#[derive(Args, Clone, Default)]
pub struct ScaleArgs {
    /// Named parameterization: ntp, ntp-lr, mup, mup-lr, mfp or sp (instead of --richness/--gauge).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<Preset>,
    /// Richness exponent r: ‖Δh‖ = γ₀·n^r (0 = lazy/NTK, 0.5 = μP; stable range [0, 0.5]).
    #[arg(long, short = 'r', value_name = "R", allow_negative_numbers = true)]
    pub richness: Option<f64>,
    /// Width-independent prefactor γ₀ of α = γ₀·n^r [default: 1].
    #[arg(long, value_name = "G")]
    pub gamma0: Option<f64>,
    /// Give α directly (a constant) instead of r.
    #[arg(long, value_name = "A")]
    pub alpha: Option<f64>,
    /// Gauge: mup (Table 1), layerwise (no multipliers) or rescale (model rescaling) [default: mup].
    #[arg(long, value_name = "GAUGE")]
    pub gauge: Option<Gauge>,
    /// Base learning rate η₀ (multiplies every layer's factor) [default: 1].
    #[arg(long = "lr", value_name = "ETA0")]
    pub base_lr: Option<f64>,
    /// Layer roles, comma-separated (read-in, hidden, read-out), overriding position.
    #[arg(long, value_delimiter = ',', value_name = "ROLES")]
    pub roles: Option<Vec<Role>>,
}

impl ScaleArgs {
    /// Apply these flags on top of `base`.
    pub fn apply(&self, base: &ScaleChoice) -> ScaleChoice {
        let mut c = base.clone();
        if self.preset.is_some() || self.richness.is_some() || self.alpha.is_some() {
            c.preset = self.preset;
            c.richness = self.richness;
            c.alpha = self.alpha;
            if self.preset.is_some() {
                c.gauge = None;
            }
        }
        if let Some(g) = self.gauge {
            c.gauge = Some(g);
        }
        if let Some(g) = self.gamma0 {
            c.gamma0 = g;
        }
        if let Some(lr) = self.base_lr {
            c.base_lr = lr;
        }
        if let Some(r) = &self.roles {
            c.roles = Some(r.clone());
        }
        c
    }
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Toml,
}

#[derive(Args)]
#[command(after_help = "Example:\n  richness table --dims 64,1024,1024,10 --activation relu --richness 0.25 --gamma0 1 --gauge mup --optimizer sgd --format json")]
pub struct TableArgs {
    /// Layer sizes: input, hidden widths…, output.
    #[arg(long, value_delimiter = ',', required = true, value_name = "D0,N,…,DL")]
    pub dims: Vec<usize>,
    /// Hidden activation (linear, relu, tanh, gelu, erf); sets the gain shown.
    #[arg(long, default_value = "relu")]
    pub activation: richness::nn::Activation,
    /// Give every layer a bias (shown as extra rows).
    #[arg(long)]
    pub bias: bool,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Optimizer the rates are for: sgd or adam.
    #[arg(long, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Args)]
#[command(after_help = "Examples:
  richness train configs/digits-mup.toml --out runs/mup
  richness train configs/digits-mup.toml --preset ntp --out runs/ntp
  richness train --data synthetic:teacher=mlp,d=16 --width 256 --richness 0.25 --steps 200 --out runs/r025
  richness train configs/digits-mup.toml --set train.batch_size=128 --set optim.momentum=0.9

Files written to --out: config.toml (resolved), parameterization.json/.txt,
metrics.csv, summary.json, weights.safetensors. A diverged run exits with status 3.")]
pub struct TrainArgs {
    /// TOML config (optional: defaults train μP on digits).
    pub config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Start from these weights (safetensors, as written by a previous run).
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    /// Override any config value: --set param.richness=0.25 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Optimizer: sgd or adam.
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    /// Data spec: digits, synthetic:…, npy:X.npy,Y.npy.
    #[arg(long, value_name = "SPEC")]
    pub data: Option<String>,
    /// Hidden width.
    #[arg(long, allow_negative_numbers = true)]
    pub width: Option<usize>,
    /// Number of epochs.
    #[arg(long, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Number of steps (instead of epochs).
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<usize>,
    /// Minibatch size (0 = full batch).
    #[arg(long, allow_negative_numbers = true)]
    pub batch_size: Option<usize>,
    /// Seed of every random stream.
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Precision: f32 or f64.
    #[arg(long)]
    pub dtype: Option<richness::tensor::Dtype>,
    /// Print the resolved config and parameterization, then stop.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Hidden width.
    #[arg(long, default_value_t = 1024)]
    pub width: usize,
    /// Epochs over the 1,297 training digits.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Output folder (one subfolder per run).
    #[arg(long, short, default_value = "out/demo")]
    pub out: PathBuf,
}
