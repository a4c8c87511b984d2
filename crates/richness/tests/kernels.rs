//! Tangent kernels (theory.md §5): the fast empirical NTK against explicit
//! Jacobians, gauge invariance and r-independence, infinite-width kernels against
//! closed forms and quadrature, finite → infinite convergence, linearised training.

use richness::fit::fit_loglog;
use richness::kernel::empirical::{empirical_ntk, NtkOptions, Outputs};
use richness::kernel::infinite::{InfiniteMlp, Method};
use richness::kernel::quadrature::{GaussHermite, Piecewise};
use richness::kernel::reference::{jacobian, ntk_reference};
use richness::kernel::regression::{Horizon, LinearisedMse};
use richness::linalg::Compute;
use richness::nn::{Activation, Arch, BiasInit, Loss, Model, Trace};
use richness::optim::OptimConfig;
use richness::param::{Gauge, OptimizerKind, Parameterization, Preset, ScaleChoice};
use richness::rng::normal_vec;
use richness::tensor::Mat;
use richness::train::Trainer;
use std::f64::consts::PI;

fn gauss(seed: u64, rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_vec(rows, cols, normal_vec(seed, "test-x", 0, rows * cols, 1.0))
}

/// max |a − b| / max |b|.
fn rel_max(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let num = a
        .as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let den = b.as_slice().iter().map(|y| y.abs()).fold(0.0, f64::max);
    num / den
}

fn rel_fro(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    richness::tensor::dist(a.as_slice(), b.as_slice()) / b.norm()
}

fn biased(dims: Vec<usize>, act: Activation) -> Arch {
    let mut arch = Arch::mlp(dims, act);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    arch
}

#[test]
fn empirical_equals_per_example_gradients_for_every_activation_gauge_and_output_mode() {
    let cx1 = Compute::new(1);
    let cx2 = Compute::new(2);
    let x1 = gauss(1, 7, 3);
    let x2 = gauss(2, 5, 3);
    let mut checked = 0;
    for act in Activation::ALL {
        for dims in [vec![3, 16, 12, 2], vec![3, 10, 1]] {
            let arch = biased(dims, act);
            let mut choices: Vec<ScaleChoice> = Gauge::ALL
                .iter()
                .map(|&g| ScaleChoice::scale(0.25, g))
                .collect();
            choices.push(ScaleChoice::preset(Preset::Sp));
            for choice in &choices {
                let model = Model::<f64>::init(&arch, choice, OptimizerKind::Sgd, 11).unwrap();
                let k = model.output_dim();
                let mut modes = vec![Outputs::Mean, Outputs::Each];
                if k > 1 {
                    modes.push(Outputs::Index(1));
                }
                for outputs in modes {
                    let want_cross = ntk_reference(&model, &x1, Some(&x2), outputs);
                    let want_sym = ntk_reference(&model, &x1, None, outputs);
                    for (block, cx) in [(3, &cx1), (256, &cx2)] {
                        let opts = NtkOptions { outputs, block };
                        let got_cross = empirical_ntk(&model, cx, &x1, Some(&x2), &opts).unwrap();
                        let got_sym = empirical_ntk(&model, cx, &x1, None, &opts).unwrap();
                        assert_eq!(got_cross.len(), want_cross.len());
                        for (g, w) in got_cross
                            .iter()
                            .zip(&want_cross)
                            .chain(got_sym.iter().zip(&want_sym))
                        {
                            let e = rel_max(g, w);
                            assert!(
                                e < 1e-10,
                                "{} {:?} {} {outputs:?} block {block}: relative error {e:e}",
                                act.name(),
                                arch.dims,
                                choice.label()
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 200);
}

#[test]
fn empirical_ntk_is_gauge_invariant_under_arbitrary_per_layer_factors() {
    // (g, σ, η) → (c·g, σ/c, η/c²) with W → W/c keeps effective weights and rates,
    // so the kernel must not change, for any c per layer (not only the named gauges).
    let arch = biased(vec![4, 24, 24, 3], Activation::Gelu);
    let model = Model::<f64>::init(
        &arch,
        &ScaleChoice::scale(0.5, Gauge::Layerwise),
        OptimizerKind::Sgd,
        5,
    )
    .unwrap();
    let mut moved = model.clone();
    for (l, c) in [0.3, 7.0, 0.05].into_iter().enumerate() {
        let lp = &mut moved.param.layers[l];
        lp.multiplier *= c;
        lp.init_std /= c;
        lp.lr /= c * c;
        moved.weights[l]
            .as_mut_slice()
            .iter_mut()
            .for_each(|w| *w /= c);
        let cb = 1.0 / c; // a different factor for the bias
        let b = lp.bias.as_mut().unwrap();
        b.multiplier *= cb;
        b.lr /= cb * cb;
        moved.biases[l]
            .as_mut()
            .unwrap()
            .iter_mut()
            .for_each(|v| *v /= cb);
    }
    let x = gauss(3, 9, 4);
    let cx = Compute::new(1);
    for outputs in [Outputs::Mean, Outputs::Each] {
        let a = empirical_ntk(&model, &cx, &x, None, &NtkOptions::outputs(outputs)).unwrap();
        let b = empirical_ntk(&moved, &cx, &x, None, &NtkOptions::outputs(outputs)).unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!(
                rel_max(b, a) < 1e-12,
                "gauge changed the kernel by {:e}",
                rel_max(b, a)
            );
        }
    }
    // Changing a rate factor without compensating must change the kernel.
    let mut wrong = model.clone();
    wrong.param.layers[1].lr *= 2.0;
    let a = empirical_ntk(&model, &cx, &x, None, &NtkOptions::default()).unwrap();
    let b = empirical_ntk(&wrong, &cx, &x, None, &NtkOptions::default()).unwrap();
    assert!(rel_max(&b[0], &a[0]) > 1e-3);
}

#[test]
fn ntk_at_init_does_not_depend_on_r_or_gauge() {
    // Same seed: the draws are the same, and on the scale the effective hidden
    // weights do not depend on r, the read-out's scale 1/α is compensated by the
    // rates α². So the empirical NTK at init is the same kernel for every r.
    let cx = Compute::new(1);
    let x = gauss(4, 8, 5);
    for act in [Activation::Relu, Activation::Tanh] {
        let arch = biased(vec![5, 64, 64, 2], act);
        let base = empirical_ntk(
            &Model::<f64>::init(
                &arch,
                &ScaleChoice::scale(0.0, Gauge::Mup),
                OptimizerKind::Sgd,
                9,
            )
            .unwrap(),
            &cx,
            &x,
            None,
            &NtkOptions::outputs(Outputs::Each),
        )
        .unwrap();
        for r in [0.0, 0.25, 0.5] {
            for g in Gauge::ALL {
                let m = Model::<f64>::init(&arch, &ScaleChoice::scale(r, g), OptimizerKind::Sgd, 9)
                    .unwrap();
                assert!((m.param.alpha - 64f64.powf(r)).abs() < 1e-9);
                let k =
                    empirical_ntk(&m, &cx, &x, None, &NtkOptions::outputs(Outputs::Each)).unwrap();
                for (a, b) in k.iter().zip(&base) {
                    assert!(
                        rel_max(a, b) < 1e-10,
                        "{} r={r} {:?}: {:e}",
                        act.name(),
                        g,
                        rel_max(a, b)
                    );
                }
            }
        }
    }
    // And the output at init does scale like 1/α (so the r's really differ).
    let arch = Arch::mlp(vec![5, 64, 64, 1], Activation::Relu);
    let f = |r: f64| {
        let m = Model::<f64>::init(
            &arch,
            &ScaleChoice::scale(r, Gauge::Mup),
            OptimizerKind::Sgd,
            9,
        )
        .unwrap();
        let mut t = Trace::new(&m, 8);
        m.predict(&cx, &x, &mut t).norm()
    };
    assert!((f(0.5) * 8.0 / f(0.0) - 1.0).abs() < 1e-10);

    // Infinite width: the NTK from each parameterization's constants is the same,
    // the NNGP carries the read-out's 1/α².
    let arch = biased(vec![5, 64, 64, 1], Activation::Relu);
    let inf = |r: f64, g: Gauge| {
        let p = Parameterization::resolve(
            &arch.layer_shapes(),
            &ScaleChoice::scale(r, g),
            OptimizerKind::Sgd,
        )
        .unwrap();
        (
            InfiniteMlp::from_parameterization(&arch, &p)
                .unwrap()
                .kernels(&x, None)
                .unwrap(),
            p.alpha,
        )
    };
    let (k0, _) = inf(0.0, Gauge::Mup);
    for r in [0.25, 0.5] {
        for g in Gauge::ALL {
            let (k, alpha) = inf(r, g);
            assert!(
                rel_max(&k.ntk, &k0.ntk) < 1e-12,
                "infinite NTK depends on r={r}"
            );
            let scaled = Mat::from_vec(
                8,
                8,
                k.nngp
                    .as_slice()
                    .iter()
                    .map(|v| v * alpha * alpha)
                    .collect(),
            );
            assert!(
                rel_max(&scaled, &k0.nngp) < 1e-12,
                "NNGP is not Σ/α² at r={r}"
            );
        }
    }
    // on_scale agrees with the constants read from the parameterization.
    let direct = InfiniteMlp::on_scale(3, Activation::Relu, 1.0, true)
        .with_normal_bias_init(1.0)
        .kernels(&x, None)
        .unwrap();
    assert!(rel_max(&direct.ntk, &k0.ntk) < 1e-12 && rel_max(&direct.nngp, &k0.nngp) < 1e-12);
}

/// The arc-cosine kernel of degree 1 and its derivative kernel (Cho & Saul), written
/// out independently of the library: (E relu(u)relu(v), E step(u)step(v)).
fn arccos(q11: f64, q22: f64, q12: f64) -> (f64, f64) {
    let theta = (q12 / (q11 * q22).sqrt()).clamp(-1.0, 1.0).acos();
    (
        (q11 * q22).sqrt() * (theta.sin() + (PI - theta) * theta.cos()) / (2.0 * PI),
        (PI - theta) / (2.0 * PI),
    )
}

#[test]
fn infinite_relu_ntk_matches_the_arc_cosine_closed_form() {
    let x = gauss(6, 6, 3);
    let n0 = 3.0;
    let dot = |i: usize, j: usize| {
        x.row(i)
            .iter()
            .zip(x.row(j))
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / n0
    };
    let c2 = 2.0; // ReLU gain √2
    for depth in [2usize, 3] {
        let got = InfiniteMlp::on_scale(depth, Activation::Relu, 1.0, false)
            .kernels(&x, None)
            .unwrap();
        for i in 0..6 {
            for j in 0..6 {
                // depth 2: Θ = ⟨x,x'⟩/n₀ · c²κ₀ + c²κ₁;  NNGP = c²κ₁.
                let (k1, k0) = arccos(dot(i, i), dot(j, j), dot(i, j));
                let (mut ntk, mut nngp) = (dot(i, j) * c2 * k0 + c2 * k1, c2 * k1);
                if depth == 3 {
                    // Second layer: the layer-1 NNGP has diagonal c²·q/2 (θ = 0).
                    let (qi, qj) = (c2 * dot(i, i) / 2.0, c2 * dot(j, j) / 2.0);
                    let (k1b, k0b) = arccos(qi, qj, nngp);
                    ntk = ntk * c2 * k0b + c2 * k1b;
                    nngp = c2 * k1b;
                }
                assert!(
                    (got.ntk[(i, j)] - ntk).abs() < 1e-13 * ntk.abs().max(1.0),
                    "depth {depth} ntk ({i},{j})"
                );
                assert!(
                    (got.nngp[(i, j)] - nngp).abs() < 1e-13 * nngp.abs().max(1.0),
                    "depth {depth} nngp ({i},{j})"
                );
            }
        }
    }
}

#[test]
fn quadrature_kernels_match_closed_forms() {
    let x1 = gauss(7, 5, 4);
    let x2 = gauss(8, 4, 4);
    for act in [Activation::Linear, Activation::Relu, Activation::Erf] {
        for depth in [2usize, 4] {
            for bias in [false, true] {
                let mut net = InfiniteMlp::on_scale(depth, act, 1.7, bias);
                if bias {
                    net = net.with_normal_bias_init(1.7);
                }
                let closed = net.clone().kernels(&x1, Some(&x2)).unwrap();
                let quad = net
                    .with_method(Method::Quadrature)
                    .kernels(&x1, Some(&x2))
                    .unwrap();
                let (en, eg) = (
                    rel_max(&quad.ntk, &closed.ntk),
                    rel_max(&quad.nngp, &closed.nngp),
                );
                assert!(
                    en < 1e-8 && eg < 1e-8,
                    "{} depth {depth} bias {bias}: ntk {en:e}, nngp {eg:e}",
                    act.name()
                );
            }
        }
    }
    // Activations without closed forms: the default composite rule against an
    // independent 200-node Gauss–Hermite rule, at variances where the latter has
    // converged (tanh's poles at ±iπ/2 limit Gauss–Hermite for larger ones).
    let gh = GaussHermite::new(200);
    for act in [Activation::Tanh, Activation::Gelu] {
        let net = InfiniteMlp::on_scale(3, act, 1.0, false);
        let quad = net.quad();
        for (q11, q22, q12) in [
            (1.0, 1.0, 0.3),
            (0.4, 1.5, -0.7),
            (1.3, 1.3, 1.29),
            (1.5, 0.2, 0.1),
            (0.7, 0.7, 0.7),
        ] {
            let (ch, cd) = net.moments(q11, q22, q12, &quad);
            let c2 = net.gain * net.gain;
            let [e, d] = gh.expect2(q11, q22, q12, |u, v| {
                [act.phi(u) * act.phi(v), act.dphi(u) * act.dphi(v)]
            });
            assert!(
                (ch - c2 * e).abs() < 1e-9 && (cd - c2 * d).abs() < 1e-9,
                "{} at {q11},{q22},{q12}: {:e} {:e}",
                act.name(),
                ch - c2 * e,
                cd - c2 * d
            );
        }
    }
    // The kink-aware rule is also what makes ReLU quadrature accurate: plain
    // Gauss–Hermite converges only algebraically there.
    let pw = Piecewise::default();
    let (q11, q22, q12) = (1.0, 2.0, 0.5);
    let (want, _) = richness::kernel::infinite::relu_moments(q11, q22, q12);
    let [kinked] = pw.expect2(q11, q22, q12, &[0.0], |u, v| [u.max(0.0) * v.max(0.0)]);
    let [plain] = GaussHermite::new(32).expect2(q11, q22, q12, |u, v| [u.max(0.0) * v.max(0.0)]);
    assert!((kinked - want).abs() < 1e-12 && (plain - want).abs() > 1e-7);
}

#[test]
fn empirical_ntk_converges_to_the_infinite_width_ntk_like_n_to_the_minus_half() {
    // 12 inputs (78 distinct entries) and 16 seeds per width keep the slope's
    // standard error near 0.03, well inside the ±0.1 band.
    let x = gauss(10, 12, 4);
    let cx = Compute::new(2);
    for act in [Activation::Linear, Activation::Relu, Activation::Erf] {
        let kinf = InfiniteMlp::on_scale(3, act, 1.0, false)
            .kernels(&x, None)
            .unwrap()
            .ntk;
        let (mut ws, mut errs) = (Vec::new(), Vec::new());
        for width in [64usize, 128, 256, 512, 1024, 2048] {
            for seed in 0..16 {
                let arch = Arch::mlp(vec![4, width, width, 1], act);
                let m = Model::<f64>::init(
                    &arch,
                    &ScaleChoice::preset(Preset::Ntp),
                    OptimizerKind::Sgd,
                    100 + seed,
                )
                .unwrap();
                let k = empirical_ntk(&m, &cx, &x, None, &NtkOptions::default())
                    .unwrap()
                    .remove(0);
                ws.push(width as f64);
                errs.push(rel_fro(&k, &kinf));
            }
        }
        let fit = fit_loglog(&ws, &errs).expect("positive kernel errors");
        eprintln!(
            "{}: slope {:.3} ± {:.3} (95% [{:.3}, {:.3}]), error at n=2048 ≈ {:.4}",
            act.name(),
            fit.slope,
            fit.slope_se,
            fit.ci95.0,
            fit.ci95.1,
            errs[errs.len() - 16..].iter().sum::<f64>() / 16.0
        );
        assert!(
            (fit.slope + 0.5).abs() <= 0.1,
            "{}: slope {} (se {})",
            act.name(),
            fit.slope,
            fit.slope_se
        );
    }
}

/// A random PSD kernel (Gram of random features) with its cross-kernel.
fn feature_kernels(b: usize, nt: usize, p: usize) -> (Mat<f64>, Mat<f64>) {
    let phi = gauss(20, b + nt, p);
    let cx = Compute::new(1);
    let mut k = Mat::zeros(b + nt, b + nt);
    cx.matmul(
        k.view_mut(),
        phi.view(),
        phi.view().t(),
        1.0 / p as f64,
        0.0,
    );
    let ktr = Mat::from_fn(b, b, |i, j| k[(i, j)]);
    let kx = Mat::from_fn(nt, b, |i, j| k[(b + i, j)]);
    (ktr, kx)
}

/// Solve A z = r (A symmetric positive definite) by Gaussian elimination with
/// partial pivoting, column by column (independent of the eigendecomposition).
fn solve(a: &Mat<f64>, r: &Mat<f64>) -> Mat<f64> {
    let n = a.rows();
    let mut m: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut row = a.row(i).to_vec();
            row.extend_from_slice(r.row(i));
            row
        })
        .collect();
    let w = n + r.cols();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| m[i][c].abs().partial_cmp(&m[j][c].abs()).unwrap())
            .unwrap();
        m.swap(c, p);
        for i in 0..n {
            if i != c {
                let f = m[i][c] / m[c][c];
                let pivot_row = m[c].clone();
                for (mij, &mcj) in m[i][c..w].iter_mut().zip(&pivot_row[c..w]) {
                    *mij -= f * mcj;
                }
            }
        }
    }
    Mat::from_fn(n, r.cols(), |i, j| m[i][n + j] / m[i][i])
}

#[test]
fn infinite_time_is_kernel_ridge_regression() {
    let (b, nt) = (12, 5);
    let (ktr, kx) = feature_kernels(b, nt, 40);
    let y = gauss(21, b, 2);
    let f0 = gauss(22, b, 2);
    let f0x = gauss(23, nt, 2);
    let cx = Compute::new(1);
    for ridge in [0.0, 0.3] {
        let lin = LinearisedMse::new(&ktr, &y, Some(&f0), 0.7, ridge).unwrap();
        let got = lin
            .predict(&cx, &kx, Some(&f0x), Horizon::Infinity)
            .unwrap();
        let mut a = ktr.clone();
        (0..b).for_each(|i| a[(i, i)] += ridge);
        let resid = Mat::from_fn(b, 2, |i, j| y[(i, j)] - f0[(i, j)]);
        let coef = solve(&a, &resid);
        let mut want = f0x.clone();
        cx.matmul(want.view_mut(), kx.view(), coef.view(), 1.0, 1.0);
        assert!(
            rel_max(&got, &want) < 1e-9,
            "ridge {ridge}: {:e}",
            rel_max(&got, &want)
        );
        // Without ridge the training targets are interpolated.
        if ridge == 0.0 {
            assert!(rel_max(&lin.predict_train(&cx, Horizon::Infinity), &y) < 1e-9);
        }
        // Long training approaches the limit.
        let late = lin
            .predict(&cx, &kx, Some(&f0x), Horizon::Time(1e9))
            .unwrap();
        assert!(rel_max(&late, &want) < 1e-6);
    }
}

#[test]
fn closed_form_trajectory_equals_iterated_gradient_descent() {
    // Iterate the linearised GD recursion directly (train and test points) and
    // compare with Horizon::Steps; gradient flow is the small-rate limit.
    let (b, nt, k) = (10, 4, 2);
    let (ktr, kx) = feature_kernels(b, nt, 30);
    let y = gauss(31, b, k);
    let f0 = gauss(32, b, k);
    let f0x = gauss(33, nt, k);
    let cx = Compute::new(1);
    let (eta0, ridge, steps) = (0.4, 0.05, 37);
    let lin = LinearisedMse::new(&ktr, &y, Some(&f0), eta0, ridge).unwrap();
    let c = 2.0 * eta0 / (b * k) as f64;
    assert!((lin.rate - c).abs() < 1e-15);
    let (mut f, mut g) = (f0.clone(), f0x.clone());
    for _ in 0..steps {
        let resid = Mat::from_fn(b, k, |i, j| f[(i, j)] - y[(i, j)]);
        let mut df = Mat::zeros(b, k);
        cx.matmul(df.view_mut(), ktr.view(), resid.view(), 1.0, 0.0);
        let mut dg = Mat::zeros(nt, k);
        cx.matmul(dg.view_mut(), kx.view(), resid.view(), 1.0, 0.0);
        f = Mat::from_fn(b, k, |i, j| {
            f[(i, j)] - c * (df[(i, j)] + ridge * (f[(i, j)] - f0[(i, j)]))
        });
        g = Mat::from_fn(nt, k, |i, j| {
            g[(i, j)] - c * (dg[(i, j)] + ridge * (g[(i, j)] - f0x[(i, j)]))
        });
    }
    assert!(rel_max(&lin.predict_train(&cx, Horizon::Steps(steps)), &f) < 1e-10);
    assert!(
        rel_max(
            &lin.predict(&cx, &kx, Some(&f0x), Horizon::Steps(steps))
                .unwrap(),
            &g
        ) < 1e-10
    );
    // Gradient flow for time t ≈ many tiny steps.
    let tiny = LinearisedMse::new(&ktr, &y, Some(&f0), eta0 / 1000.0, ridge).unwrap();
    let flow = lin
        .predict(&cx, &kx, Some(&f0x), Horizon::Time(steps as f64))
        .unwrap();
    let many = tiny
        .predict(&cx, &kx, Some(&f0x), Horizon::Steps(steps * 1000))
        .unwrap();
    assert!(rel_max(&many, &flow) < 1e-3);
}

#[test]
fn one_training_step_moves_outputs_by_minus_rate_times_kernel_times_residual() {
    // The constant of the linearised dynamics, df = −η₀·(2/(B·k))·K(f − y), checked
    // against a real SGD step with a tiny rate. For k > 1 the full kernel includes
    // cross-output blocks, built here from explicit Jacobians.
    let cx = Compute::new(1);
    for k in [1usize, 3] {
        let arch = biased(vec![4, 48, 48, k], Activation::Tanh);
        let b = 6;
        let eta0 = 1e-6;
        let choice = ScaleChoice {
            base_lr: eta0,
            ..ScaleChoice::scale(0.25, Gauge::Rescale)
        };
        let model = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 3).unwrap();
        let x = gauss(40, b, 4);
        let y = gauss(41, b, k);
        let mut trace = Trace::new(&model, b);
        let f0 = model.predict(&cx, &x, &mut trace);
        let mut t = Trainer::new(model.clone(), &OptimConfig::sgd(0.0), cx, Loss::Mse, b);
        t.step(x.as_slice(), y.as_slice(), b);
        let f1 = t.model.predict(&cx, &x, &mut trace);
        let lin = LinearisedMse::new(&Mat::zeros(b, b), &y, Some(&f0), eta0, 0.0).unwrap();
        let js: Vec<Mat<f64>> = (0..k).map(|u| jacobian(&model, &x, u)).collect();
        let mut pred = Mat::<f64>::zeros(b, k);
        for u in 0..k {
            for v in 0..k {
                let mut kuv = Mat::zeros(b, b);
                cx.matmul(kuv.view_mut(), js[u].view(), js[v].view().t(), 1.0, 0.0);
                for i in 0..b {
                    let s: f64 = (0..b).map(|j| kuv[(i, j)] * (f0[(j, v)] - y[(j, v)])).sum();
                    pred[(i, u)] -= lin.rate * s;
                }
            }
        }
        let df = Mat::from_fn(b, k, |i, j| f1[(i, j)] - f0[(i, j)]);
        let e = rel_max(&df, &pred);
        assert!(e < 1e-4, "k = {k}: relative error {e:e}");
        // The diagonal blocks alone are the empirical per-output kernels.
        let each =
            empirical_ntk(&model, &cx, &x, None, &NtkOptions::outputs(Outputs::Each)).unwrap();
        for u in 0..k {
            let mut kuu = Mat::zeros(b, b);
            cx.matmul(kuu.view_mut(), js[u].view(), js[u].view().t(), 1.0, 0.0);
            assert!(rel_max(&each[u], &kuu) < 1e-10);
        }
    }
}

#[test]
fn small_rate_training_follows_the_linearised_trajectory() {
    // A wide lazy (r = 0) net trained by full-batch GD stays close to its
    // linearisation with the empirical NTK at init; the same prediction with a
    // wrong constant (half the rate) is far off.
    let cx = Compute::new(2);
    let (b, nt, steps) = (16, 8, 25);
    let arch = Arch::mlp(vec![5, 1024, 1024, 1], Activation::Relu);
    let eta0 = 0.1;
    let choice = ScaleChoice {
        base_lr: eta0,
        ..ScaleChoice::preset(Preset::Ntp)
    };
    let model = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 8).unwrap();
    let x = gauss(50, b, 5);
    let xt = gauss(51, nt, 5);
    let y = Mat::from_fn(b, 1, |i, _| x[(i, 0)].sin() + 0.5 * x[(i, 1)]);
    let mut trace = Trace::new(&model, b);
    let (f0, f0t) = (
        model.predict(&cx, &x, &mut trace),
        model.predict(&cx, &xt, &mut trace),
    );
    let ktr = empirical_ntk(&model, &cx, &x, None, &NtkOptions::default())
        .unwrap()
        .remove(0);
    let kx = empirical_ntk(&model, &cx, &xt, Some(&x), &NtkOptions::default())
        .unwrap()
        .remove(0);
    let mut t = Trainer::new(model, &OptimConfig::sgd(0.0), cx, Loss::Mse, b);
    for _ in 0..steps {
        t.step(x.as_slice(), y.as_slice(), b);
    }
    let (ft, ftt) = (
        t.model.predict(&cx, &x, &mut trace),
        t.model.predict(&cx, &xt, &mut trace),
    );
    let moved = rel_fro(&ftt, &f0t);
    let lin = LinearisedMse::new(&ktr, &y, Some(&f0), eta0, 0.0).unwrap();
    let gap_train = rel_fro(&ft, &lin.predict_train(&cx, Horizon::Steps(steps)));
    let gap_test = rel_fro(
        &ftt,
        &lin.predict(&cx, &kx, Some(&f0t), Horizon::Steps(steps))
            .unwrap(),
    );
    let half = LinearisedMse::new(&ktr, &y, Some(&f0), eta0 / 2.0, 0.0).unwrap();
    let gap_half = rel_fro(
        &ftt,
        &half
            .predict(&cx, &kx, Some(&f0t), Horizon::Steps(steps))
            .unwrap(),
    );
    let gap_flow = rel_fro(
        &ftt,
        &lin.predict(&cx, &kx, Some(&f0t), Horizon::Time(steps as f64))
            .unwrap(),
    );
    eprintln!("moved {moved:.3}, gaps: train {gap_train:.2e}, test {gap_test:.2e}, flow {gap_flow:.2e}, half-rate {gap_half:.2e}");
    assert!(moved > 0.1, "training barely moved the outputs ({moved})");
    assert!(gap_train < 0.02 && gap_test < 0.02);
    assert!(gap_half > 5.0 * gap_test && gap_flow < 2.0 * gap_test);
}

#[test]
fn training_records_ntk_movement_consistent_with_the_final_weights() {
    let dir = std::env::temp_dir().join(format!("richness-ntk-move-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = richness::train::TrainConfig::from_toml(
        r#"
seed = 2
dtype = "f64"
[model]
width = 64
[param]
preset = "mup"
[data]
dataset = "synthetic:teacher=mlp,n=48,n_test=8,d=6,k=2"
[train]
steps = 12
batch_size = 0
[ntk]
every = 5
points = 20
"#,
        "test",
    )
    .unwrap();
    let opts = richness::train::RunOptions {
        out: Some(dir.clone()),
        ..Default::default()
    };
    richness::train::run(&cfg, &opts).unwrap();
    let text = std::fs::read_to_string(dir.join("ntk_movement.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let steps: Vec<usize> = rows.iter().map(|r| r[0] as usize).collect();
    assert_eq!(steps, vec![0, 5, 10, 12]);
    assert_eq!(rows[0][1], 0.0);
    assert!(rows[3][1] > 0.0);
    // Recompute the last row from the saved weights and the initial model.
    let prepared = richness::train::prepare(&cfg).unwrap();
    let init = Model::<f64>::init_with(&prepared.arch, prepared.param.clone(), 2).unwrap();
    let mut fin = init.clone();
    richness::io::load_weights_into(&mut fin, dir.join("weights.safetensors")).unwrap();
    let x = prepared.split.train.x.head(20);
    let cx = Compute::new(1);
    let k0 = richness::kernel::ntk(&init, &cx, &x, None).unwrap();
    let kt = richness::kernel::ntk(&fin, &cx, &x, None).unwrap();
    let want = richness::kernel::movement::relative_change(&k0, &kt);
    assert!(
        (rows[3][1] / want - 1.0).abs() < 1e-9,
        "{} vs {want}",
        rows[3][1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// ∂f_u(x_i)/∂θ_p for every raw parameter by central differences, scaled by √η_p.
fn fd_jacobian(model: &Model<f64>, x: &Mat<f64>, unit: usize) -> Mat<f64> {
    let cx = Compute::new(1);
    let k = model.output_dim();
    let out = |m: &Model<f64>| {
        let mut trace = Trace::new(m, x.rows());
        m.forward(&cx, x.as_slice(), x.rows(), &mut trace);
        (0..x.rows())
            .map(|i| trace.output()[(i, unit)])
            .collect::<Vec<f64>>()
    };
    assert!(unit < k);
    let mut cols: Vec<Vec<f64>> = Vec::new();
    let n_tensors = model.params().len();
    for t in 0..n_tensors {
        let (layer, is_bias) = {
            // params() lists each layer's weight, then its bias when present.
            let mut idx = 0;
            let mut found = (0, false);
            for l in 0..model.depth() {
                if idx == t {
                    found = (l, false);
                }
                idx += 1;
                if model.biases[l].is_some() {
                    if idx == t {
                        found = (l, true);
                    }
                    idx += 1;
                }
            }
            found
        };
        let lp = &model.param.layers[layer];
        let rate = if is_bias { lp.bias.unwrap().lr } else { lp.lr };
        for p in 0..model.params()[t].len() {
            let h = 1e-5;
            let mut plus = model.clone();
            plus.params_mut()[t][p] += h;
            let mut minus = model.clone();
            minus.params_mut()[t][p] -= h;
            let (fp, fm) = (out(&plus), out(&minus));
            cols.push(
                fp.iter()
                    .zip(&fm)
                    .map(|(a, b)| rate.sqrt() * (a - b) / (2.0 * h))
                    .collect(),
            );
        }
    }
    Mat::from_fn(x.rows(), cols.len(), |i, p| cols[p][i])
}

#[test]
fn conv_empirical_ntk_equals_finite_difference_gradients() {
    // Myrtle-5 on 2-channel 4×4 images, width 3, 2 outputs, with biases: the kernel of
    // each output and their mean, symmetric (x2 = x1, two row blocks) and between two
    // sets, against J Jᵀ from central differences of the network's outputs.
    let mut arch = Arch::myrtle5([2, 4, 4], 3, 2);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    for choice in [
        ScaleChoice::preset(Preset::Mup),
        ScaleChoice::scale(0.25, Gauge::Rescale),
    ] {
        let model = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 5).unwrap();
        let x1 = gauss(1, 5, 32);
        let x2 = gauss(2, 3, 32);
        let cx = Compute::new(2);
        let opts = NtkOptions {
            outputs: Outputs::Each,
            block: 2,
        };
        let sym = empirical_ntk(&model, &cx, &x1, None, &opts).unwrap();
        let cross = empirical_ntk(&model, &cx, &x1, Some(&x2), &opts).unwrap();
        let mean = empirical_ntk(&model, &cx, &x1, None, &NtkOptions::default()).unwrap();
        let mut fd_mean = Mat::<f64>::zeros(5, 5);
        for u in 0..2 {
            let (j1, j2) = (fd_jacobian(&model, &x1, u), fd_jacobian(&model, &x2, u));
            let k11 = Mat::from_fn(5, 5, |i, j| {
                (0..j1.cols()).map(|p| j1[(i, p)] * j1[(j, p)]).sum::<f64>()
            });
            let k12 = Mat::from_fn(5, 3, |i, j| {
                (0..j1.cols()).map(|p| j1[(i, p)] * j2[(j, p)]).sum::<f64>()
            });
            assert!(
                rel_max(&sym[u], &k11) < 1e-7,
                "unit {u}: {:e}",
                rel_max(&sym[u], &k11)
            );
            assert!(
                rel_max(&cross[u], &k12) < 1e-7,
                "unit {u} cross: {:e}",
                rel_max(&cross[u], &k12)
            );
            for (a, b) in fd_mean.as_mut_slice().iter_mut().zip(k11.as_slice()) {
                *a += b / 2.0;
            }
        }
        assert!(rel_max(&mean[0], &fd_mean) < 1e-7);
    }
}
