//! Infinite-width NNGP and NTK of MLPs and residual MLPs, with our gains and
//! effective variances.
//!
//! A dense MLP with L weight layers has, per layer ℓ, four width-independent
//! constants (fan-in d_ℓ; see [`LayerConstants`]):
//!
//! ```text
//! s_ℓ  = d_ℓ · g_ℓ² σ_ℓ²      weight variance × fan-in     (1, …, 1, 1/α² on the scale)
//! ρ_ℓ  = d_ℓ · g_ℓ² η_ℓ       weight rate × fan-in         (α², …, α², 1)
//! v_ℓ  = g_bℓ² σ_bℓ²          bias variance at init        (1, …, 1, 1/α² if b ~ N; 0 if b = 0)
//! β_ℓ  = g_bℓ² η_bℓ           bias rate                     (α², …, α², 1)
//! ```
//!
//! With c = c_φ the activation gain and (u, v) ~ N(0, [[Σ(x,x), Σ(x,x')], [Σ(x,x'), Σ(x',x')]]):
//!
//! ```text
//! Ĉ⁰(x,x') = ⟨x, x'⟩ / n₀
//! Σ¹ = s₁ Ĉ⁰ + v₁,                     T¹ = ρ₁ Ĉ⁰ + β₁
//! Ĉˡ = c² E[φ(u)φ(v)],  Ċˡ = c² E[φ'(u)φ'(v)]          (u, v from Σˡ)
//! Σˡ⁺¹ = s_{ℓ+1} Ĉˡ + v_{ℓ+1},         Tˡ⁺¹ = s_{ℓ+1} Ċˡ Tˡ + ρ_{ℓ+1} Ĉˡ + β_{ℓ+1}
//! ```
//!
//! The returned **NNGP** kernel is Σᴸ, the covariance of the output f(x) at init;
//! the returned **NTK** is Tᴸ = lim Σ_ℓ η_ℓ ⟨∂f(x)/∂W_ℓ, ∂f(x')/∂W_ℓ⟩ (raw weights,
//! per-layer rate factors, base rate η₀ excluded), the same kernel
//! [`empirical`](super::empirical) computes at finite width. With s = ρ = 1 and
//! v = β this is the textbook recursion Θˡ⁺¹ = Σˡ⁺¹ + Θˡ Σ̇ˡ⁺¹ (theory.md §5).
//!
//! On the richness scale (α = γ₀nʳ) the α's cancel in Tᴸ: every hidden term
//! carries ρ = α² and the read-out variance 1/α², so **the NTK does not depend on
//! r**, while the output NNGP is Σᴸ with the read-out's 1/α² (Σᴸ/α² of the α = 1
//! net when biases start at zero). [`InfiniteMlp::on_scale`] builds these
//! constants; [`InfiniteMlp::from_parameterization`] reads them from any resolved
//! [`Parameterization`] (for an off-scale one such as `sp`, whose ρ grows with
//! width, the result is the large-width approximation *at that width*, not a limit).
//! The constants are for SGD; Adam's rates do not define a tangent kernel.
//!
//! **Residual MLP** (`arch.residual`, see [`crate::nn::residual`]): stem
//! h₁ = g₁W₁x, blocks h_{b+1} = h_b + β·g_{b+1}W_{b+1}·cφ(N(h_b)) for b = 1..B,
//! read-out f = g_out W_out·cφ(N(h_{B+1})), with biases inside the branch. In the
//! limit a block's fresh weights are independent of the stream, so the cross terms
//! vanish and each block *adds* β² times an MLP layer's increment; LayerNorm
//! acts as h ↦ h/√(q(x) + ε) with q(x) = Σ(x, x) (its mean subtraction and
//! projection are O(1/n)). With λ_b = 1/√((q_b(x) + ε)(q_b(x') + ε)) under
//! LayerNorm (1 without), and Ĉ_b, Ċ_b the moments at Σ̃_b = λ_b Σ_b (at Σ_b
//! without a norm):
//!
//! ```text
//! Σ₁ = s₁ Ĉ⁰ + v₁,               T₁ = ρ₁ Ĉ⁰ + β₁
//! Σ_{b+1} = Σ_b + β²(s_ℓ Ĉ_b + v_ℓ),   T_{b+1} = T_b + β²(s_ℓ Ċ_b λ_b T_b + ρ_ℓ Ĉ_b + β_ℓ)   (ℓ = b + 1)
//! Σ_f = s_L Ĉ_{B+1} + v_L,        T_f = s_L Ċ_{B+1} λ_{B+1} T_{B+1} + ρ_L Ĉ_{B+1} + β_L   (L = B + 2)
//! ```
//!
//! (β without an index is the branch scale, β_ℓ the bias rate of the table above; the
//! β² in the rate terms is the square of the β·g that the gradient of a block's raw
//! weight and bias carries). The
//! derivation and the finite-width caveats are in theory.md §8.1.
//! [`InfiniteMlp::resmlp_on_scale`] builds the scale's constants for a trunk;
//! [`InfiniteMlp::from_parameterization`] reads `arch.residual`.
//!
//! φ expectations: closed forms for linear (Ĉ = c²Σ, Ċ = c²), ReLU (arc-cosine:
//! Ĉ = c²√(q₁₁q₂₂)(sin θ + (π − θ)cos θ)/(2π), Ċ = c²(π − θ)/(2π)) and erf
//! (Ĉ = c²(2/π) asin(2q₁₂/√((1+2q₁₁)(1+2q₂₂))), Ċ = c²(4/π)/√((1+2q₁₁)(1+2q₂₂) − 4q₁₂²));
//! tanh and GELU by 2-D quadrature ([`super::quadrature`]; [`Rule`]): by default the
//! composite Gauss–Legendre rule (~1e-12, ~37,000 φ-evaluations per entry and
//! layer, so N² entries cost seconds for N in the hundreds and much more beyond);
//! [`Rule::Hermite`] is ~40× cheaper at 32 nodes but only ~1e-5 accurate when
//! the pre-activation variance is large (tanh(√q·ξ) is steep for large q). All in f64.
//!
//! ```
//! use richness::kernel::infinite::InfiniteMlp;
//! use richness::nn::Activation;
//! use richness::tensor::Mat;
//! // One hidden ReLU layer (depth 2), x = x' = e₁ in 2-D: Σ¹ = 1/2, Ĉ¹ = 1/2, Ċ¹ = 1,
//! // so the NTK is Ċ¹·T¹ + Ĉ¹ = 1/2 + 1/2 = 1 and the NNGP is 1/2.
//! let x = Mat::from_vec(1, 2, vec![1.0, 0.0]);
//! let k = InfiniteMlp::on_scale(2, Activation::Relu, 1.0, false).kernels(&x, None).unwrap();
//! assert!((k.ntk[(0, 0)] - 1.0).abs() < 1e-15 && (k.nngp[(0, 0)] - 0.5).abs() < 1e-15);
//!
//! // A linear resmlp with one block (β = 1, no norm), x = 1: Σ₁ = T₁ = 1, the block
//! // doubles the stream (Σ₂ = 2) and T₂ = T₁ + (T₁ + Σ₁) = 3; the read-out gives
//! // NNGP Σ₂ = 2 and NTK T₂ + Σ₂ = 5.
//! use richness::nn::{Branch, Norm, ResidualSpec};
//! let spec = ResidualSpec { blocks: 1, norm: Norm::None, branch: Branch::One };
//! let x = Mat::from_vec(1, 1, vec![1.0]);
//! let k = InfiniteMlp::resmlp_on_scale(spec, Activation::Linear, 1.0, false)
//!     .kernels(&x, None)
//!     .unwrap();
//! assert!((k.ntk[(0, 0)] - 5.0).abs() < 1e-15 && (k.nngp[(0, 0)] - 2.0).abs() < 1e-15);
//! ```

use super::quadrature::{GaussHermite, GaussLegendre, Piecewise};
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::nn::layernorm::LAYER_NORM_EPS;
use crate::nn::{Activation, Arch, BiasInit, Norm, ResidualSpec};
use crate::param::Parameterization;
use crate::tensor::Mat;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The four width-independent constants of one layer (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerConstants {
    /// s = fan-in × effective weight variance g²σ².
    pub weight_var: f64,
    /// ρ = fan-in × effective weight rate g²η.
    pub weight_rate: f64,
    /// v = effective bias variance at init (0 without a bias or with zero bias init).
    pub bias_var: f64,
    /// β = effective bias rate g_b²η_b (0 without a bias).
    pub bias_rate: f64,
}

/// How the φ-expectations are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Closed forms for linear, ReLU and erf; quadrature for the others.
    #[default]
    Auto,
    /// Quadrature (with [`InfiniteMlp::rule`]) for every activation: used to check
    /// the closed forms.
    Quadrature,
}

/// The quadrature rule for φ-expectations without closed forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Composite Gauss–Legendre, `nodes` per piece, split at kinks (robust; default 16).
    Piecewise { nodes: usize },
    /// Gauss–Hermite with `nodes` per dimension (fast; exact for polynomials, slow to
    /// converge for steep or kinked φ, so ReLU always uses the piecewise rule).
    Hermite { nodes: usize },
}

impl Default for Rule {
    fn default() -> Self {
        Rule::Piecewise { nodes: 16 }
    }
}

/// An infinite-width MLP: activation, gain and per-layer constants.
#[derive(Clone, Debug)]
pub struct InfiniteMlp {
    pub activation: Activation,
    /// c_φ.
    pub gain: f64,
    /// One entry per weight layer ℓ = 1..L.
    pub layers: Vec<LayerConstants>,
    pub method: Method,
    /// Quadrature rule where one is needed.
    pub rule: Rule,
    /// The pre-activation residual trunk (resmlp): layer 1 is the stem, layers
    /// 2..B+1 the blocks, layer B+2 the read-out; `None` for a plain MLP.
    pub residual: Option<ResidualSpec>,
}

/// NNGP (output covariance at init) and NTK, [N₁, N₂] each.
#[derive(Clone, Debug)]
pub struct InfiniteKernels {
    pub nngp: Mat<f64>,
    pub ntk: Mat<f64>,
}

impl InfiniteMlp {
    /// A network on the richness scale with `depth` weight layers, the activation's
    /// default gain and update size α (the NTK does not depend on α; the NNGP
    /// carries the read-out's 1/α²). With `bias`, every layer has a bias trained
    /// at the scale's rate and initialised at zero (the library's default); use
    /// [`with_normal_bias_init`](Self::with_normal_bias_init) for N(0, σ_b²) biases.
    pub fn on_scale(depth: usize, activation: Activation, alpha: f64, bias: bool) -> Self {
        let a2 = alpha * alpha;
        let layers = (0..depth)
            .map(|l| {
                let out = l + 1 == depth;
                LayerConstants {
                    weight_var: if out { 1.0 / a2 } else { 1.0 },
                    weight_rate: if out { 1.0 } else { a2 },
                    bias_var: 0.0,
                    bias_rate: match (bias, out) {
                        (false, _) => 0.0,
                        (true, true) => 1.0,
                        (true, false) => a2,
                    },
                }
            })
            .collect();
        InfiniteMlp {
            activation,
            gain: activation.default_gain(),
            layers,
            method: Method::Auto,
            rule: Rule::default(),
            residual: None,
        }
    }

    /// The resmlp equivalent of [`on_scale`](Self::on_scale): B = `residual.blocks`
    /// blocks between stem and read-out (B + 2 weight layers), each block a hidden
    /// layer of the scale (s = 1, ρ = α²), with the trunk's norm and branch β.
    pub fn resmlp_on_scale(
        residual: ResidualSpec,
        activation: Activation,
        alpha: f64,
        bias: bool,
    ) -> Self {
        Self::on_scale(residual.blocks + 2, activation, alpha, bias).with_residual(residual)
    }

    /// The same network read as a resmlp trunk (it must have B + 2 layers; checked
    /// when the kernels are computed).
    pub fn with_residual(mut self, residual: ResidualSpec) -> Self {
        self.residual = Some(residual);
        self
    }

    /// Biases drawn at init with the scale's variance (1, …, 1, 1/α²), as
    /// `bias_init = "normal"` does.
    pub fn with_normal_bias_init(mut self, alpha: f64) -> Self {
        let depth = self.layers.len();
        for (l, c) in self.layers.iter_mut().enumerate() {
            c.bias_var = if l + 1 == depth {
                1.0 / (alpha * alpha)
            } else {
                1.0
            };
        }
        self
    }

    /// The constants of a resolved parameterization for `arch` (SGD rates; see the
    /// module docs for off-scale parameterizations): an MLP, or a resmlp when
    /// `arch.residual` is set (its β and norm are taken from there).
    pub fn from_parameterization(arch: &Arch, param: &Parameterization) -> Result<Self> {
        if arch.conv.is_some() {
            return Err(Error::config(
                "infinite-width kernels are implemented for dense networks (mlp, resmlp), not conv trunks",
            ));
        }
        if param.layers.len() != arch.depth() {
            return Err(Error::Shape(format!(
                "parameterization has {} layers, architecture {}",
                param.layers.len(),
                arch.depth()
            )));
        }
        let layers = param
            .layers
            .iter()
            .map(|lp| {
                let d = lp.fan_in as f64;
                let g2 = lp.multiplier * lp.multiplier;
                let (bias_var, bias_rate) = match (arch.bias, lp.bias) {
                    (true, Some(b)) => {
                        let gb2 = b.multiplier * b.multiplier;
                        let var = if arch.bias_init == BiasInit::Normal {
                            gb2 * b.init_std * b.init_std
                        } else {
                            0.0
                        };
                        (var, gb2 * b.lr)
                    }
                    _ => (0.0, 0.0),
                };
                LayerConstants {
                    weight_var: d * g2 * lp.init_std * lp.init_std,
                    weight_rate: d * g2 * lp.lr,
                    bias_var,
                    bias_rate,
                }
            })
            .collect();
        let net = InfiniteMlp {
            activation: arch.activation,
            gain: arch.gain,
            layers,
            method: Method::Auto,
            rule: Rule::default(),
            residual: arch.residual,
        };
        net.check_residual()?;
        Ok(net)
    }

    /// The same with another expectation method.
    pub fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// The same with another quadrature rule.
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rule = rule;
        self
    }

    /// (Ĉ, Ċ) = c²(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for (u, v) with covariance
    /// [[q11, q12], [q12, q22]].
    pub fn moments(&self, q11: f64, q22: f64, q12: f64, quad: &Quad) -> (f64, f64) {
        let c2 = self.gain * self.gain;
        let closed = self.method == Method::Auto;
        match self.activation {
            Activation::Linear if closed => (c2 * q12, c2),
            Activation::Relu if closed => {
                let (ch, cd) = relu_moments(q11, q22, q12);
                (c2 * ch, c2 * cd)
            }
            Activation::Erf if closed => {
                let p = (1.0 + 2.0 * q11) * (1.0 + 2.0 * q22);
                let ch = (2.0 / PI) * (2.0 * q12 / p.sqrt()).clamp(-1.0, 1.0).asin();
                let cd = (4.0 / PI) / (p - 4.0 * q12 * q12).max(f64::MIN_POSITIVE).sqrt();
                (c2 * ch, c2 * cd)
            }
            act => {
                let h = |u: f64, v: f64| [act.phi(u) * act.phi(v), act.dphi(u) * act.dphi(v)];
                let kinks: &[f64] = if act == Activation::Relu { &[0.0] } else { &[] };
                let [e, d] = match (&quad.hermite, act) {
                    (Some(gh), a) if a != Activation::Relu => gh.expect2(q11, q22, q12, h),
                    _ => quad.piecewise.expect2(q11, q22, q12, kinks, h),
                };
                (c2 * e, c2 * d)
            }
        }
    }

    /// The quadrature rules this network's expectations use.
    pub fn quad(&self) -> Quad {
        match self.rule {
            Rule::Piecewise { nodes } => Quad {
                hermite: None,
                piecewise: Piecewise {
                    rule: GaussLegendre::new(nodes.max(1)),
                    ..Piecewise::default()
                },
            },
            Rule::Hermite { nodes } => Quad {
                hermite: Some(GaussHermite::new(nodes.max(1))),
                piecewise: Piecewise::default(),
            },
        }
    }

    /// A resmlp trunk must have B + 2 layers, B ≥ 1.
    fn check_residual(&self) -> Result<()> {
        match &self.residual {
            Some(r) if r.blocks == 0 || self.layers.len() != r.blocks + 2 => {
                Err(Error::config(format!(
                    "a resmlp with {} blocks needs {} weight layers (stem, blocks, read-out), got {}",
                    r.blocks,
                    r.blocks + 2,
                    self.layers.len()
                )))
            }
            _ => Ok(()),
        }
    }

    /// (Ĉ, Ċ·λ) of the activation after the stream whose entries are (q11, q22, q12):
    /// with LayerNorm the activation sees Σ̃ = Σ·r₁r₂ with rᵢ = 1/√(qᵢᵢ + ε), and its
    /// Jacobian carries the same λ = r₁r₂ (the limit of N; see the module docs).
    fn block_moments(&self, q11: f64, q22: f64, q12: f64, quad: &Quad) -> (f64, f64) {
        match self.residual.map(|r| r.norm) {
            Some(Norm::Layer) => {
                let r1 = 1.0 / (q11 + LAYER_NORM_EPS).sqrt();
                let r2 = 1.0 / (q22 + LAYER_NORM_EPS).sqrt();
                // Products (not quotients) so that x = x' gives q̃₁₂ = q̃₁₁ exactly
                // (see the diagonal note in `kernels_with`).
                let (ch, cd) = self.moments(q11 * r1 * r1, q22 * r2 * r2, q12 * r1 * r2, quad);
                (ch, cd * r1 * r2)
            }
            _ => self.moments(q11, q22, q12, quad),
        }
    }

    /// β² for weight layer ℓ (0-based) when it is a residual block, `None` otherwise.
    fn branch2(&self, l: usize) -> Option<f64> {
        self.residual
            .filter(|_| l > 0 && l + 1 < self.layers.len())
            .map(|r| r.beta() * r.beta())
    }

    /// Σˡ(x, x) for ℓ = 1..L, given ⟨x, x⟩/n₀ (for a resmlp: the stream after the
    /// stem and after every block, then the output).
    fn diagonal(&self, g: f64, quad: &Quad) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.layers.len());
        let mut q = self.layers[0].weight_var * g + self.layers[0].bias_var;
        out.push(q);
        for (l, lc) in self.layers.iter().enumerate().skip(1) {
            let (ch, _) = self.block_moments(q, q, q, quad);
            let fresh = lc.weight_var * ch + lc.bias_var;
            q = match self.branch2(l) {
                Some(b2) => q + b2 * fresh,
                None => fresh,
            };
            out.push(q);
        }
        out
    }

    /// NNGP and NTK between the rows of `x1` [N₁, n₀] and `x2` [N₂, n₀] (`None`:
    /// x2 = x1, computing each symmetric pair once). O(N₁N₂·L) time, O(N₁N₂) memory.
    pub fn kernels(&self, x1: &Mat<f64>, x2: Option<&Mat<f64>>) -> Result<InfiniteKernels> {
        self.kernels_with(&Compute::new(rayon::current_num_threads()), x1, x2)
    }

    /// [`kernels`](Self::kernels) with an explicit [`Compute`] (threads, backend).
    pub fn kernels_with(
        &self,
        cx: &Compute,
        x1: &Mat<f64>,
        x2: Option<&Mat<f64>>,
    ) -> Result<InfiniteKernels> {
        if self.layers.is_empty() {
            return Err(Error::config(
                "an infinite-width MLP needs at least one weight layer",
            ));
        }
        self.check_residual()?;
        let nodes = match self.rule {
            Rule::Piecewise { nodes } | Rule::Hermite { nodes } => nodes,
        };
        if nodes == 0 || nodes > crate::kernel::quadrature::MAX_NODES {
            return Err(Error::config(format!(
                "quadrature nodes must be 1 to {}, got {nodes}",
                crate::kernel::quadrature::MAX_NODES
            )));
        }
        let n0 = x1.cols();
        if let Some(x2) = x2 {
            if x2.cols() != n0 {
                return Err(Error::Shape(format!(
                    "x has {n0} columns, x2 has {}",
                    x2.cols()
                )));
            }
        }
        if n0 == 0 {
            return Err(Error::Shape("inputs have no columns".into()));
        }
        let sym = x2.is_none();
        let x2r = x2.unwrap_or(x1);
        let (n1, n2) = (x1.rows(), x2r.rows());
        // Ĉ, NTK, NNGP and a working copy, each N₁ × N₂ (see crate::budget).
        crate::budget::ensure(
            || format!("an infinite-width kernel of {n1} x {n2} inputs"),
            crate::budget::product(&[n1, n2, 4], 8),
        )?;
        // Ĉ⁰ = X₁X₂ᵀ/n₀ (the only matrix product; everything after is per entry).
        let mut g = Mat::<f64>::zeros(n1, n2);
        cx.matmul(
            g.view_mut(),
            x1.view(),
            x2r.view().t(),
            1.0 / n0 as f64,
            0.0,
        );
        let quad = self.quad();
        let sq = |x: &Mat<f64>, i: usize| x.row(i).iter().map(|v| v * v).sum::<f64>() / n0 as f64;
        // For x2 = x1 the diagonal comes from the same product as the off-diagonal
        // entries, so that q₁₂ = q₁₁ holds exactly at x = x': the arc-cosine's θ is
        // ill-conditioned there (θ ≈ √(2(1 − ρ))), and a rounding difference of 1e-16
        // between two ways of computing ‖x‖² would cost 1e-8 in Ċ.
        let d1: Vec<Vec<f64>> = (0..n1)
            .map(|i| self.diagonal(if sym { g[(i, i)] } else { sq(x1, i) }, &quad))
            .collect();
        let d2: Vec<Vec<f64>> = if sym {
            d1.clone()
        } else {
            (0..n2).map(|j| self.diagonal(sq(x2r, j), &quad)).collect()
        };
        let mut nngp = Mat::<f64>::zeros(n1, n2);
        let mut ntk = Mat::<f64>::zeros(n1, n2);
        let row = |i: usize, out_s: &mut [f64], out_t: &mut [f64]| {
            let j0 = if sym { i } else { 0 };
            for j in j0..n2 {
                let (s, t) = self.entry(g[(i, j)], &d1[i], &d2[j], &quad);
                out_s[j] = s;
                out_t[j] = t;
            }
        };
        if cx.threads > 1 {
            nngp.as_mut_slice()
                .par_chunks_mut(n2.max(1))
                .zip(ntk.as_mut_slice().par_chunks_mut(n2.max(1)))
                .enumerate()
                .for_each(|(i, (s, t))| row(i, s, t));
        } else {
            nngp.as_mut_slice()
                .chunks_mut(n2.max(1))
                .zip(ntk.as_mut_slice().chunks_mut(n2.max(1)))
                .enumerate()
                .for_each(|(i, (s, t))| row(i, s, t));
        }
        if sym {
            // Mirror the upper triangle in square tiles, so that the column reads
            // stay in cache (a plain column walk misses on every entry at N ~ 2,000).
            const T: usize = 64;
            for m in [&mut nngp, &mut ntk] {
                let s = m.as_mut_slice();
                for i0 in (0..n1).step_by(T) {
                    for j0 in (0..=i0).step_by(T) {
                        for i in i0..(i0 + T).min(n1) {
                            for j in j0..(j0 + T).min(i) {
                                s[i * n2 + j] = s[j * n2 + i];
                            }
                        }
                    }
                }
            }
        }
        Ok(InfiniteKernels { nngp, ntk })
    }

    /// (Σᴸ, Tᴸ) for one pair, given Ĉ⁰ and both inputs' diagonals.
    fn entry(&self, g: f64, d1: &[f64], d2: &[f64], quad: &Quad) -> (f64, f64) {
        let l0 = &self.layers[0];
        let mut q = l0.weight_var * g + l0.bias_var;
        let mut t = l0.weight_rate * g + l0.bias_rate;
        for (l, lc) in self.layers.iter().enumerate().skip(1) {
            // `cd` includes LayerNorm's λ (1 without a norm or in a plain MLP).
            let (ch, cd) = self.block_moments(d1[l - 1], d2[l - 1], q, quad);
            let t_fresh = lc.weight_var * cd * t + lc.weight_rate * ch + lc.bias_rate;
            let q_fresh = lc.weight_var * ch + lc.bias_var;
            match self.branch2(l) {
                // A block adds β × its branch to the stream; the branch is independent
                // of the stream's own weights in the limit, so both kernels add.
                Some(b2) => {
                    t += b2 * t_fresh;
                    q += b2 * q_fresh;
                }
                None => {
                    t = t_fresh;
                    q = q_fresh;
                }
            }
        }
        (q, t)
    }
}

/// Quadrature rules, built once per kernel computation.
#[derive(Clone, Debug)]
pub struct Quad {
    /// Gauss–Hermite, when [`Rule::Hermite`] is chosen.
    pub hermite: Option<GaussHermite>,
    /// The composite rule (always present: ReLU's kink needs it).
    pub piecewise: Piecewise,
}

/// Arc-cosine moments of ReLU without the gain: (E[relu(u)relu(v)], E[relu'(u)relu'(v)]).
/// A zero-variance input gives (0, 0) (relu'(0) = 0, as in the network code).
pub fn relu_moments(q11: f64, q22: f64, q12: f64) -> (f64, f64) {
    let n = (q11 * q22).sqrt();
    if n <= 0.0 {
        return (0.0, 0.0);
    }
    let rho = (q12 / n).clamp(-1.0, 1.0);
    let theta = rho.acos();
    let sin = (1.0 - rho * rho).max(0.0).sqrt();
    (
        n * (sin + (PI - theta) * rho) / (2.0 * PI),
        (PI - theta) / (2.0 * PI),
    )
}
