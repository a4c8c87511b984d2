//! Time one probe at a large width, with and without spectral norms (for tuning).
use richness::prelude::*;
use richness::probe::{probe, ProbeSpec};
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let split = "synthetic:teacher=linear,d=10,k=1,n=256,n_test=0"
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap();
    let (x, y) = split.train.cast::<f64>();
    let arch = Arch::linear3(10, n, 1);
    let model = Model::<f64>::init(
        &arch,
        &ScaleChoice::scale(0.0, Gauge::Mup),
        OptimizerKind::Sgd,
        0,
    )
    .unwrap();
    for spectral in [false, true] {
        let s = Instant::now();
        let p = probe(
            &model,
            &OptimConfig::sgd(0.0),
            Loss::Mse,
            &x,
            &y,
            &ProbeSpec {
                spectral,
                ..Default::default()
            },
            Compute::new(1),
        );
        println!(
            "n={n} spectral={spectral}: {:.2}s ({} values)",
            s.elapsed().as_secs_f64(),
            p.values.len()
        );
    }
    let s = Instant::now();
    let w = model.effective_weight(1);
    let r = richness::linalg::spectral::op_norm(&w, 1e-9, 0);
    println!(
        "op_norm hidden: {:.2}s, {} steps",
        s.elapsed().as_secs_f64(),
        r.steps
    );
}
