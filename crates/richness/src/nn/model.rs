//! Networks: an architecture, a parameterization and raw weights.
//!
//! A [`Model`] is a stack of weight layers ℓ = 1..L. Layer ℓ computes the
//! pre-activation ("representation") `z_ℓ = g_ℓ W_ℓ a_{ℓ−1} (+ g_b b_ℓ)` and, for
//! ℓ < L, the post-activation `a_ℓ = c_φ φ(z_ℓ)`; the output is `f = z_L`.
//! Multipliers g come from the [`Parameterization`], never from the tensors.
//!
//! A forward pass fills a [`Trace`] (one buffer per quantity, allocated once per
//! batch size, llm.c style): the input `x`, every `z_ℓ` and `a_ℓ`; the backward pass
//! fills every `∂L/∂z_ℓ`, `∂L/∂a_ℓ` and the weight gradients in [`Grads`]. Probes and
//! kernels read these buffers directly.
//!
//! ```
//! use richness::nn::{Arch, Activation, Model, Trace, Grads};
//! use richness::param::{ScaleChoice, Preset, OptimizerKind};
//! use richness::linalg::Compute;
//! let arch = Arch::mlp(vec![4, 16, 16, 2], Activation::Relu);
//! let model = Model::<f64>::init(&arch, &ScaleChoice::preset(Preset::Mup), OptimizerKind::Sgd, 0).unwrap();
//! let mut trace = Trace::new(&model, 3);
//! let x = vec![0.5; 3 * 4];
//! model.forward(&Compute::new(1), &x, 3, &mut trace);
//! assert_eq!(trace.output().shape(), (3, 2));
//! ```

use super::activation::Activation;
use super::conv::{ConvGeom, Pool};
use super::dense::Dense;
use super::layer::WeightKind;
use super::layernorm::{layer_norm_backward, layer_norm_forward, Norm};
use super::residual::ResidualSpec;
use super::LayerKind;
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::param::{LayerShape, OptimizerKind, Parameterization, ScaleChoice};
use crate::rng::{fill_normal_rows, normal_vec};
use crate::tensor::{Mat, Scalar};
use serde::{Deserialize, Serialize};

/// How biases start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BiasInit {
    /// b = 0 (the default).
    #[default]
    Zero,
    /// b ~ N(0, σ_b²) with σ_b from the parameterization.
    Normal,
}

/// The architecture families a config or a command line names (`model.arch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// A dense MLP of any depth.
    #[default]
    Mlp,
    /// The tutorial's 3-layer linear network.
    Linear3,
    /// The same with a nonlinearity (ReLU by default).
    Mlp3,
    /// The pre-activation residual MLP ([`super::residual`]).
    Resmlp,
    /// The Myrtle-5 CNN.
    Myrtle5,
    /// A GPT-style transformer on token sequences ([`super::gpt`]): its own model,
    /// built by [`crate::train::ModelConfig::resolve_gpt`], not an [`Arch`].
    Gpt,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Mlp,
        Family::Linear3,
        Family::Mlp3,
        Family::Resmlp,
        Family::Myrtle5,
        Family::Gpt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Mlp => "mlp",
            Family::Linear3 => "linear3",
            Family::Mlp3 => "mlp3",
            Family::Resmlp => "resmlp",
            Family::Myrtle5 => "myrtle5",
            Family::Gpt => "gpt",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown arch `{s}` (expected mlp, linear3, mlp3, resmlp, myrtle5 or gpt)")
            })
    }
}

/// A network architecture: layer sizes, activation and its gain, biases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Layer sizes [input, hidden…, output]; at least two weight layers.
    pub dims: Vec<usize>,
    /// φ of every hidden layer (the read-out is linear).
    pub activation: Activation,
    /// c_φ (default: [`Activation::default_gain`]).
    pub gain: f64,
    /// Whether every layer has a bias.
    #[serde(default)]
    pub bias: bool,
    #[serde(default)]
    pub bias_init: BiasInit,
    /// A convolutional trunk: the first `conv.pools.len()` weight layers are k × k
    /// convolutions whose channel counts are `dims[1..]`; `dims[0]` is C·H·W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<ConvSpec>,
    /// A pre-activation residual trunk (arch `resmlp`, see [`super::residual`]): weight
    /// layer 1 is the stem, layers 2..B+1 the blocks, layer B+2 the read-out; every
    /// hidden width is the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual: Option<ResidualSpec>,
}

/// The convolutional part of an architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Input image [C, H, W] (examples stored CHW, as image files are).
    pub input: [usize; 3],
    /// Kernel size k (odd) of every conv layer ("same" padding, stride 1).
    pub kernel: usize,
    /// Pooling after each conv layer's activation (one per conv layer; the last must
    /// be `global`, so the dense head sees [B, C]).
    pub pools: Vec<Pool>,
}

impl Arch {
    /// Myrtle-5: conv3×3(C→w), ReLU; conv3×3(w→w), ReLU, avgpool 2; conv3×3, ReLU,
    /// avgpool 2; conv3×3, ReLU, global average pool; linear(w → n_out).
    pub fn myrtle5(input: [usize; 3], width: usize, n_out: usize) -> Self {
        let [c, h, w] = input;
        Arch {
            conv: Some(ConvSpec {
                input,
                kernel: 3,
                pools: vec![Pool::None, Pool::Avg2, Pool::Avg2, Pool::Global],
            }),
            ..Arch::mlp(
                vec![c * h * w, width, width, width, width, n_out],
                Activation::Relu,
            )
        }
    }

    /// The kind and shapes of every weight layer.
    pub fn kinds(&self) -> Vec<LayerKind> {
        let depth = self.depth();
        let mut kinds = Vec::with_capacity(depth);
        let (mut c, mut h, mut w, nc, k) = match &self.conv {
            Some(cs) => (
                cs.input[0],
                cs.input[1],
                cs.input[2],
                cs.pools.len(),
                cs.kernel,
            ),
            None => (0, 0, 0, 0, 0),
        };
        for l in 0..depth {
            if l < nc {
                let pool = self.conv.as_ref().unwrap().pools[l];
                let g = ConvGeom {
                    c_in: c,
                    c_out: self.dims[l + 1],
                    h,
                    w,
                    k,
                    chw_input: l == 0,
                    pool,
                };
                (h, w) = g.pooled_hw();
                c = g.c_out;
                kinds.push(LayerKind::Conv(g));
            } else {
                kinds.push(LayerKind::Dense(Dense {
                    fan_in: self.dims[l],
                    fan_out: self.dims[l + 1],
                }));
            }
        }
        kinds
    }

    /// A bias-free MLP with the activation's default gain.
    pub fn mlp(dims: Vec<usize>, activation: Activation) -> Self {
        Arch {
            conv: None,
            residual: None,
            dims,
            gain: activation.default_gain(),
            activation,
            bias: false,
            bias_init: BiasInit::Zero,
        }
    }

    /// The pre-activation residual MLP n₀ → n (stem), `blocks` blocks n → n, n → n_out.
    pub fn resmlp(
        n0: usize,
        width: usize,
        n_out: usize,
        activation: Activation,
        residual: ResidualSpec,
    ) -> Self {
        let mut dims = vec![n0];
        dims.extend(std::iter::repeat(width).take(residual.blocks + 1));
        dims.push(n_out);
        Arch {
            residual: Some(residual),
            ..Arch::mlp(dims, activation)
        }
    }

    /// Whether weight layer ℓ (0-based) is a residual block: its output is added to
    /// its input stream, scaled by [`branch_scale`](Self::branch_scale).
    pub fn skips(&self, l: usize) -> bool {
        self.residual.is_some() && l > 0 && l + 1 < self.depth()
    }

    /// β of weight layer ℓ: the residual branch multiplier for blocks, 1 otherwise.
    pub fn branch_scale(&self, l: usize) -> f64 {
        match &self.residual {
            Some(r) if self.skips(l) => r.beta(),
            _ => 1.0,
        }
    }

    /// The normalization before every hidden activation.
    pub fn norm(&self) -> Norm {
        self.residual.map(|r| r.norm).unwrap_or_default()
    }

    /// The architecture's family (mlp for any plain dense chain).
    pub fn family(&self) -> Family {
        match (&self.conv, &self.residual) {
            (Some(_), _) => Family::Myrtle5,
            (None, Some(_)) => Family::Resmlp,
            (None, None) => Family::Mlp,
        }
    }

    /// The tutorial's 3-layer linear network n₀ → n → n → n_out.
    pub fn linear3(n0: usize, width: usize, n_out: usize) -> Self {
        Arch::mlp(vec![n0, width, width, n_out], Activation::Linear)
    }

    /// The same with ReLU (gain √2).
    pub fn mlp3(n0: usize, width: usize, n_out: usize) -> Self {
        Arch::mlp(vec![n0, width, width, n_out], Activation::Relu)
    }

    /// Number of weight layers L.
    pub fn depth(&self) -> usize {
        self.dims.len().saturating_sub(1)
    }

    /// The shapes the parameterization needs.
    pub fn layer_shapes(&self) -> Vec<LayerShape> {
        self.kinds()
            .iter()
            .enumerate()
            .map(|(l, k)| {
                let (fan_in, fan_out) = k.fans();
                LayerShape {
                    fan_in,
                    fan_out,
                    fan_in_scales: l > 0,
                    bias: self.bias,
                }
            })
            .collect()
    }

    /// Check sizes and gain.
    pub fn validate(&self) -> Result<()> {
        if self.dims.len() < 3 {
            return Err(Error::config(format!(
                "dims must list input, at least one hidden width and output (got {:?})",
                self.dims
            )));
        }
        if let Some(i) = self.dims.iter().position(|&d| d == 0) {
            return Err(Error::config(format!(
                "dims[{i}] is 0: every layer size must be positive"
            )));
        }
        if !(self.gain.is_finite() && self.gain > 0.0) {
            return Err(Error::config(format!(
                "gain must be a positive number, got {}",
                self.gain
            )));
        }
        if let Some(r) = &self.residual {
            if self.conv.is_some() {
                return Err(Error::config("a residual trunk cannot follow a conv trunk"));
            }
            if r.blocks == 0 {
                return Err(Error::config("resmlp needs at least one block"));
            }
            if self.depth() != r.blocks + 2 {
                return Err(Error::config(format!(
                    "resmlp with {} blocks has {} weight layers; dims {:?} has {}",
                    r.blocks,
                    r.blocks + 2,
                    self.dims,
                    self.depth()
                )));
            }
            let hidden = &self.dims[1..self.dims.len() - 1];
            if hidden.iter().any(|&d| d != hidden[0]) {
                return Err(Error::config(format!(
                    "resmlp adds every block to its input: all hidden widths must be equal (dims {:?})",
                    self.dims
                )));
            }
        }
        if let Some(cs) = &self.conv {
            let [c, h, w] = cs.input;
            if c * h * w != self.dims[0] {
                return Err(Error::config(format!(
                    "conv input {:?} has {} values but dims[0] = {}",
                    cs.input,
                    c * h * w,
                    self.dims[0]
                )));
            }
            if cs.kernel % 2 == 0 || cs.kernel == 0 {
                return Err(Error::config(format!(
                    "conv kernel must be odd, got {}",
                    cs.kernel
                )));
            }
            if cs.pools.is_empty() || cs.pools.len() >= self.depth() {
                return Err(Error::config(
                    "a conv trunk needs at least one conv layer and a dense read-out after it",
                ));
            }
            if cs.pools.last() != Some(&Pool::Global) {
                return Err(Error::config(
                    "the last conv layer must end in a global average pool",
                ));
            }
            for k in self.kinds() {
                if let LayerKind::Conv(g) = k {
                    if g.h == 0 || g.w == 0 || (g.pool == Pool::Avg2 && (g.h < 2 || g.w < 2)) {
                        return Err(Error::config(format!(
                            "the image ({}×{}) is too small for this many pooling layers",
                            h, w
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the network is a plain chain of dense layers (no conv, no residual).
    pub fn is_mlp(&self) -> bool {
        self.conv.is_none() && self.residual.is_none()
    }

    /// Whether every weight layer is dense (MLP or resmlp).
    pub fn is_dense(&self) -> bool {
        self.conv.is_none()
    }

    /// Largest hidden width (channel count for conv layers).
    pub fn width(&self) -> usize {
        self.dims[1..self.dims.len() - 1]
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// A network with its parameterization and raw weights `W_ℓ` (and biases).
#[derive(Clone, Debug)]
pub struct Model<T> {
    pub arch: Arch,
    pub param: Parameterization,
    /// W_ℓ, [fan_out, fan_in] each.
    pub weights: Vec<Mat<T>>,
    /// b_ℓ, [fan_out] each, when the architecture has biases.
    pub biases: Vec<Option<Vec<T>>>,
    /// The layer kinds of `arch` (derived once).
    kinds: Vec<LayerKind>,
    /// With `param.center`: a frozen copy of the weights at the start of training, whose
    /// output f₀ is subtracted from every output (docs/theory.md §6.1). Never trained.
    pub reference: Option<Box<Model<T>>>,
}

impl<T: Scalar> Model<T> {
    /// A model with all weights zero (to be filled by the caller).
    pub fn zeros(arch: &Arch, param: Parameterization) -> Result<Self> {
        arch.validate()?;
        let shapes = arch.layer_shapes();
        if param.layers.len() != shapes.len()
            || param
                .layers
                .iter()
                .zip(&shapes)
                .any(|(l, s)| l.fan_in != s.fan_in || l.fan_out != s.fan_out)
        {
            return Err(Error::Shape(
                "parameterization does not match the architecture's layers".into(),
            ));
        }
        // The weights alone must fit; callers that also train or trace check more
        // (see crate::budget). This is the floor every model passes through.
        crate::budget::ensure(
            || arch.describe(),
            arch.param_values()
                .saturating_mul(std::mem::size_of::<T>() as u128),
        )?;
        let weights = shapes
            .iter()
            .map(|s| Mat::zeros(s.fan_out, s.fan_in))
            .collect();
        let biases = shapes
            .iter()
            .map(|s| s.bias.then(|| vec![T::zero(); s.fan_out]))
            .collect();
        Ok(Model {
            kinds: arch.kinds(),
            arch: arch.clone(),
            param,
            weights,
            biases,
            reference: None,
        })
    }

    /// Freeze the current weights as the centring reference when `param.center` is
    /// set (and drop any reference when it is not): from now on the model's output is
    /// f(x) − f₀(x), with f₀ the output of these weights.
    ///
    /// Cost: one more forward pass per forward (about a third more compute for a
    /// training step: forward, backward and update are roughly a third each) and a
    /// second copy of the weights. Gradients are unchanged (f₀ does not depend on the
    /// trained weights), so the empirical NTK is the same; only outputs and the loss's
    /// residual change.
    pub fn recenter(&mut self) {
        self.reference = None;
        if self.param.center {
            let mut frozen = self.clone();
            frozen.param.center = false;
            self.reference = Some(Box::new(frozen));
        }
    }

    /// Whether outputs are centred (f − f₀).
    pub fn is_centred(&self) -> bool {
        self.reference.is_some()
    }

    /// Resolve the parameterization for `arch` and draw initial weights
    /// `W_ℓ ~ N(0, σ_ℓ²)` from the streams `(seed, "init/weight", ℓ)`.
    pub fn init(
        arch: &Arch,
        choice: &ScaleChoice,
        optimizer: OptimizerKind,
        seed: u64,
    ) -> Result<Self> {
        arch.validate()?;
        let param = Parameterization::resolve(&arch.layer_shapes(), choice, optimizer)?;
        Self::init_with(arch, param, seed)
    }

    /// Draw initial weights for a resolved parameterization.
    pub fn init_with(arch: &Arch, param: Parameterization, seed: u64) -> Result<Self> {
        let mut m = Self::zeros(arch, param)?;
        m.reinit(seed);
        m.recenter();
        Ok(m)
    }

    /// Redraw all weights (and biases, per `bias_init`) from `seed`.
    ///
    /// Row i of W_ℓ comes from its own stream, so initializations are nested across
    /// widths (see [`crate::rng::normal_rows`]).
    pub fn reinit(&mut self, seed: u64) {
        for (l, lp) in self.param.layers.iter().enumerate() {
            let w = &mut self.weights[l];
            let cols = w.cols();
            fill_normal_rows(
                w.as_mut_slice(),
                seed,
                "init/weight",
                l as u64,
                cols,
                lp.init_std,
            );
            if let (Some(b), Some(bs)) = (self.biases[l].as_mut(), lp.bias) {
                match self.arch.bias_init {
                    BiasInit::Zero => b.iter_mut().for_each(|x| *x = T::zero()),
                    BiasInit::Normal => {
                        let draws = normal_vec(seed, "init/bias", l as u64, b.len(), bs.init_std);
                        b.iter_mut().zip(draws).for_each(|(b, v)| *b = T::of(v));
                    }
                }
            }
        }
    }

    /// Number of weight layers L.
    pub fn depth(&self) -> usize {
        self.weights.len()
    }

    /// The kind and shapes of weight layer ℓ.
    pub fn kind(&self, l: usize) -> LayerKind {
        self.kinds[l]
    }

    pub fn input_dim(&self) -> usize {
        self.arch.dims[0]
    }

    pub fn output_dim(&self) -> usize {
        *self.arch.dims.last().unwrap()
    }

    /// Total number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.weights
            .iter()
            .map(|w| w.rows() * w.cols())
            .sum::<usize>()
            + self.biases.iter().flatten().map(|b| b.len()).sum::<usize>()
    }

    /// The multipliers (β·g, β·g_b) the passes apply to layer ℓ: the
    /// parameterization's, times the residual branch scale β for a block (1 otherwise).
    pub fn multipliers(&self, l: usize) -> (T, T) {
        let lp = &self.param.layers[l];
        let beta = self.arch.branch_scale(l);
        (
            T::of(beta * lp.multiplier),
            T::of(beta * lp.bias.map(|b| b.multiplier).unwrap_or(0.0)),
        )
    }

    /// Effective weights W̃_ℓ = β·g_ℓ W_ℓ (β = 1 outside residual blocks).
    pub fn effective_weight(&self, l: usize) -> Mat<T> {
        let g = self.multipliers(l).0;
        let w = &self.weights[l];
        Mat::from_vec(
            w.rows(),
            w.cols(),
            w.as_slice().iter().map(|&x| g * x).collect(),
        )
    }

    /// Forward pass on `batch` rows of `x` (row-major [batch, input_dim]),
    /// filling `trace`.
    pub fn forward(&self, cx: &Compute, x: &[T], batch: usize, trace: &mut Trace<T>) {
        self.forward_uncentred(cx, x, batch, trace);
        if let Some(reference) = &self.reference {
            let depth = self.depth();
            let rt = trace
                .reference
                .get_or_insert_with(|| Box::new(Trace::new(reference, trace.capacity)));
            reference.forward(cx, x, batch, rt);
            let f0 = rt.output().as_slice();
            trace.z[depth - 1]
                .as_mut_slice()
                .iter_mut()
                .zip(f0)
                .for_each(|(f, &f0)| *f -= f0);
        }
    }

    /// The forward pass of the network's own weights: the trace's output is the raw
    /// f even for a centred model (whose reference is not run).
    ///
    /// Layer ℓ: `z_ℓ = [z_{ℓ−1} +] g W_ℓ(in_ℓ) + g_b b_ℓ` (the bracket and a factor β
    /// on the multipliers for residual blocks); for ℓ < L then `n_ℓ = N(z_ℓ)` (with
    /// LayerNorm), `a_ℓ = c φ(n_ℓ)` and `p_ℓ = pool(a_ℓ)` (kinds that pool), the last of
    /// which is in_{ℓ+1}.
    pub fn forward_uncentred(&self, cx: &Compute, x: &[T], batch: usize, trace: &mut Trace<T>) {
        let d0 = self.input_dim();
        assert!(
            x.len() >= batch * d0,
            "forward: input has {} values, need {}",
            x.len(),
            batch * d0
        );
        trace.set_batch(batch);
        trace.x.as_mut_slice().copy_from_slice(&x[..batch * d0]);
        let depth = self.depth();
        let gain = T::of(self.arch.gain);
        for l in 0..depth {
            let (g, gb) = self.multipliers(l);
            let kind = self.kinds[l];
            let Trace {
                x,
                z,
                n,
                inv,
                a,
                p,
                work,
                ..
            } = trace;
            let inp = input(x, a, p, l);
            let (done, rest) = z.split_at_mut(l);
            let zl = rest[0].as_mut_slice();
            kind.forward(
                cx,
                zl,
                inp,
                self.weights[l].as_slice(),
                self.biases[l].as_deref(),
                g,
                gb,
                batch,
                work,
            );
            if self.arch.skips(l) {
                zl.iter_mut()
                    .zip(done[l - 1].as_slice())
                    .for_each(|(z, &s)| *z += s);
            }
            if l + 1 < depth {
                let pre = if n[l].cols() > 0 {
                    let width = n[l].cols();
                    layer_norm_forward(zl, batch, width, n[l].as_mut_slice(), &mut inv[l]);
                    n[l].as_slice()
                } else {
                    &*zl
                };
                self.arch.activation.forward(gain, pre, a[l].as_mut_slice());
                kind.pool_forward(a[l].as_slice(), batch, p[l].as_mut_slice());
            }
        }
    }

    /// The uncentred output f (= f − f₀ + f₀) of the last forward pass: the trace's
    /// output for an uncentred model.
    pub fn raw_output(&self, trace: &Trace<T>) -> Mat<T> {
        let out = trace.output();
        match &trace.reference {
            Some(rt) if self.reference.is_some() => Mat::from_vec(
                out.rows(),
                out.cols(),
                out.as_slice()
                    .iter()
                    .zip(rt.output().as_slice())
                    .map(|(&f, &f0)| f + f0)
                    .collect(),
            ),
            _ => out.clone(),
        }
    }

    /// Backward pass. Expects `trace` from [`forward`](Self::forward) with `∂L/∂f`
    /// written into [`Trace::output_grad_mut`]. Fills every `∂L/∂z_ℓ`, `∂L/∂a_ℓ` and
    /// the gradients (`accumulate` adds to `grads` instead of overwriting).
    pub fn backward(
        &self,
        cx: &Compute,
        trace: &mut Trace<T>,
        grads: &mut Grads<T>,
        accumulate: bool,
    ) {
        let keep = if accumulate { T::one() } else { T::zero() };
        for l in (0..self.depth()).rev() {
            self.backward_signal(cx, trace, l);
            let (dw, db) = (grads.w[l].as_mut_slice(), grads.b[l].as_deref_mut());
            self.weight_gradient(cx, trace, l, dw, db, T::one(), keep, keep, T::one());
        }
    }

    /// Backward pass fused with a plain SGD update (no momentum): for every layer,
    /// `W ← (1 − η·wd)·W − η·∇W`, computed inside the gradient's matrix product.
    /// `rates[ℓ] = (η_w, wd_w, η_b, wd_b)`. Fills `∂L/∂z_ℓ` and `∂L/∂a_ℓ` like
    /// [`backward`](Self::backward) (each layer's input gradient uses its weights
    /// before the update).
    pub fn backward_sgd_update(
        &mut self,
        cx: &Compute,
        trace: &mut Trace<T>,
        rates: &[(T, T, T, T)],
    ) {
        for l in (0..self.depth()).rev() {
            self.backward_signal(cx, trace, l);
            let (lr, wd, lr_b, wd_b) = rates[l];
            let mut w = std::mem::take(&mut self.weights[l]);
            let mut b = self.biases[l].take();
            self.weight_gradient(
                cx,
                trace,
                l,
                w.as_mut_slice(),
                b.as_deref_mut(),
                -lr,
                T::one() - lr * wd,
                T::one() - lr_b * wd_b,
                -lr_b,
            );
            self.weights[l] = w;
            self.biases[l] = b;
        }
    }

    /// `dw ← scale·∇W + keep·dw` (and the bias likewise) for layer ℓ.
    #[allow(clippy::too_many_arguments)]
    fn weight_gradient(
        &self,
        cx: &Compute,
        trace: &mut Trace<T>,
        l: usize,
        dw: &mut [T],
        db: Option<&mut [T]>,
        scale: T,
        keep: T,
        keep_b: T,
        scale_b: T,
    ) {
        let (g, gb) = self.multipliers(l);
        let batch = trace.batch;
        let Trace {
            x, a, p, dz, work, ..
        } = trace;
        let inp = input(x, a, p, l);
        self.kinds[l].backward_weight(
            cx,
            dz[l].as_slice(),
            inp,
            g,
            gb,
            batch,
            work,
            dw,
            db,
            scale,
            keep,
            keep_b,
            scale_b,
        );
    }

    /// For layer ℓ: `∂L/∂z_ℓ` from `∂L/∂a_ℓ` (hidden layers; through the pooling,
    /// activation and normalization, plus the skip's `∂L/∂z_{ℓ+1}` when layer ℓ+1 is
    /// a residual block), then the gradient of layer ℓ's input. Layers are visited
    /// from the output down, so `∂L/∂a_ℓ` and `∂L/∂z_{ℓ+1}` are already there.
    pub(crate) fn backward_signal(&self, cx: &Compute, trace: &mut Trace<T>, l: usize) {
        let batch = trace.batch;
        let depth = self.depth();
        let Trace {
            z,
            n,
            inv,
            dz,
            da,
            dp,
            dn,
            work,
            ..
        } = trace;
        if l + 1 < depth {
            let kind = self.kinds[l];
            kind.pool_backward(dp[l].as_slice(), batch, da[l].as_mut_slice());
            let gain = T::of(self.arch.gain);
            if n[l].cols() > 0 {
                let width = n[l].cols();
                let dnl = &mut dn[..batch * width];
                self.arch
                    .activation
                    .backward(gain, n[l].as_slice(), da[l].as_slice(), dnl);
                layer_norm_backward(
                    n[l].as_slice(),
                    &inv[l],
                    dnl,
                    batch,
                    width,
                    dz[l].as_mut_slice(),
                );
            } else {
                self.arch.activation.backward(
                    gain,
                    z[l].as_slice(),
                    da[l].as_slice(),
                    dz[l].as_mut_slice(),
                );
            }
            if self.arch.skips(l + 1) {
                let (lower, upper) = dz.split_at_mut(l + 1);
                lower[l]
                    .as_mut_slice()
                    .iter_mut()
                    .zip(upper[0].as_slice())
                    .for_each(|(d, &u)| *d += u);
            }
        }
        if l > 0 {
            let (g, _) = self.multipliers(l);
            // The input of layer ℓ is the pooled output of layer ℓ−1 when that pools.
            let dinp = if self.kinds[l - 1].pooled_len().is_some() {
                dp[l - 1].as_mut_slice()
            } else {
                da[l - 1].as_mut_slice()
            };
            self.kinds[l].backward_input(
                cx,
                dz[l].as_slice(),
                self.weights[l].as_slice(),
                g,
                batch,
                work,
                dinp,
            );
        }
    }

    /// Outputs for all rows of `x`, computed in chunks of the trace's capacity.
    pub fn predict(&self, cx: &Compute, x: &Mat<T>, trace: &mut Trace<T>) -> Mat<T> {
        let k = self.output_dim();
        let mut out = Mat::zeros(x.rows(), k);
        let cap = trace.capacity();
        let mut start = 0;
        while start < x.rows() {
            let b = cap.min(x.rows() - start);
            self.forward(
                cx,
                &x.as_slice()[start * x.cols()..(start + b) * x.cols()],
                b,
                trace,
            );
            out.as_mut_slice()[start * k..(start + b) * k]
                .copy_from_slice(trace.output().as_slice());
            start += b;
        }
        out
    }

    /// Every parameter tensor as a flat slice, weights then bias per layer.
    pub fn params(&self) -> Vec<&[T]> {
        let mut v = Vec::new();
        for (w, b) in self.weights.iter().zip(&self.biases) {
            v.push(w.as_slice());
            if let Some(b) = b {
                v.push(b.as_slice());
            }
        }
        v
    }

    /// Every parameter tensor as a mutable flat slice, in the order of [`params`](Self::params).
    pub fn params_mut(&mut self) -> Vec<&mut [T]> {
        let mut v = Vec::new();
        for (w, b) in self.weights.iter_mut().zip(self.biases.iter_mut()) {
            v.push(w.as_mut_slice());
            if let Some(b) = b {
                v.push(b.as_mut_slice());
            }
        }
        v
    }

    /// The same network in another precision.
    pub fn cast<U: Scalar>(&self) -> Model<U> {
        Model {
            reference: self.reference.as_ref().map(|r| Box::new(r.cast())),
            kinds: self.kinds.clone(),
            arch: self.arch.clone(),
            param: self.param.clone(),
            weights: self.weights.iter().map(|w| w.cast()).collect(),
            biases: self
                .biases
                .iter()
                .map(|b| {
                    b.as_ref()
                        .map(|b| b.iter().map(|&x| U::of(x.f64())).collect())
                })
                .collect(),
        }
    }
}

/// The input of layer ℓ: the network input, or the previous layer's (pooled) output.
fn input<'a, T>(x: &'a Mat<T>, a: &'a [Mat<T>], p: &'a [Mat<T>], l: usize) -> &'a [T] {
    if l == 0 {
        x.as_slice()
    } else if p[l - 1].cols() > 0 {
        p[l - 1].as_slice()
    } else {
        a[l - 1].as_slice()
    }
}

/// Every intermediate of one forward/backward pass, for up to `capacity` rows.
///
/// Indexing is by weight layer ℓ = 0..L−1 (0-based): `z[ℓ]` is the pre-activation
/// [batch, n_ℓ] (for a residual network the stream h_ℓ), `a[ℓ]` the post-activation
/// (empty for the read-out), `dz[ℓ]` = ∂L/∂z_ℓ and `da[ℓ]` = ∂L/∂a_ℓ. The input to
/// layer ℓ is `x` for ℓ = 0 and `a[ℓ−1]` (or its pooled `p[ℓ−1]`) otherwise
/// ([`Trace::input_of`]).
#[derive(Clone, Debug)]
pub struct Trace<T> {
    batch: usize,
    capacity: usize,
    pub x: Mat<T>,
    pub z: Vec<Mat<T>>,
    /// N(z_ℓ) before the activation, for layers that normalize (0 columns otherwise).
    pub n: Vec<Mat<T>>,
    /// 1/√(var + ε) of every row of z_ℓ, for layers that normalize.
    inv: Vec<Vec<T>>,
    pub a: Vec<Mat<T>>,
    pub dz: Vec<Mat<T>>,
    pub da: Vec<Mat<T>>,
    /// Pooled outputs of layers that pool (0 columns for the others).
    pub p: Vec<Mat<T>>,
    /// ∂L/∂(pooled output), for layers that pool.
    pub dp: Vec<Mat<T>>,
    /// ∂L/∂N(z_ℓ) of the layer being differentiated (one layer at a time).
    dn: Vec<T>,
    /// Working space of the layer kinds ([`WeightKind::work_len`]).
    work: Vec<T>,
    /// The centring reference's own trace (created on first use): its output is f₀.
    pub reference: Option<Box<Trace<T>>>,
}

impl<T: Scalar> Trace<T> {
    /// Buffers for up to `capacity` rows of this model.
    pub fn new(model: &Model<T>, capacity: usize) -> Self {
        let kinds = &model.kinds;
        let depth = kinds.len();
        let hidden = |l: usize| if l + 1 < depth { kinds[l].out_len() } else { 0 };
        let pooled = |l: usize| {
            if l + 1 < depth {
                kinds[l].pooled_len().unwrap_or(0)
            } else {
                0
            }
        };
        let normed = |l: usize| {
            if model.arch.norm() == Norm::Layer {
                hidden(l)
            } else {
                0
            }
        };
        let work_len = kinds
            .iter()
            .map(|k| k.work_len(capacity))
            .max()
            .unwrap_or(0);
        let mats = |len: &dyn Fn(usize) -> usize| -> Vec<Mat<T>> {
            (0..depth).map(|l| Mat::zeros(capacity, len(l))).collect()
        };
        let mut t = Trace {
            batch: capacity,
            capacity,
            x: Mat::zeros(capacity, model.input_dim()),
            z: mats(&|l| kinds[l].out_len()),
            n: mats(&normed),
            inv: (0..depth)
                .map(|l| vec![T::zero(); if normed(l) > 0 { capacity } else { 0 }])
                .collect(),
            a: mats(&hidden),
            dz: mats(&|l| kinds[l].out_len()),
            da: mats(&hidden),
            p: mats(&pooled),
            dp: mats(&pooled),
            dn: vec![T::zero(); (0..depth).map(|l| capacity * normed(l)).max().unwrap_or(0)],
            work: vec![T::zero(); work_len],
            reference: None,
        };
        t.set_batch(capacity);
        t
    }

    /// Rows in the current pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Largest batch these buffers hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Use the first `batch` rows (no allocation).
    pub fn set_batch(&mut self, batch: usize) {
        assert!(
            batch <= self.capacity,
            "batch {batch} exceeds trace capacity {}",
            self.capacity
        );
        if batch == self.batch {
            return;
        }
        self.batch = batch;
        self.x.set_rows(batch);
        for m in self
            .z
            .iter_mut()
            .chain(&mut self.n)
            .chain(&mut self.a)
            .chain(&mut self.dz)
            .chain(&mut self.da)
            .chain(&mut self.p)
            .chain(&mut self.dp)
        {
            m.set_rows(batch);
        }
    }

    /// The network output f = z_L, [batch, n_out].
    pub fn output(&self) -> &Mat<T> {
        self.z.last().unwrap()
    }

    /// Where the loss writes ∂L/∂f before [`Model::backward`].
    pub fn output_grad_mut(&mut self) -> &mut Mat<T> {
        self.dz.last_mut().unwrap()
    }

    /// The input of weight layer ℓ (0-based): x, a_{ℓ−1}, or its pooled version.
    pub fn input_of(&self, l: usize) -> &Mat<T> {
        if l == 0 {
            &self.x
        } else if self.p[l - 1].cols() > 0 {
            &self.p[l - 1]
        } else {
            &self.a[l - 1]
        }
    }
}

/// Gradients of every parameter, shaped like the model's tensors.
#[derive(Clone, Debug)]
pub struct Grads<T> {
    pub w: Vec<Mat<T>>,
    pub b: Vec<Option<Vec<T>>>,
}

impl<T: Scalar> Grads<T> {
    pub fn new(model: &Model<T>) -> Self {
        Grads {
            w: model
                .weights
                .iter()
                .map(|w| Mat::zeros(w.rows(), w.cols()))
                .collect(),
            b: model
                .biases
                .iter()
                .map(|b| b.as_ref().map(|b| vec![T::zero(); b.len()]))
                .collect(),
        }
    }

    /// Flat views in the order of [`Model::params`].
    pub fn tensors(&self) -> Vec<&[T]> {
        let mut v = Vec::new();
        for (w, b) in self.w.iter().zip(&self.b) {
            v.push(w.as_slice());
            if let Some(b) = b {
                v.push(b.as_slice());
            }
        }
        v
    }
}
