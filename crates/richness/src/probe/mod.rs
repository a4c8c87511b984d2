//! Probes: every quantity of theory.md §2–§4, measured before and after k steps.
//!
//! On a fixed probe batch X (B rows), with h_ℓ = z_ℓ the pre-activation of weight
//! layer ℓ = 1..L (f = h_L), a_ℓ its post-activation (a_0 = X), W̃ = g·W the effective
//! weights and Δ the change over k optimizer steps (default 1, on the probe batch):
//!
//! ```text
//! Δh_ℓ = g ΔW a_{ℓ−1}      (layer term)
//!      + g W Δa_{ℓ−1}      (passthrough term)
//!      + g ΔW Δa_{ℓ−1}     (interaction term)       + g_b Δb (bias term, if any)
//!      [+ Δh_{ℓ−1}          (skip term, residual blocks; g, g_b then carry β)]
//! ```
//!
//! exactly, and this module measures (norms are Frobenius over batch × width):
//!
//! | quantity | meaning |
//! |---|---|
//! | `h_norm`, `h_rms` | ‖h_ℓ‖ at init and its RMS coordinate ‖h‖/√(B·n_ℓ) |
//! | `a_rms` | RMS coordinate of the post-activation a_ℓ (ℓ < L) |
//! | `dh_norm`, `dh_rms`, `dh_rel` | ‖Δh_ℓ‖, its RMS coordinate, ‖Δh_ℓ‖/‖h_ℓ‖ |
//! | `da_rel` | ‖Δa_ℓ‖/‖a_ℓ‖ (post-activation; experiments.md T2) |
//! | `layer_term`, `passthrough_term`, `interaction_term` | norms of the three terms (passthrough and interaction for ℓ ≥ 2) |
//! | `interaction_ratio` | interaction / layer term |
//! | `skip_term` | ‖Δh_{ℓ−1}‖, what a residual block's skip carries into Δh_ℓ (blocks only) |
//! | `layer_share` | layer term / ‖Δh_ℓ‖ (MAX wants Θ(1)) |
//! | `decomp_residual` | ‖Δh − (sum of terms)‖/‖Δh‖ (a self-check: rounding error) |
//! | `grad_norm` | ‖∂L/∂h_ℓ‖ at init |
//! | `uuc` | \|⟨∂L/∂h_ℓ, g ΔW a_{ℓ−1}⟩\|: the useful update of the layer's own weights (the layer term; theory.md §2) |
//! | `uuc_total` | \|⟨∂L/∂h_ℓ, Δh_ℓ⟩\|: the same with the passthrough (and interaction, skip) terms included |
//! | `W_op`, `dW_op`, `dW_op_rel` | ‖W̃‖_op, ‖ΔW̃‖_op and their ratio (spectral norms, see [`crate::linalg::spectral`]) |
//! | `W_fro`, `dW_fro`, `dW_fro_rel` | the same in Frobenius norm |
//! | `align` | ‖ΔW̃ a_{ℓ−1}‖ / (‖ΔW̃‖_op ‖a_{ℓ−1}‖): ≈ 1 when the update is aligned with its input |
//! | `align_passthrough` | ‖W̃ Δa_{ℓ−1}‖ / (‖W̃‖_op ‖Δa_{ℓ−1}‖): the same ratio for the (random) init weights |
//!
//! and, for the network (layer 0): `f_norm` = ‖f₀‖, the network's own output at init
//! (uncentred also for a centred model), `f0_rel` = ‖f₀‖/‖y‖, `df_norm` = ‖Δf‖,
//! `loss_before`, `loss_after`, `loss_decrease`. A centred model (`param.center`)
//! trains f − f₀: its loss, residual and updates are those of the centred output.
//!
//! ```
//! use richness::prelude::*;
//! use richness::probe::{probe, probe_stepped, ProbeSpec};
//! let arch = Arch::linear3(4, 64, 1);
//! let choice = ScaleChoice { base_lr: 0.1, ..ScaleChoice::preset(Preset::Mup) };
//! let model = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 0).unwrap();
//! let x = Mat::from_fn(8, 4, |i, j| ((i + j) % 3) as f64 - 1.0);
//! let y = Mat::from_fn(8, 1, |i, _| i as f64 / 8.0);
//! let opt = OptimConfig::sgd(0.0);
//! let p = probe(&model, &opt, Loss::Mse, &x, &y, &ProbeSpec::default(), Compute::new(1));
//! assert!(p.get("loss_decrease", 0).unwrap() > 0.0);
//! // The general probe steps the weights and checks the decomposition; one SGD step
//! // of a dense net takes the low-rank fast path ([`onestep`]), which gives the same
//! // values without forming ΔW.
//! let q = probe_stepped(&model, &opt, Loss::Mse, &x, &y, &ProbeSpec::default(), Compute::new(1));
//! assert!(q.get("decomp_residual", 2).unwrap() < 1e-12);
//! let (a, b) = (p.get("dh_norm", 2).unwrap(), q.get("dh_norm", 2).unwrap());
//! assert!((a - b).abs() < 1e-12 * b);
//! ```

pub mod check;
pub mod coord;
pub mod gpt;
pub mod onestep;
pub mod sequential;

use crate::linalg::spectral::{op_norm, TOL};
use crate::linalg::Compute;
use crate::nn::{Loss, Model};
use crate::optim::OptimConfig;
use crate::tensor::{dot, norm, Mat, MatRef, Scalar};
use crate::train::Trainer;
use serde::{Deserialize, Serialize};

/// A readable axis label for a probe quantity (norms are Frobenius over batch × width
/// and dimensionless).
pub fn describe(quantity: &str) -> &'static str {
    match quantity {
        "h_norm" => "‖h‖ at init",
        "h_rms" => "RMS coordinate of h at init",
        "a_rms" => "RMS coordinate of a = c·φ(h) at init",
        "dh_norm" => "‖Δh‖",
        "dh_rms" => "RMS coordinate of Δh",
        "dh_rel" => "‖Δh‖ / ‖h‖",
        "da_rel" => "‖Δa‖ / ‖a‖ (post-activation)",
        "layer_term" => "‖g ΔW a_prev‖ (layer term)",
        "passthrough_term" => "‖g W Δa_prev‖ (passthrough term)",
        "interaction_term" => "‖g ΔW Δa_prev‖ (interaction term)",
        "interaction_ratio" => "interaction / layer term",
        "skip_term" => "‖Δh_prev‖ (residual skip term)",
        "layer_share" => "layer term / ‖Δh‖",
        "decomp_residual" => "decomposition residual (relative)",
        "grad_norm" => "‖∂L/∂h‖ at init",
        "uuc" => "|⟨∂L/∂h, g ΔW a_prev⟩| (useful update of the layer's own weights)",
        "uuc_total" => "|⟨∂L/∂h, Δh⟩| (useful update incl. passthrough)",
        "W_op" => "‖W̃‖ spectral",
        "dW_op" => "‖ΔW̃‖ spectral",
        "dW_op_rel" => "‖ΔW̃‖ / ‖W̃‖ (spectral)",
        "W_fro" => "‖W̃‖ Frobenius",
        "dW_fro" => "‖ΔW̃‖ Frobenius",
        "dW_fro_rel" => "‖ΔW̃‖ / ‖W̃‖ (Frobenius)",
        "align" => "‖ΔW̃ a‖ / (‖ΔW̃‖ ‖a‖)",
        "align_passthrough" => "‖W̃ Δa‖ / (‖W̃‖ ‖Δa‖)",
        "f_norm" => "‖f‖ at init",
        "f0_rel" => "‖f₀‖ / ‖y‖ (output at init against the targets)",
        "df_norm" => "‖Δf‖",
        "loss_before" => "loss before",
        "loss_after" => "loss after",
        "loss_decrease" => "loss decrease",
        _ => "value",
    }
}

/// Every quantity a probe measures (layer quantities, then network ones).
pub const QUANTITIES: [&str; 31] = [
    "h_norm",
    "h_rms",
    "a_rms",
    "dh_norm",
    "dh_rms",
    "dh_rel",
    "da_rel",
    "layer_term",
    "passthrough_term",
    "interaction_term",
    "interaction_ratio",
    "skip_term",
    "layer_share",
    "decomp_residual",
    "grad_norm",
    "uuc",
    "uuc_total",
    "W_op",
    "dW_op",
    "dW_op_rel",
    "W_fro",
    "dW_fro",
    "dW_fro_rel",
    "align",
    "align_passthrough",
    "f_norm",
    "f0_rel",
    "df_norm",
    "loss_before",
    "loss_after",
    "loss_decrease",
];

/// What to probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// Optimizer steps between "before" and "after" (all on the probe batch).
    pub steps: usize,
    /// Measure spectral norms (the costliest part at large width).
    pub spectral: bool,
    /// Seed of the spectral solver's start vectors.
    pub seed: u64,
    /// Measure only these quantities (names from [`QUANTITIES`]); `None`: all. The
    /// losses and `f0_rel` are always reported (they tell a diverged probe and the
    /// size of the output at init).
    #[serde(default)]
    pub quantities: Option<Vec<String>>,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            steps: 1,
            spectral: true,
            seed: 0,
            quantities: None,
        }
    }
}

/// Check quantity names against [`QUANTITIES`].
pub fn validate_quantities(names: &[String]) -> crate::Result<()> {
    if names.is_empty() {
        return Err(crate::Error::config("the quantity list is empty"));
    }
    for q in names {
        if !QUANTITIES.contains(&q.as_str()) {
            return Err(crate::Error::config(format!(
                "unknown quantity {q:?} (known: {})",
                QUANTITIES.join(", ")
            )));
        }
    }
    Ok(())
}

/// Which groups of work a [`ProbeSpec`] needs.
pub(crate) struct Want<'a> {
    only: Option<&'a [String]>,
    /// The decomposition terms of Δh.
    pub terms: bool,
    /// Frobenius norms of W̃ and ΔW̃.
    pub weights: bool,
    /// ‖W̃‖_op.
    pub w_op: bool,
    /// ‖ΔW̃‖_op.
    pub dw_op: bool,
}

impl<'a> Want<'a> {
    pub fn new(spec: &'a ProbeSpec) -> Self {
        let only = spec.quantities.as_deref();
        let any = |qs: &[&str]| only.is_none_or(|o| o.iter().any(|q| qs.contains(&q.as_str())));
        Want {
            only,
            terms: any(&[
                "layer_term",
                "passthrough_term",
                "interaction_term",
                "interaction_ratio",
                "skip_term",
                "layer_share",
                "uuc",
                "decomp_residual",
                "align",
                "align_passthrough",
            ]),
            weights: any(&["W_fro", "dW_fro", "dW_fro_rel"]),
            w_op: spec.spectral && any(&["W_op", "dW_op_rel", "align_passthrough"]),
            dw_op: spec.spectral && any(&["dW_op", "dW_op_rel", "align"]),
        }
    }

    /// Whether quantity `q` is reported.
    pub fn get(&self, q: &str) -> bool {
        q.starts_with("loss_")
            || q == "f0_rel"
            || self.only.is_none_or(|o| o.iter().any(|x| x == q))
    }

    /// Append the measurement when its quantity is reported.
    pub fn put(&self, out: &mut Vec<Measurement>, layer: usize, q: &str, value: f64) {
        if self.get(q) {
            out.push(Measurement {
                layer,
                quantity: q.to_string(),
                value,
            })
        }
    }
}

/// One measured value: `layer` is 1..L, or 0 for network-level quantities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub layer: usize,
    pub quantity: String,
    pub value: f64,
}

/// Everything one probe measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub values: Vec<Measurement>,
    /// Why the run is unusable (non-finite values after the steps), if it is.
    pub diverged: Option<String>,
}

impl Probe {
    /// The value of `quantity` at `layer`.
    pub fn get(&self, quantity: &str, layer: usize) -> Option<f64> {
        self.values
            .iter()
            .find(|m| m.quantity == quantity && m.layer == layer)
            .map(|m| m.value)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

fn sub<T: Scalar>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().zip(b).map(|(&x, &y)| x - y).collect()
}

/// `out = inp · Mᵀ` for inp [B, d_in] and M [d_out, d_in], as a new matrix.
fn apply<T: Scalar>(cx: &Compute, inp: &[T], batch: usize, m: &Mat<T>) -> Mat<T> {
    let mut out = Mat::zeros(batch, m.rows());
    cx.matmul(
        out.view_mut(),
        MatRef::new(inp, batch, m.cols()),
        m.view().t(),
        T::one(),
        T::zero(),
    );
    out
}

/// The output at init: the quantities a scan measures on extra seeds (`init_seeds`).
pub const AT_INIT: [&str; 2] = ["f_norm", "f0_rel"];

/// ‖f₀‖ and ‖f₀‖/‖y‖ of `model` on `x`: the [`AT_INIT`] values [`probe`] reports,
/// without a step. A scan measures them on extra seeds (`init_seeds`): the output at
/// init is one random draw per seed whose spread does not shrink with width (unlike
/// the updates and the hidden coordinates, which self-average), so its slope needs
/// far more seeds. A linear network without biases is multiplied out from the output
/// side (k × n products, then x against the k × d result: the matrix-chain order that
/// costs ~n² instead of the forward pass's n²·batch); any other network runs the
/// forward pass.
pub fn at_init<T: Scalar>(
    model: &Model<T>,
    x: &Mat<T>,
    y: &Mat<T>,
    quantities: Option<&[String]>,
    cx: Compute,
) -> Vec<Measurement> {
    let b = x.rows();
    let depth = model.depth();
    let chain = model.arch.activation == crate::nn::Activation::Linear
        && model.biases.iter().all(|b| b.is_none())
        && model.arch.is_mlp();
    let f0 = if chain {
        // M = W̃_L ⋯ W̃_1 (k × d), built from the output side; f = x Mᵀ.
        let gain = T::of(model.arch.gain);
        let mut m = model.effective_weight(depth - 1);
        for l in (0..depth - 1).rev() {
            let w = &model.weights[l];
            let g = T::of(model.param.layers[l].multiplier) * gain;
            let mut next = Mat::zeros(m.rows(), w.cols());
            cx.matmul(next.view_mut(), m.view(), w.view(), g, T::zero());
            m = next;
        }
        norm(apply(&cx, x.as_slice(), b, &m).as_slice())
    } else {
        let mut t = crate::nn::Trace::new(model, b);
        model.forward_uncentred(&cx, x.as_slice(), b, &mut t);
        norm(t.output().as_slice())
    };
    let want = |q: &str| q == "f0_rel" || quantities.is_none_or(|o| o.iter().any(|x| x == q));
    let mut out = Vec::new();
    for (q, v) in [("f_norm", f0), ("f0_rel", ratio(f0, norm(y.as_slice())))] {
        if want(q) {
            out.push(Measurement {
                layer: 0,
                quantity: q.to_string(),
                value: v,
            });
        }
    }
    out
}

/// Probe `model` on (`x`, `y`): measure, take `spec.steps` optimizer steps on the
/// same batch (with `optim`; the base rate is the parameterization's), measure again.
/// The model itself is not changed.
pub fn probe<T: Scalar>(
    model: &Model<T>,
    optim: &OptimConfig,
    loss: Loss,
    x: &Mat<T>,
    y: &Mat<T>,
    spec: &ProbeSpec,
    cx: Compute,
) -> Probe {
    probe_ticking(model, optim, loss, x, y, spec, cx, &|_| {})
}

/// [`probe`], calling `tick(k)` as each `k` of its `spec.steps` steps are done (a
/// progress bar over steps: one probe of 10⁹ steps takes hours).
#[allow(clippy::too_many_arguments)]
pub fn probe_ticking<T: Scalar>(
    model: &Model<T>,
    optim: &OptimConfig,
    loss: Loss,
    x: &Mat<T>,
    y: &Mat<T>,
    spec: &ProbeSpec,
    cx: Compute,
    tick: &dyn Fn(u64),
) -> Probe {
    if onestep::applies(model, optim, spec) {
        let p = onestep::probe_one_step(model, optim, loss, x, y, spec, cx);
        tick(spec.steps as u64);
        return p;
    }
    stepped(model, optim, loss, x, y, spec, cx, tick)
}

/// The general probe: steps a copy of the model with the trainer and forms every
/// term from the weights before and after (any optimizer, steps and layer kinds).
pub fn probe_stepped<T: Scalar>(
    model: &Model<T>,
    optim: &OptimConfig,
    loss: Loss,
    x: &Mat<T>,
    y: &Mat<T>,
    spec: &ProbeSpec,
    cx: Compute,
) -> Probe {
    stepped(model, optim, loss, x, y, spec, cx, &|_| {})
}

#[allow(clippy::too_many_arguments)]
fn stepped<T: Scalar>(
    model: &Model<T>,
    optim: &OptimConfig,
    loss: Loss,
    x: &Mat<T>,
    y: &Mat<T>,
    spec: &ProbeSpec,
    cx: Compute,
    tick: &dyn Fn(u64),
) -> Probe {
    let want = Want::new(spec);
    let b = x.rows();
    let depth = model.depth();
    let mut t = Trainer::new(model.clone(), optim, cx, loss, b).unfused();
    // Before: forward, loss gradient, backward on the probe batch.
    let loss_before = t.gradient(x.as_slice(), y.as_slice(), b);
    // The network's own output at init (uncentred, even for a centred model).
    let f_raw0 = t.model.raw_output(&t.trace);
    let z0 = t.trace.z.clone();
    let a0 = t.trace.a.clone();
    let dz0 = t.trace.dz.clone();
    t.opt.step(&t.cx, &mut t.model, &t.grads);
    tick(1);
    for _ in 1..spec.steps {
        t.step(x.as_slice(), y.as_slice(), b);
        tick(1);
    }
    // After.
    t.model.forward(&cx, x.as_slice(), b, &mut t.trace);
    let k = model.output_dim();
    let loss_after = loss.value_and_grad(t.trace.output().as_slice(), y.as_slice(), b, k, None);
    let after = &t.trace;
    let mut out = Vec::new();
    let mut put = |layer: usize, q: &str, v: f64| want.put(&mut out, layer, q, v);
    let mut diverged = None;
    if !loss_after.is_finite()
        || after
            .z
            .iter()
            .any(|z| z.as_slice().iter().any(|v| !v.is_finite()))
    {
        diverged = Some(format!(
            "non-finite outputs after {} step(s) (loss {loss_after})",
            spec.steps
        ));
    }
    put(0, "loss_before", loss_before);
    put(0, "loss_after", loss_after);
    put(0, "loss_decrease", loss_before - loss_after);
    if diverged.is_some() {
        return Probe {
            values: out,
            diverged,
        };
    }
    for l in 0..depth {
        let layer = l + 1;
        let lp = &model.param.layers[l];
        let n_l = z0[l].cols();
        let h = z0[l].as_slice();
        let dh = sub(after.z[l].as_slice(), h);
        // A centred output starts at exactly 0: its size at init is the network's own
        // output f₀ (so ratios to it stay defined and comparable with uncentred runs).
        let h_norm = if l + 1 == depth {
            norm(f_raw0.as_slice())
        } else {
            norm(h)
        };
        let dh_norm = norm(&dh);
        let coords = (b * n_l) as f64;
        put(layer, "h_norm", h_norm);
        put(layer, "h_rms", h_norm / coords.sqrt());
        put(layer, "dh_norm", dh_norm);
        put(layer, "dh_rms", dh_norm / coords.sqrt());
        put(layer, "dh_rel", ratio(dh_norm, h_norm));
        if l + 1 < depth {
            let a = a0[l].as_slice();
            let da = sub(after.a[l].as_slice(), a);
            put(layer, "a_rms", norm(a) / coords.sqrt());
            put(layer, "da_rel", ratio(norm(&da), norm(a)));
        }
        let grad = dz0[l].as_slice();
        put(layer, "grad_norm", norm(grad));
        put(layer, "uuc_total", dot(grad, &dh).abs());
        // Effective weights and their change.
        let w0 = model.effective_weight(l);
        let w1 = t.model.effective_weight(l);
        let dw = Mat::from_vec(w0.rows(), w0.cols(), sub(w1.as_slice(), w0.as_slice()));
        let inp0: &[T] = if l == 0 {
            x.as_slice()
        } else {
            a0[l - 1].as_slice()
        };
        let inp1: &[T] = if l == 0 {
            x.as_slice()
        } else {
            after.a[l - 1].as_slice()
        };
        let dinp = sub(inp1, inp0);
        let w_op = if want.w_op {
            op_norm(&w0, TOL, spec.seed ^ (l as u64 + 1)).value
        } else {
            f64::NAN
        };
        let (w_fro, dw_fro) = (w0.norm(), dw.norm());
        put(layer, "W_fro", w_fro);
        put(layer, "dW_fro", dw_fro);
        put(layer, "dW_fro_rel", ratio(dw_fro, w_fro));
        let dw_op = if want.dw_op {
            op_norm(&dw, TOL, spec.seed ^ (l as u64 + 101)).value
        } else {
            f64::NAN
        };
        if want.w_op {
            put(layer, "W_op", w_op);
        }
        if want.dw_op {
            put(layer, "dW_op", dw_op);
            put(layer, "dW_op_rel", ratio(dw_op, w_op));
        }
        if !want.terms {
            continue;
        }
        let layer_term = apply(&cx, inp0, b, &dw);
        let lt = norm(layer_term.as_slice());
        put(layer, "uuc", dot(grad, layer_term.as_slice()).abs());
        put(layer, "layer_term", lt);
        put(layer, "layer_share", ratio(lt, dh_norm));
        let mut sum = layer_term.into_vec();
        if l > 0 {
            let pass = apply(&cx, &dinp, b, &w0);
            let inter = apply(&cx, &dinp, b, &dw);
            let (pt, it) = (norm(pass.as_slice()), norm(inter.as_slice()));
            put(layer, "passthrough_term", pt);
            put(layer, "interaction_term", it);
            put(layer, "interaction_ratio", ratio(it, lt));
            sum.iter_mut()
                .zip(pass.as_slice().iter().zip(inter.as_slice()))
                .for_each(|(s, (&p, &i))| *s += p + i);
            if want.w_op {
                put(layer, "align_passthrough", ratio(pt, w_op * norm(&dinp)));
            }
        }
        if model.arch.skips(l) {
            let skip = sub(after.z[l - 1].as_slice(), z0[l - 1].as_slice());
            put(layer, "skip_term", norm(&skip));
            sum.iter_mut().zip(&skip).for_each(|(s, &d)| *s += d);
        }
        if let (Some(b0), Some(b1), Some(_)) = (&model.biases[l], &t.model.biases[l], lp.bias) {
            let gb = model.multipliers(l).1;
            for row in sum.chunks_exact_mut(n_l) {
                row.iter_mut()
                    .zip(b0.iter().zip(b1))
                    .for_each(|(s, (&p, &q))| *s += gb * (q - p));
            }
        }
        put(
            layer,
            "decomp_residual",
            ratio(crate::tensor::dist(&sum, &dh), dh_norm),
        );
        if want.dw_op {
            put(layer, "align", ratio(lt, dw_op * norm(inp0)));
        }
    }
    let f = z0[depth - 1].as_slice();
    put(0, "f_norm", norm(f_raw0.as_slice()));
    put(
        0,
        "f0_rel",
        ratio(norm(f_raw0.as_slice()), norm(y.as_slice())),
    );
    put(
        0,
        "df_norm",
        crate::tensor::dist(after.z[depth - 1].as_slice(), f),
    );
    Probe {
        values: out,
        diverged,
    }
}
