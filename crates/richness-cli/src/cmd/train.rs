use crate::args::TrainArgs;
use crate::Exit;
use richness::linalg::Compute;
use richness::train::{self, RunOptions, Status, TrainConfig};

/// The config from the file (or defaults) with every command-line override applied.
pub fn config_from_args(a: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let mut cfg = match &a.config {
        Some(p) => TrainConfig::from_file(p)?,
        None => TrainConfig::default(),
    };
    for s in &a.sets {
        cfg.set(s)?;
    }
    cfg.param = a.scale.apply(&cfg.param);
    if let Some(o) = a.optimizer {
        cfg.optim.kind = o;
    }
    if let Some(d) = &a.data {
        cfg.data.dataset = d.clone();
    }
    if let Some(arch) = a.arch {
        cfg.model.arch = arch;
    }
    a.residual.apply(&mut cfg.model);
    a.gpt.apply(&mut cfg.model, &mut cfg.param);
    // Flags replace the keys they are alternatives to, exactly as `--set` does.
    if let Some(w) = a.width {
        cfg.clear_alternatives("model.width");
        cfg.model.width = Some(w);
    }
    if let Some(d) = &a.dims {
        cfg.clear_alternatives("model.dims");
        cfg.model.dims = Some(d.clone());
    }
    if let Some(e) = a.epochs {
        cfg.clear_alternatives("train.epochs");
        cfg.train.epochs = Some(e);
    }
    if let Some(s) = a.steps {
        cfg.clear_alternatives("train.steps");
        cfg.train.steps = Some(s);
    }
    if let Some(b) = a.batch_size {
        cfg.train.batch_size = b;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(d) = a.dtype {
        cfg.dtype = d;
    }
    Ok(cfg)
}

pub fn run(a: TrainArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    let cfg = config_from_args(&a)?;
    let is_gpt = cfg.model.arch == richness::nn::Family::Gpt;
    if a.dry_run && is_gpt {
        let p = train::gpt::prepare(&cfg)?;
        print!("{}", p.config.to_toml());
        println!();
        print!("{}", p.spec.scale_text(&p.param, p.c_att));
        return Ok(Exit::Ok);
    }
    if a.dry_run {
        let p = train::prepare(&cfg)?;
        print!("{}", p.config.to_toml());
        println!();
        print!("{}", p.param.to_text());
        return Ok(Exit::Ok);
    }
    if let Some(path) = &a.save_init {
        richness::files::ensure_replaceable(path)?;
        if is_gpt {
            train::gpt::save_init(&cfg, a.init_weights.as_deref(), path)?;
        } else {
            save_init(&cfg, a.init_weights.as_deref(), path)?;
        }
    }
    let opts = RunOptions {
        out: a.out.clone(),
        overwrite: a.overwrite,
        init_weights: a.init_weights.clone(),
        progress,
        compute: Some(Compute::new(threads)),
        // metrics.csv holds them; a long run's rows need not also sit in memory.
        metrics_to_file_only: true,
    };
    let outcome = train::run(&cfg, &opts)?;
    for w in &outcome.parameterization.warnings {
        eprintln!("warning: {w}");
    }
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.5}")).unwrap_or_else(|| "-".into());
    // Accuracy only where there is one: classification data with a test set.
    let acc = outcome
        .final_test_acc
        .map(|a| format!(", test acc {a:.5}"))
        .unwrap_or_default();
    println!(
        "{}: {} steps in {:.1}s; train loss {}, test loss {}{acc}",
        outcome.parameterization.summary(),
        outcome.steps,
        outcome.seconds,
        fmt(outcome.final_train_loss),
        fmt(outcome.final_test_loss),
    );
    // Where the files went is progress, not a result: --quiet drops it.
    if let Some(out) = a.out.as_ref().filter(|_| progress) {
        println!("wrote {}", out.display());
    }
    match outcome.status {
        Status::Completed => Ok(Exit::Ok),
        Status::Diverged { reason, .. } => {
            eprintln!("diverged: {reason} (metrics kept in metrics.csv; no weights written)");
            Ok(Exit::Diverged)
        }
    }
}

/// Write the weights a run starts from (its fresh init, or `--init-weights`), in the
/// run's precision, as `richness train` draws them.
fn save_init(
    cfg: &TrainConfig,
    init: Option<&std::path::Path>,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    fn typed<T: richness::tensor::Scalar>(
        p: &train::Prepared,
        init: Option<&std::path::Path>,
        path: &std::path::Path,
    ) -> anyhow::Result<()> {
        let mut m = richness::nn::Model::<T>::init_with(&p.arch, p.param.clone(), p.config.seed)?;
        if let Some(w) = init {
            richness::io::load_weights_into(&mut m, w)?;
        }
        richness::io::save_weights(&m, path)?;
        Ok(())
    }
    let p = train::prepare(cfg)?;
    match cfg.dtype {
        richness::tensor::Dtype::F32 => typed::<f32>(&p, init, path),
        richness::tensor::Dtype::F64 => typed::<f64>(&p, init, path),
    }
}
