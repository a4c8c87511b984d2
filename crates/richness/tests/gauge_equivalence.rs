//! The three gauges are the same training run (theory.md §3.1): equal outputs and
//! effective weights after several full-batch steps, in f64.

use richness::linalg::Compute;
use richness::nn::{Activation, Arch, BiasInit, Loss, Model};
use richness::optim::OptimConfig;
use richness::param::{Gauge, OptimizerKind, Parameterization, Preset, ScaleChoice};
use richness::rng::normal_vec;
use richness::tensor::Mat;
use richness::train::Trainer;

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    num / den
}

/// Outputs on the data and effective weights (and biases) after `steps` full-batch steps.
fn train(
    arch: &Arch,
    choice: &ScaleChoice,
    optim: &OptimConfig,
    steps: usize,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    train_with(arch, choice, optim, steps, |_| {})
}

fn train_with(
    arch: &Arch,
    choice: &ScaleChoice,
    optim: &OptimConfig,
    steps: usize,
    edit: impl Fn(&mut Parameterization),
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let b = 16;
    let x = Mat::from_vec(
        b,
        arch.dims[0],
        normal_vec(5, "x", 0, b * arch.dims[0], 1.0),
    );
    let k = *arch.dims.last().unwrap();
    let y = Mat::from_vec(b, k, normal_vec(6, "y", 0, b * k, 1.0));
    let mut p = Parameterization::resolve(&arch.layer_shapes(), choice, optim.kind).unwrap();
    edit(&mut p);
    let model = Model::<f64>::init_with(arch, p, 3).unwrap();
    let mut t = Trainer::new(model, optim, Compute::new(1), Loss::Mse, b);
    for _ in 0..steps {
        let l = t.step(x.as_slice(), y.as_slice(), b);
        assert!(l.is_finite());
    }
    let mut trace = richness::nn::Trace::new(&t.model, b);
    let out = t.model.predict(&t.cx, &x, &mut trace).into_vec();
    let mut eff = Vec::new();
    for (l, lp) in t.model.param.layers.iter().enumerate() {
        eff.push(
            t.model.weights[l]
                .as_slice()
                .iter()
                .map(|w| w * lp.multiplier)
                .collect(),
        );
        if let (Some(bias), Some(bs)) = (&t.model.biases[l], lp.bias) {
            eff.push(bias.iter().map(|v| v * bs.multiplier).collect());
        }
    }
    (out, eff)
}

fn assert_same(a: &(Vec<f64>, Vec<Vec<f64>>), b: &(Vec<f64>, Vec<Vec<f64>>), tol: f64, what: &str) {
    let e = rel(&a.0, &b.0);
    assert!(e < tol, "{what}: outputs differ by {e:e}");
    for (i, (x, y)) in a.1.iter().zip(&b.1).enumerate() {
        let e = rel(x, y);
        assert!(e < tol, "{what}: effective tensor {i} differs by {e:e}");
    }
}

#[test]
fn sgd_gauges_agree_step_for_step_at_alpha_one_and_sqrt_n() {
    let mut arch = Arch::mlp(vec![6, 64, 64, 3], Activation::Relu);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    for optim in [
        OptimConfig::sgd(0.0),
        OptimConfig {
            momentum: 0.9,
            weight_decay: 1e-3,
            ..OptimConfig::default()
        },
    ] {
        for r in [0.0, 0.5] {
            let runs: Vec<_> = Gauge::ALL
                .iter()
                .map(|&g| train(&arch, &ScaleChoice::scale(r, g), &optim, 5))
                .collect();
            // α = 1 at r = 0 and α = √n at r = 1/2: make sure the runs are not trivial.
            assert!(
                rel(
                    &runs[0].0,
                    &train(&arch, &ScaleChoice::scale(r, Gauge::Mup), &optim, 0).0
                ) > 1e-3
            );
            for i in 1..3 {
                assert_same(
                    &runs[0],
                    &runs[i],
                    1e-10,
                    &format!(
                        "r={r} mup vs {:?}, momentum {}",
                        Gauge::ALL[i],
                        optim.momentum
                    ),
                );
            }
        }
    }
}

#[test]
fn gauges_at_other_r_and_gamma0_agree_too() {
    let arch = Arch::mlp(vec![5, 48, 40, 48, 2], Activation::Tanh);
    for (r, g0) in [(0.25, 1.0), (0.1, 2.5), (0.4, 0.5)] {
        let runs: Vec<_> = Gauge::ALL
            .iter()
            .map(|&g| {
                train(
                    &arch,
                    &ScaleChoice {
                        gamma0: g0,
                        ..ScaleChoice::scale(r, g)
                    },
                    &OptimConfig::sgd(0.0),
                    5,
                )
            })
            .collect();
        assert_same(&runs[0], &runs[1], 1e-10, "mup vs layerwise");
        assert_same(&runs[0], &runs[2], 1e-10, "mup vs rescale");
    }
}

/// Theory.md §3.1: under Adam the gauge symmetry is (c·g, σ/c, η/c), with ε scaling
/// like the raw gradient. We implement ε → c·ε (the raw gradient scales by c) and
/// test it; the test fails if ε is left fixed (checked below).
#[test]
fn adam_gauges_agree_with_eps_scaled_by_the_gauge_factor() {
    let arch = Arch::mlp(vec![6, 64, 64, 3], Activation::Relu);
    let optim = OptimConfig::adam();
    for r in [0.0, 0.5] {
        let runs: Vec<_> = Gauge::ALL
            .iter()
            .map(|&g| train(&arch, &ScaleChoice::scale(r, g), &optim, 5))
            .collect();
        assert_same(&runs[0], &runs[1], 1e-10, "adam mup vs layerwise");
        assert_same(&runs[0], &runs[2], 1e-10, "adam mup vs rescale");
    }
    // With a large ε the scaling matters: keeping ε fixed would break the symmetry.
    let big = ScaleChoice {
        adam_eps: 1e-2,
        ..ScaleChoice::scale(0.5, Gauge::Mup)
    };
    let a = train(&arch, &big, &optim, 5);
    let b = train(
        &arch,
        &ScaleChoice {
            gauge: Some(Gauge::Rescale),
            ..big.clone()
        },
        &optim,
        5,
    );
    assert_same(&a, &b, 1e-10, "adam with large eps");
    // ε left fixed, or divided by the gauge factor as theory.md §1 words it, is not
    // a symmetry: the runs drift apart.
    let rescale = ScaleChoice {
        gauge: Some(Gauge::Rescale),
        ..big.clone()
    };
    let fixed = train_with(&arch, &rescale, &optim, 5, |p| {
        p.layers.iter_mut().for_each(|l| l.adam_eps = Some(1e-2))
    });
    let divided = train_with(&arch, &rescale, &optim, 5, |p| {
        p.layers
            .iter_mut()
            .for_each(|l| l.adam_eps = Some(1e-2 / l.multiplier))
    });
    assert!(
        rel(&a.0, &fixed.0) > 1e-4,
        "fixed ε should break the symmetry"
    );
    assert!(
        rel(&a.0, &divided.0) > 1e-4,
        "ε/c should break the symmetry"
    );
}

#[test]
fn presets_equal_their_definitions() {
    let arch = Arch::mlp(vec![8, 128, 128, 4], Activation::Relu);
    let shapes = arch.layer_shapes();
    for (preset, r, gauge) in [
        (Preset::Ntp, 0.0, Gauge::Mup),
        (Preset::Ntp, 0.0, Gauge::Rescale),
        (Preset::NtpLr, 0.0, Gauge::Layerwise),
        (Preset::Mup, 0.5, Gauge::Mup),
        (Preset::MupLr, 0.5, Gauge::Layerwise),
        (Preset::Mfp, 0.5, Gauge::Rescale),
    ] {
        for opt in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let p = Parameterization::resolve(&shapes, &ScaleChoice::preset(preset), opt).unwrap();
            let q = Parameterization::resolve(&shapes, &ScaleChoice::scale(r, gauge), opt).unwrap();
            for (a, b) in p.layers.iter().zip(&q.layers) {
                for (x, y) in [
                    (a.multiplier, b.multiplier),
                    (a.init_std, b.init_std),
                    (a.lr, b.lr),
                ] {
                    assert!(
                        (x - y).abs() <= 1e-12 * y.abs(),
                        "{preset:?} vs r={r} {gauge:?}: {x} != {y}"
                    );
                }
            }
        }
    }
}

/// The fused SGD path (update inside backward) equals gradient-then-update.
#[test]
fn fused_sgd_update_equals_separate_update() {
    let mut arch = Arch::mlp(vec![6, 40, 40, 3], Activation::Gelu);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    let optim = OptimConfig {
        weight_decay: 0.01,
        ..OptimConfig::sgd(0.0)
    };
    let b = 8;
    let x = normal_vec(5, "x", 0, b * 6, 1.0);
    let y = normal_vec(6, "y", 0, b * 3, 1.0);
    let model = Model::<f64>::init(
        &arch,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        3,
    )
    .unwrap();
    let mut fused = Trainer::new(model.clone(), &optim, Compute::new(1), Loss::Mse, b);
    let mut plain = Trainer::new(model, &optim, Compute::new(1), Loss::Mse, b).unfused();
    for _ in 0..5 {
        let (a, c) = (fused.step(&x, &y, b), plain.step(&x, &y, b));
        assert!((a - c).abs() <= 1e-12 * a.abs());
    }
    for (p, q) in fused.model.params().iter().zip(plain.model.params()) {
        assert!(rel(p, q) < 1e-12, "{}", rel(p, q));
    }
}

#[test]
fn convolutional_networks_are_gauge_equivalent_too() {
    let mut arch = Arch::myrtle5([1, 6, 6], 8, 3);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    for r in [0.0, 0.5] {
        let runs: Vec<_> = Gauge::ALL
            .iter()
            .map(|&g| {
                train(
                    &arch,
                    &ScaleChoice::scale(r, g),
                    &OptimConfig {
                        momentum: 0.9,
                        ..OptimConfig::default()
                    },
                    5,
                )
            })
            .collect();
        assert_same(&runs[0], &runs[1], 1e-10, "conv mup vs layerwise");
        assert_same(&runs[0], &runs[2], 1e-10, "conv mup vs rescale");
    }
}

/// Centring (docs/theory.md §6.1) subtracts the same function f₀ in every gauge, so the
/// gauges stay one training run: SGD with momentum and Adam, at r = 1/4 with biases.
#[test]
fn centred_gauges_agree_step_for_step() {
    let mut arch = Arch::mlp(vec![6, 64, 64, 3], Activation::Relu);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    for optim in [
        OptimConfig {
            momentum: 0.9,
            ..OptimConfig::default()
        },
        OptimConfig::adam(),
    ] {
        let centred = |g: Gauge| ScaleChoice {
            center: Some(true),
            ..ScaleChoice::scale(0.25, g)
        };
        let runs: Vec<_> = Gauge::ALL
            .iter()
            .map(|&g| train(&arch, &centred(g), &optim, 5))
            .collect();
        // Not trivial: centred training moves the output away from 0 ...
        assert!(runs[0].0.iter().map(|v| v.abs()).sum::<f64>() > 1e-3);
        // ... and differs from uncentred training of the same init.
        let plain = train(&arch, &ScaleChoice::scale(0.25, Gauge::Mup), &optim, 5);
        assert!(rel(&runs[0].1[0], &plain.1[0]) > 1e-6);
        for i in 1..3 {
            assert_same(
                &runs[0],
                &runs[i],
                1e-10,
                &format!("centred mup vs {:?} ({:?})", Gauge::ALL[i], optim.kind),
            );
        }
    }
}

/// Centring works for Myrtle-5 too: the output starts at exactly 0 and the gauges stay
/// one run.
#[test]
fn centred_convolutional_networks_start_at_zero_and_stay_gauge_equivalent() {
    let arch = Arch::myrtle5([1, 6, 6], 8, 3);
    let centred = |g: Gauge| ScaleChoice {
        center: Some(true),
        ..ScaleChoice::scale(0.25, g)
    };
    let at_init = train(&arch, &centred(Gauge::Mup), &OptimConfig::sgd(0.0), 0);
    assert!(at_init.0.iter().all(|v| *v == 0.0));
    let runs: Vec<_> = Gauge::ALL
        .iter()
        .map(|&g| train(&arch, &centred(g), &OptimConfig::sgd(0.9), 5))
        .collect();
    assert!(runs[0].0.iter().map(|v| v.abs()).sum::<f64>() > 1e-6);
    assert_same(&runs[0], &runs[1], 1e-10, "centred conv mup vs layerwise");
    assert_same(&runs[0], &runs[2], 1e-10, "centred conv mup vs rescale");
}
