//! The richness scale: from one knob r to every layer's multiplier, init scale and rate.
//!
//! A network with weight layers ℓ = 1..L computes `z_ℓ = g_ℓ · W_ℓ · a_{ℓ−1}` with
//! `W_ℓ ~ N(0, σ_ℓ²)` and trains `W_ℓ` with rate `η₀ · η_ℓ`. Width n is the largest
//! hidden width; `d_ℓ` is layer ℓ's fan-in. The hidden update size is
//! `α = γ₀ · n^r`, and under SGD every parameterization on the scale has the same
//! *effective* quantities (theory.md §3):
//!
//! | | read-in | hidden | read-out |
//! |---|---|---|---|
//! | effective init variance g²σ² | 1/d | 1/d | 1/(α²d) |
//! | effective SGD rate g²η | α²/d | α²/d | 1/d |
//!
//! The split of those into (g, σ, η) is a *gauge* choice, which changes nothing:
//! (g, σ, η) → (c·g, σ/c, η/c²) under SGD, (c·g, σ/c, η/c) with ε → c·ε under Adam.
//! We define every gauge as the `layerwise` gauge (g = 1) transformed by a
//! per-layer factor c (see [`Gauge::factor`]).
//!
//! ```
//! use richness::param::{LayerShape, ScaleChoice, Parameterization, Gauge, OptimizerKind};
//! let shapes = LayerShape::mlp(&[64, 1024, 1024, 10], false);
//! let choice = ScaleChoice { richness: Some(0.5), gauge: Some(Gauge::Mup), ..Default::default() };
//! let p = Parameterization::resolve(&shapes, &choice, OptimizerKind::Sgd).unwrap();
//! assert_eq!(p.width, 1024);
//! assert!((p.alpha - 32.0).abs() < 1e-12);            // α = n^{1/2}
//! assert!((p.layers[1].multiplier - 1.0).abs() < 1e-12); // hidden g = α/√n = 1
//! assert!((p.layers[2].eff_lr - 1.0 / 1024.0).abs() < 1e-15); // read-out g²η = 1/n
//! ```

mod diagnose;
pub use diagnose::*;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A layer's place in the network, which decides its scaling rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The first layer: fan-in is the (fixed) input dimension.
    ReadIn,
    /// Width-to-width layers.
    Hidden,
    /// The last layer: fan-out is the (fixed) output dimension.
    ReadOut,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadIn => "read-in",
            Role::Hidden => "hidden",
            Role::ReadOut => "read-out",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "read-in" | "readin" | "input" => Ok(Role::ReadIn),
            "hidden" => Ok(Role::Hidden),
            "read-out" | "readout" | "output" => Ok(Role::ReadOut),
            _ => Err(format!(
                "unknown role `{s}` (expected read-in, hidden or read-out)"
            )),
        }
    }
}

/// How the effective quantities are split into multiplier, init scale and rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Gauge {
    /// Tutorial Table 1: g = α/√d (read-in, hidden), 1/√d (read-out); σ = 1/α; η = 1.
    Mup,
    /// No multipliers: g = 1; σ² = effective variance; η = effective rate.
    Layerwise,
    /// Model rescaling: σ = 1; g = 1/√d, 1/√d, 1/(α√d); η = α².
    Rescale,
}

impl Gauge {
    pub const ALL: [Gauge; 3] = [Gauge::Mup, Gauge::Layerwise, Gauge::Rescale];

    pub fn name(self) -> &'static str {
        match self {
            Gauge::Mup => "mup",
            Gauge::Layerwise => "layerwise",
            Gauge::Rescale => "rescale",
        }
    }

    /// The gauge factor c of a layer relative to the `layerwise` gauge, as a power
    /// law in (α, d): this gauge's multiplier is c (layerwise has g = 1).
    pub fn factor(self, role: Role) -> Power {
        let out = role == Role::ReadOut;
        match (self, out) {
            (Gauge::Layerwise, _) => Power::ONE,
            (Gauge::Mup, false) => Power::new(1.0, 1.0, -0.5, 0.0),
            (Gauge::Mup, true) => Power::new(1.0, 0.0, -0.5, 0.0),
            (Gauge::Rescale, false) => Power::new(1.0, 0.0, -0.5, 0.0),
            (Gauge::Rescale, true) => Power::new(1.0, -1.0, -0.5, 0.0),
        }
    }
}

impl FromStr for Gauge {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mup" => Ok(Gauge::Mup),
            "layerwise" => Ok(Gauge::Layerwise),
            "rescale" => Ok(Gauge::Rescale),
            _ => Err(format!(
                "unknown gauge `{s}` (expected mup, layerwise or rescale)"
            )),
        }
    }
}

/// Named parameterizations (mupify's names, plus the standard parameterization).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Neural tangent parameterization: r = 0, `mup` gauge (= `rescale` at r = 0).
    Ntp,
    /// r = 0, `layerwise` gauge.
    NtpLr,
    /// μP: r = 1/2, `mup` gauge.
    Mup,
    /// r = 1/2, `layerwise` gauge.
    MupLr,
    /// Mean-field parameterization: r = 1/2, `rescale` gauge.
    Mfp,
    /// Standard parameterization: g = 1, σ² = 1/d, one global rate. Off the scale.
    Sp,
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::Ntp,
        Preset::NtpLr,
        Preset::Mup,
        Preset::MupLr,
        Preset::Mfp,
        Preset::Sp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Ntp => "ntp",
            Preset::NtpLr => "ntp-lr",
            Preset::Mup => "mup",
            Preset::MupLr => "mup-lr",
            Preset::Mfp => "mfp",
            Preset::Sp => "sp",
        }
    }

    /// (r, gauge) of a preset on the scale; `None` for `sp`.
    pub fn definition(self) -> Option<(f64, Gauge)> {
        match self {
            Preset::Ntp => Some((0.0, Gauge::Mup)),
            Preset::NtpLr => Some((0.0, Gauge::Layerwise)),
            Preset::Mup => Some((0.5, Gauge::Mup)),
            Preset::MupLr => Some((0.5, Gauge::Layerwise)),
            Preset::Mfp => Some((0.5, Gauge::Rescale)),
            Preset::Sp => None,
        }
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown preset `{s}` (expected ntp, ntp-lr, mup, mup-lr, mfp or sp)")
            })
    }
}

/// The optimizer a parameterization is for (the rates differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    /// Adam: per-layer rates from theory.md §3.4 (an extension, checked by measurement).
    Adam,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        }
    }

    /// The gauge-invariant effective rate of a parameter with multiplier `g` and
    /// rate factor `lr`: g²η under SGD, g·η under Adam (whose update does not scale
    /// with the gradient's size).
    pub fn effective_lr(self, g: f64, lr: f64) -> f64 {
        match self {
            OptimizerKind::Sgd => g * g * lr,
            OptimizerKind::Adam => g * lr,
        }
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(format!("unknown optimizer `{s}` (expected sgd or adam)")),
        }
    }
}

/// A power law `coef · α^alpha · d^fan_in · n^width`: how a per-layer quantity
/// depends on the update size α, the layer's fan-in d and the width n.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Power {
    pub coef: f64,
    pub alpha: f64,
    pub fan_in: f64,
    pub width: f64,
}

/// The product of two power laws.
impl std::ops::Mul for Power {
    type Output = Power;
    fn mul(self, o: Power) -> Power {
        Power::new(
            self.coef * o.coef,
            self.alpha + o.alpha,
            self.fan_in + o.fan_in,
            self.width + o.width,
        )
    }
}

impl Power {
    pub const ONE: Power = Power {
        coef: 1.0,
        alpha: 0.0,
        fan_in: 0.0,
        width: 0.0,
    };

    pub const fn new(coef: f64, alpha: f64, fan_in: f64, width: f64) -> Self {
        Power {
            coef,
            alpha,
            fan_in,
            width,
        }
    }

    /// `self^k`.
    pub fn pow(self, k: f64) -> Power {
        Power::new(
            self.coef.powf(k),
            self.alpha * k,
            self.fan_in * k,
            self.width * k,
        )
    }

    /// Numerical value at (α, d, n).
    pub fn eval(self, alpha: f64, d: f64, n: f64) -> f64 {
        self.coef * alpha.powf(self.alpha) * d.powf(self.fan_in) * n.powf(self.width)
    }

    /// Exponent of n when α ~ n^r and d ~ n^d_exp.
    pub fn width_exponent(self, r: f64, d_exp: f64) -> f64 {
        self.alpha * r + self.fan_in * d_exp + self.width
    }
}

/// What the parameterization needs to know about one weight layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerShape {
    /// Inputs per output unit (for a conv layer, C_in · k_h · k_w).
    pub fan_in: usize,
    /// Output units (for a conv layer, its channel count).
    pub fan_out: usize,
    /// Whether the fan-in grows with the width (false only for a layer fed by the
    /// network's input).
    pub fan_in_scales: bool,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl LayerShape {
    /// The weight layers of a dense MLP with layer sizes `dims` = [input, hidden…, output].
    pub fn mlp(dims: &[usize], bias: bool) -> Vec<LayerShape> {
        dims.windows(2)
            .enumerate()
            .map(|(i, w)| LayerShape {
                fan_in: w[0],
                fan_out: w[1],
                fan_in_scales: i > 0,
                bias,
            })
            .collect()
    }
}

/// The user's choice of where on the scale to sit (the input to [`Parameterization::resolve`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleChoice {
    /// A named preset, instead of `richness` and `gauge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The richness exponent r (‖Δh‖ = γ₀·n^r).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub richness: Option<f64>,
    /// The width-independent prefactor γ₀ of α.
    #[serde(default = "one")]
    pub gamma0: f64,
    /// α given directly (a width-independent constant), instead of r.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// The gauge (default `mup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge: Option<Gauge>,
    /// Base learning rate η₀ (multiplies every layer's factor).
    #[serde(default = "one")]
    pub base_lr: f64,
    /// Explicit roles, one per weight layer, overriding the positional inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    /// Adam's ε in the `layerwise` gauge (scaled per layer with the gauge factor).
    #[serde(default = "default_adam_eps")]
    pub adam_eps: f64,
    /// Any per-layer scaling as Yang–Hu exponents, instead of a preset or r
    /// (g = n^{−a}, σ = n^{−b}, with 1/√n₀ on the read-in's σ; η = n^{−c}).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abc: Option<Abc>,
    /// Centre the output: train f − f₀, with f₀ the network's own output at the start
    /// of training (docs/theory.md §6.1: removes the bias that f₀ ~ 1/(γ₀n^r) puts on every
    /// one-step exponent at intermediate r). Unset: off for `train`, `sweep`,
    /// `transfer` and `ntk`; on for the probes (`check`, `coord`, `diagnose --measure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<bool>,
    /// The attention-logit multiplier c_att of `model.arch = "gpt"`, overriding the
    /// rule of [`attention_scale`] (theory.md §9.3). Other architectures ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_scale: Option<f64>,
}

/// A spec file for `richness diagnose --spec`: per-layer exponents and the exponent
/// of a width-dependent base rate η₀ ∝ n^{−lr_exponent}.
///
/// ```toml
/// a = [0.0, 0.0, 0.0]
/// b = [0.0, 0.5, 0.5]
/// c = [0.0, 0.0, 0.0]
/// lr_exponent = 1.0
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbcSpec {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
    #[serde(default)]
    pub lr_exponent: f64,
}

impl AbcSpec {
    /// Read a spec file; errors name the file, line and key.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::files::read_config_text(path)?;
        toml::from_str(&text).map_err(|e| {
            Error::config(crate::files::toml_error(
                &path.display().to_string(),
                &text,
                &e,
            ))
        })
    }

    pub fn abc(&self) -> Abc {
        Abc {
            a: self.a.clone(),
            b: self.b.clone(),
            c: self.c.clone(),
        }
    }
}

/// Per-layer Yang–Hu exponents: g ∝ n^{−a}, σ ∝ n^{−b}, η ∝ n^{−c}.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Abc {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
}

fn one() -> f64 {
    1.0
}
fn default_adam_eps() -> f64 {
    1e-8
}

impl Default for ScaleChoice {
    fn default() -> Self {
        ScaleChoice {
            preset: None,
            richness: None,
            gamma0: 1.0,
            alpha: None,
            gauge: None,
            base_lr: 1.0,
            roles: None,
            adam_eps: default_adam_eps(),
            abc: None,
            center: None,
            attention_scale: None,
        }
    }
}

impl ScaleChoice {
    /// Forget the fields that `field` is an alternative to, so that setting it
    /// overrides them instead of conflicting with them (`preset` and `abc` fix the
    /// gauge too; `richness` and `alpha` leave it):
    ///
    /// | setting | clears |
    /// |---|---|
    /// | `preset` | `richness`, `alpha`, `abc`, `gauge` |
    /// | `richness`, `alpha` | `preset`, `abc` and the other one |
    /// | `abc` | `preset`, `richness`, `alpha`, `gauge` |
    ///
    /// Other field names clear nothing. Both the command-line flags and
    /// `--set param.…` go through this one rule.
    pub fn clear_alternatives(&mut self, field: &str) {
        match field {
            "preset" => {
                (self.richness, self.alpha, self.abc, self.gauge) = (None, None, None, None)
            }
            "richness" => (self.preset, self.alpha, self.abc) = (None, None, None),
            "alpha" => (self.preset, self.richness, self.abc) = (None, None, None),
            "abc" => {
                (self.preset, self.richness, self.alpha, self.gauge) = (None, None, None, None)
            }
            _ => {}
        }
    }

    /// A preset with base rate 1.
    pub fn preset(p: Preset) -> Self {
        ScaleChoice {
            preset: Some(p),
            ..Default::default()
        }
    }
    /// (r, gauge) with γ₀ = 1 and base rate 1.
    pub fn scale(r: f64, gauge: Gauge) -> Self {
        ScaleChoice {
            richness: Some(r),
            gauge: Some(gauge),
            ..Default::default()
        }
    }
    /// A short label such as `mup`, `r=0.25/layerwise` or `sp`.
    pub fn label(&self) -> String {
        if let Some(p) = self.preset {
            return p.name().to_string();
        }
        if self.abc.is_some() {
            return "custom-abc".into();
        }
        let g = self.gauge.unwrap_or(Gauge::Mup).name();
        match (self.richness, self.alpha) {
            (_, Some(a)) => format!("alpha={a}/{g}"),
            (Some(r), _) => format!("r={r}/{g}"),
            _ => format!("r=0.5/{g}"),
        }
    }
}

/// Multiplier, init std and rate factor of one parameter tensor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// Fixed multiplier g.
    pub multiplier: f64,
    /// Init standard deviation σ of the raw weights.
    pub init_std: f64,
    /// Per-layer rate factor η_ℓ (the actual rate is base_lr · lr).
    pub lr: f64,
}

/// The resolved scaling of one weight layer: a row of `richness table`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerParam {
    /// `layers.{i}` (0-based), as in the weights file.
    pub name: String,
    pub role: Role,
    pub fan_in: usize,
    pub fan_out: usize,
    /// g_ℓ.
    pub multiplier: f64,
    /// σ_ℓ.
    pub init_std: f64,
    /// η_ℓ (per-layer factor; the rate is base_lr · lr).
    pub lr: f64,
    /// Effective init variance g²σ².
    pub eff_init_var: f64,
    /// Effective rate: g²η under SGD, g·η under Adam (the gauge-invariant one).
    pub eff_lr: f64,
    /// Yang–Hu exponents: g ∝ n^{−a}, σ ∝ n^{−b}, η ∝ n^{−c}.
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// The bias's scaling, when the layer has one (a weight on a constant input 1:
    /// same role, fan-in 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<Scaling>,
    /// Adam's ε for this layer (scaled with the gauge factor); absent for SGD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adam_eps: Option<f64>,
    /// Adam's ε for the bias (ε scaled with the bias's gauge factor: `adam_eps / g · g_b`,
    /// what the optimizer uses); absent for SGD and without a bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_adam_eps: Option<f64>,
}

impl LayerParam {
    /// Multiplier, init std and rate of the weight.
    pub fn weight(&self) -> Scaling {
        Scaling {
            multiplier: self.multiplier,
            init_std: self.init_std,
            lr: self.lr,
        }
    }
}

/// A fully resolved parameterization: one plain, serialisable value that says
/// everything about how a network is scaled. It is written next to every run, into
/// every weights file's metadata, and printed by `richness table`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parameterization {
    /// Width n: the largest hidden width.
    pub width: usize,
    /// α = γ₀·n^r (or as given).
    pub alpha: f64,
    /// r, when the parameterization is on the scale and r was given.
    pub richness: Option<f64>,
    pub gamma0: f64,
    /// `mup`, `layerwise`, `rescale`, or `sp` for the standard parameterization.
    pub gauge: String,
    /// The preset it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    pub optimizer: OptimizerKind,
    /// η₀.
    pub base_lr: f64,
    /// False for `sp`, which no single global rate puts on the scale.
    pub on_scale: bool,
    pub layers: Vec<LayerParam>,
    /// Why this choice may misbehave (r outside [0, 1/2], off-scale presets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Outputs are centred: f − f₀ (see [`ScaleChoice::center`]).
    #[serde(default)]
    pub center: bool,
}

/// Roles inferred from position: first read-in, last read-out, the rest hidden.
pub fn positional_roles(n_layers: usize) -> Vec<Role> {
    (0..n_layers)
        .map(|i| {
            if i == 0 {
                Role::ReadIn
            } else if i + 1 == n_layers {
                Role::ReadOut
            } else {
                Role::Hidden
            }
        })
        .collect()
}

/// A finite α can still give α² = inf (or 1/α² = 0) in one layer's scaling: refuse
/// it here rather than train on inf weights.
fn check_finite(layers: &[LayerParam]) -> Result<()> {
    for l in layers {
        // Every derived number, the effective ones and the biases' included: at
        // γ₀ = 1e-300 the effective init variance 1/α² was printed as inf.
        let mut all = vec![l.multiplier, l.init_std, l.lr, l.eff_lr, l.eff_init_var];
        if let Some(b) = &l.bias {
            all.extend([b.multiplier, b.init_std, b.lr]);
        }
        all.extend(l.adam_eps);
        all.extend(l.bias_adam_eps);
        // A multiplier that underflowed to 0 silences the layer as surely as an inf
        // breaks it.
        if all.iter().any(|v| !v.is_finite()) || l.multiplier == 0.0 {
            return Err(Error::config(format!(
                "{}: multiplier {:e}, init std {:e}, rate {:e}, effective init variance {:e}, effective rate {:e} are not all finite and non-zero (alpha or the exponents are too extreme)",
                l.name, l.multiplier, l.init_std, l.lr, l.eff_init_var, l.eff_lr
            )));
        }
    }
    Ok(())
}

/// Adam's ε of a bias from its layer's: the raw gradient, hence ε, scales with the
/// gauge factor, which is the multiplier (the layerwise gauge has g = 1).
pub fn bias_eps(layer_eps: f64, g: f64, g_bias: f64) -> f64 {
    layer_eps / g * g_bias
}

/// The attention-logit multiplier c_att of a transformer with head dimension d_h
/// (theory.md §9.3): `override_` when given, else d_h^{−(1/2 + r)} with r clipped
/// to [0, 1/2] for a parameterization on the scale with a given r, and d_h^{−1/2}
/// otherwise (SP, custom exponents, a width-independent α, which is r = 0).
///
/// ```
/// use richness::param::attention_scale_at;
/// assert_eq!(attention_scale_at(Some(0.5), 16), 1.0 / 16.0);
/// assert_eq!(attention_scale_at(Some(0.0), 16), 0.25);
/// assert_eq!(attention_scale_at(None, 16), 0.25);
/// ```
pub fn attention_scale_at(r: Option<f64>, head_dim: usize) -> f64 {
    let r = r.map(|r| r.clamp(0.0, 0.5)).unwrap_or(0.0);
    (head_dim as f64).powf(-(0.5 + r))
}

/// c_att of a resolved parameterization ([`attention_scale_at`] with its r, or
/// `override_`).
pub fn attention_scale(p: &Parameterization, head_dim: usize, override_: Option<f64>) -> f64 {
    match override_ {
        Some(c) => c,
        None => attention_scale_at(p.richness.filter(|_| p.on_scale), head_dim),
    }
}

/// Width n of a network: the largest hidden width (fan-out of every layer but the last).
pub fn width_of(shapes: &[LayerShape]) -> usize {
    shapes[..shapes.len().saturating_sub(1)]
        .iter()
        .map(|s| s.fan_out)
        .max()
        .unwrap_or(0)
}

/// The `layerwise`-gauge (g = 1) init std and rate of a parameter with this role,
/// as power laws. `adam` selects the rates of theory.md §3.4.
fn layerwise_rule(role: Role, optimizer: OptimizerKind) -> (Power, Power) {
    let out = role == Role::ReadOut;
    let std = if out {
        Power::new(1.0, -1.0, -0.5, 0.0)
    } else {
        Power::new(1.0, 0.0, -0.5, 0.0)
    };
    let lr = match (optimizer, out) {
        (OptimizerKind::Sgd, false) => Power::new(1.0, 2.0, -1.0, 0.0),
        (OptimizerKind::Sgd, true) => Power::new(1.0, 0.0, -1.0, 0.0),
        (OptimizerKind::Adam, false) => Power::new(1.0, 1.0, -1.0, -0.5),
        (OptimizerKind::Adam, true) => Power::new(1.0, 0.0, -1.0, 0.0),
    };
    (std, lr)
}

/// The gauge transformation with factor c: returns (g·c, σ/c, η/c²) under SGD and
/// (g·c, σ/c, η/c) under Adam. Training dynamics of the effective weights g·W are
/// unchanged (under Adam, ε must become c·ε, since the raw gradient scales by c).
pub fn gauge_transform(s: Scaling, c: f64, optimizer: OptimizerKind) -> Scaling {
    let lr = match optimizer {
        OptimizerKind::Sgd => s.lr / (c * c),
        OptimizerKind::Adam => s.lr / c,
    };
    Scaling {
        multiplier: s.multiplier * c,
        init_std: s.init_std / c,
        lr,
    }
}

/// Power laws (g, σ, η) of a parameter of the given role under (gauge, optimizer).
fn scaling_powers(role: Role, gauge: Gauge, optimizer: OptimizerKind) -> (Power, Power, Power) {
    let (std, lr) = layerwise_rule(role, optimizer);
    let c = gauge.factor(role);
    let lr_pow = match optimizer {
        OptimizerKind::Sgd => -2.0,
        OptimizerKind::Adam => -1.0,
    };
    (c, std * c.pow(-1.0), lr * c.pow(lr_pow))
}

/// Power laws (g, σ, η) of the standard parameterization: g = 1, σ = 1/√d, η = 1.
fn sp_powers() -> (Power, Power, Power) {
    (Power::ONE, Power::new(1.0, 0.0, -0.5, 0.0), Power::ONE)
}

impl Parameterization {
    /// Resolve a [`ScaleChoice`] on a network with these weight layers.
    pub fn resolve(
        shapes: &[LayerShape],
        choice: &ScaleChoice,
        optimizer: OptimizerKind,
    ) -> Result<Self> {
        Self::resolve_at(shapes, choice, optimizer, None)
    }

    /// [`resolve`](Self::resolve) for a network whose width n is not the largest
    /// fan-out of its layers (a transformer's MLP is 4n wide while n is the width of
    /// the residual stream): every rule is evaluated at this `width`, with each
    /// tensor's role from `choice.roles` and its own fan-in (theory.md §9.2).
    /// Custom exponents (a, b, c) are refused: their diagnosis assumes an MLP.
    pub fn resolve_at_width(
        shapes: &[LayerShape],
        choice: &ScaleChoice,
        optimizer: OptimizerKind,
        width: usize,
    ) -> Result<Self> {
        if choice.abc.is_some() {
            return Err(Error::config(
                "custom exponents (a, b, c) are not supported for this architecture: give a preset, or r with a gauge",
            ));
        }
        if width == 0 {
            return Err(Error::config("width must be positive"));
        }
        Self::resolve_at(shapes, choice, optimizer, Some(width))
    }

    fn resolve_at(
        shapes: &[LayerShape],
        choice: &ScaleChoice,
        optimizer: OptimizerKind,
        width: Option<usize>,
    ) -> Result<Self> {
        if shapes.len() < 2 {
            return Err(Error::config(format!(
                "a network needs at least 2 weight layers (read-in and read-out), got {}",
                shapes.len()
            )));
        }
        for (i, s) in shapes.iter().enumerate() {
            if s.fan_in == 0 || s.fan_out == 0 {
                return Err(Error::config(format!(
                    "layer {i} has a zero dimension ({} -> {})",
                    s.fan_in, s.fan_out
                )));
            }
        }
        let roles = match &choice.roles {
            Some(r) if r.len() != shapes.len() => {
                return Err(Error::config(format!(
                    "{} roles given for {} weight layers",
                    r.len(),
                    shapes.len()
                )))
            }
            Some(r) => r.clone(),
            None => positional_roles(shapes.len()),
        };
        if !(choice.gamma0.is_finite() && choice.gamma0 > 0.0) {
            return Err(Error::config(format!(
                "gamma0 must be a positive number, got {}",
                choice.gamma0
            )));
        }
        if !(choice.base_lr.is_finite() && choice.base_lr >= 0.0) {
            return Err(Error::config(format!(
                "base_lr must be a non-negative number, got {}",
                choice.base_lr
            )));
        }
        if let Some(r) = choice.richness {
            if !r.is_finite() {
                return Err(Error::config(format!(
                    "richness must be a finite number, got {r}"
                )));
            }
        }
        if let Some(a) = choice.alpha {
            if !(a.is_finite() && a > 0.0) {
                return Err(Error::config(format!(
                    "alpha must be a positive number, got {a}"
                )));
            }
        }
        if let Some(abc) = &choice.abc {
            if choice.preset.is_some()
                || choice.richness.is_some()
                || choice.alpha.is_some()
                || choice.gauge.is_some()
            {
                return Err(Error::config(
                    "give exponents (a, b, c) or a preset / richness / gauge, not both",
                ));
            }
            return Self::from_abc(shapes, &roles, abc, choice, optimizer);
        }
        let (r, gauge) = match (choice.preset, choice.richness, choice.alpha) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Error::config("give a preset or richness/alpha, not both"))
            }
            (Some(_), _, _) if choice.gauge.is_some() => {
                return Err(Error::config(
                    "a preset fixes the gauge: give --preset or --gauge, not both",
                ))
            }
            (_, Some(_), Some(_)) => {
                return Err(Error::config("give richness (r) or alpha, not both"))
            }
            (Some(p), _, _) => match p.definition() {
                Some((r, g)) => (Some(r), Some(g)),
                None => (None, None),
            },
            (None, r, _) => (
                r.or(if choice.alpha.is_none() {
                    Some(0.5)
                } else {
                    None
                }),
                Some(choice.gauge.unwrap_or(Gauge::Mup)),
            ),
        };
        let width = width.unwrap_or_else(|| width_of(shapes));
        let n = width as f64;
        let (alpha, r_for_exponents) = match (choice.alpha, r) {
            (Some(a), _) => (a, 0.0),
            (None, Some(r)) => (choice.gamma0 * n.powf(r), r),
            (None, None) => (1.0, 0.0),
        };
        // γ₀ and r are each finite, but γ₀·n^r can still overflow (or underflow to 0),
        // and every multiplier, init scale and rate below would then be inf or NaN.
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::config(format!(
                "alpha = gamma0·n^r = {}·{n}^{} is {alpha}: not a finite positive number (use a smaller --gamma0 or --richness)",
                choice.gamma0, r_for_exponents
            )));
        }
        let mut warnings = Vec::new();
        if let Some(r) = r {
            if r < 0.0 {
                warnings.push(format!(
                    "r = {r} < 0: off the stable range [0, 1/2]; the output at init grows like n^{} and explodes with width",
                    -r
                ));
            } else if r > 0.5 {
                warnings.push(format!(
                    "r = {r} > 1/2: off the stable range [0, 1/2]; updates outgrow the representations (‖Δh‖/‖h‖ ~ n^{}) and gradients explode",
                    r - 0.5
                ));
            }
        }
        if gauge.is_none() {
            warnings.push(
                "sp (standard parameterization) is off the richness scale: with a Θ(1) rate the read-out update is n times too large, with a 1/n rate the read-in update vanishes (see `richness diagnose --preset sp`)"
                    .into(),
            );
        }
        let layers = shapes
            .iter()
            .zip(&roles)
            .enumerate()
            .map(|(i, (s, &role))| {
                let (gp, sp, lp) = match gauge {
                    Some(g) => scaling_powers(role, g, optimizer),
                    None => sp_powers(),
                };
                let d = s.fan_in as f64;
                let d_exp = if s.fan_in_scales { 1.0 } else { 0.0 };
                let scaling = |d: f64| Scaling {
                    multiplier: gp.eval(alpha, d, n),
                    init_std: sp.eval(alpha, d, n),
                    lr: lp.eval(alpha, d, n),
                };
                let w = scaling(d);
                let eff_lr = optimizer.effective_lr(w.multiplier, w.lr);
                // Adam's ε scales with the raw gradient, i.e. with the gauge factor c
                // (c = g here, since the layerwise gauge has g = 1).
                let adam_eps =
                    (optimizer == OptimizerKind::Adam).then_some(choice.adam_eps * w.multiplier);
                let bias = s.bias.then(|| scaling(1.0));
                LayerParam {
                    name: format!("layers.{i}"),
                    role,
                    fan_in: s.fan_in,
                    fan_out: s.fan_out,
                    multiplier: w.multiplier,
                    init_std: w.init_std,
                    lr: w.lr,
                    eff_init_var: (w.multiplier * w.init_std).powi(2),
                    eff_lr,
                    a: clean(-gp.width_exponent(r_for_exponents, d_exp)),
                    b: clean(-sp.width_exponent(r_for_exponents, d_exp)),
                    c: clean(-lp.width_exponent(r_for_exponents, d_exp)),
                    bias,
                    adam_eps,
                    bias_adam_eps: adam_eps
                        .zip(bias)
                        .map(|(e, b)| bias_eps(e, w.multiplier, b.multiplier)),
                }
            })
            .collect::<Vec<LayerParam>>();
        check_finite(&layers)?;
        Ok(Parameterization {
            width,
            alpha,
            richness: if choice.alpha.is_some() { None } else { r },
            gamma0: choice.gamma0,
            gauge: gauge
                .map(|g| g.name().to_string())
                .unwrap_or_else(|| "sp".into()),
            preset: choice.preset,
            optimizer,
            base_lr: choice.base_lr,
            on_scale: gauge.is_some(),
            layers,
            warnings,
            center: choice.center.unwrap_or(false),
        })
    }

    /// A parameterization given by exponents: g = n^{−a}, σ = n^{−b}·κ, η = n^{−c}, with
    /// κ = 1/√n₀ for a layer whose fan-in does not scale (so inputs of any dimension
    /// start at unit scale; this reproduces `sp` exactly for a = 0, b = (0, ½, …, ½), c = 0).
    fn from_abc(
        shapes: &[LayerShape],
        roles: &[Role],
        abc: &Abc,
        choice: &ScaleChoice,
        optimizer: OptimizerKind,
    ) -> Result<Self> {
        let k = shapes.len();
        if abc.a.len() != k || abc.b.len() != k || abc.c.len() != k {
            return Err(Error::config(format!(
                "exponents a, b, c need one value per weight layer ({k}); got {}, {}, {}",
                abc.a.len(),
                abc.b.len(),
                abc.c.len()
            )));
        }
        if abc
            .a
            .iter()
            .chain(&abc.b)
            .chain(&abc.c)
            .any(|v| !v.is_finite())
        {
            return Err(Error::config("exponents a, b, c must be finite numbers"));
        }
        let width = width_of(shapes);
        let n = width as f64;
        let layers: Vec<LayerParam> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let kappa = if s.fan_in_scales {
                    1.0
                } else {
                    1.0 / (s.fan_in as f64).sqrt()
                };
                let (g, sd, lr) = (
                    n.powf(-abc.a[i]),
                    n.powf(-abc.b[i]) * kappa,
                    n.powf(-abc.c[i]),
                );
                LayerParam {
                    name: format!("layers.{i}"),
                    role: roles[i],
                    fan_in: s.fan_in,
                    fan_out: s.fan_out,
                    multiplier: g,
                    init_std: sd,
                    lr,
                    eff_init_var: (g * sd).powi(2),
                    eff_lr: optimizer.effective_lr(g, lr),
                    a: clean(abc.a[i]),
                    b: clean(abc.b[i]),
                    c: clean(abc.c[i]),
                    // A bias follows its layer's multiplier and rate, with unit init scale.
                    bias: s.bias.then_some(Scaling {
                        multiplier: g,
                        init_std: 1.0,
                        lr,
                    }),
                    adam_eps: (optimizer == OptimizerKind::Adam).then_some(choice.adam_eps * g),
                    bias_adam_eps: (optimizer == OptimizerKind::Adam && s.bias)
                        .then(|| bias_eps(choice.adam_eps * g, g, g)),
                }
            })
            .collect();
        check_finite(&layers)?;
        let mut p = Parameterization {
            width,
            alpha: 1.0,
            richness: None,
            gamma0: choice.gamma0,
            gauge: "custom".into(),
            preset: None,
            optimizer,
            base_lr: choice.base_lr,
            on_scale: false,
            layers,
            warnings: Vec::new(),
            center: choice.center.unwrap_or(false),
        };
        if optimizer == OptimizerKind::Sgd {
            let d = diagnose(&Exponents::from_param(&p, 0.0));
            p.on_scale = d.on_scale;
            p.richness = d.implied_r;
            if let Some(r) = d.implied_r {
                p.alpha = n.powf(r);
            }
            p.warnings = d.findings;
        } else {
            p.warnings
                .push("custom exponents with Adam: the analytic diagnosis covers SGD only".into());
        }
        Ok(p)
    }

    /// Per-layer learning rates (base rate × factor) for weights and biases.
    pub fn rates(&self) -> Vec<(f64, f64)> {
        self.layers
            .iter()
            .map(|l| {
                (
                    self.base_lr * l.lr,
                    self.base_lr * l.bias.map(|b| b.lr).unwrap_or(0.0),
                )
            })
            .collect()
    }

    /// A copy with another base rate.
    pub fn with_base_lr(&self, base_lr: f64) -> Self {
        Parameterization {
            base_lr,
            ..self.clone()
        }
    }

    /// One-line summary, e.g. `r=0.5 gauge=mup n=1024 α=32 η₀=1 sgd`.
    pub fn summary(&self) -> String {
        let r = match (&self.preset, self.richness) {
            (Some(p), _) => format!("preset={}", p.name()),
            (None, Some(r)) => format!("r={r}"),
            (None, None) => format!("alpha={}", self.alpha),
        };
        format!(
            "{r} gauge={} n={} α={} η₀={} {}{}",
            self.gauge,
            self.width,
            fmt_num(self.alpha),
            fmt_num(self.base_lr),
            self.optimizer.name(),
            if self.center { " centred" } else { "" }
        )
    }

    /// A per-layer table as aligned text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("# {}\n", self.summary()));
        for w in &self.warnings {
            s.push_str(&format!("# warning: {w}\n"));
        }
        let header = [
            "layer",
            "role",
            "fan_in",
            "fan_out",
            "multiplier",
            "init_std",
            "lr",
            "eff_init_var",
            "eff_lr",
            "a",
            "b",
            "c",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for l in &self.layers {
            rows.push(vec![
                l.name.clone(),
                l.role.name().into(),
                l.fan_in.to_string(),
                l.fan_out.to_string(),
                fmt_num(l.multiplier),
                fmt_num(l.init_std),
                fmt_num(l.lr),
                fmt_num(l.eff_init_var),
                fmt_num(l.eff_lr),
                fmt_exp(l.a),
                fmt_exp(l.b),
                fmt_exp(l.c),
            ]);
            if let Some(b) = &l.bias {
                rows.push(vec![
                    format!("{}.bias", l.name),
                    l.role.name().into(),
                    "1".into(),
                    l.fan_out.to_string(),
                    fmt_num(b.multiplier),
                    fmt_num(b.init_std),
                    fmt_num(b.lr),
                    fmt_num((b.multiplier * b.init_std).powi(2)),
                    fmt_num(self.optimizer.effective_lr(b.multiplier, b.lr)),
                    "".into(),
                    "".into(),
                    "".into(),
                ]);
            }
        }
        s.push_str(&align(&rows));
        s
    }
}

fn clean(x: f64) -> f64 {
    let r = (x * 1e9).round() / 1e9;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// Compact number formatting for tables: 5 significant digits, shortest form.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let rounded: f64 = format!("{:.4e}", x).parse().unwrap_or(x);
    let a = rounded.abs();
    if (1e-3..1e6).contains(&a) {
        format!("{rounded}")
    } else {
        format!("{:.4e}", x)
    }
}

fn fmt_exp(x: f64) -> String {
    let s = format!("{:.3}", x);
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Align rows of cells into columns separated by two spaces.
pub fn align(rows: &[Vec<String>]) -> String {
    let ncol = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncol)
        .map(|j| {
            rows.iter()
                .map(|r| r.get(j).map(|c| c.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(j, c)| format!("{:<w$}", c, w = widths[j]))
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

impl fmt::Display for Parameterization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}
