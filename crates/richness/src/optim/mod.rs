//! Optimizers with per-layer rates from the parameterization.
//!
//! Layer ℓ's rate is `η₀ · η_ℓ` (base rate times the parameterization's factor).
//!
//! - **SGD** (PyTorch semantics): `d = ∇W + wd_ℓ·W`; with momentum μ,
//!   `buf = d` on the first step and `buf = μ·buf + d` after; `W ← W − η·buf`.
//! - **Adam** (PyTorch semantics, bias-corrected): `m = β₁m + (1−β₁)d`,
//!   `v = β₂v + (1−β₂)d²`, `W ← W − η·m̂/(√v̂ + ε_ℓ)`, with ε_ℓ from the
//!   parameterization (it scales with the gauge factor, like the raw gradient).
//!
//! Weight decay is an L2 penalty `(wd/2)·‖W̃‖²` on the *effective* weights
//! W̃ = g·W, i.e. `wd_ℓ = wd·g_ℓ²` on the raw ones, so that it is gauge-invariant;
//! in the `layerwise` gauge (g = 1) it is exactly PyTorch's `weight_decay`.

use crate::linalg::Compute;
use crate::nn::{Grads, Model};
use crate::param::OptimizerKind;
use crate::tensor::{Mat, Scalar};
use serde::{Deserialize, Serialize};

/// Optimizer settings (the `[optim]` table of a config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// `sgd` or `adam` (also selects the parameterization's rates).
    #[serde(default)]
    pub kind: OptimizerKind,
    /// SGD momentum μ (0 = plain SGD).
    #[serde(default)]
    pub momentum: f64,
    /// L2 penalty on effective weights.
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam β₁.
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// Adam β₂.
    #[serde(default = "beta2")]
    pub beta2: f64,
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            kind: OptimizerKind::Sgd,
            momentum: 0.0,
            weight_decay: 0.0,
            beta1: beta1(),
            beta2: beta2(),
        }
    }
}

impl OptimConfig {
    pub fn sgd(momentum: f64) -> Self {
        OptimConfig {
            momentum,
            ..Default::default()
        }
    }
    pub fn adam() -> Self {
        OptimConfig {
            kind: OptimizerKind::Adam,
            ..Default::default()
        }
    }
    /// Reject values that cannot train.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |name: &str, v: f64| {
            crate::Error::config(format!("optim.{name} = {v} is out of range"))
        };
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(bad("momentum", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad("weight_decay", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(bad("beta1", self.beta1));
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return Err(bad("beta2", self.beta2));
        }
        Ok(())
    }
}

/// Per-tensor rate, decay and ε.
#[derive(Clone, Copy, Debug)]
struct Hyper<T> {
    lr: T,
    wd: T,
    eps: T,
}

/// Optimizer state for one model.
#[derive(Clone, Debug)]
pub struct Optimizer<T> {
    cfg: OptimConfig,
    /// One entry per tensor, in the order of `Model::params`.
    hyper: Vec<Hyper<T>>,
    /// SGD momentum buffers or Adam first moments.
    m: Vec<Vec<T>>,
    /// Adam second moments.
    v: Vec<Vec<T>>,
    steps: u64,
}

impl<T: Scalar> Optimizer<T> {
    /// State for `model`, with rates from its parameterization.
    pub fn new(model: &Model<T>, cfg: &OptimConfig) -> Self {
        let mut hyper = Vec::new();
        let p = &model.param;
        for (l, lp) in p.layers.iter().enumerate() {
            let eps = lp.adam_eps.unwrap_or(1e-8);
            hyper.push(Hyper {
                lr: T::of(p.base_lr * lp.lr),
                wd: T::of(cfg.weight_decay * lp.multiplier * lp.multiplier),
                eps: T::of(eps),
            });
            if model.biases[l].is_some() {
                let b = lp.bias.expect("bias scaling");
                // The bias's gauge factor is its multiplier (layerwise g = 1).
                // Derived from the layer's ε (as `bias_adam_eps` in the table is), so that
                // a caller who sets `adam_eps` moves the bias's ε with it.
                let eps_b = crate::param::bias_eps(eps, lp.multiplier, b.multiplier);
                hyper.push(Hyper {
                    lr: T::of(p.base_lr * b.lr),
                    wd: T::of(cfg.weight_decay * b.multiplier * b.multiplier),
                    eps: T::of(eps_b),
                });
            }
        }
        let sizes: Vec<usize> = model.params().iter().map(|t| t.len()).collect();
        Self::with_hypers(cfg, hyper, &sizes)
    }

    /// State for any list of tensors (a model that is not a [`Model`], such as the
    /// GPT): tensor i has `sizes[i]` values and `(rate, decay, ε) = hypers[i]`, with
    /// the rate already multiplied by η₀ and the decay by g² (see the module docs).
    /// [`step_tensors`](Self::step_tensors) then updates them in this order.
    pub fn for_tensors(cfg: &OptimConfig, hypers: &[(f64, f64, f64)], sizes: &[usize]) -> Self {
        assert_eq!(
            hypers.len(),
            sizes.len(),
            "one (rate, decay, eps) per tensor"
        );
        let hyper = hypers
            .iter()
            .map(|&(lr, wd, eps)| Hyper {
                lr: T::of(lr),
                wd: T::of(wd),
                eps: T::of(eps),
            })
            .collect();
        Self::with_hypers(cfg, hyper, sizes)
    }

    fn with_hypers(cfg: &OptimConfig, hyper: Vec<Hyper<T>>, sizes: &[usize]) -> Self {
        let needs_m = cfg.kind == OptimizerKind::Adam || cfg.momentum != 0.0;
        let needs_v = cfg.kind == OptimizerKind::Adam;
        Optimizer {
            cfg: cfg.clone(),
            hyper,
            m: sizes
                .iter()
                .map(|&n| {
                    if needs_m {
                        vec![T::zero(); n]
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            v: sizes
                .iter()
                .map(|&n| {
                    if needs_v {
                        vec![T::zero(); n]
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            steps: 0,
        }
    }

    /// Per-layer `(η_w, wd_w, η_b, wd_b)` when this is plain SGD (no momentum),
    /// whose update can be fused into the backward pass
    /// ([`Model::backward_sgd_update`]); `None` otherwise.
    pub fn fusable_sgd(&self, model: &Model<T>) -> Option<Vec<(T, T, T, T)>> {
        if self.cfg.kind != OptimizerKind::Sgd || self.cfg.momentum != 0.0 {
            return None;
        }
        Some(self.layer_rates(model))
    }

    /// Per-layer `(η_w, wd_w, η_b, wd_b)` of any optimizer (the bias entries 0 for a
    /// layer without bias): the rates its first step applies to the gradient.
    pub fn layer_rates(&self, model: &Model<T>) -> Vec<(T, T, T, T)> {
        let mut i = 0;
        let mut out = Vec::new();
        for b in &model.biases {
            let w = self.hyper[i];
            i += 1;
            let (lb, wdb) = if b.is_some() {
                let h = self.hyper[i];
                i += 1;
                (h.lr, h.wd)
            } else {
                (T::zero(), T::zero())
            };
            out.push((w.lr, w.wd, lb, wdb));
        }
        out
    }

    /// Count a step taken elsewhere (by the fused SGD path).
    pub fn count_step(&mut self) {
        self.steps += 1;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update of every parameter from `grads`.
    pub fn step(&mut self, cx: &Compute, model: &mut Model<T>, grads: &Grads<T>) {
        self.step_tensors(cx, model.params_mut(), grads.tensors());
    }

    /// One update of every tensor (in the order the optimizer was built for) from
    /// its gradient.
    pub fn step_tensors(&mut self, cx: &Compute, params: Vec<&mut [T]>, grads: Vec<&[T]>) {
        assert_eq!(
            params.len(),
            self.hyper.len(),
            "one tensor per optimizer slot"
        );
        let first = self.steps == 0;
        self.steps += 1;
        let t = self.steps as i32;
        let cfg = &self.cfg;
        for (i, (w, g)) in params.into_iter().zip(grads).enumerate() {
            let h = self.hyper[i];
            match cfg.kind {
                OptimizerKind::Sgd if cfg.momentum == 0.0 => {
                    cx.zip_apply(w, g, |w, g| *w -= h.lr * (g + h.wd * *w));
                }
                OptimizerKind::Sgd => {
                    let mu = T::of(cfg.momentum);
                    let buf = &mut self.m[i];
                    cx.zip3_apply(w, buf, g, |w, b, g| {
                        let d = g + h.wd * *w;
                        *b = if first { d } else { mu * *b + d };
                        *w -= h.lr * *b;
                    });
                }
                OptimizerKind::Adam => {
                    let (b1, b2) = (T::of(cfg.beta1), T::of(cfg.beta2));
                    let bc1 = T::of(1.0 - cfg.beta1.powi(t));
                    let bc2 = T::of(1.0 - cfg.beta2.powi(t));
                    let (m, v) = (&mut self.m[i], &mut self.v[i]);
                    cx.zip4_apply(w, m, v, g, |w, m, v, g| {
                        let d = g + h.wd * *w;
                        *m = b1 * *m + (T::one() - b1) * d;
                        *v = b2 * *v + (T::one() - b2) * d * d;
                        *w -= h.lr * (*m / bc1) / ((*v / bc2).sqrt() + h.eps);
                    });
                }
            }
        }
    }
}

/// A helper for tests and probes: `out = a − b` elementwise as a new matrix.
pub fn difference<T: Scalar>(a: &Mat<T>, b: &Mat<T>) -> Mat<T> {
    assert_eq!(a.shape(), b.shape());
    Mat::from_vec(
        a.rows(),
        a.cols(),
        a.as_slice()
            .iter()
            .zip(b.as_slice())
            .map(|(&x, &y)| x - y)
            .collect(),
    )
}
