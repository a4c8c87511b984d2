//! `check` and `coord` on the GPT (`probe::gpt`): the measured rows against a direct
//! computation from the model's own passes, the scale's exponents where they are
//! unmistakable at small widths, SP's failing NTC, and the coordinate check.

use richness::linalg::Compute;
use richness::nn::gpt::{Gpt, GptTrace};
use richness::nn::Family;
use richness::optim::OptimConfig;
use richness::param::{Gauge, Preset, ScaleChoice};
use richness::probe::check::{self, CheckConfig, CheckReport};
use richness::probe::{coord, gpt};
use richness::tensor::Dtype;
use richness::train::gpt::GptTrainer;
use richness::train::ModelConfig;
use richness::verdict::Verdict;

fn tiny(param: ScaleChoice, widths: Vec<usize>, seeds: usize) -> CheckConfig {
    CheckConfig {
        model: ModelConfig {
            arch: Family::Gpt,
            blocks: Some(1),
            head_dim: Some(8),
            context: Some(8),
            ..ModelConfig::default()
        },
        param,
        dtype: Dtype::F64,
        widths,
        seeds,
        batch: 4,
        spectral: false,
        ..CheckConfig::default()
    }
}

fn row(rows: &[check::ScanRow], w: usize, s: usize, l: usize, q: &str) -> f64 {
    rows.iter()
        .find(|r| r.width == w && r.seed == s && r.layer == l && r.quantity == q)
        .unwrap_or_else(|| panic!("no row {q} {l} at {w}/{s}"))
        .value
}

fn claim<'a>(rep: &'a CheckReport, q: &str, l: usize) -> &'a check::Claim {
    rep.claims
        .iter()
        .find(|c| c.quantity == q && c.layer == l)
        .unwrap_or_else(|| panic!("no claim {q} {l}\n{}", rep.to_text()))
}

/// Every probe row equals the same quantity computed here from two forward passes
/// of the model before and after one step (the stream, the attention logits
/// recomputed from q and k, the output logits), so the sites are the right tensors.
#[test]
fn probe_rows_are_the_models_own_quantities() {
    let cfg = tiny(ScaleChoice::scale(0.5, Gauge::Mup), vec![16, 32], 1);
    let (rows, diverged) = gpt::scan(&cfg, 1, false).unwrap();
    assert!(diverged.is_empty());
    let (x, y, b, vocab) = gpt::probe_tokens(&cfg).unwrap();
    let mut m = cfg.model.clone();
    m.width = Some(32);
    let spec = m.resolve_gpt(Some(vocab)).unwrap();
    let g = Gpt::<f64>::init(&spec, &cfg.param, cfg.optim.kind, 0).unwrap();
    let cx = Compute::new(1);
    let mut t0 = GptTrace::new(&spec, b);
    let loss0 = g.evaluate(&cx, &x, &y, b, &mut t0);
    let mut tr = GptTrainer::new(g, &cfg.optim, Compute::new(1), b);
    tr.step(&x, &y, b);
    let mut t1 = GptTrace::new(&spec, b);
    let loss1 = tr.gpt.evaluate(&cx, &x, &y, b, &mut t1);
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "{what}: probe {a} vs direct {b}"
        )
    };
    close(
        row(&rows, 32, 0, 0, "loss_decrease"),
        loss0 - loss1,
        "loss decrease",
    );
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let diff =
        |a: &[f64], b: &[f64]| norm(&a.iter().zip(b).map(|(x, y)| y - x).collect::<Vec<_>>());
    close(
        row(&rows, 32, 0, 0, "df_norm"),
        diff(t0.logits.as_slice(), t1.logits.as_slice()),
        "‖Δf‖",
    );
    for l in 0..=spec.blocks {
        close(
            row(&rows, 32, 0, l + 1, "dh_norm"),
            diff(t0.h[l].as_slice(), t1.h[l].as_slice()),
            "‖Δh‖",
        );
    }
    // Attention logits from q and k (fused qkv rows: q then k then v), causal
    // entries only, times c_att.
    let (n, tt, dh) = (spec.width, spec.context, spec.head_dim);
    let qkv = &t0.blocks[0].qkv;
    let mut sum = 0.0;
    let mut count = 0usize;
    for s in 0..b {
        for h in 0..spec.heads() {
            for i in 0..tt {
                for j in 0..=i {
                    let q = qkv.row(s * tt + i);
                    let k = qkv.row(s * tt + j);
                    let dot: f64 = (0..dh).map(|d| q[h * dh + d] * k[n + h * dh + d]).sum();
                    sum += (tr.gpt.c_att * dot).powi(2);
                    count += 1;
                }
            }
        }
    }
    close(
        row(&rows, 32, 0, 1, "att_logits_rms"),
        (sum / count as f64).sqrt(),
        "logit RMS",
    );
}

/// The scale's exponents at r = 0 and r = 1/2 differ by 1/2 in the stream's ‖Δh‖ and
/// the logits' change: measured, not assumed (widths 32–128, 4 seeds, f64).
#[test]
fn the_stream_and_the_logits_move_with_the_richness() {
    let slope = |r: f64, q: &str, l: usize| {
        let (rep, _) = gpt::check(
            &tiny(ScaleChoice::scale(r, Gauge::Mup), vec![32, 64, 128], 4),
            2,
            false,
        )
        .unwrap();
        let c = claim(&rep, q, l);
        assert_eq!(c.predicted, gpt::predicted(q, r), "{q}");
        c.fit.unwrap().slope
    };
    for (q, l) in [("dh_norm", 2), ("att_logits_drms", 1)] {
        let gap = slope(0.5, q, l) - slope(0.0, q, l);
        assert!(
            (gap - 0.5).abs() < 0.15,
            "{q} {l}: r = 1/2 minus r = 0 slope {gap}"
        );
    }
}

/// SP with Adam (width-independent rate: every coordinate of every tensor moves by
/// ~η, so ΔW a grows like n) moves the output logits by a growing amount: NTC fails,
/// and the run is off the scale, never a pass.
#[test]
fn sp_fails_ntc() {
    let mut p = ScaleChoice::preset(Preset::Sp);
    p.base_lr = 0.1;
    let mut cfg = tiny(p, vec![32, 64, 128, 256], 6);
    cfg.optim = OptimConfig::adam();
    let (rep, _) = gpt::check(&cfg, 2, false).unwrap();
    let ntc = rep.criteria.iter().find(|c| c.name == "NTC").unwrap();
    assert_eq!(ntc.judged.verdict, Verdict::Fail, "{}", rep.to_text());
    assert!(
        claim(&rep, "df_norm", 0).fit.unwrap().ci95.0 > 0.1,
        "{}",
        rep.to_text()
    );
    assert!(!rep.pass);
    assert!(rep
        .prediction_note
        .as_deref()
        .unwrap()
        .contains("off the richness scale"));
    // `check::run` reaches the same code for arch gpt.
    let (via, _) = check::run(
        &tiny(ScaleChoice::preset(Preset::Sp), vec![16, 32], 1),
        1,
        false,
    )
    .unwrap();
    assert!(via.claims.iter().any(|c| c.quantity == "att_logits_rms"));
}

/// The coordinate check (mup's protocol: Adam, a few steps): under SP the output
/// logits' coordinates grow with width after a step (fail); under μP none does.
#[test]
fn coord_flags_sp_and_not_mup() {
    let mut sp = tiny(ScaleChoice::preset(Preset::Sp), vec![32, 64, 128], 3);
    sp.steps = 2;
    sp.optim = OptimConfig::adam();
    sp.param.base_lr = 0.01;
    let (rep, _) = coord::run(&sp, 2, false).unwrap();
    let out = rep.modules.len();
    assert_eq!(rep.module(out), "output logits f");
    assert!(
        rep.slopes
            .iter()
            .any(|s| s.layer == out && s.step >= 1 && s.judged.verdict == Verdict::Fail),
        "{}",
        rep.to_text()
    );
    let mut mup = tiny(ScaleChoice::preset(Preset::Mup), vec![32, 64, 128], 3);
    mup.steps = 2;
    mup.optim = OptimConfig::adam();
    mup.param.base_lr = 0.01;
    let (rep, _) = coord::run(&mup, 2, false).unwrap();
    assert_ne!(rep.verdict, Verdict::Fail, "{}", rep.to_text());
}

/// Bad input: one-line errors.
#[test]
fn gpt_check_refuses_what_it_cannot_measure() {
    let mut cfg = tiny(ScaleChoice::preset(Preset::Mup), vec![32, 64], 1);
    cfg.model.zero_readout = true;
    let e = gpt::check(&cfg, 1, false).unwrap_err().to_string();
    assert!(e.contains("zero_readout") && !e.contains('\n'), "{e}");
    let mut cfg = tiny(ScaleChoice::preset(Preset::Mup), vec![32, 64], 1);
    cfg.data = "digits".into();
    cfg.model.head_dim = Some(7);
    let e = gpt::check(&cfg, 1, false).unwrap_err().to_string();
    assert!(e.contains("head_dim") && !e.contains('\n'), "{e}");
    let mut cfg = tiny(ScaleChoice::preset(Preset::Mup), vec![32, 64], 1);
    cfg.data = "synthetic:teacher=linear".into();
    let e = gpt::check(&cfg, 1, false).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
}
