//! `Parameterization` values against theory.md §3 written out independently.

use richness::param::{Gauge, LayerShape, OptimizerKind, Parameterization, Role, ScaleChoice};

/// (g, σ, η) of theory.md §3.1, literally.
fn table(gauge: Gauge, role: Role, alpha: f64, d: f64) -> (f64, f64, f64) {
    let out = role == Role::ReadOut;
    match (gauge, out) {
        (Gauge::Mup, false) => (alpha / d.sqrt(), 1.0 / alpha, 1.0),
        (Gauge::Mup, true) => (1.0 / d.sqrt(), 1.0 / alpha, 1.0),
        (Gauge::Layerwise, false) => (1.0, 1.0 / d.sqrt(), alpha * alpha / d),
        (Gauge::Layerwise, true) => (1.0, 1.0 / (alpha * d.sqrt()), 1.0 / d),
        (Gauge::Rescale, false) => (1.0 / d.sqrt(), 1.0, alpha * alpha),
        (Gauge::Rescale, true) => (1.0 / (alpha * d.sqrt()), 1.0, alpha * alpha),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn every_gauge_matches_section_3_for_several_architectures() {
    let archs: Vec<Vec<usize>> = vec![
        vec![10, 256, 256, 1],
        vec![64, 1024, 1024, 10],
        vec![784, 300, 500, 400, 10],
        vec![3, 2048, 5],
    ];
    for dims in &archs {
        let shapes = LayerShape::mlp(dims, false);
        let n = dims[1..dims.len() - 1].iter().copied().max().unwrap() as f64;
        for r in [0.0, 0.25, 0.5, 0.1] {
            for gamma0 in [1.0, 2.5, 0.3] {
                let alpha = gamma0 * n.powf(r);
                for gauge in Gauge::ALL {
                    let choice = ScaleChoice {
                        gamma0,
                        ..ScaleChoice::scale(r, gauge)
                    };
                    let p =
                        Parameterization::resolve(&shapes, &choice, OptimizerKind::Sgd).unwrap();
                    assert!(close(p.alpha, alpha));
                    assert_eq!(p.width as f64, n);
                    for (i, l) in p.layers.iter().enumerate() {
                        let role = if i == 0 {
                            Role::ReadIn
                        } else if i + 1 == shapes.len() {
                            Role::ReadOut
                        } else {
                            Role::Hidden
                        };
                        assert_eq!(l.role, role);
                        let d = dims[i] as f64;
                        let (g, s, e) = table(gauge, role, alpha, d);
                        assert!(
                            close(l.multiplier, g) && close(l.init_std, s) && close(l.lr, e),
                            "{dims:?} r={r} γ₀={gamma0} {gauge:?} layer {i}"
                        );
                        // Effective quantities, theory.md §3 second table.
                        let (v, lam) = if role == Role::ReadOut {
                            (1.0 / (alpha * alpha * d), 1.0 / d)
                        } else {
                            (1.0 / d, alpha * alpha / d)
                        };
                        assert!(close(l.eff_init_var, v) && close(l.eff_lr, lam));
                        // Yang–Hu exponents (§3.2) in the mup gauge: a = (−r, 1/2−r, 1/2), b = r, c = 0.
                        if gauge == Gauge::Mup {
                            let a = match role {
                                Role::ReadIn => -r,
                                Role::Hidden => 0.5 - r,
                                Role::ReadOut => 0.5,
                            };
                            assert!(
                                (l.a - a).abs() < 1e-9
                                    && (l.b - r).abs() < 1e-9
                                    && l.c.abs() < 1e-9,
                                "abc {i}: {} {} {}",
                                l.a,
                                l.b,
                                l.c
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn adam_rates_follow_section_3_4_in_the_layerwise_gauge() {
    let dims = [16, 512, 512, 10];
    let shapes = LayerShape::mlp(&dims, false);
    for r in [0.0, 0.25, 0.5] {
        let p = Parameterization::resolve(
            &shapes,
            &ScaleChoice::scale(r, Gauge::Layerwise),
            OptimizerKind::Adam,
        )
        .unwrap();
        let n: f64 = 512.0;
        let alpha = n.powf(r);
        let want = [
            alpha / (16.0 * n.sqrt()),
            alpha / (512.0 * n.sqrt()),
            1.0 / 512.0,
        ];
        for (l, w) in p.layers.iter().zip(want) {
            assert!(close(l.lr, w), "{} vs {w}", l.lr);
            assert_eq!(l.multiplier, 1.0);
        }
    }
}

#[test]
fn standard_parameterization_is_flagged_off_scale() {
    let shapes = LayerShape::mlp(&[64, 1024, 1024, 10], false);
    let p = Parameterization::resolve(
        &shapes,
        &ScaleChoice::preset(richness::param::Preset::Sp),
        OptimizerKind::Sgd,
    )
    .unwrap();
    assert!(!p.on_scale);
    assert!(!p.warnings.is_empty());
    for (i, l) in p.layers.iter().enumerate() {
        assert_eq!(l.multiplier, 1.0);
        assert!(close(l.init_std, 1.0 / (shapes[i].fan_in as f64).sqrt()));
        assert_eq!(l.lr, 1.0);
    }
}

#[test]
fn out_of_range_r_is_allowed_with_the_reason() {
    let shapes = LayerShape::mlp(&[8, 64, 64, 1], false);
    let low = Parameterization::resolve(
        &shapes,
        &ScaleChoice::scale(-0.25, Gauge::Mup),
        OptimizerKind::Sgd,
    )
    .unwrap();
    assert!(low.warnings[0].contains("output at init"));
    let high = Parameterization::resolve(
        &shapes,
        &ScaleChoice::scale(0.75, Gauge::Mup),
        OptimizerKind::Sgd,
    )
    .unwrap();
    assert!(high.warnings[0].contains("gradients explode"));
    let ok = Parameterization::resolve(
        &shapes,
        &ScaleChoice::scale(0.3, Gauge::Mup),
        OptimizerKind::Sgd,
    )
    .unwrap();
    assert!(ok.warnings.is_empty());
}

#[test]
fn roles_can_be_overridden() {
    let shapes = LayerShape::mlp(&[8, 64, 64, 1], false);
    let choice = ScaleChoice {
        roles: Some(vec![Role::ReadIn, Role::ReadIn, Role::ReadOut]),
        ..ScaleChoice::scale(0.5, Gauge::Mup)
    };
    let p = Parameterization::resolve(&shapes, &choice, OptimizerKind::Sgd).unwrap();
    assert_eq!(p.layers[1].role, Role::ReadIn);
    let bad = ScaleChoice {
        roles: Some(vec![Role::ReadIn]),
        ..choice
    };
    assert!(Parameterization::resolve(&shapes, &bad, OptimizerKind::Sgd).is_err());
}

/// The text table's `eff_lr` column is the gauge-invariant rate for biases too:
/// g·η under Adam (as for the weights and the JSON `eff_lr`), g²η under SGD.
#[test]
fn text_table_bias_rows_use_the_optimizers_effective_rate() {
    use richness::param::fmt_num;
    let shapes = LayerShape::mlp(&[16, 256, 256, 10], true);
    for optimizer in [OptimizerKind::Adam, OptimizerKind::Sgd] {
        let p = Parameterization::resolve(&shapes, &ScaleChoice::scale(0.5, Gauge::Mup), optimizer)
            .unwrap();
        let text = p.to_text();
        let header: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("layer"))
            .unwrap()
            .split_whitespace()
            .collect();
        let col = header.iter().position(|h| *h == "eff_lr").unwrap();
        // Layers whose bias multiplier differs from 1 (where g·η and g²η differ).
        let mut telling = 0;
        for l in &p.layers {
            let b = l.bias.expect("bias");
            if (b.multiplier - 1.0).abs() > 1e-6 {
                telling += 1;
            }
            let want = match optimizer {
                OptimizerKind::Adam => b.multiplier * b.lr,
                OptimizerKind::Sgd => b.multiplier * b.multiplier * b.lr,
            };
            let weight_row: Vec<&str> = text
                .lines()
                .find(|r| r.split_whitespace().next() == Some(l.name.as_str()))
                .unwrap()
                .split_whitespace()
                .collect();
            assert_eq!(
                weight_row[col],
                fmt_num(l.eff_lr),
                "{optimizer:?} {}",
                l.name
            );
            let bias_name = format!("{}.bias", l.name);
            let row: Vec<&str> = text
                .lines()
                .find(|r| r.split_whitespace().next() == Some(bias_name.as_str()))
                .unwrap()
                .split_whitespace()
                .collect();
            assert_eq!(
                row[col],
                fmt_num(want),
                "{optimizer:?} {bias_name}:\n{text}"
            );
        }
        assert!(telling >= 2, "{text}");
    }
}
