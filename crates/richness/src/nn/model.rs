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
use super::dense::{dense_backward_input, dense_backward_weight, dense_forward};
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::param::{LayerShape, OptimizerKind, Parameterization, ScaleChoice};
use crate::rng::{normal_rows, normal_vec};
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
}

impl Arch {
    /// A bias-free MLP with the activation's default gain.
    pub fn mlp(dims: Vec<usize>, activation: Activation) -> Self {
        Arch {
            dims,
            gain: activation.default_gain(),
            activation,
            bias: false,
            bias_init: BiasInit::Zero,
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
        LayerShape::mlp(&self.dims, self.bias)
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
        Ok(())
    }

    /// Largest hidden width.
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
        let weights = shapes
            .iter()
            .map(|s| Mat::zeros(s.fan_out, s.fan_in))
            .collect();
        let biases = shapes
            .iter()
            .map(|s| s.bias.then(|| vec![T::zero(); s.fan_out]))
            .collect();
        Ok(Model {
            arch: arch.clone(),
            param,
            weights,
            biases,
        })
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
        Ok(m)
    }

    /// Redraw all weights (and biases, per `bias_init`) from `seed`.
    ///
    /// Row i of W_ℓ comes from its own stream, so initializations are nested across
    /// widths (see [`crate::rng::normal_rows`]).
    pub fn reinit(&mut self, seed: u64) {
        for (l, lp) in self.param.layers.iter().enumerate() {
            let w = &mut self.weights[l];
            let draws = normal_rows(
                seed,
                "init/weight",
                l as u64,
                w.rows(),
                w.cols(),
                lp.init_std,
            );
            w.as_mut_slice()
                .iter_mut()
                .zip(draws)
                .for_each(|(w, v)| *w = T::of(v));
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

    /// Multipliers (g, g_b) of layer ℓ.
    fn multipliers(&self, l: usize) -> (T, T) {
        let lp = &self.param.layers[l];
        (
            T::of(lp.multiplier),
            T::of(lp.bias.map(|b| b.multiplier).unwrap_or(0.0)),
        )
    }

    /// Effective weights W̃_ℓ = g_ℓ W_ℓ.
    pub fn effective_weight(&self, l: usize) -> Mat<T> {
        let g = T::of(self.param.layers[l].multiplier);
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
            let (fan_out, fan_in) = self.weights[l].shape();
            let Trace {
                x, z, a, scratch, ..
            } = trace;
            let inp = if l == 0 {
                x.as_slice()
            } else {
                a[l - 1].as_slice()
            };
            dense_forward(
                cx,
                z[l].as_mut_slice(),
                inp,
                self.weights[l].as_slice(),
                self.biases[l].as_deref(),
                g,
                gb,
                batch,
                fan_in,
                fan_out,
                scratch,
            );
            if l + 1 < depth {
                self.arch
                    .activation
                    .forward(gain, z[l].as_slice(), a[l].as_mut_slice());
            }
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
            let (g, gb) = self.multipliers(l);
            let (fan_out, fan_in) = self.weights[l].shape();
            dense_backward_weight(
                cx,
                trace.dz[l].as_slice(),
                trace.input_of(l).as_slice(),
                g,
                gb,
                trace.batch,
                fan_in,
                fan_out,
                grads.w[l].as_mut_slice(),
                grads.b[l].as_deref_mut(),
                T::one(),
                keep,
                keep,
                T::one(),
            );
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
            let (g, gb) = self.multipliers(l);
            let (fan_out, fan_in) = self.weights[l].shape();
            let (lr, wd, lr_b, wd_b) = rates[l];
            dense_backward_weight(
                cx,
                trace.dz[l].as_slice(),
                trace.input_of(l).as_slice(),
                g,
                gb,
                trace.batch,
                fan_in,
                fan_out,
                self.weights[l].as_mut_slice(),
                self.biases[l].as_deref_mut(),
                -lr,
                T::one() - lr * wd,
                T::one() - lr_b * wd_b,
                -lr_b,
            );
        }
    }

    /// For layer ℓ: `∂L/∂z_ℓ` from `∂L/∂a_ℓ` (hidden layers), then `∂L/∂a_{ℓ−1}`.
    fn backward_signal(&self, cx: &Compute, trace: &mut Trace<T>, l: usize) {
        let batch = trace.batch;
        let Trace { z, dz, da, .. } = trace;
        if l + 1 < self.depth() {
            self.arch.activation.backward(
                T::of(self.arch.gain),
                z[l].as_slice(),
                da[l].as_slice(),
                dz[l].as_mut_slice(),
            );
        }
        if l > 0 {
            let (g, _) = self.multipliers(l);
            let (fan_out, fan_in) = self.weights[l].shape();
            dense_backward_input(
                cx,
                dz[l].as_slice(),
                self.weights[l].as_slice(),
                g,
                batch,
                fan_in,
                fan_out,
                da[l - 1].as_mut_slice(),
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

/// Every intermediate of one forward/backward pass, for up to `capacity` rows.
///
/// Indexing is by weight layer ℓ = 0..L−1 (0-based): `z[ℓ]` is the pre-activation
/// [batch, n_ℓ], `a[ℓ]` the post-activation (empty for the read-out), `dz[ℓ]` =
/// ∂L/∂z_ℓ and `da[ℓ]` = ∂L/∂a_ℓ. The input to layer ℓ is `x` for ℓ = 0 and `a[ℓ−1]`
/// otherwise ([`Trace::input_of`]).
#[derive(Clone, Debug)]
pub struct Trace<T> {
    batch: usize,
    capacity: usize,
    pub x: Mat<T>,
    pub z: Vec<Mat<T>>,
    pub a: Vec<Mat<T>>,
    pub dz: Vec<Mat<T>>,
    pub da: Vec<Mat<T>>,
    /// Working space of the layer kernels (batch × widest layer).
    scratch: Vec<T>,
}

impl<T: Scalar> Trace<T> {
    /// Buffers for up to `capacity` rows of this model.
    pub fn new(model: &Model<T>, capacity: usize) -> Self {
        let dims = &model.arch.dims;
        let depth = dims.len() - 1;
        let hidden = |l: usize| if l + 1 < depth { dims[l + 1] } else { 0 };
        let mut t = Trace {
            batch: capacity,
            capacity,
            x: Mat::zeros(capacity, dims[0]),
            z: (0..depth)
                .map(|l| Mat::zeros(capacity, dims[l + 1]))
                .collect(),
            a: (0..depth)
                .map(|l| Mat::zeros(capacity, hidden(l)))
                .collect(),
            dz: (0..depth)
                .map(|l| Mat::zeros(capacity, dims[l + 1]))
                .collect(),
            da: (0..depth)
                .map(|l| Mat::zeros(capacity, hidden(l)))
                .collect(),
            scratch: vec![T::zero(); capacity * dims[1..].iter().copied().max().unwrap_or(0)],
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
            .chain(&mut self.a)
            .chain(&mut self.dz)
            .chain(&mut self.da)
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

    /// The input a_{ℓ−1} of weight layer ℓ (0-based).
    pub fn input_of(&self, l: usize) -> &Mat<T> {
        if l == 0 {
            &self.x
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
