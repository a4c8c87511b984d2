//! `richness ntk`: empirical and infinite-width tangent kernels, linearised
//! predictions, and experiment T8. Parsing and printing only; the work is in
//! `richness::kernel`.

use crate::args::{num, ScaleArgs};
use crate::Exit;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use richness::data::npy::read_npy;
use richness::io::save_mat_npy;
use richness::kernel::empirical::{empirical_ntk, NtkOptions, Outputs};
use richness::kernel::infinite::{InfiniteMlp, Method, Rule};
use richness::kernel::regression::{eigenvalues, Horizon, LinearisedMse};
use richness::linalg::Compute;
use richness::nn::{Activation, Arch, Model};
use richness::param::{Gauge, OptimizerKind, Parameterization, ScaleChoice};
use richness::reproduce::t8::{run_compare, CompareConfig, SMALL_MOVEMENT};
use richness::tensor::{Dtype, Mat, Scalar};
use richness::verdict::Verdict;
use std::path::{Path, PathBuf};
use std::time::Instant;

const NTK_ABOUT: &str = "\
Tangent kernels (theory.md §5). The kernel is, for output u,

  K_u(x, x') = Σ_ℓ η_ℓ ⟨∂f_u(x)/∂W_ℓ, ∂f_u(x')/∂W_ℓ⟩   (+ biases)

over the raw weights, with η_ℓ the parameterization's per-layer rate factors (the
base rate η₀ excluded): the kernel that governs SGD, gauge-invariant, and at init
independent of r. Kernels are written as .npy (float64). See docs/ntk.md.";

#[derive(Args)]
#[command(long_about = NTK_ABOUT)]
#[command(after_help = "Examples:
  richness ntk empirical --dims 64,512,512,1 --activation relu --preset mup --init-weights W.safetensors --x X.npy --out K.npy
  richness ntk empirical --init-weights runs/mup/weights.safetensors --x X.npy --x2 X2.npy --output each --out K.npy
  richness ntk infinite --depth 3 --activation relu --x X.npy --out K.npy
  richness ntk infinite --depth 3 --activation relu --x X.npy --get nngp --out S.npy
  richness ntk predict --k-train K.npy --y Y.npy --k-test KX.npy --steps 500 --lr 0.5 --out P.npy
  richness ntk compare --out out/t8
  richness train configs/digits-ntp.toml --set ntk.every=10 --set ntk.points=128 --out runs/ntp   (ntk_movement.csv)")]
pub struct NtkArgs {
    #[command(subcommand)]
    pub cmd: NtkCommand,
}

#[derive(Subcommand)]
pub enum NtkCommand {
    /// Empirical NTK of an MLP (layerwise Gram factorisation) or a Myrtle-5 checkpoint (per-example gradients), blockwise → .npy.
    Empirical(EmpiricalArgs),
    /// Infinite-width NTK (or NNGP) of an MLP on the richness scale → .npy.
    Infinite(InfiniteArgs),
    /// Linearised network / kernel regression from kernel files → predictions .npy.
    Predict(PredictArgs),
    /// Experiment T8: trained networks against kernel predictions across widths and r.
    Compare(CompareArgs),
}

#[derive(Args)]
#[command(
    after_help = "The model is given by --dims/--activation/--bias and the scale flags (default: μP,
r = 1/2, gauge mup), or read from the metadata of --init-weights when --dims is
omitted (the only way to give a Myrtle-5 CNN). Without --init-weights the weights
are a fresh init from --seed.

Output: K.npy with shape [N1, N2] (or [k, N1, N2] for --output each), float64;
K[i, j] = Σ_ℓ η_ℓ ⟨∂f(x_i)/∂W_ℓ, ∂f(x2_j)/∂W_ℓ⟩ (+ biases), base rate excluded.

Examples:
  richness ntk empirical --dims 64,512,512,1 --activation relu --preset mup --init-weights W.safetensors --x X.npy --out K.npy
  richness ntk empirical --dims 64,1024,1024,10 --richness 0 --seed 3 --x X.npy --output 2 --out K2.npy --eigenvalues eig.npy"
)]
pub struct EmpiricalArgs {
    /// Layer sizes: input, hidden widths…, output (default: from --init-weights' metadata).
    #[arg(long, value_delimiter = ',', value_name = "D0,N,…,DL")]
    pub dims: Option<Vec<usize>>,
    /// Architecture of --dims: mlp or resmlp (then dims lists B + 3 sizes) [default: mlp].
    #[arg(long, value_name = "ARCH", requires = "dims")]
    pub arch: Option<richness::nn::Family>,
    #[command(flatten)]
    pub residual: crate::args::ResidualArgs,
    /// Hidden activation: linear, relu, tanh, gelu, erf.
    #[arg(long, default_value = "relu")]
    pub activation: Activation,
    /// Activation gain c_φ [default: the activation's variance-preserving gain].
    #[arg(long, value_name = "C", allow_hyphen_values = true, value_parser = num::positive)]
    pub gain: Option<f64>,
    /// Every layer has a bias.
    #[arg(long)]
    pub bias: bool,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Raw weights (safetensors, as `richness train` writes them).
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    /// Seed of a fresh init (without --init-weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Inputs [N1, d] (.npy, float32 or float64).
    #[arg(long, value_name = "X.npy")]
    pub x: PathBuf,
    /// Second inputs [N2, d] [default: --x, computing each symmetric pair once].
    #[arg(long, value_name = "X2.npy")]
    pub x2: Option<PathBuf>,
    /// Output file (.npy, float64).
    #[arg(long, short, value_name = "K.npy")]
    pub out: PathBuf,
    /// Which kernel of a vector output: mean (of the per-output kernels), sum (k × mean,
    /// neural-tangents' trace convention), each, or an index.
    #[arg(long, default_value = "mean", value_name = "mean|sum|each|INDEX")]
    pub output: Outputs,
    /// Rows per block of each input set (bounds memory; the kernel is the same up to rounding).
    #[arg(long, default_value_t = 256, value_parser = richness::counts::cli::kernel_block)]
    pub block: usize,
    /// Precision of the network's arithmetic (the kernel is accumulated and saved in f64).
    #[arg(long, default_value = "f64")]
    pub dtype: Dtype,
    /// Also save the kernel's eigenvalues, descending (square kernels only).
    #[arg(long, value_name = "FILE")]
    pub eigenvalues: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Get {
    Ntk,
    Nngp,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum BiasInitChoice {
    Zero,
    Normal,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum QuadChoice {
    /// Composite Gauss–Legendre split at kinks (accurate; default).
    Piecewise,
    /// Gauss–Hermite (faster, less accurate for steep activations).
    Hermite,
}

#[derive(Args)]
#[command(
    after_help = "The network is on the richness scale (effective init variance 1/d, read-out
1/(α²d); effective rates α²/d, read-out 1/d), with the activation's gain. The NTK
does not depend on α (hence not on r or the width); the NNGP (the output's
covariance at init) carries the read-out's 1/α². --depth is the number of weight
layers L (theory.md §5). Closed forms for linear, relu, erf; quadrature for tanh, gelu.

Examples:
  richness ntk infinite --depth 3 --activation relu --x X.npy --out K.npy
  richness ntk infinite --depth 4 --activation tanh --bias --x X.npy --x2 X2.npy --get nngp --out S.npy
  richness ntk infinite --arch resmlp --blocks 4 --norm layer --branch sqrt-depth --activation relu --x X.npy --out K.npy"
)]
pub struct InfiniteArgs {
    /// Number of weight layers L (≥ 1; L − 1 hidden layers); for --arch mlp.
    #[arg(long, value_parser = richness::counts::cli::depth, required_unless_present = "arch")]
    pub depth: Option<usize>,
    /// Architecture: mlp (give --depth) or resmlp (--blocks, --norm, --branch) [default: mlp].
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<richness::nn::Family>,
    #[command(flatten)]
    pub residual: crate::args::ResidualArgs,
    /// Hidden activation: linear, relu, tanh, gelu, erf.
    #[arg(long, default_value = "relu")]
    pub activation: Activation,
    /// Activation gain c_φ [default: the activation's variance-preserving gain].
    #[arg(long, value_name = "C", allow_hyphen_values = true, value_parser = num::positive)]
    pub gain: Option<f64>,
    /// Every layer has a bias (trained at the scale's rate).
    #[arg(long)]
    pub bias: bool,
    /// Bias init: zero (the library's default) or normal (the scale's variance).
    #[arg(long, value_enum, default_value = "zero")]
    pub bias_init: BiasInitChoice,
    /// α = γ₀·n^r (changes only the NNGP).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true, value_parser = num::positive)]
    pub alpha: f64,
    /// Inputs [N1, d] (.npy).
    #[arg(long, value_name = "X.npy")]
    pub x: PathBuf,
    /// Second inputs [N2, d] [default: --x].
    #[arg(long, value_name = "X2.npy")]
    pub x2: Option<PathBuf>,
    /// Which kernel.
    #[arg(long, value_enum, default_value = "ntk")]
    pub get: Get,
    /// Output file (.npy, float64).
    #[arg(long, short, value_name = "K.npy")]
    pub out: PathBuf,
    /// Quadrature rule for tanh and gelu.
    #[arg(long, value_enum, default_value = "piecewise")]
    pub quadrature: QuadChoice,
    /// Nodes of the quadrature rule (per piece for piecewise), 1 to 1000 [default: 16 piecewise, 32 hermite].
    #[arg(long, value_parser = quad_nodes)]
    pub nodes: Option<usize>,
    /// Use quadrature even where a closed form exists (a check).
    #[arg(long)]
    pub force_quadrature: bool,
    /// Also save the kernel's eigenvalues, descending (square kernels only).
    #[arg(long, value_name = "FILE")]
    pub eigenvalues: Option<PathBuf>,
}

#[derive(Args)]
#[command(
    after_help = "Under MSE as the library trains it (L = Σ(f − y)²/(B·k)), with the kernel held
fixed, predictions follow f_t(x) = f0(x) + K(x,X) V φ_t(Λ) Vᵀ (y − f0(X)) with
K(X,X) = VΛVᵀ, c = 2η₀/(B·k), m = λ + ridge and φ = (1 − e^{−c·m·t})/m (--time),
(1 − (1 − c·m)^s)/m (--steps: exact gradient descent) or 1/m (default: t = ∞,
kernel ridge regression). Without --f0 the network is centred (f0 = 0).

Example:
  richness ntk predict --k-train K.npy --y Y.npy --f0 F0.npy --k-test KX.npy --f0-test F0X.npy --steps 200 --lr 0.5 --out P.npy"
)]
pub struct PredictArgs {
    /// Train kernel K(X, X) [B, B].
    #[arg(long, value_name = "K.npy")]
    pub k_train: PathBuf,
    /// Targets [B] or [B, k].
    #[arg(long, value_name = "Y.npy")]
    pub y: PathBuf,
    /// Network outputs at init on the training points [B, k] [default: centred, 0].
    #[arg(long, value_name = "F0.npy")]
    pub f0: Option<PathBuf>,
    /// Cross kernel K(x, X) [N, B]; without it, predictions are on the training points.
    #[arg(long, value_name = "KX.npy")]
    pub k_test: Option<PathBuf>,
    /// Network outputs at init on the test points [N, k] [default: 0].
    #[arg(long, value_name = "F0X.npy")]
    pub f0_test: Option<PathBuf>,
    /// Base learning rate η₀.
    #[arg(long = "lr", default_value_t = 1.0, allow_hyphen_values = true, value_parser = num::non_negative)]
    pub base_lr: f64,
    /// Gradient descent steps (exact discrete dynamics), 0 to 10¹².
    #[arg(long, conflicts_with = "time", value_parser = richness::counts::cli::predict_steps)]
    pub steps: Option<usize>,
    /// Gradient-flow time (in steps).
    #[arg(long, allow_hyphen_values = true, value_parser = num::non_negative)]
    pub time: Option<f64>,
    /// Ridge μ ≥ 0.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = num::non_negative)]
    pub ridge: f64,
    /// Predictions (.npy, float64, [N, k]).
    #[arg(long, short, value_name = "P.npy")]
    pub out: PathBuf,
}

#[derive(Args)]
#[command(
    after_help = "Trains ReLU MLPs 64 → n → … → n → 1 on the embedded digits (target ±1 by parity)
with full-batch gradient descent and compares their test predictions with the
linearised network (empirical NTK at init, and infinite-width NTK) after the same
number of steps; fits log–log width slopes with 95% intervals and judges them
against theory.md §4.1. With ε = γ₀n^{r−1/2}, for r < 1/2: the NTK movement and the
gap to the network's own linearisation are split across seeds into a mean part
(~ n^{2r−1}, with a competing n^{−1}: the interval [−1, 2r−1]) and a fluctuation part
(ReLU: ~ n^{r/2−3/4}); their totals are judged against the interval between their
terms (r = 0: [−1, −0.75]); the gap to the infinite-width kernel ~ n^{max(−1/2, 2r−1)};
‖K₀ − K∞‖ ~ n^{−1/2} once. At r = 1/2 the gaps must not fall and the movement's
slope is 0. Regime first: when the kernel moves by more than 30% at the smallest
width, that r's exponents are `crossover` (the widths cannot decide them; lower
--gamma0 or widen). Verdicts, as in `richness reproduce`: pass (the 95% interval
inside the prediction ± 0.1), fail (wholly outside), unclear (straddles an edge),
crossover; each with its reason. Exit status 1 on a fail (with --strict also on
unclear or crossover).

Files in --out: t8_runs.csv (width,r,seed,quantity,value), t8_parts.csv
(width,r,seeds,quantity,value: the across-seed mean and fluctuation parts and ε),
t8_fits.csv, t8_fits.json, t8_config.json, and the figures t8_gap, t8_gap_inf,
t8_movement, t8_k0 (.png, .svg, .csv).

Examples:
  richness ntk compare                       (small default: minutes on 2 cores)
  richness ntk compare --full --out out/t8-full
  richness ntk compare --widths 128,256,512 --seeds 2 --rs 0,0.5
  richness ntk compare --rs 0.25 --gamma0 0.25 --center"
)]
pub struct CompareArgs {
    /// The original scale: widths 256…8192, 5 seeds, 500 train / 250 test, 200 steps.
    #[arg(long)]
    pub full: bool,
    /// Widths [default: 256,512,1024,2048].
    #[arg(long, value_delimiter = ',', value_parser = num::at_least_one)]
    pub widths: Option<Vec<usize>>,
    /// Richness exponents [default: 0,0.25,0.5].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, value_parser = num::finite)]
    pub rs: Option<Vec<f64>>,
    /// Seeds per (width, r), 1 to 10⁷ [default: 3].
    #[arg(long, value_parser = richness::counts::cli::seeds)]
    pub seeds: Option<usize>,
    /// Weight layers, at most 10000 [default: 3].
    #[arg(long, value_parser = richness::counts::cli::depth)]
    pub depth: Option<usize>,
    /// Training points, at most 10⁶ [default: 128].
    #[arg(long = "train", value_parser = richness::counts::cli::points)]
    pub n_train: Option<usize>,
    /// Test points, 1 to 10⁶ [default: 128].
    #[arg(long = "test", value_parser = richness::counts::cli::points)]
    pub n_test: Option<usize>,
    /// Full-batch GD steps, 0 to 10⁹ [default: 150].
    #[arg(long, value_parser = richness::counts::cli::train_steps)]
    pub steps: Option<usize>,
    /// Base rate η₀ [default: 0.2].
    #[arg(long = "lr", allow_hyphen_values = true, value_parser = num::positive)]
    pub base_lr: Option<f64>,
    /// Gauge [default: mup].
    #[arg(long)]
    pub gauge: Option<Gauge>,
    /// Training precision (kernels and predictions are f64) [default: f32].
    #[arg(long)]
    pub dtype: Option<Dtype>,
    /// The prefactor γ₀ of α = γ₀n^r [default: 1]; a smaller one moves the kernel less
    /// (ε = γ₀n^{r−1/2}).
    #[arg(long, allow_hyphen_values = true, value_parser = num::positive)]
    pub gamma0: Option<f64>,
    /// Centre the networks (train f − f₀; the linearisation then starts at f₀ = 0).
    #[arg(long)]
    pub center: bool,
    /// Exit 1 also on an unclear or crossover verdict, not only on a fail.
    #[arg(long)]
    pub strict: bool,
    /// Output folder.
    #[arg(long, short, default_value = "out/t8")]
    pub out: PathBuf,
}

/// `--nodes`: building a rule costs O(n³) time and O(n²) memory, and beyond a few
/// hundred nodes the weights underflow: more than this is a typo.
fn quad_nodes(s: &str) -> Result<usize, String> {
    let max = richness::kernel::quadrature::MAX_NODES;
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {max}")),
    }
}

pub fn run(a: NtkArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    let cx = Compute::new(threads);
    // Output files are checked before the kernel is computed: a device or FIFO is
    // never replaced, and a refusal costs nothing.
    let outs: Vec<&Path> = match &a.cmd {
        NtkCommand::Empirical(e) => [Some(e.out.as_path()), e.eigenvalues.as_deref()].to_vec(),
        NtkCommand::Infinite(i) => [Some(i.out.as_path()), i.eigenvalues.as_deref()].to_vec(),
        NtkCommand::Predict(p) => [Some(p.out.as_path()), None].to_vec(),
        NtkCommand::Compare(_) => vec![],
    }
    .into_iter()
    .flatten()
    .collect();
    for p in outs {
        richness::files::ensure_replaceable(p)?;
    }
    match a.cmd {
        NtkCommand::Empirical(e) => empirical(e, &cx),
        NtkCommand::Infinite(i) => infinite(i, &cx),
        NtkCommand::Predict(p) => predict(p, &cx),
        NtkCommand::Compare(c) => compare(c, &cx, progress),
    }
}

/// A 2-D `.npy` as a matrix (a 1-D array becomes one column).
fn read_mat(path: &Path) -> anyhow::Result<Mat<f64>> {
    let arr = read_npy(path)?;
    let (r, c) = match arr.shape.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        s => bail!(
            "{}: expected a 1-D or 2-D array, got shape {:?}",
            path.display(),
            s
        ),
    };
    let values = arr.to_f64();
    // NaN or ±inf would flow silently into the kernels and predictions.
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: non-finite value {} at row {}, column {} (flat index {i}): inputs and kernels must be finite",
            path.display(),
            values[i],
            i / c.max(1),
            i % c.max(1)
        );
    }
    Ok(Mat::from_vec(r, c, values))
}

fn save_eigenvalues(path: &Path, k: &Mat<f64>) -> anyhow::Result<Vec<f64>> {
    if k.rows() != k.cols() {
        bail!(
            "--eigenvalues needs a square kernel (omit --x2), got {}x{}",
            k.rows(),
            k.cols()
        );
    }
    let ev = eigenvalues(k)?;
    richness::data::npy::save_npy(path, &[ev.len()], &ev)?;
    Ok(ev)
}

/// The architecture and parameterization from the flags, or from the weights file.
fn model_spec(a: &EmpiricalArgs) -> anyhow::Result<(Arch, Parameterization)> {
    let meta = match &a.init_weights {
        Some(w) => Some(richness::io::read_weights_meta(w)?),
        None => None,
    };
    let scale_given = a.scale.preset.is_some()
        || a.scale.richness.is_some()
        || a.scale.alpha.is_some()
        || a.scale.gauge.is_some();
    let (arch, param) = match &a.dims {
        Some(dims) => {
            let mut model = richness::train::ModelConfig {
                arch: a.arch.unwrap_or_default(),
                dims: Some(dims.clone()),
                activation: Some(a.activation),
                gain: a.gain,
                bias: a.bias,
                ..Default::default()
            };
            a.residual.apply(&mut model);
            let arch = model.resolve_dims()?;
            let choice = a.scale.apply(&ScaleChoice::default());
            let p = Parameterization::resolve(&arch.layer_shapes(), &choice, OptimizerKind::Sgd)?;
            if let Some(mp) = meta.as_ref().and_then(|m| m.param.as_ref()) {
                let differs = mp.layers.len() != p.layers.len()
                    || mp.layers.iter().zip(&p.layers).any(|(x, y)| {
                        let close = |u: f64, v: f64| (u - v).abs() <= 1e-9 * u.abs().max(v.abs());
                        !close(x.multiplier, y.multiplier) || !close(x.lr, y.lr)
                    });
                if differs {
                    eprintln!(
                        "warning: the weights file was written with another parameterization ({}); the kernel uses the command line's ({})",
                        mp.summary(),
                        p.summary()
                    );
                }
            }
            (arch, p)
        }
        None => {
            let meta = meta.context("give --dims (or --init-weights with richness metadata)")?;
            let arch = meta
                .arch
                .context("the weights file has no `richness.arch` metadata: give --dims")?;
            let p = if scale_given {
                Parameterization::resolve(
                    &arch.layer_shapes(),
                    &a.scale.apply(&ScaleChoice::default()),
                    OptimizerKind::Sgd,
                )?
            } else {
                meta.param.context(
                    "the weights file has no `richness.parameterization` metadata: give a preset",
                )?
            };
            (arch, p)
        }
    };
    if param.optimizer != OptimizerKind::Sgd {
        eprintln!("warning: the parameterization's rates are Adam's; the tangent kernel uses them as SGD rate factors");
    }
    Ok((arch, param))
}

fn empirical(a: EmpiricalArgs, cx: &Compute) -> anyhow::Result<Exit> {
    let (arch, param) = model_spec(&a)?;
    let x = read_mat(&a.x)?;
    let x2 = a.x2.as_ref().map(|p| read_mat(p)).transpose()?;
    // Seconds setting up the model (reading the weights, or drawing an init) and
    // computing the kernel, reported apart.
    let (ks, setup, secs) = match a.dtype {
        Dtype::F64 => empirical_typed::<f64>(&a, &arch, &param, &x, x2.as_ref(), cx)?,
        Dtype::F32 => empirical_typed::<f32>(&a, &arch, &param, &x, x2.as_ref(), cx)?,
    };
    if ks.len() == 1 {
        save_mat_npy(&a.out, &ks[0])?;
    } else {
        let (n1, n2) = ks[0].shape();
        let flat: Vec<f64> = ks
            .iter()
            .flat_map(|k| k.as_slice().iter().copied())
            .collect();
        richness::data::npy::save_npy(&a.out, &[ks.len(), n1, n2], &flat)?;
    }
    let k0 = &ks[0];
    println!(
        "empirical NTK of {}{:?} {} ({}), {} kernel(s) {}x{} in {:.2}s (model set up in {:.2}s) → {}",
        if arch.is_mlp() { String::new() } else { format!("{} ", arch.family()) },
        arch.dims,
        arch.activation.name(),
        param.summary(),
        ks.len(),
        k0.rows(),
        k0.cols(),
        secs,
        setup,
        a.out.display()
    );
    if k0.rows() == k0.cols() {
        let tr: f64 = (0..k0.rows()).map(|i| k0[(i, i)]).sum();
        println!("mean diagonal {:.6}", tr / k0.rows() as f64);
    }
    if let Some(p) = &a.eigenvalues {
        let ev = save_eigenvalues(p, k0)?;
        println!(
            "eigenvalues → {} (largest {:.6}, smallest {:.3e})",
            p.display(),
            ev[0],
            ev[ev.len() - 1]
        );
    }
    Ok(Exit::Ok)
}

fn empirical_typed<T: Scalar>(
    a: &EmpiricalArgs,
    arch: &Arch,
    param: &Parameterization,
    x: &Mat<f64>,
    x2: Option<&Mat<f64>>,
    cx: &Compute,
) -> anyhow::Result<(Vec<Mat<f64>>, f64, f64)> {
    let start = Instant::now();
    let model = match &a.init_weights {
        // No draws to overwrite: the file sets every weight.
        Some(w) => {
            let mut m = Model::<T>::zeros(arch, param.clone())?;
            richness::io::load_weights_into(&mut m, w)?;
            if richness::io::read_weights_meta(w)?.param.is_none() {
                if let Some(msg) = scale_mismatch(&m) {
                    eprintln!("warning: {}: {msg}", w.display());
                }
            }
            m
        }
        None => Model::<T>::init_with(arch, param.clone(), a.seed)?,
    };
    let setup = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (xt, x2t): (Mat<T>, Option<Mat<T>>) = (x.cast(), x2.map(|m| m.cast()));
    let opts = NtkOptions {
        outputs: a.output,
        block: a.block,
    };
    let ks = empirical_ntk(&model, cx, &xt, x2t.as_ref(), &opts)?;
    Ok((ks, setup, start.elapsed().as_secs_f64()))
}

/// For weights without richness metadata: a note when a layer's raw weights do not look
/// like a draw from the parameterization's init (RMS off the init std by more than 2×),
/// since the kernel then silently carries that factor squared.
fn scale_mismatch<T: Scalar>(model: &Model<T>) -> Option<String> {
    let mut worst: Option<(usize, f64, f64)> = None;
    for (l, (w, lp)) in model.weights.iter().zip(&model.param.layers).enumerate() {
        let v = w.as_slice();
        if v.len() < 16 || lp.init_std <= 0.0 {
            continue;
        }
        let rms = (v.iter().map(|x| x.f64() * x.f64()).sum::<f64>() / v.len() as f64).sqrt();
        let ratio = rms / lp.init_std;
        let off = ratio.max(1.0 / ratio);
        let beats = match worst {
            None => true,
            Some((_, r, _)) => off > r.max(1.0 / r),
        };
        if off > 2.0 && beats {
            worst = Some((l, ratio, rms));
        }
    }
    worst.map(|(l, ratio, rms)| {
        format!(
            "no richness metadata, and layer {l}'s weights (RMS {rms:.3e}) are {ratio:.3e} × the init std of {} ({:.3e}): the kernel's layer term scales with that factor squared; give the scale they were drawn for (--preset/--richness/--gauge)",
            model.param.summary(),
            model.param.layers[l].init_std
        )
    })
}

fn infinite(a: InfiniteArgs, cx: &Compute) -> anyhow::Result<Exit> {
    if !(a.alpha > 0.0 && a.alpha.is_finite()) {
        bail!("--alpha must be a positive number");
    }
    let family = a.arch.unwrap_or_default();
    let mut net = match family {
        richness::nn::Family::Resmlp => {
            if a.depth.is_some() {
                bail!("--depth is for --arch mlp: a resmlp has --blocks + 2 weight layers");
            }
            let spec = richness::nn::ResidualSpec {
                blocks: a.residual.blocks.unwrap_or(2),
                norm: a.residual.norm.unwrap_or_default(),
                branch: a.residual.branch.unwrap_or_default(),
            };
            InfiniteMlp::resmlp_on_scale(spec, a.activation, a.alpha, a.bias)
        }
        richness::nn::Family::Mlp => {
            if a.residual.blocks.is_some() || a.residual.norm.is_some() || a.residual.branch.is_some() {
                bail!("--blocks, --norm and --branch are for --arch resmlp");
            }
            let depth = a.depth.context("give --depth (weight layers) for --arch mlp")?;
            InfiniteMlp::on_scale(depth, a.activation, a.alpha, a.bias)
        }
        other => bail!("--arch {other}: the infinite-width kernels cover mlp and resmlp (linear3/mlp3 are mlp with --depth 3; Myrtle-5 has only an empirical kernel)"),
    };
    let depth = net.layers.len();
    if a.bias && a.bias_init == BiasInitChoice::Normal {
        net = net.with_normal_bias_init(a.alpha);
    } else if !a.bias && a.bias_init == BiasInitChoice::Normal {
        bail!("--bias-init normal needs --bias");
    }
    if let Some(g) = a.gain {
        if !(g > 0.0 && g.is_finite()) {
            bail!("--gain must be a positive number");
        }
        net.gain = g;
    }
    net.rule = match (a.quadrature, a.nodes) {
        (QuadChoice::Piecewise, n) => Rule::Piecewise {
            nodes: n.unwrap_or(16),
        },
        (QuadChoice::Hermite, n) => Rule::Hermite {
            nodes: n.unwrap_or(32),
        },
    };
    if a.force_quadrature {
        net.method = Method::Quadrature;
    }
    let x = read_mat(&a.x)?;
    let x2 = a.x2.as_ref().map(|p| read_mat(p)).transpose()?;
    let start = Instant::now();
    let k = net.kernels_with(cx, &x, x2.as_ref())?;
    let secs = start.elapsed().as_secs_f64();
    let (kernel, name) = match a.get {
        Get::Ntk => (&k.ntk, "NTK"),
        Get::Nngp => (&k.nngp, "NNGP"),
    };
    save_mat_npy(&a.out, kernel)?;
    println!(
        "infinite-width {name} of a depth-{} {} {} (gain {}, α = {}{}), {}x{} in {:.2}s → {}",
        depth,
        family,
        a.activation.name(),
        richness::param::fmt_num(net.gain),
        a.alpha,
        if a.bias { ", biases" } else { "" },
        kernel.rows(),
        kernel.cols(),
        secs,
        a.out.display()
    );
    if let Some(p) = &a.eigenvalues {
        let ev = save_eigenvalues(p, kernel)?;
        println!(
            "eigenvalues → {} (largest {:.6}, smallest {:.3e})",
            p.display(),
            ev[0],
            ev[ev.len() - 1]
        );
    }
    Ok(Exit::Ok)
}

fn predict(a: PredictArgs, cx: &Compute) -> anyhow::Result<Exit> {
    let k = read_mat(&a.k_train)?;
    let y = read_mat(&a.y)?;
    let f0 = a.f0.as_ref().map(|p| read_mat(p)).transpose()?;
    let lin = LinearisedMse::new(&k, &y, f0.as_ref(), a.base_lr, a.ridge)?;
    let horizon = match (a.steps, a.time) {
        (Some(s), _) => Horizon::Steps(s),
        (None, Some(t)) => Horizon::Time(t),
        (None, None) => Horizon::Infinity,
    };
    lin.check_stable(horizon)?;
    let pred = match &a.k_test {
        Some(kt) => {
            let kx = read_mat(kt)?;
            let f0x = a.f0_test.as_ref().map(|p| read_mat(p)).transpose()?;
            if f0.is_some() != f0x.is_some() {
                eprintln!("warning: --f0 and --f0-test should be given together (uncentred) or both omitted (centred)");
            }
            lin.predict(cx, &kx, f0x.as_ref(), horizon)?
        }
        None => lin.predict_train(cx, horizon),
    };
    save_mat_npy(&a.out, &pred)?;
    println!(
        "linearised predictions ({horizon:?}, c = 2η₀/(B·k) = {:.4e}, ridge {}) {}x{} → {}",
        lin.rate,
        a.ridge,
        pred.rows(),
        pred.cols(),
        a.out.display()
    );
    Ok(Exit::Ok)
}

fn compare(a: CompareArgs, cx: &Compute, progress: bool) -> anyhow::Result<Exit> {
    let mut cfg = if a.full {
        CompareConfig::full()
    } else {
        CompareConfig::small()
    };
    if let Some(w) = a.widths {
        cfg.widths = w;
    }
    if let Some(r) = a.rs {
        cfg.rs = r;
    }
    if let Some(s) = a.seeds {
        cfg.seeds = s;
    }
    if let Some(d) = a.depth {
        cfg.depth = d;
    }
    if let Some(n) = a.n_train {
        cfg.n_train = n;
    }
    if let Some(n) = a.n_test {
        cfg.n_test = n;
    }
    if let Some(s) = a.steps {
        cfg.steps = s;
    }
    if let Some(lr) = a.base_lr {
        cfg.base_lr = lr;
    }
    if let Some(g) = a.gauge {
        cfg.gauge = g;
    }
    if let Some(d) = a.dtype {
        cfg.dtype = d;
    }
    if let Some(g) = a.gamma0 {
        cfg.gamma0 = g;
    }
    cfg.center |= a.center;
    println!(
        "T8: ReLU MLP 64 → n ×{} → 1 on digits (±1 parity target), {} train / {} test points, full-batch GD {} steps at η₀ = {}, gauge {}, γ₀ = {}{}, {} seeds, {}",
        cfg.depth - 1,
        cfg.n_train,
        cfg.n_test,
        cfg.steps,
        cfg.base_lr,
        cfg.gauge.name(),
        cfg.gamma0,
        if cfg.center { ", centred" } else { "" },
        cfg.seeds,
        cfg.dtype.name()
    );
    let report = run_compare(&cfg, cx, progress)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let w = |name: &str, text: String| {
        richness::files::write_atomic(&a.out.join(name), text.as_bytes())
    };
    w("t8_runs.csv", report.runs_csv())?;
    w("t8_parts.csv", report.parts_csv())?;
    w("t8_fits.csv", report.fits_csv())?;
    w("t8_fits.json", serde_json::to_string_pretty(&report.fits)?)?;
    w("t8_config.json", serde_json::to_string_pretty(&cfg)?)?;
    for (stem, fig) in report.figures() {
        fig.save_all(&a.out, stem)?;
    }

    println!("\nmean over seeds:");
    let quantities = [
        "gap_emp",
        "gap_inf",
        "movement",
        "k0_vs_inf",
        "test_mse_net",
        "test_mse_lin_emp",
    ];
    print!("{:>6} {:>5}", "width", "r");
    for q in quantities {
        print!(" {:>16}", q);
    }
    println!();
    for &wd in &cfg.widths {
        for &r in &cfg.rs {
            print!("{:>6} {:>5}", wd, r);
            for q in quantities {
                print!(" {:>16.4e}", report.mean(q, wd, r).unwrap_or(f64::NAN));
            }
            println!();
        }
    }
    println!("\nregime (docs/theory.md §6.1: exponents are judged only where the kernel moves by ≤ {:.0}% at the smallest width):", 100.0 * SMALL_MOVEMENT);
    for &r in &cfg.rs {
        if let Some(g) = richness::reproduce::t8::regime(&report, r) {
            println!(
                "  r = {:<5} ε = γ₀n^(r−1/2) = {:.4} at n = {}, movement {:.1}% there ({:.1}–{:.1}% over the widths){}",
                r,
                g.eps_min,
                g.width_min,
                100.0 * g.movement_min,
                100.0 * g.movement_range.0,
                100.0 * g.movement_range.1,
                if r < 0.5 && g.is_crossover() { ": crossover" } else { "" }
            );
        }
    }
    println!("\nmean and fluctuation parts across seeds (t8_parts.csv):");
    let part_q = [
        "movement_mean",
        "movement_fluct",
        "gap_emp_mean",
        "gap_emp_fluct",
    ];
    print!("{:>6} {:>5}", "width", "r");
    for q in part_q {
        print!(" {:>16}", q);
    }
    println!();
    for &wd in &cfg.widths {
        for &r in &cfg.rs {
            print!("{:>6} {:>5}", wd, r);
            for q in part_q {
                print!(" {:>16.4e}", report.part(q, wd, r).unwrap_or(f64::NAN));
            }
            println!();
        }
    }
    println!("\nwidth exponents (log–log least squares; per-run quantities over widths × seeds, parts over widths; 95% interval):");
    for f in &report.fits {
        println!(
            "  {:<14} r = {:<5} slope {:+.3} ± {:.3}  [{:+.3}, {:+.3}]  predicted {}  → {}",
            f.quantity,
            f.r,
            f.fit.slope,
            f.fit.slope_se,
            f.fit.ci95.0,
            f.fit.ci95.1,
            f.expected(),
            f.judged().describe()
        );
    }
    if report.fits.iter().any(|f| f.verdict != Verdict::Pass) {
        println!("  ({})", Verdict::LEGEND);
    }
    if progress {
        println!("\n{:.1}s; wrote {}", report.seconds, a.out.display());
    }
    Ok(if report.worst().fails(a.strict) {
        Exit::Fail
    } else {
        Exit::Ok
    })
}
