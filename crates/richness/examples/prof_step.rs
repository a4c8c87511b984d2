//! Where one training step's time goes (forward / backward / update), for tuning.
use richness::linalg::Compute;
use richness::nn::{Activation, Arch, Grads, Loss, Model, Trace};
use richness::optim::{OptimConfig, Optimizer};
use richness::param::{OptimizerKind, Preset, ScaleChoice};
use std::time::Instant;
mod common;
fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .unwrap();
    let dims = vec![784, 4096, 4096, 4096, 10];
    let b = 256;
    let arch = Arch::mlp(dims.clone(), Activation::Relu);
    let mut model = Model::<f32>::init(
        &arch,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        0,
    )
    .unwrap();
    // `--backend openblas` (with `--features openblas`) to profile the other backend.
    let cx = Compute::with_backend(2, common::flag("--backend").unwrap_or_default());
    let mut tr = Trace::new(&model, b);
    let mut g = Grads::new(&model);
    let mut opt = Optimizer::new(&model, &OptimConfig::sgd(0.0));
    let x = vec![0.1f32; b * 784];
    let y = vec![0.0f32; b * 10];
    for it in 0..6 {
        let t0 = Instant::now();
        model.forward(&cx, &x, b, &mut tr);
        let t1 = Instant::now();
        let out = tr.z.last().unwrap().as_slice().to_vec();
        Loss::Mse.value_and_grad(&out, &y, b, 10, Some(tr.output_grad_mut().as_mut_slice()));
        model.backward(&cx, &mut tr, &mut g, false);
        let t2 = Instant::now();
        opt.step(&cx, &mut model, &g);
        let t3 = Instant::now();
        if it > 1 {
            println!(
                "fwd {:.1} ms  bwd {:.1} ms  upd {:.1} ms",
                (t1 - t0).as_secs_f64() * 1e3,
                (t2 - t1).as_secs_f64() * 1e3,
                (t3 - t2).as_secs_f64() * 1e3
            );
        }
    }
}
