//! Backward passes against central finite differences, in f64.

use richness::linalg::Compute;
use richness::nn::{Activation, Arch, BiasInit, Grads, Loss, Model, Trace};
use richness::param::{OptimizerKind, Preset, ScaleChoice};
use richness::rng::normal_vec;

fn loss_of(model: &Model<f64>, x: &[f64], y: &[f64], b: usize, loss: Loss) -> f64 {
    let mut t = Trace::new(model, b);
    model.forward(&Compute::new(1), x, b, &mut t);
    loss.value_and_grad(t.output().as_slice(), y, b, model.output_dim(), None)
}

/// Max over tensors of ‖fd − analytic‖ / ‖analytic‖.
fn check(arch: &Arch, choice: &ScaleChoice, loss: Loss) -> f64 {
    let b = 4;
    let model = Model::<f64>::init(arch, choice, OptimizerKind::Sgd, 11).unwrap();
    let x = normal_vec(1, "x", 0, b * arch.dims[0], 1.0);
    let k = *arch.dims.last().unwrap();
    let y = match loss {
        Loss::Mse => normal_vec(2, "y", 0, b * k, 1.0),
        Loss::CrossEntropy => (0..b * k)
            .map(|i| if i % k == (i / k) % k { 1.0 } else { 0.0 })
            .collect(),
    };
    let mut trace = Trace::new(&model, b);
    let mut grads = Grads::new(&model);
    let cx = Compute::new(1);
    model.forward(&cx, &x, b, &mut trace);
    let out = trace.output().as_slice().to_vec();
    loss.value_and_grad(&out, &y, b, k, Some(trace.output_grad_mut().as_mut_slice()));
    model.backward(&cx, &mut trace, &mut grads, false);
    let analytic: Vec<Vec<f64>> = grads.tensors().iter().map(|t| t.to_vec()).collect();
    let mut worst: f64 = 0.0;
    for (ti, an) in analytic.iter().enumerate() {
        let mut fd = vec![0.0; an.len()];
        for (i, fdi) in fd.iter_mut().enumerate() {
            let h = 1e-6;
            let mut mp = model.clone();
            mp.params_mut()[ti][i] += h;
            let mut mm = model.clone();
            mm.params_mut()[ti][i] -= h;
            *fdi = (loss_of(&mp, &x, &y, b, loss) - loss_of(&mm, &x, &y, b, loss)) / (2.0 * h);
        }
        let num: f64 = fd
            .iter()
            .zip(an)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = an.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!(
            den > 0.0,
            "tensor {ti} has a zero gradient: the check would be vacuous"
        );
        worst = worst.max(num / den);
    }
    worst
}

#[test]
fn dense_backward_matches_finite_differences_for_every_activation() {
    for act in Activation::ALL {
        for bias in [false, true] {
            let mut arch = Arch::mlp(vec![3, 7, 6, 2], act);
            arch.bias = bias;
            arch.bias_init = BiasInit::Normal;
            for choice in [
                ScaleChoice::preset(Preset::Mup),
                ScaleChoice::preset(Preset::Ntp),
                ScaleChoice::preset(Preset::Mfp),
            ] {
                for loss in [Loss::Mse, Loss::CrossEntropy] {
                    let err = check(&arch, &choice, loss);
                    assert!(
                        err < 1e-6,
                        "{} bias={bias} {} {}: relative error {err:e}",
                        act.name(),
                        choice.label(),
                        loss.name()
                    );
                }
            }
        }
    }
}

#[test]
fn deeper_networks_and_single_hidden_layer_match_finite_differences() {
    for dims in [vec![2, 5, 3], vec![4, 6, 5, 4, 6, 3]] {
        let mut arch = Arch::mlp(dims, Activation::Tanh);
        arch.bias = true;
        arch.bias_init = BiasInit::Normal;
        let err = check(
            &arch,
            &ScaleChoice::scale(0.25, richness::param::Gauge::Layerwise),
            Loss::Mse,
        );
        assert!(err < 1e-6, "relative error {err:e}");
    }
}

#[test]
fn conv_layers_and_pooling_match_finite_differences() {
    // A small Myrtle-5 on 3-channel 6×6 images (CHW input), with biases.
    for act in [Activation::Relu, Activation::Tanh] {
        let mut arch = Arch::myrtle5([3, 6, 6], 4, 2);
        arch.activation = act;
        arch.gain = act.default_gain();
        arch.bias = true;
        arch.bias_init = BiasInit::Normal;
        for loss in [Loss::Mse, Loss::CrossEntropy] {
            let err = check(&arch, &ScaleChoice::preset(Preset::Mup), loss);
            assert!(
                err < 1e-6,
                "{} {}: relative error {err:e}",
                act.name(),
                loss.name()
            );
        }
    }
}
