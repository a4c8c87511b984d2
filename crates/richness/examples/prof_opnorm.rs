//! Time ‖W‖_op of a Gaussian n × n f32 matrix (the probes' costliest spectral norm)
//! at several tolerances, with the error against a tight reference.
use richness::linalg::spectral::op_norm;
use richness::tensor::Mat;
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let w = Mat::from_vec(
        n,
        n,
        richness::rng::normal_vec(1, "w", 0, n * n, 1.0 / (n as f64).sqrt()),
    )
    .cast::<f32>();
    let reference = op_norm(&w, 1e-13, 9).value;
    for tol in [1e-7, 1e-5, 1e-4, 1e-3] {
        let s = Instant::now();
        let l = op_norm(&w, tol, 0);
        println!(
            "n={n} tol={tol:e}: {:.3}s {} steps, relative error {:.1e}",
            s.elapsed().as_secs_f64(),
            l.steps,
            (l.value - reference) / reference,
        );
    }
}
