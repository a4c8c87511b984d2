//! Experiment T2: Scaling of representation updates (ReLU MLP).

use super::common::{claim, claims_table, csv_path, parse, scan, slope_claim};
use super::{ExperimentId, ExperimentResult, Options};
use crate::error::Result;
use crate::param::{Preset, ScaleChoice};
use crate::probe::check::{self, CheckConfig};
use crate::report::plot::{power_line, Figure, Series};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct T2Config {
    presets: Vec<Preset>,
    check: CheckConfig,
}

fn t2(cfg: &T2Config, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    let c = &cfg.check;
    res.setup = format!(
        "{} on `{}` (probe batch {}), widths {:?}, {} seeds, one SGD step at η₀ = {}; ‖Δa₂‖/‖a₂‖ (post-ReLU, over batch × width) on the same batch.",
        c.model.arch, c.data, c.batch, c.widths, c.seeds, c.param.base_lr
    );
    let mut fig = Figure::loglog(
        "T2: relative update of the second hidden representation",
        "width n",
        "‖Δa₂‖/‖a₂‖",
    );
    let mut csv = String::from("preset,width,mean,min,max\n");
    for (i, p) in cfg.presets.iter().enumerate() {
        let (rep, rows) = scan(c, ScaleChoice::preset(*p), p.name(), dir, opts, res)?;
        let expected = match p {
            Preset::Ntp | Preset::NtpLr => {
                "NTP: ≈ 4e−3 at n = 256 falling as n^−1/2 to ≈ 1e−3 at 4096 (MNIST)"
            }
            _ => "μP: flat at ≈ 0.02 (MNIST)",
        };
        let mut cl = slope_claim(
            &rep,
            "da_rel",
            2,
            &format!("{}: ‖Δa₂‖/‖a₂‖ ~ n^(r−1/2)", p.name()),
        );
        let pts = check::per_width(&rows, "da_rel", 2, &rep.diverged);
        if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
            cl.measured = format!(
                "{}; {:.2e} at n = {} → {:.2e} at n = {}",
                cl.measured, first.1, first.0, last.1, last.0
            );
        }
        cl.expected = format!("{} — {expected}", cl.expected);
        res.claims.push(cl);
        for pt in &pts {
            csv.push_str(&format!(
                "{},{},{:e},{:e},{:e}\n",
                p.name(),
                pt.0,
                pt.1,
                pt.2,
                pt.3
            ));
        }
        if !pts.is_empty() {
            let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
            fig.series.push(
                Series::new(p.name(), xs.clone(), pts.iter().map(|p| p.1).collect())
                    .band(
                        pts.iter().map(|p| p.2).collect(),
                        pts.iter().map(|p| p.3).collect(),
                    )
                    .color(i),
            );
            if let Some(pred) = claim(&rep, "da_rel", 2).and_then(|c| c.predicted) {
                let k = pts.len() / 2;
                fig.series.push(
                    power_line(
                        &format!("n^{pred:+.1}"),
                        xs[0],
                        xs[xs.len() - 1],
                        pts[k].0,
                        pts[k].1,
                        pred,
                    )
                    .color(i),
                );
            }
        }
        res.tables.push(claims_table(
            &format!("Every fitted slope, {}", p.name()),
            &rep,
        ));
    }
    crate::files::write_atomic(&dir.join("da_rel.csv"), csv.as_bytes())?;
    res.files.push(csv_path(res, "da_rel.csv"));
    fig.save_all(dir, "t2")?;
    res.figures.push(super::FigureRef {
        stem: "t2".into(),
        caption: "‖Δa₂‖/‖a₂‖ after one step against width: seed means with min–max bands, guide lines n^−1/2 (NTP) and n^0 (μP) through the middle point.".into(),
        svg: fig.to_svg()?,
    });
    res.notes.push("The original used MNIST (5000 images, batch 512); the small scale uses the embedded 8×8 digits, so absolute sizes differ; the exponents are the claim.".into());
    Ok(())
}

/// Run T2 from its config text, writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    t2(&parse(text, ExperimentId::T2)?, dir, opts, res)
}

/// Parse T2's config without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    parse::<T2Config>(text, ExperimentId::T2).map(drop)
}
