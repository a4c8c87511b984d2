//! Where a parameterization sits: width exponents of every quantity after one SGD step.
//!
//! Input: each layer's effective init variance v_ℓ = g²σ² ~ n^{v̂_ℓ} and effective
//! rate λ_ℓ = η₀·g²η ~ n^{λ̂_ℓ} (from Yang–Hu exponents: v̂ = −2a − 2b, λ̂ = −2a − c − c₀
//! with c₀ the exponent of a width-dependent base rate η₀ ~ n^{−c₀}). Assumptions: an
//! MLP with a homogeneous activation (linear, ReLU), fixed input and output
//! dimensions and batch, MSE loss, one SGD step from init, generic (no
//! cancellations). Exponents of norms over batch × width ("‖·‖" below), as in
//! theory.md §2–§4:
//!
//! ```text
//! forward   s_1 = v̂_1/2,  s_ℓ = s_{ℓ−1} + (1 + v̂_ℓ)/2          (coordinate size of h_ℓ)
//!           ‖h_ℓ‖ = s_ℓ + 1/2 (ℓ < L),  ‖f‖ = s_L
//! backward  ‖δ_L‖ = max(s_L, 0) (centred: 0),  ‖δ_{ℓ−1}‖ = ‖δ_ℓ‖ + (1 + v̂_ℓ)/2   (δ = ∂L/∂h)
//! update    layer_ℓ = λ̂_ℓ + ‖δ_ℓ‖ + 2‖a_{ℓ−1}‖                   (‖ΔW̃_ℓ a_{ℓ−1}‖, ΔW̃ = −λ δ aᵀ)
//!           pass_ℓ  = ‖Δh_{ℓ−1}‖ + (1 + v̂_ℓ)/2                     (‖W̃_ℓ Δa_{ℓ−1}‖)
//!           ‖Δh_ℓ‖ = max(layer_ℓ, pass_ℓ)
//! criteria  NTC: ‖Δf‖ = ‖Δh_L‖ = 0;  UUC_ℓ: ⟨δ_ℓ, layer term⟩ = λ̂_ℓ + 2‖δ_ℓ‖ + 2‖a_{ℓ−1}‖ = 0;
//!           MAX_ℓ: layer_ℓ − pass_ℓ = 0 (ℓ ≥ 2);  stable init: s_ℓ = 0 (hidden), s_L ≤ 0;
//!           bounded updates: ‖Δh_ℓ‖ ≤ ‖h_ℓ‖.
//! ```
//!
//! (‖a_0‖ = ‖x‖ = n⁰; ‖a_ℓ‖ = ‖h_ℓ‖ for homogeneous φ. A centred output (f − f₀ trained,
//! [`Exponents::centred`]) has the residual y at init, so ‖δ_L‖ = 0 even where f₀ grows
//! (r < 0): every update then follows the on-scale rules, and only ‖f₀‖ itself grows.
//! UUC is the layer's own update, ⟨δ_ℓ, g ΔW a_{ℓ−1}⟩ (the probe's `uuc`), not the total
//! ⟨δ_ℓ, Δh_ℓ⟩: the passthrough would hide a layer whose own update vanishes. The passthrough rule holds
//! for hidden layers because a square Gaussian W̃ preserves norms, and for the
//! read-out because Δa_{L−1} is aligned with W̃_Lᵀδ_L.) On the scale this gives back
//! theory.md §4 exactly (‖Δh‖ = r, ‖f‖ = −r, ‖δ‖ = −r, all criteria 0), and for the
//! standard parameterization it gives §3.3: with η₀ = Θ(1) the output update grows
//! like n, with η₀ ~ 1/n the read-in's useful update shrinks like n₀/n.
//!
//! ```
//! use richness::param::{diagnose, Exponents, Preset, ScaleChoice, Parameterization, LayerShape, OptimizerKind};
//! let shapes = LayerShape::mlp(&[64, 1024, 1024, 10], false);
//! let sp = Parameterization::resolve(&shapes, &ScaleChoice::preset(Preset::Sp), OptimizerKind::Sgd).unwrap();
//! let d = diagnose(&Exponents::from_param(&sp, 0.0));
//! assert_eq!(d.delta_f, 1.0);                 // Θ(1) rate: ‖Δf‖ ~ n
//! let d = diagnose(&Exponents::from_param(&sp, 1.0));
//! assert_eq!(d.layers[0].uuc, -1.0);          // 1/n rate: read-in UUC ~ n^-1
//! ```

use super::{Parameterization, Role};
use serde::{Deserialize, Serialize};

/// Width exponents of one layer's effective quantities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerExponents {
    pub role: Role,
    /// Yang–Hu exponents (g ~ n^{−a}, σ ~ n^{−b}, η ~ n^{−c}).
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Whether the fan-in / fan-out grow with the width.
    pub fan_in_scales: bool,
    pub fan_out_scales: bool,
}

/// A network's exponents, plus the base rate's: η₀ ~ n^{−c₀}.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exponents {
    pub layers: Vec<LayerExponents>,
    pub base_lr_exponent: f64,
    /// The output is centred (f − f₀ trained): the residual at init is y, of order one,
    /// whatever the size of f₀ (docs/theory.md §6.1).
    #[serde(default)]
    pub centred: bool,
}

impl Exponents {
    /// From a resolved parameterization; `c0` is the exponent of a width-dependent
    /// base rate η₀ ~ n^{−c₀} (0 for a fixed η₀).
    pub fn from_param(p: &Parameterization, c0: f64) -> Self {
        let depth = p.layers.len();
        Exponents {
            layers: p
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| LayerExponents {
                    role: l.role,
                    a: l.a,
                    b: l.b,
                    c: l.c,
                    fan_in_scales: i > 0,
                    fan_out_scales: i + 1 < depth,
                })
                .collect(),
            base_lr_exponent: c0,
            centred: p.center,
        }
    }

    /// From Yang–Hu exponents per layer (an MLP: first layer fed by the input, last
    /// layer producing the output).
    pub fn from_abc(a: &[f64], b: &[f64], c: &[f64], c0: f64) -> crate::Result<Self> {
        let depth = a.len();
        if depth < 2 || b.len() != depth || c.len() != depth {
            return Err(crate::Error::config(format!(
                "give a, b and c for every layer (at least 2): got {}, {}, {} values",
                a.len(),
                b.len(),
                c.len()
            )));
        }
        let roles = super::positional_roles(depth);
        Ok(Exponents {
            layers: (0..depth)
                .map(|i| LayerExponents {
                    role: roles[i],
                    a: a[i],
                    b: b[i],
                    c: c[i],
                    fan_in_scales: i > 0,
                    fan_out_scales: i + 1 < depth,
                })
                .collect(),
            base_lr_exponent: c0,
            centred: false,
        })
    }
}

/// Predicted exponents of one layer (ℓ = `index` + 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerDiagnosis {
    pub layer: usize,
    pub role: Role,
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Effective init variance exponent v̂ = −2a − 2b.
    pub eff_var: f64,
    /// Effective rate exponent λ̂ = −2a − c − c₀.
    pub eff_lr: f64,
    /// Coordinate size of h_ℓ at init.
    pub h_coord: f64,
    /// ‖h_ℓ‖ at init.
    pub h_norm: f64,
    /// ‖∂L/∂h_ℓ‖ at init.
    pub grad_norm: f64,
    /// ‖g ΔW a_{ℓ−1}‖.
    pub layer_term: f64,
    /// ‖g W Δa_{ℓ−1}‖ (None for the first layer, which has no passthrough).
    pub passthrough: Option<f64>,
    /// ‖Δh_ℓ‖.
    pub dh_norm: f64,
    /// This layer's own useful update ⟨∂L/∂h_ℓ, layer term⟩.
    pub uuc: f64,
    /// layer_term − passthrough (MAX wants 0).
    pub max_gap: Option<f64>,
    /// ‖W̃‖_op, ‖W̃‖_F, ‖ΔW̃‖_op (= ‖ΔW̃‖_F: the update has rank ≤ batch).
    pub w_op: f64,
    pub w_fro: f64,
    pub dw_op: f64,
}

/// The analysis of [`diagnose`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub layers: Vec<LayerDiagnosis>,
    /// ‖f‖ at init.
    pub output_init: f64,
    /// ‖Δf‖.
    pub delta_f: f64,
    /// First-order loss decrease ⟨∂L/∂f, Δf⟩.
    pub loss_decrease: f64,
    /// r read off the hidden updates, when all criteria hold.
    pub implied_r: Option<f64>,
    /// Every criterion holds.
    pub on_scale: bool,
    /// One sentence per failed criterion (empty when on the scale).
    pub findings: Vec<String>,
}

fn clean(x: f64) -> f64 {
    let r = (x * 1e9).round() / 1e9;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// Predict every width exponent (see the module docs for the rules).
pub fn diagnose(e: &Exponents) -> Diagnosis {
    let depth = e.layers.len();
    let v: Vec<f64> = e.layers.iter().map(|l| -2.0 * l.a - 2.0 * l.b).collect();
    let lam: Vec<f64> = e
        .layers
        .iter()
        .map(|l| -2.0 * l.a - l.c - e.base_lr_exponent)
        .collect();
    // Forward: coordinate sizes.
    let mut s = vec![0.0; depth];
    for l in 0..depth {
        s[l] = if l == 0 {
            v[0] / 2.0
        } else {
            s[l - 1] + (1.0 + v[l]) / 2.0
        };
    }
    let h_norm = |l: usize| if l + 1 < depth { s[l] + 0.5 } else { s[l] };
    let a_norm = |l: usize| if l == 0 { 0.0 } else { h_norm(l - 1) }; // ‖a_{ℓ−1}‖ for layer l
                                                                      // Backward.
    let mut g = vec![0.0; depth];
    // The residual: y − f₀ uncentred (f₀ dominates when it grows, r < 0), y centred.
    g[depth - 1] = if e.centred {
        0.0
    } else {
        s[depth - 1].max(0.0)
    };
    for l in (1..depth).rev() {
        g[l - 1] = g[l] + (1.0 + v[l]) / 2.0;
    }
    // Update.
    let mut dh = vec![0.0; depth];
    let mut layers = Vec::with_capacity(depth);
    for l in 0..depth {
        let layer_term = lam[l] + g[l] + 2.0 * a_norm(l);
        let pass = (l > 0).then(|| dh[l - 1] + (1.0 + v[l]) / 2.0);
        dh[l] = pass.map_or(layer_term, |p| p.max(layer_term));
        let scaling_dims = e.layers[l].fan_in_scales as u8 + e.layers[l].fan_out_scales as u8;
        layers.push(LayerDiagnosis {
            layer: l + 1,
            role: e.layers[l].role,
            a: e.layers[l].a,
            b: e.layers[l].b,
            c: e.layers[l].c,
            eff_var: clean(v[l]),
            eff_lr: clean(lam[l]),
            h_coord: clean(s[l]),
            h_norm: clean(h_norm(l)),
            grad_norm: clean(g[l]),
            layer_term: clean(layer_term),
            passthrough: pass.map(clean),
            dh_norm: clean(dh[l]),
            uuc: clean(lam[l] + 2.0 * g[l] + 2.0 * a_norm(l)),
            max_gap: pass.map(|p| clean(layer_term - p)),
            w_op: clean(v[l] / 2.0 + 0.5),
            w_fro: clean(v[l] / 2.0 + scaling_dims as f64 / 2.0),
            dw_op: clean(lam[l] + g[l] + a_norm(l)),
        });
    }
    let delta_f = clean(dh[depth - 1]);
    let mut findings = Vec::new();
    let pw = |x: f64| {
        if x == 1.0 {
            "n".to_string()
        } else {
            format!("n^{}", fmt_exp(x))
        }
    };
    for d in &layers[..depth - 1] {
        if d.h_coord > 0.0 {
            findings.push(format!(
                "stable init fails: layer {} coordinates grow as {} at init",
                d.layer,
                pw(d.h_coord)
            ));
        } else if d.h_coord < 0.0 {
            findings.push(format!(
                "stable init fails: layer {} coordinates vanish as {} at init",
                d.layer,
                pw(d.h_coord)
            ));
        }
    }
    let out = &layers[depth - 1];
    if out.h_coord > 0.0 {
        findings.push(format!(
            "stable init fails: the output at init grows as {} (r < 0: it explodes with width)",
            pw(out.h_coord)
        ));
    }
    if delta_f > 0.0 {
        let cause = if out.layer_term >= out.passthrough.unwrap_or(f64::NEG_INFINITY) {
            format!(
                "the read-out update is {} times too large (unstable)",
                pw(delta_f)
            )
        } else {
            "updates of earlier layers blow up the output (unstable)".to_string()
        };
        findings.push(format!("NTC fails: ‖Δf‖ grows as {}: {cause}", pw(delta_f)));
    } else if delta_f < 0.0 {
        findings.push(format!(
            "NTC fails: ‖Δf‖ vanishes as {}: the loss stops moving at large width",
            pw(delta_f)
        ));
    }
    for d in &layers {
        if d.uuc != 0.0 {
            let what = if d.uuc < 0.0 { "vanishes" } else { "grows" };
            let extra = if d.role == Role::ReadIn && d.uuc < 0.0 && (d.uuc + 1.0).abs() < 1e-12 {
                " (its rate is n/n₀ times too small)"
            } else {
                ""
            };
            findings.push(format!(
                "UUC fails for layer {} ({}): its useful update ⟨∂L/∂h, Δh⟩ {what} as {}{extra}",
                d.layer,
                d.role.name(),
                pw(d.uuc)
            ));
        }
        if let Some(gap) = d.max_gap {
            if gap < 0.0 {
                findings.push(format!(
                    "MAX fails for layer {} ({}): its own update is negligible against what passes through, by {}",
                    d.layer,
                    d.role.name(),
                    pw(gap)
                ));
            }
        }
    }
    for d in &layers[..depth - 1] {
        let rel = d.dh_norm - d.h_norm;
        if rel > 0.0 {
            findings.push(format!(
                "updates outgrow representations at layer {}: ‖Δh‖/‖h‖ ~ {} (r > 1/2: gradients explode)",
                d.layer,
                pw(rel)
            ));
        }
    }
    let on_scale = findings.is_empty();
    // r is the exponent of ‖Δh‖ of the read-in and hidden layers (all equal on the scale).
    let rs: Vec<f64> = layers[..depth - 1].iter().map(|d| d.dh_norm).collect();
    let implied_r = (on_scale && rs.iter().all(|&r| (r - rs[0]).abs() < 1e-9)).then_some(rs[0]);
    let (output_init, loss_decrease) = (clean(out.h_coord), clean(out.grad_norm + delta_f));
    Diagnosis {
        loss_decrease,
        layers,
        output_init,
        delta_f,
        implied_r,
        on_scale,
        findings,
    }
}

fn fmt_exp(x: f64) -> String {
    let s = format!("{:.3}", x);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl Diagnosis {
    /// The predicted width exponent of a probe quantity at layer ℓ (1-based), where
    /// the calculus gives one. Quantity names are those of [`crate::probe`].
    pub fn predicted(&self, quantity: &str, layer: usize) -> Option<f64> {
        let d = self.layers.get(layer.checked_sub(1)?)?;
        let hidden_width = d.role != Role::ReadOut;
        let v = match quantity {
            "h_norm" => d.h_norm,
            "h_rms" => d.h_coord,
            "dh_norm" | "da_norm" => d.dh_norm,
            "dh_rms" if hidden_width => d.dh_norm - 0.5,
            "dh_rms" => d.dh_norm,
            "dh_rel" | "da_rel" => d.dh_norm - d.h_norm,
            "layer_term" => d.layer_term,
            "passthrough_term" => d.passthrough?,
            "grad_norm" => d.grad_norm,
            "uuc" => d.uuc,
            "W_op" => d.w_op,
            "dW_op" => d.dw_op,
            "dW_op_rel" => d.dw_op - d.w_op,
            "dW_fro_rel" => d.dw_op - d.w_fro,
            "align" => 0.0,
            _ => return None,
        };
        Some(clean(v))
    }

    /// The analysis as aligned text: one row per layer, then the findings.
    pub fn to_text(&self) -> String {
        let f = fmt_exp;
        let mut rows = vec![[
            "layer",
            "role",
            "a",
            "b",
            "c",
            "v=g²σ²",
            "λ=η₀g²η",
            "h coord",
            "‖δ‖",
            "layer term",
            "passthrough",
            "‖Δh‖",
            "UUC",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
        for d in &self.layers {
            rows.push(vec![
                d.layer.to_string(),
                d.role.name().into(),
                f(d.a),
                f(d.b),
                f(d.c),
                f(d.eff_var),
                f(d.eff_lr),
                f(d.h_coord),
                f(d.grad_norm),
                f(d.layer_term),
                d.passthrough.map(f).unwrap_or_else(|| "-".into()),
                f(d.dh_norm),
                f(d.uuc),
            ]);
        }
        let mut s = String::from("# width exponents (quantity ~ n^x) after one SGD step\n");
        s.push_str(&super::align(&rows));
        s.push_str(&format!(
            "output at init ‖f‖ ~ n^{}, ‖Δf‖ ~ n^{}\n",
            f(self.output_init),
            f(self.delta_f)
        ));
        if self.on_scale {
            match self.implied_r {
                Some(r) => s.push_str(&format!(
                    "verdict: on the richness scale at r = {} ({})\n",
                    f(r),
                    if r == 0.0 {
                        "lazy / NTK"
                    } else if r == 0.5 {
                        "rich / μP"
                    } else {
                        "between lazy and rich"
                    }
                )),
                None => s.push_str("verdict: every criterion holds\n"),
            }
        } else {
            s.push_str("verdict: off the richness scale\n");
            for line in &self.findings {
                s.push_str(&format!("- {line}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::{Gauge, LayerShape, OptimizerKind, Parameterization, Preset, ScaleChoice};

    fn on(shapes: &[LayerShape], choice: ScaleChoice) -> Diagnosis {
        diagnose(&Exponents::from_param(
            &Parameterization::resolve(shapes, &choice, OptimizerKind::Sgd).unwrap(),
            0.0,
        ))
    }

    #[test]
    fn every_point_of_the_scale_reproduces_section_4() {
        for dims in [vec![10, 512, 512, 1], vec![64, 512, 512, 512, 10]] {
            let shapes = LayerShape::mlp(&dims, false);
            for r in [0.0, 0.1, 0.25, 0.5] {
                for gauge in Gauge::ALL {
                    let d = on(&shapes, ScaleChoice::scale(r, gauge));
                    assert!(d.on_scale, "{:?}", d.findings);
                    assert_eq!(d.implied_r, Some(r));
                    assert_eq!(d.output_init, clean(-r));
                    assert_eq!(d.delta_f, 0.0);
                    let depth = dims.len() - 1;
                    for l in 1..depth {
                        assert_eq!(d.predicted("dh_norm", l), Some(r));
                        assert_eq!(d.predicted("dh_rel", l), Some(clean(r - 0.5)));
                        assert_eq!(d.predicted("grad_norm", l), Some(clean(-r)));
                        assert_eq!(d.predicted("uuc", l), Some(0.0));
                        assert_eq!(d.predicted("h_rms", l), Some(0.0));
                        assert_eq!(d.predicted("dW_op_rel", l), Some(clean(r - 0.5)));
                        if l > 1 {
                            assert_eq!(d.predicted("layer_term", l), Some(r));
                            assert_eq!(d.predicted("passthrough_term", l), Some(r));
                            assert_eq!(d.predicted("dW_fro_rel", l), Some(clean(r - 1.0)));
                        }
                    }
                    // Read-out: Table 1 (layer term and passthrough Θ(1)).
                    assert_eq!(d.predicted("layer_term", depth), Some(0.0));
                    assert_eq!(d.predicted("passthrough_term", depth), Some(0.0));
                    assert_eq!(d.predicted("dW_op_rel", depth), Some(clean(r - 0.5)));
                }
            }
        }
    }

    #[test]
    fn standard_parameterization_fails_as_section_3_3_says() {
        let shapes = LayerShape::mlp(&[64, 1024, 1024, 10], false);
        let sp = Parameterization::resolve(
            &shapes,
            &ScaleChoice::preset(Preset::Sp),
            OptimizerKind::Sgd,
        )
        .unwrap();
        let big = diagnose(&Exponents::from_param(&sp, 0.0));
        assert!(!big.on_scale);
        assert_eq!(big.delta_f, 1.0);
        assert!(
            big.findings
                .iter()
                .any(|f| f.contains("read-out update is n times too large")),
            "{:?}",
            big.findings
        );
        let small = diagnose(&Exponents::from_param(&sp, 1.0));
        assert!(!small.on_scale);
        assert_eq!(small.delta_f, 0.0);
        assert_eq!(small.layers[0].uuc, -1.0);
        assert!(
            small
                .findings
                .iter()
                .all(|f| f.contains("layer 1 (read-in)")),
            "{:?}",
            small.findings
        );
    }

    #[test]
    fn out_of_range_r_is_flagged() {
        let shapes = LayerShape::mlp(&[16, 256, 256, 1], false);
        let low = on(&shapes, ScaleChoice::scale(-0.25, Gauge::Mup));
        assert!(low
            .findings
            .iter()
            .any(|f| f.contains("output at init grows")));
        let high = on(&shapes, ScaleChoice::scale(0.75, Gauge::Mup));
        assert!(high.findings.iter().any(|f| f.contains("outgrow")));
    }
}
