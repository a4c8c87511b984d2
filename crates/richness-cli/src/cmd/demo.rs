use crate::args::DemoArgs;
use crate::Exit;
use richness::linalg::Compute;
use richness::param::{Preset, ScaleChoice};
use richness::train::{self, RunOptions, TrainConfig};

/// Train ntp and mup on digits with the same seed and data order; print both.
pub fn run(a: DemoArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    println!("Lazy (ntp, r = 0) vs rich (mup, r = 1/2): 64 → {w} → {w} → 10 ReLU MLP on the embedded digits,", w = a.width);
    println!(
        "SGD (momentum 0.9, base rate 1), batch 64, {} epochs, MSE on one-hot targets.\n",
        a.epochs
    );
    let mut rows = Vec::new();
    for preset in [Preset::Ntp, Preset::Mup] {
        let mut cfg = TrainConfig {
            param: ScaleChoice::preset(preset),
            ..TrainConfig::default()
        };
        cfg.model.width = Some(a.width);
        cfg.optim.momentum = 0.9;
        cfg.train.epochs = Some(a.epochs);
        let out = a.out.join(preset.name());
        let opts = RunOptions {
            out: Some(out.clone()),
            // The demo owns its folders: a rerun replaces each run as a whole.
            overwrite: true,
            init_weights: None,
            progress,
            compute: Some(Compute::new(threads)),
            metrics_to_file_only: false,
        };
        let o = train::run(&cfg, &opts)?;
        rows.push((preset.name(), o, out));
    }
    println!(
        "{:<8} {:>12} {:>10} {:>9}  output",
        "preset", "test MSE", "test acc", "seconds"
    );
    for (name, o, out) in &rows {
        println!(
            "{:<8} {:>12.5} {:>10.4} {:>9.1}  {}",
            name,
            o.final_test_loss.unwrap_or(f64::NAN),
            o.final_test_acc.unwrap_or(f64::NAN),
            o.seconds,
            out.display()
        );
    }
    Ok(Exit::Ok)
}
