//! The pre-activation residual MLP (nn/residual.rs, nn/layernorm.rs): its forward pass
//! against a hand-written reference, its gradients against central differences, its
//! empirical NTK against per-example gradients and finite differences, and gauge
//! equivalence step for step (SGD with momentum, Adam).

use richness::kernel::empirical::{empirical_ntk, NtkOptions, Outputs};
use richness::kernel::reference::ntk_reference;
use richness::linalg::Compute;
use richness::nn::{
    Activation, Arch, BiasInit, Branch, Grads, Loss, Model, Norm, ResidualSpec, Trace,
};
use richness::optim::OptimConfig;
use richness::param::{Gauge, OptimizerKind, Preset, ScaleChoice};
use richness::rng::normal_vec;
use richness::tensor::Mat;
use richness::train::Trainer;

fn resmlp(blocks: usize, norm: Norm, branch: Branch, act: Activation, bias: bool) -> Arch {
    let mut arch = Arch::resmlp(
        3,
        8,
        2,
        act,
        ResidualSpec {
            blocks,
            norm,
            branch,
        },
    );
    arch.bias = bias;
    arch.bias_init = BiasInit::Normal;
    arch
}

fn variants() -> Vec<Arch> {
    let mut v = Vec::new();
    for norm in [Norm::None, Norm::Layer] {
        for branch in [Branch::One, Branch::SqrtDepth] {
            for (act, bias) in [
                (Activation::Tanh, true),
                (Activation::Relu, false),
                (Activation::Gelu, true),
            ] {
                v.push(resmlp(3, norm, branch, act, bias));
            }
        }
    }
    v
}

/// The defining formulas, written out with plain loops: h₁ = g₁W₁x (+g_b b),
/// h_{b+1} = h_b + β(g W c φ(N(h_b)) + g_b b), f = g W c φ(N(h_{B+1})) + g_b b.
fn reference_forward(model: &Model<f64>, x: &[f64]) -> Vec<f64> {
    let arch = &model.arch;
    let spec = arch.residual.unwrap();
    let beta = match spec.branch {
        Branch::One => 1.0,
        Branch::SqrtDepth => 1.0 / (spec.blocks as f64).sqrt(),
    };
    let dense = |l: usize, inp: &[f64]| -> Vec<f64> {
        let lp = &model.param.layers[l];
        let w = &model.weights[l];
        (0..w.rows())
            .map(|o| {
                let mut s: f64 =
                    (0..w.cols()).map(|i| w[(o, i)] * inp[i]).sum::<f64>() * lp.multiplier;
                if let (Some(b), Some(bs)) = (&model.biases[l], lp.bias) {
                    s += bs.multiplier * b[o];
                }
                s
            })
            .collect()
    };
    let post = |h: &[f64]| -> Vec<f64> {
        let n = h.len() as f64;
        let normed: Vec<f64> = match spec.norm {
            Norm::None => h.to_vec(),
            Norm::Layer => {
                let mean = h.iter().sum::<f64>() / n;
                let var = h.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                h.iter().map(|v| (v - mean) / (var + 1e-5).sqrt()).collect()
            }
        };
        normed
            .iter()
            .map(|&u| arch.gain * arch.activation.phi(u))
            .collect()
    };
    let depth = model.depth();
    let mut h = dense(0, x);
    for l in 1..depth - 1 {
        let branch = dense(l, &post(&h));
        h.iter_mut().zip(branch).for_each(|(h, b)| *h += beta * b);
    }
    dense(depth - 1, &post(&h))
}

#[test]
fn forward_equals_the_defining_formulas() {
    let cx = Compute::new(1);
    for arch in variants() {
        for choice in [
            ScaleChoice::preset(Preset::Mup),
            ScaleChoice::scale(0.25, Gauge::Rescale),
        ] {
            let model = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 7).unwrap();
            let b = 5;
            let x = normal_vec(1, "x", 0, b * 3, 1.0);
            let mut t = Trace::new(&model, b);
            model.forward(&cx, &x, b, &mut t);
            for i in 0..b {
                let want = reference_forward(&model, &x[i * 3..(i + 1) * 3]);
                for (u, w) in want.iter().enumerate() {
                    let got = t.output()[(i, u)];
                    assert!(
                        (got - w).abs() <= 1e-12 * (1.0 + w.abs()),
                        "{:?}: {got} vs {w}",
                        arch.residual
                    );
                }
            }
        }
    }
    // β matters: the same weights with the other branch give another output.
    let a = resmlp(4, Norm::Layer, Branch::One, Activation::Relu, false);
    let m1 =
        Model::<f64>::init(&a, &ScaleChoice::preset(Preset::Ntp), OptimizerKind::Sgd, 1).unwrap();
    let mut m2 = m1.clone();
    m2.arch.residual.as_mut().unwrap().branch = Branch::SqrtDepth;
    let x = normal_vec(2, "x", 0, 3, 1.0);
    assert!((reference_forward(&m1, &x)[0] - reference_forward(&m2, &x)[0]).abs() > 1e-6);
}

fn loss_of(model: &Model<f64>, x: &[f64], y: &[f64], b: usize) -> f64 {
    let mut t = Trace::new(model, b);
    model.forward(&Compute::new(1), x, b, &mut t);
    Loss::Mse.value_and_grad(t.output().as_slice(), y, b, model.output_dim(), None)
}

#[test]
fn gradients_equal_central_differences() {
    let cx = Compute::new(1);
    for arch in variants() {
        for choice in [
            ScaleChoice::preset(Preset::Mup),
            ScaleChoice::preset(Preset::Ntp),
        ] {
            let b = 4;
            let model = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 11).unwrap();
            let x = normal_vec(1, "x", 0, b * 3, 1.0);
            let y = normal_vec(2, "y", 0, b * 2, 1.0);
            let mut trace = Trace::new(&model, b);
            let mut grads = Grads::new(&model);
            model.forward(&cx, &x, b, &mut trace);
            let out = trace.output().as_slice().to_vec();
            Loss::Mse.value_and_grad(&out, &y, b, 2, Some(trace.output_grad_mut().as_mut_slice()));
            model.backward(&cx, &mut trace, &mut grads, false);
            for (ti, an) in grads.tensors().iter().enumerate() {
                let mut num = 0.0;
                let mut den = 0.0;
                for (i, &a) in an.iter().enumerate() {
                    let h = 1e-6;
                    let (mut mp, mut mm) = (model.clone(), model.clone());
                    mp.params_mut()[ti][i] += h;
                    mm.params_mut()[ti][i] -= h;
                    let fd = (loss_of(&mp, &x, &y, b) - loss_of(&mm, &x, &y, b)) / (2.0 * h);
                    num += (fd - a).powi(2);
                    den += a * a;
                }
                assert!(
                    den > 0.0,
                    "tensor {ti} has a zero gradient: the check would be vacuous"
                );
                let e = (num / den).sqrt();
                assert!(
                    e < 1e-6,
                    "{:?} {} tensor {ti}: relative error {e:e}",
                    arch.residual,
                    arch.activation.name()
                );
            }
        }
    }
}

#[test]
fn empirical_ntk_equals_per_example_gradients_and_finite_differences() {
    let cx = Compute::new(2);
    let x1 = Mat::from_vec(6, 3, normal_vec(3, "x", 0, 18, 1.0));
    let x2 = Mat::from_vec(4, 3, normal_vec(4, "x", 0, 12, 1.0));
    for arch in variants() {
        let model = Model::<f64>::init(
            &arch,
            &ScaleChoice::scale(0.25, Gauge::Layerwise),
            OptimizerKind::Sgd,
            5,
        )
        .unwrap();
        for outputs in [Outputs::Mean, Outputs::Each, Outputs::Index(1)] {
            let want = ntk_reference(&model, &x1, Some(&x2), outputs);
            let want_sym = ntk_reference(&model, &x1, None, outputs);
            for block in [2, 64] {
                let opts = NtkOptions { outputs, block };
                let got = empirical_ntk(&model, &cx, &x1, Some(&x2), &opts).unwrap();
                let got_sym = empirical_ntk(&model, &cx, &x1, None, &opts).unwrap();
                for (g, w) in got.iter().zip(&want).chain(got_sym.iter().zip(&want_sym)) {
                    let e = richness::tensor::dist(g.as_slice(), w.as_slice()) / w.norm();
                    assert!(e < 1e-10, "{:?} {outputs:?}: {e:e}", arch.residual);
                }
            }
        }
        // The reference itself against central differences of the outputs (unit 0).
        let want = ntk_reference(&model, &x1, None, Outputs::Index(0));
        let fd = fd_kernel(&model, &x1, 0);
        let e = richness::tensor::dist(fd.as_slice(), want[0].as_slice()) / want[0].norm();
        assert!(
            e < 1e-6,
            "{:?}: finite differences differ by {e:e}",
            arch.residual
        );
    }
}

/// Σ_p η_p ∂f_u(x_i)/∂θ_p ∂f_u(x_j)/∂θ_p with central differences.
fn fd_kernel(model: &Model<f64>, x: &Mat<f64>, unit: usize) -> Mat<f64> {
    let cx = Compute::new(1);
    let out = |m: &Model<f64>| {
        let mut t = Trace::new(m, x.rows());
        m.forward(&cx, x.as_slice(), x.rows(), &mut t);
        (0..x.rows())
            .map(|i| t.output()[(i, unit)])
            .collect::<Vec<f64>>()
    };
    let mut rates = Vec::new();
    for (l, lp) in model.param.layers.iter().enumerate() {
        rates.push(lp.lr);
        if model.biases[l].is_some() {
            rates.push(lp.bias.unwrap().lr);
        }
    }
    let n = x.rows();
    let mut k = Mat::zeros(n, n);
    for (t, &rate) in rates.iter().enumerate() {
        for p in 0..model.params()[t].len() {
            let h = 1e-5;
            let (mut mp, mut mm) = (model.clone(), model.clone());
            mp.params_mut()[t][p] += h;
            mm.params_mut()[t][p] -= h;
            let g: Vec<f64> = out(&mp)
                .iter()
                .zip(out(&mm))
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect();
            for i in 0..n {
                for j in 0..n {
                    k[(i, j)] += rate * g[i] * g[j];
                }
            }
        }
    }
    k
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    richness::tensor::dist(a, b) / b.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Outputs and effective weights β·g·W after `steps` full-batch steps.
fn train(
    arch: &Arch,
    choice: &ScaleChoice,
    optim: &OptimConfig,
    steps: usize,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let b = 16;
    let x = Mat::from_vec(b, 3, normal_vec(5, "x", 0, b * 3, 1.0));
    let y = Mat::from_vec(b, 2, normal_vec(6, "y", 0, b * 2, 1.0));
    let model = Model::<f64>::init(arch, choice, optim.kind, 3).unwrap();
    let mut t = Trainer::new(model, optim, Compute::new(1), Loss::Mse, b);
    for _ in 0..steps {
        assert!(t.step(x.as_slice(), y.as_slice(), b).is_finite());
    }
    assert!(t
        .model
        .weights
        .iter()
        .all(|w| w.as_slice().iter().all(|v| v.is_finite())));
    let mut trace = Trace::new(&t.model, b);
    let out = t.model.predict(&t.cx, &x, &mut trace).into_vec();
    let eff = (0..t.model.depth())
        .map(|l| t.model.effective_weight(l).into_vec())
        .collect();
    (out, eff)
}

#[test]
fn gauges_agree_step_for_step_with_sgd_and_adam() {
    let mut checked = 0;
    for norm in [Norm::None, Norm::Layer] {
        for branch in [Branch::One, Branch::SqrtDepth] {
            let mut arch = Arch::resmlp(
                3,
                48,
                2,
                Activation::Relu,
                ResidualSpec {
                    blocks: 3,
                    norm,
                    branch,
                },
            );
            arch.bias = true;
            arch.bias_init = BiasInit::Normal;
            for optim in [
                OptimConfig {
                    momentum: 0.9,
                    ..OptimConfig::sgd(0.0)
                },
                OptimConfig::adam(),
            ] {
                for r in [0.0, 0.25, 0.5] {
                    // A residual trunk's kernel grows with depth (biases too): rate 1
                    // diverges, so a small one.
                    let at = |g| ScaleChoice {
                        base_lr: 0.05,
                        ..ScaleChoice::scale(r, g)
                    };
                    let runs: Vec<_> = Gauge::ALL
                        .iter()
                        .map(|&g| train(&arch, &at(g), &optim, 5))
                        .collect();
                    let start = train(&arch, &at(Gauge::Mup), &optim, 0);
                    assert!(
                        rel(&runs[0].0, &start.0) > 1e-3,
                        "training must move the outputs"
                    );
                    for run in &runs[1..] {
                        let e = rel(&run.0, &runs[0].0);
                        assert!(
                            e < 1e-10,
                            "{norm:?} {branch:?} {:?} r={r}: outputs differ by {e:e}",
                            optim.kind
                        );
                        for (a, b) in run.1.iter().zip(&runs[0].1) {
                            let e = rel(a, b);
                            assert!(
                                e < 1e-10,
                                "{norm:?} {branch:?} {:?} r={r}: weights differ by {e:e}",
                                optim.kind
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * 2 * 3 * 2);
}

#[test]
fn architecture_is_validated() {
    let mut a = resmlp(2, Norm::None, Branch::One, Activation::Relu, false);
    a.dims[2] = 9;
    assert!(a
        .validate()
        .unwrap_err()
        .to_string()
        .contains("hidden widths"));
    let mut a = resmlp(2, Norm::None, Branch::One, Activation::Relu, false);
    a.dims.pop();
    assert!(a.validate().is_err());
    let mut a = resmlp(2, Norm::None, Branch::One, Activation::Relu, false);
    a.residual.as_mut().unwrap().blocks = 0;
    assert!(a.validate().is_err());
}

/// `check --arch resmlp` at r ∈ {0, 1/4, 1/2}: the hidden (stream) ‖Δh‖ slopes are
/// within 0.05 of r. On digits, widths 128–1024, 8 seeds, f64 (measured at 256–4096
/// with the CLI: −0.008/−0.011, 0.242/0.240, 0.492/0.490 for the two blocks).
#[test]
fn check_recovers_r_on_the_residual_stream() {
    use richness::probe::check::{self, CheckConfig};
    use richness::tensor::Dtype;
    use richness::train::ModelConfig;
    for r in [0.0, 0.25, 0.5] {
        let cfg = CheckConfig {
            model: ModelConfig {
                arch: richness::nn::Family::Resmlp,
                blocks: Some(2),
                ..ModelConfig::default()
            },
            param: ScaleChoice::scale(r, Gauge::Mup),
            dtype: Dtype::F64,
            widths: vec![128, 256, 512, 1024],
            seeds: 8,
            batch: 128,
            spectral: false,
            quantities: Some(vec!["dh_norm".into()]),
            ..CheckConfig::default()
        };
        let (report, _) = check::run(&cfg, 2, false).unwrap();
        let hidden: Vec<_> = report
            .claims
            .iter()
            .filter(|c| c.quantity == "dh_norm" && c.role == "hidden")
            .collect();
        assert_eq!(hidden.len(), 2, "two blocks");
        for c in hidden {
            let slope = c.fit.as_ref().unwrap().slope;
            assert!(
                (slope - r).abs() < 0.05,
                "r = {r}, layer {}: slope {slope}",
                c.layer
            );
        }
    }
}

/// `check` judges a resmlp with the MLP's exponent table (blocks are hidden layers).
/// That table is an extension for residual nets, so it is confirmed here by
/// measurement: every quantity, spectral norms included, at r = 0 and 1/2, without
/// and with LayerNorm, and no row may fail (docs/layers.md has the decisive 16-seed
/// runs at widths 256–2048). A wrong row (e.g. a hidden passthrough term predicted at
/// n^0 instead of n^r) fails it.
#[test]
fn no_row_of_the_mlp_table_fails_on_resmlp() {
    use richness::probe::check::{self, CheckConfig};
    use richness::train::ModelConfig;
    use richness::verdict::Verdict;
    for (norm, blocks) in [(Norm::None, 2), (Norm::Layer, 3)] {
        for r in [0.0, 0.5] {
            let cfg = CheckConfig {
                model: ModelConfig {
                    arch: richness::nn::Family::Resmlp,
                    blocks: Some(blocks),
                    norm: Some(norm),
                    ..ModelConfig::default()
                },
                param: ScaleChoice::scale(r, Gauge::Mup),
                widths: vec![128, 256, 512, 1024],
                seeds: 16,
                ..CheckConfig::default()
            };
            let (report, _) = check::run(&cfg, 2, false).unwrap();
            let judged: Vec<_> = report.claims.iter().filter_map(|c| c.verdict()).collect();
            let passed = judged.iter().filter(|v| **v == Verdict::Pass).count();
            for c in &report.claims {
                assert_ne!(
                    c.verdict(),
                    Some(Verdict::Fail),
                    "{norm:?} r = {r}: {} layer {} slope {:?} predicted {:?}",
                    c.quantity,
                    c.layer,
                    c.fit.as_ref().map(|f| f.slope),
                    c.predicted
                );
            }
            // At 16 seeds about half the rows are decided (2026-12-02: 23–32 of 45–61
            // pass, the rest unclear); a third is the floor that keeps the test informative.
            assert!(
                passed * 3 > judged.len(),
                "{norm:?} r = {r}: {passed} of {} pass",
                judged.len()
            );
        }
    }
}

/// The infinite-width NTK of resmlp (kernel/infinite.rs, theory.md §8.1) against the
/// mean of this library's own empirical kernels of wide random networks, within
/// their Monte-Carlo error (tests/infinite_resmlp.rs does the same against an
/// independent plain-loop network).
#[test]
fn infinite_ntk_equals_the_mean_of_wide_empirical_kernels() {
    use richness::kernel::infinite::InfiniteMlp;
    use richness::param::Parameterization;
    let cx = Compute::new(2);
    let x = Mat::from_vec(4, 6, normal_vec(9, "x", 0, 24, 1.0));
    let seeds = 12;
    for norm in [Norm::None, Norm::Layer] {
        for branch in [Branch::One, Branch::SqrtDepth] {
            let arch = Arch::resmlp(
                6,
                1024,
                1,
                Activation::Relu,
                ResidualSpec {
                    blocks: 2,
                    norm,
                    branch,
                },
            );
            let p = Parameterization::resolve(
                &arch.layer_shapes(),
                &ScaleChoice::preset(Preset::Mup),
                OptimizerKind::Sgd,
            )
            .unwrap();
            let inf = InfiniteMlp::from_parameterization(&arch, &p)
                .unwrap()
                .kernels(&x, None)
                .unwrap()
                .ntk;
            let ks: Vec<Mat<f64>> = (0..seeds)
                .map(|s| {
                    let m = Model::<f64>::init_with(&arch, p.clone(), s).unwrap();
                    empirical_ntk(&m, &cx, &x, None, &NtkOptions::outputs(Outputs::Mean))
                        .unwrap()
                        .remove(0)
                })
                .collect();
            let scale = (0..4).map(|i| inf[(i, i)]).fold(0.0, f64::max);
            for i in 0..4 {
                for j in 0..4 {
                    let v: Vec<f64> = ks.iter().map(|k| k[(i, j)]).collect();
                    let mean = v.iter().sum::<f64>() / seeds as f64;
                    let sd = (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>()
                        / (seeds - 1) as f64)
                        .sqrt();
                    let se = sd / (seeds as f64).sqrt();
                    let dev = (mean - inf[(i, j)]).abs();
                    assert!(
                        dev <= 4.0 * se + 0.02 * scale,
                        "{norm:?} {branch:?} ({i},{j}): mean {mean:.4} ± {se:.4}, infinite {:.4}",
                        inf[(i, j)]
                    );
                }
            }
        }
    }
}
