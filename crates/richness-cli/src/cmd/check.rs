//! `richness check`, `coord` and `diagnose`.

use crate::args::{CheckArgs, CoordArgs, DiagnoseArgs, ScanArgs};
use crate::Exit;
use richness::param::{diagnose, Abc, AbcSpec, Exponents, Parameterization, ScaleChoice};
use richness::probe::{check, coord};
use richness::train::ModelConfig;

/// `check`/`coord --arch gpt` defaults: probe sequences and widths.
const GPT_BATCH: usize = 2;
const GPT_WIDTHS: [usize; 4] = [128, 256, 512, 1024];

/// The scan config from a file (or defaults) with the flags applied.
fn scan_config(a: &ScanArgs, default_steps: usize) -> anyhow::Result<check::CheckConfig> {
    let mut cfg = match &a.config {
        Some(p) => check::CheckConfig::from_file(p)?,
        None => check::CheckConfig {
            steps: default_steps,
            ..Default::default()
        },
    };
    if let Some(arch) = a.arch {
        // A new architecture replaces the shape keys, not the config's biases.
        cfg.model = ModelConfig {
            arch,
            bias: cfg.model.bias,
            bias_init: cfg.model.bias_init,
            ..ModelConfig::default()
        };
    }
    if let Some(d) = a.depth {
        cfg.model.depth = Some(d);
    }
    a.residual.apply(&mut cfg.model);
    if let Some(act) = a.activation {
        cfg.model.activation = Some(act);
    }
    if cfg.model.arch == richness::nn::Family::Gpt && a.config.is_none() {
        // A GPT probe batch counts sequences of `context` tokens, and its cost grows
        // like 12·B·n² per token: the MLP defaults (256 examples, widths to 4096)
        // would be hours; these are seconds to a minute (docs/gpt.md).
        cfg.batch = GPT_BATCH;
        cfg.widths = GPT_WIDTHS.to_vec();
    }
    if let Some(w) = &a.widths {
        cfg.widths = w.clone();
    }
    if let Some(s) = a.seeds {
        cfg.seeds = s;
    }
    if let Some(e) = a.seed_exponent {
        cfg.seed_exponent = e;
    }
    if let Some(s) = a.steps {
        cfg.steps = s;
    }
    if let Some(b) = a.batch {
        cfg.batch = b;
    }
    if let Some(d) = &a.data {
        cfg.data = d.clone();
    }
    if let Some(o) = a.optimizer {
        cfg.optim.kind = o;
    }
    if let Some(m) = a.momentum {
        cfg.optim.momentum = m;
    }
    if let Some(d) = a.dtype {
        cfg.dtype = d;
    }
    if let Some(t) = a.tolerance {
        cfg.tolerance = t;
    }
    if let Some(e) = a.lr_exponent {
        cfg.lr_exponent = e;
    }
    if a.no_spectral {
        cfg.spectral = false;
    }
    if let Some(q) = &a.quantities {
        richness::probe::validate_quantities(q)?;
        cfg.quantities = Some(q.clone());
    }
    if let Some(i) = a.init_seeds {
        cfg.init_seeds = Some(i);
    }
    cfg.param = a.scale.apply(&cfg.param);
    a.gpt.apply(&mut cfg.model, &mut cfg.param);
    Ok(cfg)
}

/// Exit 1 when the verdict fails (any verdict short of `pass` with `--strict`).
fn exit_for(verdict: richness::verdict::Verdict, strict: bool) -> Exit {
    if verdict.fails(strict) {
        Exit::Fail
    } else {
        Exit::Ok
    }
}

/// Claim `--out` before a scan starts (one folder holds one scan; see
/// [`richness::io::RunFolder`]), so a refusal comes before the minutes of work.
fn claim_out(a: &ScanArgs) -> anyhow::Result<Option<richness::io::RunFolder>> {
    Ok(a.out
        .as_ref()
        .map(|d| richness::io::RunFolder::begin(d, a.overwrite))
        .transpose()?)
}

pub fn run_check(a: CheckArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    let cfg = scan_config(&a.scan, 1)?;
    let folder = claim_out(&a.scan)?;
    let start = std::time::Instant::now();
    if a.rounds.any() && !a.sequential {
        anyhow::bail!("--max-seeds, --looks and --budget set sequential rounds: add --sequential");
    }
    let (report, rows) = if a.sequential {
        let opts = a
            .rounds
            .apply(richness::sequential::SequentialOptions::default(), threads);
        opts.validate()?;
        let (report, rows, _) = richness::probe::sequential::check(&cfg, threads, progress, &opts)?;
        (report, rows)
    } else {
        check::run(&cfg, threads, progress)?
    };
    for w in &report.parameterization.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
        if let Some(o) = &report.sequential {
            println!("\nsequential seeds: {}", o.summary());
            for c in o
                .claims
                .iter()
                .filter(|c| c.verdict != richness::verdict::Verdict::Pass)
            {
                println!("  {}: {}", c.name, c.why);
            }
        }
        // Timing and file locations are progress, not results: --quiet drops them.
        if progress {
            println!(
                "({} probes in {:.1}s)",
                cfg.widths.len() * cfg.seeds,
                start.elapsed().as_secs_f64()
            );
        }
    }
    if let (Some(dir), Some(folder)) = (&a.scan.out, folder) {
        report.write(folder.path(), &rows)?;
        folder.finish()?;
        if !a.json && progress {
            println!("wrote {}", dir.display());
        }
    }
    Ok(exit_for(report.verdict, a.scan.strict))
}

pub fn run_coord(a: CoordArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    if a.scan.quantities.is_some() || a.scan.init_seeds.is_some() {
        anyhow::bail!("--quantities and --init-seeds apply to `check` and `diagnose --measure`; `coord` measures coordinate sizes per step");
    }
    let cfg = scan_config(&a.scan, 3)?;
    let folder = claim_out(&a.scan)?;
    if a.rounds.any() && !a.sequential {
        anyhow::bail!("--max-seeds, --looks and --budget set sequential rounds: add --sequential");
    }
    let (report, rows, outcome) = if a.sequential {
        let opts = a
            .rounds
            .apply(richness::sequential::SequentialOptions::default(), threads);
        opts.validate()?;
        let (report, rows, o) = richness::probe::sequential::coord(&cfg, threads, progress, &opts)?;
        (report, rows, Some(o))
    } else {
        let (report, rows) = coord::run(&cfg, threads, progress)?;
        (report, rows, None)
    };
    print!("{}", report.to_text());
    if let Some(o) = &outcome {
        println!("\nsequential seeds: {}", o.summary());
        for c in o
            .claims
            .iter()
            .filter(|c| c.verdict != richness::verdict::Verdict::Pass)
        {
            println!("  {}: {}", c.name, c.why);
        }
    }
    if let (Some(dir), Some(folder)) = (&a.scan.out, folder) {
        report.write(folder.path(), &rows)?;
        folder.finish()?;
        if progress {
            println!("wrote {}", dir.display());
        }
    }
    Ok(exit_for(report.verdict, a.scan.strict))
}

pub fn run_diagnose(a: DiagnoseArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    let mut choice = a.scan.scale.apply(&ScaleChoice::default());
    let mut lr_exponent = a.scan.lr_exponent.unwrap_or(0.0);
    let given_abc = match (&a.spec, &a.a, &a.b, &a.c) {
        (Some(p), None, None, None) => {
            let s = AbcSpec::from_file(p)?;
            if a.scan.lr_exponent.is_none() {
                lr_exponent = s.lr_exponent;
            }
            if !lr_exponent.is_finite() {
                anyhow::bail!(
                    "{}: lr_exponent must be a finite number, got {lr_exponent}",
                    p.display()
                );
            }
            Some(s.abc())
        }
        (None, Some(x), Some(y), Some(z)) => Some(Abc {
            a: x.clone(),
            b: y.clone(),
            c: z.clone(),
        }),
        (None, None, None, None) => None,
        (Some(_), _, _, _) => anyhow::bail!("give --spec or --a/--b/--c, not both"),
        _ => anyhow::bail!("give all three of --a, --b and --c"),
    };
    let depth_from_abc = given_abc.as_ref().map(|x| x.a.len());
    if let Some(abc) = given_abc {
        choice.abc = Some(abc);
    }
    let dims = match (&a.dims, depth_from_abc) {
        (Some(d), _) => d.clone(),
        (None, Some(k)) => {
            let mut d = vec![64];
            d.extend(std::iter::repeat(1024).take(k.saturating_sub(1)));
            d.push(10);
            d
        }
        (None, None) => vec![64, 1024, 1024, 10],
    };
    let arch = richness::nn::Arch::mlp(dims.clone(), richness::nn::Activation::Relu);
    arch.validate()?;
    let optimizer = a.scan.optimizer.unwrap_or_default();
    let p = Parameterization::resolve(
        &arch.layer_shapes(),
        &choice,
        richness::param::OptimizerKind::Sgd,
    )?;
    let d = diagnose(&Exponents::from_param(&p, lr_exponent));
    if a.json && !a.measure {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(Exit::Ok);
    }
    println!(
        "# {} on {:?}{}",
        choice.label(),
        dims,
        if lr_exponent != 0.0 {
            format!(", base rate ∝ n^{}", -lr_exponent)
        } else {
            String::new()
        }
    );
    if optimizer == richness::param::OptimizerKind::Adam {
        println!("# note: the analysis is for SGD; with Adam on the scale the same exponents are predicted (theory §3.4)");
    }
    print!("{}", d.to_text());
    if !a.measure {
        return Ok(Exit::Ok);
    }
    let mut cfg = scan_config(&a.scan, 1)?;
    cfg.param = choice;
    cfg.lr_exponent = lr_exponent;
    if a.scan.widths.is_none() {
        cfg.widths = vec![256, 512, 1024, 2048];
    }
    println!(
        "\nmeasuring (widths {:?}, {} seeds)…",
        cfg.widths, cfg.seeds
    );
    let folder = claim_out(&a.scan)?;
    let (report, rows) = check::run(&cfg, threads, progress)?;
    print!("{}", report.to_text());
    if let (Some(dir), Some(folder)) = (&a.scan.out, folder) {
        report.write(folder.path(), &rows)?;
        folder.finish()?;
        if progress {
            println!("wrote {}", dir.display());
        }
    }
    Ok(exit_for(report.verdict, a.scan.strict))
}
