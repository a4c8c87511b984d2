//! One-step probes and the coordinate check of a GPT (`richness check --arch gpt`,
//! `richness coord --arch gpt`; docs/theory.md §9).
//!
//! A GPT is not a chain of weight layers, so its probes read sites instead of
//! layers: the residual stream h_l after the embeddings (site 1) and after every block
//! (sites 2..=B+1), and per block (site l+1 for block l) the attention branch's output,
//! the MLP branch's output and the attention logits s = c_att q·k (causal entries
//! only). With d_h fixed the calculus of §9.3 predicts, at richness r on the scale:
//!
//! | quantity | meaning | predicted slope |
//! |---|---|---|
//! | `h_rms` | RMS coordinate of h_l at init | 0 |
//! | `dh_norm` | ‖Δh_l‖ over the probe batch | r |
//! | `dh_rms` | RMS coordinate of Δh_l | r − ½ |
//! | `dh_rel` | ‖Δh_l‖/‖h_l‖ | r − ½ |
//! | `attn_rms`, `mlp_rms` | RMS coordinate of a branch's output at init | 0 |
//! | `attn_drms`, `mlp_drms` | RMS coordinate of its change | r − ½ |
//! | `att_logits_rms` | RMS attention logit at init | 0 |
//! | `att_logits_drms` | RMS change of the attention logits | r − ½ |
//! | `f_norm` | ‖f₀‖ (output logits at init) | −r |
//! | `df_norm` | ‖Δf‖ | 0 (NTC) |
//! | `loss_decrease` | L₀ − L₁ | 0 |
//!
//! The outputs are not centred (f − f₀ under cross-entropy is not defined here); on
//! the scale ‖f₀‖ ~ n^{−r} does not blow up, so its residual drives no extra update.
//! Off the scale (`sp`, custom exponents) there is no prediction and the report says
//! so; the criteria (stable init, stability, NTC) are measured either way, so SP's
//! growing ‖Δf‖ fails NTC.
//!
//! ```no_run
//! use richness::probe::{check::CheckConfig, gpt};
//! let cfg: CheckConfig = toml::from_str(r#"
//!     widths = [64, 128, 256]
//!     seeds = 4
//!     batch = 4
//!     [model]
//!     arch = "gpt"
//!     blocks = 1
//!     context = 32
//! "#).unwrap();
//! let (report, rows) = gpt::check(&cfg, 2, false).unwrap();
//! println!("{}", report.to_text());
//! ```

use super::check::{CheckConfig, CheckReport, Claim, Criterion, Diverged, ScanRow};
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::nn::gpt::{Gpt, GptSpec, GptTrace};
use crate::param::Parameterization;
use crate::tensor::{Dtype, Scalar};
use crate::verdict::{Judged, Verdict};
use rayon::prelude::*;

/// Stream quantities (sites 1..=B+1) and block quantities (sites 1..=B).
pub const STREAM: [&str; 4] = ["h_rms", "dh_norm", "dh_rms", "dh_rel"];
pub const BLOCK: [&str; 6] = [
    "attn_rms",
    "attn_drms",
    "mlp_rms",
    "mlp_drms",
    "att_logits_rms",
    "att_logits_drms",
];
pub const NET: [&str; 3] = ["f_norm", "df_norm", "loss_decrease"];

/// The predicted slope of `quantity` at richness `r` (theory.md §9.3), on the scale.
pub fn predicted(quantity: &str, r: f64) -> Option<f64> {
    Some(match quantity {
        "h_rms" | "attn_rms" | "mlp_rms" | "att_logits_rms" => 0.0,
        "dh_norm" => r,
        "dh_rms" | "dh_rel" | "attn_drms" | "mlp_drms" | "att_logits_drms" => r - 0.5,
        "f_norm" => -r,
        "df_norm" | "loss_decrease" => 0.0,
        _ => return None,
    })
}

/// Which thing a site is, for the printed table.
fn role(quantity: &str, site: usize) -> String {
    match (quantity, site) {
        (_, 0) => "net".into(),
        (q, 1) if STREAM.contains(&q) => "embeddings".into(),
        (q, s) if STREAM.contains(&q) => format!("after block {}", s - 1),
        (_, s) => format!("block {}", s - 1),
    }
}

fn rms<T: Scalar>(v: &[T]) -> f64 {
    (v.iter().map(|c| c.f64().powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

fn diff_norm<T: Scalar>(a: &[T], b: &[T]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (y.f64() - x.f64()).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// RMS over the causal entries (j ≤ i) of [S, H, T, T] scores, and of their change.
fn causal_rms<T: Scalar>(s0: &[T], s1: Option<&[T]>, t: usize) -> f64 {
    let per = t * (t + 1) / 2;
    let count = (s0.len() / (t * t)) * per;
    let sum: f64 = match s1 {
        None => s0.iter().map(|c| c.f64().powi(2)).sum(),
        Some(s1) => s0
            .iter()
            .zip(s1)
            .map(|(a, b)| (b.f64() - a.f64()).powi(2))
            .sum(),
    };
    (sum / count.max(1) as f64).sqrt()
}

/// The measurements of one probe: (site, quantity, value) rows from the traces before
/// and after the steps.
fn measure<T: Scalar>(
    spec: &GptSpec,
    t0: &GptTrace<T>,
    t1: &GptTrace<T>,
    loss0: f64,
    loss1: f64,
) -> Vec<(usize, &'static str, f64)> {
    let mut out = Vec::new();
    out.push((0, "loss_before", loss0));
    out.push((0, "loss_after", loss1));
    out.push((0, "loss_decrease", loss0 - loss1));
    out.push((0, "f_norm", crate::tensor::norm(t0.logits.as_slice())));
    out.push((
        0,
        "df_norm",
        diff_norm(t0.logits.as_slice(), t1.logits.as_slice()),
    ));
    for (l, (h0, h1)) in t0.h.iter().zip(&t1.h).enumerate() {
        let (a, b) = (h0.as_slice(), h1.as_slice());
        let coords = (a.len() as f64).sqrt();
        let dn = diff_norm(a, b);
        let hn = crate::tensor::norm(a);
        out.push((l + 1, "h_rms", rms(a)));
        out.push((l + 1, "dh_norm", dn));
        out.push((l + 1, "dh_rms", dn / coords));
        out.push((l + 1, "dh_rel", if hn > 0.0 { dn / hn } else { f64::NAN }));
    }
    for (l, (b0, b1)) in t0.blocks.iter().zip(&t1.blocks).enumerate() {
        let site = l + 1;
        for (q, dq, x0, x1) in [
            ("attn_rms", "attn_drms", &b0.attn_out, &b1.attn_out),
            ("mlp_rms", "mlp_drms", &b0.mlp_out, &b1.mlp_out),
        ] {
            let (a, b) = (x0.as_slice(), x1.as_slice());
            out.push((site, q, rms(a)));
            out.push((site, dq, diff_norm(a, b) / (a.len() as f64).sqrt()));
        }
        out.push((
            site,
            "att_logits_rms",
            causal_rms(&b0.logits, None, spec.context),
        ));
        out.push((
            site,
            "att_logits_drms",
            causal_rms(&b0.logits, Some(&b1.logits), spec.context),
        ));
    }
    out
}

/// The probe batch: the first `cfg.batch` training sequences, as token ids, with the
/// vocabulary size.
pub fn probe_tokens(cfg: &CheckConfig) -> Result<(Vec<u32>, Vec<u32>, usize, usize)> {
    let context = cfg.model.context.unwrap_or(crate::train::GPT_DEFAULTS.3);
    if context == 0 {
        return Err(Error::config("model.context must be positive"));
    }
    let data = crate::data::DataConfig {
        dataset: cfg.data.clone(),
        ..Default::default()
    }
    .for_sequences()?;
    let split = data.load_with_context(Some(context))?;
    let vocab = split
        .train
        .vocab_size()
        .ok_or_else(|| Error::config(format!("`{}` is not text data (no vocabulary)", cfg.data)))?;
    let b = cfg.batch.min(split.train.len());
    let head = split.train.head(b);
    let ids =
        |m: &crate::tensor::Mat<f64>| m.as_slice().iter().map(|&v| v as u32).collect::<Vec<u32>>();
    Ok((ids(&head.x), ids(&head.y), b, vocab))
}

/// The GPT spec of `cfg.model` at `width` (vocabulary from the data when given).
fn spec_at(cfg: &CheckConfig, width: usize, vocab: Option<usize>) -> Result<GptSpec> {
    let mut m = cfg.model.clone();
    m.width = Some(width);
    m.resolve_gpt(vocab)
}

fn choice_at(cfg: &CheckConfig, width: usize) -> crate::param::ScaleChoice {
    let mut choice = cfg.param.clone();
    choice.base_lr = cfg.param.base_lr * (width as f64).powf(-cfg.lr_exponent);
    choice
}

/// The scan: every (width, seed) probe's rows, and the probes that diverged.
pub fn scan(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(Vec<ScanRow>, Vec<Diverged>)> {
    match cfg.dtype {
        Dtype::F32 => scan_typed::<f32>(cfg, threads, progress),
        Dtype::F64 => scan_typed::<f64>(cfg, threads, progress),
    }
}

fn scan_typed<T: Scalar>(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(Vec<ScanRow>, Vec<Diverged>)> {
    if super::check::distinct(&cfg.widths) < 2 || cfg.seeds == 0 {
        return Err(Error::config(format!(
            "widths {:?}, seeds {}: a check needs at least two distinct widths and one seed",
            cfg.widths, cfg.seeds
        )));
    }
    super::check::validate_counts(cfg)?;
    cfg.optim.validate()?;
    if cfg.model.zero_readout && cfg.steps < 2 {
        return Err(Error::config(
            "model.zero_readout with steps = 1: the first step moves only the read-out, so the one-step probes of the stream measure nothing (theory.md §9.4); use --steps 2 or more",
        ));
    }
    let (xt, yt, b, vocab) = probe_tokens(cfg)?;
    let mut widths = cfg.widths.clone();
    widths.sort_unstable();
    widths.dedup();
    let mut specs = Vec::new();
    for &w in &widths {
        let spec = spec_at(cfg, w, Some(vocab))?;
        spec.resolve(&choice_at(cfg, w), cfg.optim.kind)?;
        specs.push(spec);
    }
    let jobs: Vec<(usize, usize)> = widths
        .iter()
        .enumerate()
        .flat_map(|(i, &w)| (0..super::check::seeds_at(cfg, w)).map(move |s| (i, s)))
        .collect();
    let n_blocks = specs[0].blocks as u128;
    super::check::ensure_scan_fits(
        "a gpt width scan",
        jobs.len() as u128,
        (STREAM.len() as u128 + BLOCK.len() as u128 + 2) * (n_blocks + 2) + 8,
        std::mem::size_of::<ScanRow>() + 24,
    )?;
    let flops: f64 = jobs
        .iter()
        .map(|&(i, _)| {
            6.0 * specs[i].num_params() as f64
                * (b * specs[i].context) as f64
                * (cfg.steps as f64 + 2.0)
        })
        .sum();
    if progress {
        if let Some(t) = crate::counts::rough_duration(flops, threads, 180.0) {
            eprintln!(
                "estimated work: {flops:.1e} flops over {} probes of {} step(s), {t} on {threads} thread(s)",
                jobs.len(),
                cfg.steps
            );
        }
    }
    let mut jobs = jobs;
    jobs.sort_by_key(|&(i, s)| (std::cmp::Reverse(i), s));
    let bar = crate::progress::bar(
        jobs.iter().len() as u64 * cfg.steps as u64,
        "probe steps",
        progress,
    );
    let one = |&(i, s): &(usize, usize)| -> Result<(
        usize,
        usize,
        Vec<(usize, &'static str, f64)>,
        Option<String>,
    )> {
        let spec = &specs[i];
        let cx = Compute::new(1);
        let choice = choice_at(cfg, spec.width);
        let gpt = Gpt::<T>::init(spec, &choice, cfg.optim.kind, s as u64)?;
        let mut t0 = GptTrace::new(spec, b);
        let loss0 = gpt.evaluate(&cx, &xt, &yt, b, &mut t0);
        let mut trainer = crate::train::gpt::GptTrainer::new(gpt, &cfg.optim, Compute::new(1), b);
        for _ in 0..cfg.steps {
            trainer.step(&xt, &yt, b);
            bar.inc(1);
        }
        let mut t1 = GptTrace::new(spec, b);
        let loss1 = trainer.gpt.evaluate(&cx, &xt, &yt, b, &mut t1);
        let finite = loss1.is_finite() && t1.logits.as_slice().iter().all(|v| v.f64().is_finite());
        let rows = measure(spec, &t0, &t1, loss0, loss1);
        let div = (!finite).then(|| {
            format!(
                "non-finite outputs after {} step(s) (loss {loss1})",
                cfg.steps
            )
        });
        Ok((spec.width, s, rows, div))
    };
    let pool = super::check::thread_pool(threads)?;
    let results: Vec<Result<_>> =
        pool.install(|| jobs.par_iter().with_max_len(1).map(one).collect());
    bar.finish_and_clear();
    let mut rows = Vec::new();
    let mut diverged = Vec::new();
    for r in results {
        let (w, s, values, div) = r?;
        if let Some(reason) = div {
            diverged.push((w, s, reason));
            continue;
        }
        rows.extend(values.into_iter().map(|(layer, q, value)| ScanRow {
            width: w,
            seed: s,
            layer,
            quantity: q.into(),
            value,
        }));
    }
    rows.sort_by(|a, b| {
        (a.width, a.seed, a.layer, &a.quantity).cmp(&(b.width, b.seed, b.layer, &b.quantity))
    });
    diverged.sort();
    Ok((rows, diverged))
}

/// Fits, predictions (theory.md §9.3) and verdicts of a GPT scan.
pub fn judge(cfg: &CheckConfig, rows: &[ScanRow], diverged: Vec<Diverged>) -> Result<CheckReport> {
    let wmax = cfg.widths.iter().copied().max().unwrap_or(1);
    let vocab = probe_tokens(cfg)?.3;
    let spec = spec_at(cfg, wmax, Some(vocab))?;
    let param: Parameterization = spec.resolve(&choice_at(cfg, wmax), cfg.optim.kind)?;
    let r = param.richness.filter(|_| param.on_scale);
    let tol = cfg.tolerance;
    let blocks = spec.blocks;
    let mut claims = Vec::new();
    let mut sites: Vec<(&str, usize)> = NET.iter().map(|&q| (q, 0)).collect();
    for q in STREAM {
        sites.extend((1..=blocks + 1).map(|s| (q, s)));
    }
    for q in BLOCK {
        // A zero query starts every logit at 0: there is no init RMS to fit.
        if q == "att_logits_rms" && spec.zero_query {
            continue;
        }
        sites.extend((1..=blocks).map(|s| (q, s)));
    }
    for (q, site) in sites {
        let f = super::check::fit(rows, q, site, &diverged);
        let predicted = r.and_then(|r| predicted(q, r));
        let has_rows = rows.iter().any(|x| x.quantity == q && x.layer == site);
        let judged = predicted.filter(|_| has_rows).map(|p| {
            super::check::judge_settled(rows, q, site, &diverged, (p - tol, p + tol), cfg.seeds)
        });
        claims.push(Claim {
            quantity: q.to_string(),
            layer: site,
            role: role(q, site),
            fit: f,
            predicted,
            predicted_range: None,
            asymptotic: None,
            judged,
        });
    }
    let settled = |q: &str, s: usize, band: (f64, f64)| {
        super::check::judge_settled(rows, q, s, &diverged, band, cfg.seeds)
    };
    let slope = |q: &str, s: usize| super::check::fit(rows, q, s, &diverged).map(|f| f.slope);
    let fmt = |v: Option<f64>| {
        v.map(|v| format!("{v:+.3}"))
            .unwrap_or_else(|| "n/a".into())
    };
    let mut criteria = Vec::new();
    // Stable init: the stream, the branches' outputs and the attention logits keep
    // their coordinate size; the output at init does not grow.
    let mut parts = Vec::new();
    let mut init_slopes = Vec::new();
    for s in 1..=blocks + 1 {
        parts.push(settled("h_rms", s, (-tol, tol)));
        init_slopes.push(slope("h_rms", s));
    }
    for s in 1..=blocks {
        for q in ["attn_rms", "mlp_rms", "att_logits_rms"] {
            if q == "att_logits_rms" && spec.zero_query {
                continue;
            }
            parts.push(settled(q, s, (-tol, tol)));
        }
    }
    parts.push(settled("f_norm", 0, (f64::NEG_INFINITY, tol)));
    criteria.push(Criterion {
        name: "stable init".into(),
        measured: format!(
            "stream h_rms slopes {} (want 0), branch and logit RMS flat, f_norm slope {} (want ≤ 0)",
            init_slopes.iter().map(|s| fmt(*s)).collect::<Vec<_>>().join(", "),
            fmt(slope("f_norm", 0))
        ),
        judged: super::check::worst_of(parts),
    });
    let parts: Vec<Judged> = (1..=blocks + 1)
        .map(|s| settled("dh_rel", s, (f64::NEG_INFINITY, tol)))
        .chain((1..=blocks).map(|s| settled("att_logits_drms", s, (f64::NEG_INFINITY, tol))))
        .collect();
    criteria.push(Criterion {
        name: "stability".into(),
        measured: format!(
            "stream ‖Δh‖/‖h‖ slopes {} (want ≤ 0), attention-logit change slopes {} (want ≤ 0)",
            (1..=blocks + 1)
                .map(|s| fmt(slope("dh_rel", s)))
                .collect::<Vec<_>>()
                .join(", "),
            (1..=blocks)
                .map(|s| fmt(slope("att_logits_drms", s)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        judged: super::check::worst_of(parts),
    });
    if !param.on_scale {
        criteria.push(Criterion {
            name: "on the scale (diagnose)".into(),
            measured: "analytic: off the richness scale".into(),
            judged: Judged::new(
                Verdict::Fail,
                format!("{} is not a point of the richness scale", param.gauge),
            ),
        });
    }
    criteria.push(Criterion {
        name: "NTC".into(),
        measured: format!("‖Δf‖ slope {} (want 0)", fmt(slope("df_norm", 0))),
        judged: settled("df_norm", 0, (-tol, tol)),
    });
    let rs: Vec<f64> = (1..=blocks + 1)
        .filter_map(|s| slope("dh_norm", s))
        .collect();
    let estimated_r = (!rs.is_empty()).then(|| crate::fit::mean_std(&rs));
    let mut verdict = Verdict::worst(
        claims
            .iter()
            .filter_map(|c| c.verdict())
            .chain(criteria.iter().map(|c| c.judged.verdict)),
    );
    if !diverged.is_empty() {
        verdict = Verdict::Fail;
    }
    let prediction_note = Some(if r.is_some() {
        format!(
            "gpt sites (docs/theory.md §9.3, [extension]): stream after the embeddings and each block, each block's attention and MLP outputs and attention logits (c_att = {:.4}); outputs not centred",
            spec_c_att(&param, &spec, cfg)
        )
    } else {
        format!(
            "no predictions: {} is off the richness scale; the criteria are measured (docs/theory.md §9)",
            param.gauge
        )
    });
    Ok(CheckReport {
        config: cfg.clone(),
        parameterization: param,
        diagnosis: None,
        prediction_note,
        claims,
        criteria,
        estimated_r,
        diverged,
        spectral_method: String::new(),
        fit_method: "least squares of ln(seed mean) on ln(width); 95% interval from a delete-one-seed jackknife (Student t, seeds − 1 degrees of freedom)".into(),
        centred: false,
        f0_rel: Vec::new(),
        f0_note: None,
        sequential: None,
        pass: verdict == Verdict::Pass,
        verdict,
    })
}

fn spec_c_att(param: &Parameterization, spec: &GptSpec, cfg: &CheckConfig) -> f64 {
    crate::param::attention_scale(param, spec.head_dim, cfg.param.attention_scale)
}

/// Scan and judge.
pub fn check(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(CheckReport, Vec<ScanRow>)> {
    let (rows, diverged) = scan(cfg, threads, progress)?;
    let report = judge(cfg, &rows, diverged)?;
    Ok((report, rows))
}

/// The modules the GPT coordinate check records, in order (its `layer` 1, 2, …).
pub fn coord_modules(blocks: usize) -> Vec<String> {
    let mut m = vec!["embeddings h0".to_string()];
    for l in 0..blocks {
        m.push(format!("block {l} attn logits"));
        m.push(format!("block {l} attn out"));
        m.push(format!("block {l} mlp out"));
        m.push(format!("block {l} stream h{}", l + 1));
    }
    m.push("output logits f".into());
    m
}

fn mean_abs<T: Scalar>(v: &[T]) -> f64 {
    v.iter().map(|c| c.f64().abs()).sum::<f64>() / v.len().max(1) as f64
}

/// mean|·| of every module of [`coord_modules`] in one trace.
fn coord_values<T: Scalar>(spec: &GptSpec, t: &GptTrace<T>) -> Vec<f64> {
    let tt = spec.context;
    let per = tt * (tt + 1) / 2;
    let mut v = vec![mean_abs(t.h[0].as_slice())];
    for (l, b) in t.blocks.iter().enumerate() {
        let count = (b.logits.len() / (tt * tt)) * per;
        v.push(b.logits.iter().map(|c| c.f64().abs()).sum::<f64>() / count.max(1) as f64);
        v.push(mean_abs(b.attn_out.as_slice()));
        v.push(mean_abs(b.mlp_out.as_slice()));
        v.push(mean_abs(t.h[l + 1].as_slice()));
    }
    v.push(mean_abs(t.logits.as_slice()));
    v
}

/// The coordinate check of a GPT (`coord --arch gpt`): mean|·| of every module's
/// output at steps 0…T over widths and seeds, judged as `coord` judges (a slope whose
/// 95% interval lies wholly above the tolerance grows).
pub fn coord(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(super::coord::CoordReport, Vec<super::coord::CoordRow>)> {
    match cfg.dtype {
        Dtype::F32 => coord_typed::<f32>(cfg, threads, progress),
        Dtype::F64 => coord_typed::<f64>(cfg, threads, progress),
    }
}

fn coord_typed<T: Scalar>(
    cfg: &CheckConfig,
    threads: usize,
    progress: bool,
) -> Result<(super::coord::CoordReport, Vec<super::coord::CoordRow>)> {
    use super::coord::CoordRow;
    if super::check::distinct(&cfg.widths) < 2 || cfg.seeds == 0 {
        return Err(Error::config(format!(
            "widths {:?}, seeds {}: a coordinate check needs at least two distinct widths and one seed",
            cfg.widths, cfg.seeds
        )));
    }
    super::check::validate_counts(cfg)?;
    cfg.optim.validate()?;
    let (xt, yt, b, vocab) = probe_tokens(cfg)?;
    let mut specs = Vec::new();
    for &w in &cfg.widths {
        let spec = spec_at(cfg, w, Some(vocab))?;
        spec.resolve(&choice_at(cfg, w), cfg.optim.kind)?;
        specs.push(spec);
    }
    let modules = coord_modules(specs[0].blocks);
    super::check::ensure_scan_fits(
        "a coordinate check",
        (cfg.widths.len() as u128).saturating_mul(cfg.seeds as u128),
        (cfg.steps as u128 + 1).saturating_mul(modules.len() as u128),
        std::mem::size_of::<CoordRow>() + 16,
    )?;
    let mut jobs: Vec<(usize, usize)> = (0..specs.len())
        .flat_map(|i| (0..cfg.seeds).map(move |s| (i, s)))
        .collect();
    jobs.sort_by_key(|&(i, s)| (std::cmp::Reverse(specs[i].width), s));
    let bar = crate::progress::bar(
        (jobs.len() as u64).saturating_mul(cfg.steps as u64 + 1),
        "coord steps",
        progress,
    );
    let one = |&(i, s): &(usize, usize)| -> Result<(Vec<CoordRow>, Option<(usize, usize, usize)>)> {
        let spec = &specs[i];
        let cx = Compute::new(1);
        let gpt = Gpt::<T>::init(spec, &choice_at(cfg, spec.width), cfg.optim.kind, s as u64)?;
        let mut trainer = crate::train::gpt::GptTrainer::new(gpt, &cfg.optim, Compute::new(1), b);
        let mut trace = GptTrace::new(spec, b);
        let mut rows = Vec::new();
        let mut div = None;
        for step in 0..=cfg.steps {
            trainer.gpt.forward(&cx, &xt, b, &mut trace);
            for (l, v) in coord_values(spec, &trace).into_iter().enumerate() {
                if !v.is_finite() && div.is_none() {
                    div = Some((spec.width, s, step));
                }
                rows.push(CoordRow {
                    width: spec.width,
                    seed: s,
                    step,
                    layer: l + 1,
                    quantity: "mean_abs".into(),
                    value: v,
                });
            }
            if step < cfg.steps {
                trainer.step(&xt, &yt, b);
            }
            bar.inc(1);
        }
        Ok((rows, div))
    };
    let pool = super::check::thread_pool(threads)?;
    let results: Vec<Result<_>> =
        pool.install(|| jobs.par_iter().with_max_len(1).map(one).collect());
    bar.finish_and_clear();
    let mut rows = Vec::new();
    let mut diverged = Vec::new();
    for r in results {
        let (rs, d) = r?;
        rows.extend(rs);
        diverged.extend(d);
    }
    rows.sort_by(|a, b| {
        (a.width, a.seed, a.step, a.layer).cmp(&(b.width, b.seed, b.step, b.layer))
    });
    diverged.sort();
    let wmax = cfg.widths.iter().copied().max().unwrap_or(1);
    let spec = spec_at(cfg, wmax, Some(vocab))?;
    let parameterization = spec.resolve(&choice_at(cfg, wmax), cfg.optim.kind)?;
    let skip: Vec<usize> = if spec.zero_query {
        // Zero query: every logit is 0 at init.
        (0..spec.blocks).map(|l| 2 + 4 * l).collect()
    } else {
        Vec::new()
    };
    let out = modules.len();
    let zero_at_init = |l: usize| skip.contains(&l) || (spec.zero_readout && l == out);
    Ok(super::coord::judge_rows(
        cfg,
        parameterization,
        rows,
        diverged,
        modules,
        &zero_at_init,
    ))
}
