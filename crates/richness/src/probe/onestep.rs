//! The one-step SGD probe of a dense network, through low-rank identities.
//!
//! One SGD step from zero momentum (a momentum buffer starts at the first gradient,
//! so the first step is plain SGD) without weight decay changes dense layer ℓ by
//!
//! ```text
//! ΔW̃ = g·ΔW = c · δᵀ a,     c = −η g²,   δ = ∂L/∂h [B, n_out],   a = the layer's input [B, n_in]
//! ```
//!
//! a matrix of rank ≤ B that never needs forming: applied to any input u [B, n_in],
//! `u ΔW̃ᵀ = c (u aᵀ) δ`, a B × B Gram product costing B²(n_in + n_out) multiply-adds
//! instead of B·n_in·n_out. Its norms come from the same Gram matrices:
//! `‖ΔW̃‖_F² = c² ⟨a aᵀ, δ δᵀ⟩` and ‖ΔW̃‖_op by Lanczos on `ΔW̃ᵀΔW̃ v = c² aᵀ(δ(δᵀ(a v)))`.
//! The step's new pre-activations are then, exactly,
//!
//! ```text
//! h' = h + W̃ Δa (passthrough: one product) + ΔW̃ a (layer) + ΔW̃ Δa (interaction) + g_b Δb
//! ```
//!
//! so a probe costs three width² × batch products per hidden layer (forward, input
//! gradient, passthrough) where stepping the weights and forwarding again costs four,
//! and the general probe (which also forms the terms from ΔW̃) seven. A layer where
//! forming ΔW̃ is cheaper than the Gram route (n_in·n_out < B·(n_in + n_out), e.g. a
//! read-out to 10 classes, or any layer narrower than the batch) forms it.
//!
//! Δh is the sum of its terms here, so the general probe's rounding self-check
//! `decomp_residual` is not reported; the tests compare every other quantity with
//! the general probe.

use super::{ratio, Probe, ProbeSpec, Want};
use crate::linalg::spectral::{dot_lanes, op_norm, op_norm_gram, TOL};
use crate::linalg::Compute;
use crate::nn::{LayerKind, Loss, Model, Trace};
use crate::optim::{OptimConfig, Optimizer};
use crate::param::OptimizerKind;
use crate::tensor::{dot, norm, Mat, MatMut, MatRef, Scalar};

/// Whether [`probe_one_step`] gives the probe of this model, optimizer and spec.
pub fn applies<T: Scalar>(model: &Model<T>, optim: &OptimConfig, spec: &ProbeSpec) -> bool {
    spec.steps == 1
        && optim.kind == OptimizerKind::Sgd
        && optim.weight_decay == 0.0
        && model.arch.is_mlp()
}

/// `out = alpha · u · Mᵀ` for u [B, k] and M [m, k] (row-major slices).
fn times_t<T: Scalar>(
    cx: &Compute,
    u: &[T],
    rows: usize,
    k: usize,
    m: &[T],
    m_rows: usize,
    alpha: T,
) -> Vec<T> {
    let mut out = vec![T::zero(); rows * m_rows];
    cx.matmul(
        MatMut::new(&mut out, rows, m_rows),
        MatRef::new(u, rows, k),
        MatRef::new(m, m_rows, k).t(),
        alpha,
        T::zero(),
    );
    out
}

/// `out = alpha · G · d` for G [B, B] and d [B, n].
fn times<T: Scalar>(cx: &Compute, gram: &[T], b: usize, d: &[T], n: usize, alpha: T) -> Vec<T> {
    let mut out = vec![T::zero(); b * n];
    cx.matmul(
        MatMut::new(&mut out, b, n),
        MatRef::new(gram, b, b),
        MatRef::new(d, b, n),
        alpha,
        T::zero(),
    );
    out
}

/// ΔW̃ = c·δᵀa of one layer, formed or kept as its factors.
enum Update<'a, T> {
    /// ΔW̃ itself, [n_out, n_in].
    Formed(Mat<T>),
    /// The factors, with a·aᵀ once computed.
    Factors {
        c: T,
        delta: &'a [T],
        a: &'a [T],
        gram_a: Option<Vec<T>>,
    },
}

impl<'a, T: Scalar> Update<'a, T> {
    fn new(
        cx: &Compute,
        c: T,
        delta: &'a [T],
        a: &'a [T],
        b: usize,
        n_in: usize,
        n_out: usize,
    ) -> Self {
        if n_in * n_out <= b * (n_in + n_out) {
            let mut dw = Mat::zeros(n_out, n_in);
            cx.matmul(
                dw.view_mut(),
                MatRef::new(delta, b, n_out).t(),
                MatRef::new(a, b, n_in),
                c,
                T::zero(),
            );
            Update::Formed(dw)
        } else {
            Update::Factors {
                c,
                delta,
                a,
                gram_a: None,
            }
        }
    }

    /// a·aᵀ, computed on first use.
    fn gram_a(cx: &Compute, a: &[T], gram: &mut Option<Vec<T>>, b: usize, n_in: usize) -> Vec<T> {
        gram.get_or_insert_with(|| times_t(cx, a, b, n_in, a, b, T::one()))
            .clone()
    }

    /// `u ΔW̃ᵀ` [B, n_out]; `u_is_a` reuses a·aᵀ.
    fn apply(
        &mut self,
        cx: &Compute,
        u: &[T],
        u_is_a: bool,
        b: usize,
        n_in: usize,
        n_out: usize,
    ) -> Vec<T> {
        match self {
            Update::Formed(dw) => times_t(cx, u, b, n_in, dw.as_slice(), n_out, T::one()),
            Update::Factors {
                c,
                delta,
                a,
                gram_a,
            } => {
                let gram = if u_is_a {
                    Self::gram_a(cx, a, gram_a, b, n_in)
                } else {
                    times_t(cx, u, b, n_in, a, b, T::one())
                };
                times(cx, &gram, b, delta, n_out, *c)
            }
        }
    }

    /// ‖ΔW̃‖_F.
    fn frobenius(&mut self, cx: &Compute, b: usize, n_in: usize, n_out: usize) -> f64 {
        match self {
            Update::Formed(dw) => dw.norm(),
            Update::Factors {
                c,
                delta,
                a,
                gram_a,
            } => {
                let ga = Self::gram_a(cx, a, gram_a, b, n_in);
                let gd = times_t(cx, delta, b, n_out, delta, b, T::one());
                let s: f64 = ga.iter().zip(&gd).map(|(&x, &y)| x.f64() * y.f64()).sum();
                c.f64().abs() * s.max(0.0).sqrt()
            }
        }
    }

    /// ‖ΔW̃‖_op (Lanczos, tolerance [`TOL`], start vector from `seed`).
    fn spectral(&self, b: usize, n_in: usize, n_out: usize, seed: u64) -> f64 {
        match self {
            Update::Formed(dw) => op_norm(dw, TOL, seed).value,
            Update::Factors { c, delta, a, .. } => {
                let c2 = c.f64() * c.f64();
                let (mut s1, mut s2) = (vec![0.0; b], vec![0.0; n_out]);
                let rank = b.min(n_in).min(n_out);
                op_norm_gram(
                    n_in,
                    rank,
                    |v, out| {
                        crate::simd::vectorized(
                            #[inline(always)]
                            || {
                                for (r, s) in s1.iter_mut().enumerate() {
                                    *s = dot_lanes(&a[r * n_in..(r + 1) * n_in], v);
                                }
                                s2.iter_mut().for_each(|x| *x = 0.0);
                                for (r, &s) in s1.iter().enumerate() {
                                    s2.iter_mut()
                                        .zip(&delta[r * n_out..(r + 1) * n_out])
                                        .for_each(|(o, &d)| *o += s * d.f64());
                                }
                                for (r, s) in s1.iter_mut().enumerate() {
                                    *s = dot_lanes(&delta[r * n_out..(r + 1) * n_out], &s2) * c2;
                                }
                                out.iter_mut().for_each(|x| *x = 0.0);
                                for (r, &s) in s1.iter().enumerate() {
                                    out.iter_mut()
                                        .zip(&a[r * n_in..(r + 1) * n_in])
                                        .for_each(|(o, &x)| *o += s * x.f64());
                                }
                            },
                        )
                    },
                    TOL,
                    seed,
                )
                .value
            }
        }
    }
}

/// The probe of [`super::probe`] for one SGD step of a dense network (see the module
/// docs); callers check [`applies`] first.
pub fn probe_one_step<T: Scalar>(
    model: &Model<T>,
    optim: &OptimConfig,
    loss: Loss,
    x: &Mat<T>,
    y: &Mat<T>,
    spec: &ProbeSpec,
    cx: Compute,
) -> Probe {
    let want = Want::new(spec);
    let b = x.rows();
    let depth = model.depth();
    let k = model.output_dim();
    // The rates of the first step (momentum does not change it).
    let rates = Optimizer::new(
        model,
        &OptimConfig {
            momentum: 0.0,
            ..optim.clone()
        },
    )
    .layer_rates(model);
    let mut t = Trace::new(model, b);
    model.forward_uncentred(&cx, x.as_slice(), b, &mut t);
    let f_raw0 = t.output().clone();
    // A centred model trains f − f_ref, f_ref the output of its frozen reference.
    let f_ref: Option<Vec<T>> = model.reference.as_ref().map(|r| {
        let same = r.weights == model.weights && r.biases == model.biases;
        if same {
            f_raw0.as_slice().to_vec()
        } else {
            let mut rt = Trace::new(r, b);
            r.forward(&cx, x.as_slice(), b, &mut rt);
            rt.output().as_slice().to_vec()
        }
    });
    let centre = |f: &mut [T]| {
        if let Some(fr) = &f_ref {
            f.iter_mut().zip(fr).for_each(|(f, &r)| *f -= r);
        }
    };
    centre(t.z[depth - 1].as_mut_slice());
    let loss_before = loss.value_and_grad(
        t.z[depth - 1].as_slice(),
        y.as_slice(),
        b,
        k,
        Some(t.dz[depth - 1].as_mut_slice()),
    );
    for l in (0..depth).rev() {
        model.backward_signal(&cx, &mut t, l);
    }
    let gain = T::of(model.arch.gain);
    let mut out = Vec::new();
    let mut put = |layer: usize, q: &str, v: f64| want.put(&mut out, layer, q, v);
    // After the step: each layer's new input (a' of the layer below).
    let mut inp_after: Vec<T> = x.as_slice().to_vec();
    let mut out_after: Vec<T> = Vec::new();
    let mut rows: Vec<Vec<(usize, &'static str, f64)>> = Vec::with_capacity(depth);
    for l in 0..depth {
        let LayerKind::Dense(crate::nn::dense::Dense { fan_in, fan_out }) = model.kind(l) else {
            unreachable!("probe_one_step: checked by `applies`")
        };
        let lp = &model.param.layers[l];
        let g = T::of(lp.multiplier);
        let (lr, _, lr_b, _) = rates[l];
        let inp0: &[T] = if l == 0 {
            x.as_slice()
        } else {
            t.a[l - 1].as_slice()
        };
        let delta = t.dz[l].as_slice();
        let h0: &[T] = if l + 1 == depth {
            f_raw0.as_slice()
        } else {
            t.z[l].as_slice()
        };
        let mut dw = Update::new(&cx, -lr * g * g, delta, inp0, b, fan_in, fan_out);
        let dinp: Vec<T> = inp_after.iter().zip(inp0).map(|(&p, &q)| p - q).collect();
        // Δh = passthrough + layer + interaction (+ bias term).
        let mut dh = if l > 0 {
            times_t(
                &cx,
                &dinp,
                b,
                fan_in,
                model.weights[l].as_slice(),
                fan_out,
                g,
            )
        } else {
            vec![T::zero(); b * fan_out]
        };
        let pt = norm(&dh);
        let (lt, it, uuc) = if want.terms {
            let layer = dw.apply(&cx, inp0, true, b, fan_in, fan_out);
            let lt = norm(&layer);
            let uuc = dot(delta, &layer).abs();
            dh.iter_mut().zip(&layer).for_each(|(d, &v)| *d += v);
            let it = if l > 0 {
                let inter = dw.apply(&cx, &dinp, false, b, fan_in, fan_out);
                dh.iter_mut().zip(&inter).for_each(|(d, &v)| *d += v);
                norm(&inter)
            } else {
                0.0
            };
            (lt, it, uuc)
        } else {
            let upd = dw.apply(&cx, &inp_after, l == 0, b, fan_in, fan_out);
            dh.iter_mut().zip(&upd).for_each(|(d, &v)| *d += v);
            (f64::NAN, f64::NAN, f64::NAN)
        };
        if let (Some(_), Some(bs)) = (&model.biases[l], lp.bias) {
            let gb = T::of(bs.multiplier);
            let mut db = vec![T::zero(); fan_out];
            for row in delta.chunks_exact(fan_out) {
                db.iter_mut().zip(row).for_each(|(s, &d)| *s += d);
            }
            // g_b Δb = −η_b g_b² Σ_rows δ.
            let s = -lr_b * gb * gb;
            db.iter_mut().for_each(|v| *v *= s);
            for row in dh.chunks_exact_mut(fan_out) {
                row.iter_mut().zip(&db).for_each(|(d, &v)| *d += v);
            }
        }
        let h1: Vec<T> = h0.iter().zip(&dh).map(|(&h, &d)| h + d).collect();
        let mut r: Vec<(usize, &'static str, f64)> = Vec::new();
        let layer = l + 1;
        let coords = (b * fan_out) as f64;
        let (h_norm, dh_norm) = (norm(h0), norm(&dh));
        r.push((layer, "h_norm", h_norm));
        r.push((layer, "h_rms", h_norm / coords.sqrt()));
        r.push((layer, "dh_norm", dh_norm));
        r.push((layer, "dh_rms", dh_norm / coords.sqrt()));
        r.push((layer, "dh_rel", ratio(dh_norm, h_norm)));
        r.push((layer, "grad_norm", norm(delta)));
        r.push((layer, "uuc_total", dot(delta, &dh).abs()));
        if want.terms {
            r.push((layer, "uuc", uuc));
            r.push((layer, "layer_term", lt));
            r.push((layer, "layer_share", ratio(lt, dh_norm)));
            if l > 0 {
                r.push((layer, "passthrough_term", pt));
                r.push((layer, "interaction_term", it));
                r.push((layer, "interaction_ratio", ratio(it, lt)));
            }
        }
        let w_abs_g = lp.multiplier.abs();
        if want.weights {
            let w_fro = w_abs_g * model.weights[l].norm();
            let dw_fro = dw.frobenius(&cx, b, fan_in, fan_out);
            r.push((layer, "W_fro", w_fro));
            r.push((layer, "dW_fro", dw_fro));
            r.push((layer, "dW_fro_rel", ratio(dw_fro, w_fro)));
        }
        if spec.spectral && want.w_op {
            let w_op = w_abs_g * op_norm(&model.weights[l], TOL, spec.seed ^ (l as u64 + 1)).value;
            r.push((layer, "W_op", w_op));
            if l > 0 {
                r.push((layer, "align_passthrough", ratio(pt, w_op * norm(&dinp))));
            }
            if want.dw_op {
                let dw_op = dw.spectral(b, fan_in, fan_out, spec.seed ^ (l as u64 + 101));
                r.push((layer, "dW_op", dw_op));
                r.push((layer, "dW_op_rel", ratio(dw_op, w_op)));
                r.push((layer, "align", ratio(lt, dw_op * norm(inp0))));
            }
        } else if spec.spectral && want.dw_op {
            let dw_op = dw.spectral(b, fan_in, fan_out, spec.seed ^ (l as u64 + 101));
            r.push((layer, "dW_op", dw_op));
            r.push((layer, "align", ratio(lt, dw_op * norm(inp0))));
        }
        if l + 1 < depth {
            let mut a1 = vec![T::zero(); b * fan_out];
            model.arch.activation.forward(gain, &h1, &mut a1);
            let a0 = t.a[l].as_slice();
            let da = crate::tensor::dist(&a1, a0);
            r.push((layer, "a_rms", norm(a0) / coords.sqrt()));
            r.push((layer, "da_rel", ratio(da, norm(a0))));
            inp_after = a1;
        } else {
            out_after = h1;
        }
        rows.push(r);
    }
    let raw_after_norm_diff = crate::tensor::dist(&out_after, f_raw0.as_slice());
    centre(&mut out_after);
    let loss_after = loss.value_and_grad(&out_after, y.as_slice(), b, k, None);
    put(0, "loss_before", loss_before);
    put(0, "loss_after", loss_after);
    put(0, "loss_decrease", loss_before - loss_after);
    if !loss_after.is_finite() || out_after.iter().any(|v| !v.is_finite()) {
        return Probe {
            values: out,
            diverged: Some(format!(
                "non-finite outputs after 1 step(s) (loss {loss_after})"
            )),
        };
    }
    for (layer, q, v) in rows.into_iter().flatten() {
        put(layer, q, v);
    }
    let f0 = norm(f_raw0.as_slice());
    put(0, "f_norm", f0);
    put(0, "f0_rel", ratio(f0, norm(y.as_slice())));
    put(0, "df_norm", raw_after_norm_diff);
    Probe {
        values: out,
        diverged: None,
    }
}
