use crate::args::ReproduceArgs;
use crate::Exit;
use richness::reproduce::{reproduce, ExperimentId, Options, Scale};

/// Run the experiments, print the overview, say where the report is.
pub fn run(a: ReproduceArgs, threads: usize, progress: bool) -> anyhow::Result<Exit> {
    let scale: Scale = a.scale.parse()?;
    let ids = a
        .experiments
        .iter()
        .map(|s| s.parse::<ExperimentId>())
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(d) = &a.config_dir {
        if !d.is_dir() {
            anyhow::bail!("--config-dir {}: not a folder", d.display());
        }
    }
    if let Some(md) = &a.markdown {
        richness::files::ensure_replaceable(md)?;
    }
    let opts = Options {
        scale,
        out: a.out.clone(),
        config_dir: a.config_dir.clone(),
        resume: a.resume,
        threads,
        progress,
        sequential: if a.fixed_seeds {
            None
        } else {
            let o = a
                .rounds
                .apply(richness::reproduce::default_sequential(), threads);
            o.validate()?;
            Some(o)
        },
    };
    let report = reproduce(&ids, &opts)?;
    print!("{}", report.overview_text());
    if let Some(md) = &a.markdown {
        richness::files::write_atomic(md, report.markdown().as_bytes())?;
    }
    println!(
        "\n{:.0}s; report: {}",
        report.seconds,
        a.out.join("index.html").display()
    );
    Ok(if a.strict && report.verdict().fails(false) {
        Exit::Fail
    } else {
        Exit::Ok
    })
}
