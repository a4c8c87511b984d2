//! The GPT (`nn::gpt`): forward against a plain re-implementation from the effective
//! tensors, every gradient against central differences (f64), the causal mask, the
//! scale of every tensor, gauge equivalence over training, and the weights files.

use richness::linalg::Compute;
use richness::nn::gpt::{Gpt, GptGrads, GptSpec, GptTrace, WPE, WTE};
use richness::nn::Branch;
use richness::param::{Gauge, OptimizerKind, Preset, Role, ScaleChoice};

fn cx() -> Compute {
    Compute::new(1)
}

fn tokens(batch: usize, spec: &GptSpec, salt: u32) -> (Vec<u32>, Vec<u32>) {
    let n = batch * spec.context;
    let v = spec.vocab as u32;
    let seq: Vec<u32> = (0..n + batch)
        .map(|i| (i as u32 * 7 + salt * 3 + (i as u32 * i as u32) % 5) % v)
        .collect();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for b in 0..batch {
        let s = &seq[b * (spec.context + 1)..];
        x.extend_from_slice(&s[..spec.context]);
        y.extend_from_slice(&s[1..spec.context + 1]);
    }
    (x, y)
}

fn small(tie: bool) -> GptSpec {
    GptSpec {
        tie,
        branch: Branch::SqrtDepth,
        ..GptSpec::new(8, 2, 4, 5, 7)
    }
}

/// The GPT of theory.md §9.1 written plainly from effective tensors (β and g folded
/// in), in f64 loops: logits [rows, V].
fn reference_logits(g: &Gpt<f64>, x: &[u32], batch: usize) -> Vec<f64> {
    let s = &g.spec;
    let eff = g.effective();
    let (n, tt, dh) = (s.width, s.context, s.head_dim);
    let ln = |h: &[f64]| {
        let m = h.iter().sum::<f64>() / n as f64;
        let v = h.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n as f64;
        h.iter()
            .map(|a| (a - m) / (v + 1e-5).sqrt())
            .collect::<Vec<_>>()
    };
    let mv = |w: &richness::tensor::Mat<f64>, u: &[f64]| {
        (0..w.rows())
            .map(|i| w.row(i).iter().zip(u).map(|(a, b)| a * b).sum::<f64>())
            .collect::<Vec<_>>()
    };
    let gelu = |z: f64| z * 0.5 * (1.0 + libm::erf(z / 2f64.sqrt()));
    let mut out = Vec::new();
    for b in 0..batch {
        let mut h: Vec<Vec<f64>> = (0..tt)
            .map(|t| {
                let tok = x[b * tt + t] as usize;
                (0..n)
                    .map(|i| eff[WTE][(tok, i)] + eff[WPE][(t, i)])
                    .collect()
            })
            .collect();
        for l in 0..s.blocks {
            let w = |j| &eff[GptSpec::block_tensor(l, j)];
            let qkv: Vec<Vec<f64>> = h.iter().map(|hi| mv(w(0), &ln(hi))).collect();
            let mut o = vec![vec![0.0; n]; tt];
            for head in 0..s.heads() {
                let r = head * dh..(head + 1) * dh;
                for i in 0..tt {
                    let sc: Vec<f64> = (0..=i)
                        .map(|j| {
                            g.c_att * r.clone().map(|d| qkv[i][d] * qkv[j][n + d]).sum::<f64>()
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = sc.iter().map(|v| (v - m).exp()).sum();
                    for j in 0..=i {
                        let p = (sc[j] - m).exp() / z;
                        for d in r.clone() {
                            o[i][d] += p * qkv[j][2 * n + d];
                        }
                    }
                }
            }
            for i in 0..tt {
                let a = mv(w(1), &o[i]);
                h[i].iter_mut().zip(&a).for_each(|(h, a)| *h += a);
                let m1 = mv(w(2), &ln(&h[i]));
                let act: Vec<f64> = m1.iter().map(|&z| s.gain * gelu(z)).collect();
                let y = mv(w(3), &act);
                h[i].iter_mut().zip(&y).for_each(|(h, a)| *h += a);
            }
        }
        for hi in &h {
            out.extend(mv(&eff[s.lm_head()], &ln(hi)));
        }
    }
    out
}

#[test]
fn forward_matches_a_plain_reimplementation() {
    for (tie, choice) in [
        (false, ScaleChoice::scale(0.25, Gauge::Layerwise)),
        (true, ScaleChoice::preset(Preset::Mup)),
        (false, ScaleChoice::preset(Preset::Sp)),
    ] {
        let spec = small(tie);
        let g = Gpt::<f64>::init(&spec, &choice, OptimizerKind::Sgd, 3).unwrap();
        let (x, _) = tokens(2, &spec, 1);
        let mut tr = GptTrace::new(&spec, 2);
        g.forward(&cx(), &x, 2, &mut tr);
        let want = reference_logits(&g, &x, 2);
        let got = tr.logits.as_slice();
        let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(scale > 0.0);
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-12 * scale.max(1.0),
                "tie={tie}: {a} vs {b}"
            );
        }
    }
}

/// Every entry of every tensor's gradient against central differences.
fn check_gradients(spec: &GptSpec, choice: &ScaleChoice) {
    let mut g = Gpt::<f64>::init(spec, choice, OptimizerKind::Sgd, 11).unwrap();
    let batch = 2;
    let (x, y) = tokens(batch, spec, 2);
    let mut tr = GptTrace::new(spec, batch);
    let mut grads = GptGrads::new(&g);
    g.gradient(&cx(), &x, &y, batch, &mut tr, &mut grads);
    let loss_at = |g: &Gpt<f64>| {
        let mut t = GptTrace::new(spec, batch);
        g.evaluate(&cx(), &x, &y, batch, &mut t)
    };
    for i in 0..g.tensors.len() {
        let an = grads.tensors[i].as_slice().to_vec();
        let norm = an.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm > 0.0, "{}: zero gradient", spec.name(i));
        let mut err = 0.0f64;
        for k in 0..an.len() {
            let w0 = g.tensors[i].as_slice()[k];
            let h = 1e-5 * w0.abs().max(1e-2);
            g.tensors[i].as_mut_slice()[k] = w0 + h;
            let lp = loss_at(&g);
            g.tensors[i].as_mut_slice()[k] = w0 - h;
            let lm = loss_at(&g);
            g.tensors[i].as_mut_slice()[k] = w0;
            let fd = (lp - lm) / (2.0 * h);
            err = err.max((fd - an[k]).abs());
        }
        let max = an.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(
            err < 1e-6 * max,
            "{} (tie={}): max |fd − analytic| = {err:e}, max |grad| = {max:e}",
            spec.name(i),
            spec.tie
        );
    }
}

#[test]
fn gradients_match_central_differences_untied() {
    check_gradients(&small(false), &ScaleChoice::scale(0.25, Gauge::Layerwise));
}

#[test]
fn gradients_match_central_differences_tied() {
    check_gradients(&small(true), &ScaleChoice::preset(Preset::Mup));
}

#[test]
fn gradients_match_central_differences_with_zero_query() {
    // q = 0 at init: the query's gradient comes only through the uniform attention.
    let spec = GptSpec {
        zero_query: true,
        ..small(false)
    };
    check_gradients(&spec, &ScaleChoice::preset(Preset::Ntp));
}

#[test]
fn the_mask_is_causal_and_probabilities_are_rows_of_the_simplex() {
    let spec = small(false);
    let g = Gpt::<f64>::init(
        &spec,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        5,
    )
    .unwrap();
    let (mut x, _) = tokens(2, &spec, 0);
    let mut a = GptTrace::new(&spec, 2);
    g.forward(&cx(), &x, 2, &mut a);
    let t0 = 3;
    x[spec.context + t0] = (x[spec.context + t0] + 1) % spec.vocab as u32;
    let mut b = GptTrace::new(&spec, 2);
    g.forward(&cx(), &x, 2, &mut b);
    let v = spec.vocab;
    for row in 0..2 * spec.context {
        let same = a.logits.row(row) == b.logits.row(row);
        let (seq, t) = (row / spec.context, row % spec.context);
        if seq == 0 || t < t0 {
            assert!(same, "row {row} changed by a later token");
        } else {
            assert!(!same, "row {row} should see the changed token");
        }
    }
    assert_eq!(a.logits.cols(), v);
    let tt = spec.context;
    for blk in &a.blocks {
        for (r, p) in blk.probs.chunks(tt).enumerate() {
            let i = r % tt;
            let sum: f64 = p.iter().sum();
            assert!((sum - 1.0).abs() < 1e-12);
            assert!(p[i + 1..].iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn roles_fan_ins_and_the_attention_multiplier_follow_the_scale() {
    let spec = GptSpec::new(64, 2, 16, 8, 11);
    for r in [0.0, 0.25, 0.5] {
        let p = spec
            .resolve(&ScaleChoice::scale(r, Gauge::Layerwise), OptimizerKind::Sgd)
            .unwrap();
        let n = 64f64;
        let alpha = n.powf(r);
        for (i, l) in p.layers.iter().enumerate() {
            let (role, d) = match i {
                WTE | WPE => (Role::ReadIn, 1.0),
                i if i == spec.lm_head() => (Role::ReadOut, n),
                i if (i - 2) % 4 == 3 => (Role::Hidden, 4.0 * n),
                _ => (Role::Hidden, n),
            };
            assert_eq!(l.role, role, "{}", l.name);
            assert_eq!(l.fan_in as f64, d, "{}", l.name);
            // theory.md §9.2 (SGD): v = 1/d (in, hidden), 1/(α² n) out; λ = α²/d, 1/n.
            let (v, lam) = if role == Role::ReadOut {
                (1.0 / (alpha * alpha * n), 1.0 / n)
            } else {
                (1.0 / d, alpha * alpha / d)
            };
            assert!((l.eff_init_var - v).abs() < 1e-12 * v, "{}", l.name);
            assert!((l.eff_lr - lam).abs() < 1e-12 * lam, "{}", l.name);
        }
        let g = Gpt::<f64>::init(
            &spec,
            &ScaleChoice::scale(r, Gauge::Mup),
            OptimizerKind::Sgd,
            0,
        )
        .unwrap();
        assert!((g.c_att - 16f64.powf(-(0.5 + r))).abs() < 1e-15);
    }
    // Adam (theory.md §9.2): embeddings α/√n, hidden α/(d√n), read-out 1/n.
    let p = spec
        .resolve(
            &ScaleChoice::scale(0.5, Gauge::Layerwise),
            OptimizerKind::Adam,
        )
        .unwrap();
    assert!((p.layers[WTE].eff_lr - 1.0).abs() < 1e-12);
    assert!((p.layers[2].eff_lr - 1.0 / 64.0).abs() < 1e-12);
    assert!((p.layers[spec.lm_head()].eff_lr - 1.0 / 64.0).abs() < 1e-12);
    let sp = Gpt::<f64>::init(
        &spec,
        &ScaleChoice::preset(Preset::Sp),
        OptimizerKind::Sgd,
        0,
    )
    .unwrap();
    assert_eq!(sp.c_att, 0.25);
    let over = ScaleChoice {
        attention_scale: Some(0.125),
        ..ScaleChoice::preset(Preset::Mup)
    };
    let g = Gpt::<f64>::init(&spec, &over, OptimizerKind::Sgd, 0).unwrap();
    assert_eq!(g.c_att, 0.125);
}

#[test]
fn tying_outside_the_mup_gauge_and_bad_shapes_are_refused_in_one_line() {
    let tied = small(true);
    for choice in [
        ScaleChoice::scale(0.25, Gauge::Layerwise),
        ScaleChoice::scale(0.0, Gauge::Rescale),
        ScaleChoice::preset(Preset::Sp),
        ScaleChoice::preset(Preset::Mfp),
    ] {
        let e = tied
            .resolve(&choice, OptimizerKind::Sgd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mup gauge") && !e.contains('\n'), "{e}");
    }
    assert!(tied
        .resolve(&ScaleChoice::preset(Preset::Ntp), OptimizerKind::Adam)
        .is_ok());
    let bad = GptSpec::new(10, 1, 4, 4, 5);
    let e = bad
        .resolve(&ScaleChoice::default(), OptimizerKind::Sgd)
        .unwrap_err()
        .to_string();
    assert!(e.contains("head_dim") && e.contains("divide"), "{e}");
    let both = GptSpec {
        zero_readout: true,
        ..small(true)
    };
    assert!(both
        .resolve(&ScaleChoice::default(), OptimizerKind::Sgd)
        .is_err());
}

#[test]
fn tied_gauge_uses_one_raw_tensor_with_both_roles_multipliers() {
    // theory.md §9.4: in the mup gauge g_E = α, g_L = 1/√n and one σ = 1/α.
    let spec = GptSpec {
        tie: true,
        ..GptSpec::new(64, 1, 16, 4, 9)
    };
    let p = spec
        .resolve(&ScaleChoice::scale(0.25, Gauge::Mup), OptimizerKind::Sgd)
        .unwrap();
    let alpha = 64f64.powf(0.25);
    let (e, l) = (&p.layers[WTE], &p.layers[spec.lm_head()]);
    assert!((e.multiplier - alpha).abs() < 1e-12);
    assert!((l.multiplier - 1.0 / 8.0).abs() < 1e-12);
    assert!((e.init_std - l.init_std).abs() < 1e-15 && (e.lr - l.lr).abs() < 1e-15);
}
