//! One SGD step of a wide ReLU MLP (forward, MSE, backward, update), timed.
//!
//! `cargo bench -p richness --bench step -- [--dims 784,4096,4096,4096,10] [--batch 256]
//!  [--threads 2] [--backend gemm|openblas] [--steps 5] [--warmup 2] [--dtype f32]`
//!
//! Prints one JSON line with every step's seconds and the median. `bench/step.py`
//! runs this next to the equivalent PyTorch step and reports the ratio.

use richness::linalg::{Backend, Compute};
use richness::nn::{Activation, Arch, Loss, Model};
use richness::optim::OptimConfig;
use richness::param::{OptimizerKind, Preset, ScaleChoice};
use richness::rng::normal_vec;
use richness::tensor::Scalar;
use richness::train::Trainer;
use std::time::Instant;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .ok()
                .unwrap_or_else(|| panic!("bad value for {name}"))
        })
        .unwrap_or(default)
}

fn bench<T: Scalar>(
    dims: Vec<usize>,
    batch: usize,
    cx: Compute,
    steps: usize,
    warmup: usize,
    unfused: bool,
) -> Vec<f64> {
    let arch = Arch::mlp(dims.clone(), Activation::Relu);
    let model = Model::<T>::init(
        &arch,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        0,
    )
    .unwrap();
    let mut t = Trainer::new(model, &OptimConfig::sgd(0.0), cx, Loss::Mse, batch);
    if unfused {
        t = t.unfused();
    }
    let x: Vec<T> = normal_vec(1, "x", 0, batch * dims[0], 1.0)
        .into_iter()
        .map(T::of)
        .collect();
    let y: Vec<T> = normal_vec(2, "y", 0, batch * dims[dims.len() - 1], 1.0)
        .into_iter()
        .map(T::of)
        .collect();
    for _ in 0..warmup {
        t.step(&x, &y, batch);
    }
    (0..steps)
        .map(|_| {
            let s = Instant::now();
            t.step(&x, &y, batch);
            s.elapsed().as_secs_f64()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo bench --list support
    }
    let dims: Vec<usize> = arg(&args, "--dims", "784,4096,4096,4096,10".to_string())
        .split(',')
        .map(|d| d.parse().unwrap())
        .collect();
    let batch = arg(&args, "--batch", 256usize);
    let threads = arg(&args, "--threads", 2usize);
    let backend: Backend = arg(&args, "--backend", "gemm".to_string())
        .parse()
        .unwrap_or_else(|e: String| panic!("{e}"));
    let steps = arg(&args, "--steps", 5usize);
    let warmup = arg(&args, "--warmup", 2usize);
    let dtype = arg(&args, "--dtype", "f32".to_string());
    let unfused = args.iter().any(|a| a == "--unfused");
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let cx = Compute::with_backend(threads, backend);
    let times = match dtype.as_str() {
        "f64" => bench::<f64>(dims.clone(), batch, cx, steps, warmup, unfused),
        _ => bench::<f32>(dims.clone(), batch, cx, steps, warmup, unfused),
    };
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = sorted[sorted.len() / 2];
    println!(
        "{{\"impl\":\"richness-{}{}\",\"dims\":{:?},\"batch\":{batch},\"threads\":{threads},\"dtype\":\"{dtype}\",\"step_seconds\":{:?},\"median\":{median}}}",
        match backend { Backend::Gemm => "gemm", Backend::Openblas => "openblas" },
        if unfused { "-unfused" } else { "" },
        dims,
        times
    );
}
