//! E[loss at init] of the linear3 NTP network against width, many seeds (a sanity check
//! of the initialization: for a linear network it is exactly width-independent).
use richness::prelude::*;
fn main() {
    let split = "synthetic:teacher=linear,d=10,k=1,n=256,n_test=0"
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap();
    let (x, y) = split.train.cast::<f64>();
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for n in [64usize, 256, 1024] {
        let arch = Arch::linear3(10, n, 1);
        let mut v = Vec::new();
        for s in 0..seeds {
            let m = Model::<f64>::init(
                &arch,
                &ScaleChoice::scale(0.0, Gauge::Mup),
                OptimizerKind::Sgd,
                s,
            )
            .unwrap();
            let mut t = Trace::new(&m, 256);
            let f = m.predict(&Compute::new(1), &x, &mut t);
            v.push(Loss::Mse.value_and_grad(f.as_slice(), y.as_slice(), 256, 1, None));
        }
        let (mu, sd) = richness::fit::mean_std(&v);
        println!(
            "n={n:5} E[loss0] = {mu:.4} ± {:.4} (sd {sd:.3})",
            sd / (seeds as f64).sqrt()
        );
    }
}
