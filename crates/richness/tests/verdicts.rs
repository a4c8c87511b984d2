//! Verdicts that hold off the scale and at small widths (issue 27): the stability
//! row, one definition of UUC, centred predictions, crossover from local slopes.

use richness::param::{diagnose, Abc, Exponents};
use richness::prelude::*;
use richness::probe::check::{self, CheckConfig, CheckReport};
use richness::train::ModelConfig;

const SYN: &str = "synthetic:teacher=linear,d=8,k=1,n=64,n_test=0";

fn small(arch: richness::nn::Family, param: ScaleChoice) -> CheckConfig {
    CheckConfig {
        model: ModelConfig {
            arch,
            ..ModelConfig::default()
        },
        param,
        dtype: Dtype::F64,
        data: SYN.into(),
        widths: vec![64, 128, 256, 512],
        seeds: 4,
        batch: 32,
        spectral: false,
        ..CheckConfig::default()
    }
}

fn criterion<'a>(rep: &'a CheckReport, name: &str) -> &'a check::Criterion {
    rep.criteria
        .iter()
        .find(|c| c.name.starts_with(name))
        .unwrap_or_else(|| panic!("no criterion {name}:\n{}", rep.to_text()))
}

fn claim<'a>(rep: &'a CheckReport, q: &str, l: usize) -> &'a check::Claim {
    rep.claims
        .iter()
        .find(|c| c.quantity == q && c.layer == l)
        .unwrap_or_else(|| panic!("no claim {q} {l}"))
}

/// theory.md §3: at r > 1/2 updates outgrow the representations they modify. Every
/// slope then matches its own (off-scale) prediction, dh_rel's included (r − 1/2), so
/// before the stability row the run was an overall pass. Failed on the code before
/// the stability criterion (no such row; overall pass at r = 3/4).
#[test]
fn updates_that_outgrow_representations_fail_the_stability_row() {
    let cfg = small(
        richness::nn::Family::Mlp3,
        ScaleChoice {
            base_lr: 0.1,
            ..ScaleChoice::scale(0.75, Gauge::Mup)
        },
    );
    let (rep, _) = check::run(&cfg, 2, false).unwrap();
    let s = criterion(&rep, "stability");
    assert_eq!(s.judged.verdict, Verdict::Fail, "{}", rep.to_text());
    assert!(rep.diverged.is_empty(), "{}", rep.to_text());
    // The slope is measured, not assumed: ‖Δh‖/‖h‖ grows like n^{1/4}.
    let f = claim(&rep, "dh_rel", 2).fit.unwrap();
    assert!(f.ci95.0 > 0.05, "{f:?}");
    // diagnose says so too, and its verdict is a row of the check.
    assert_eq!(
        criterion(&rep, "on the scale").judged.verdict,
        Verdict::Fail
    );
    assert!(criterion(&rep, "on the scale")
        .judged
        .reason
        .contains("outgrow"));
    assert_ne!(rep.verdict, Verdict::Pass);
    assert!(!rep.pass);
    // On the scale the row does not fail (r = 1/4: ‖Δh‖/‖h‖ slope −1/4; f_norm's
    // seed spread leaves it unclear with 4 seeds).
    let (on, _) = check::run(
        &small(
            richness::nn::Family::Mlp3,
            ScaleChoice::scale(0.25, Gauge::Mup),
        ),
        2,
        false,
    )
    .unwrap();
    assert_ne!(
        criterion(&on, "stability").judged.verdict,
        Verdict::Fail,
        "{}",
        on.to_text()
    );
    assert!(claim(&on, "dh_rel", 2).fit.unwrap().ci95.1 < 0.05);
    assert!(on
        .criteria
        .iter()
        .all(|c| !c.name.starts_with("on the scale")));
}

/// A hidden layer whose rate is 1/n times too small is frozen: its own update
/// vanishes like n⁻¹ while what passes through from the read-in stays Θ(1). The UUC
/// of the layer's own update catches it, as `diagnose` predicts; the total ⟨∂L/∂h, Δh⟩
/// (`uuc_total`, the old measurement) does not. Failed on the code that measured UUC
/// with the passthrough included (UUC layer 2 passed at slope ≈ 0).
#[test]
fn a_frozen_hidden_layer_fails_uuc_as_diagnose_says() {
    // μP's exponents at r = 0 (NTP), with the hidden rate n times smaller.
    let abc = Abc {
        a: vec![0.0, 0.5, 0.5],
        b: vec![0.0, 0.0, 0.0],
        c: vec![0.0, 1.0, 0.0],
    };
    let d = diagnose(&Exponents::from_abc(&abc.a, &abc.b, &abc.c, 0.0).unwrap());
    let uuc: Vec<f64> = d.layers.iter().map(|l| l.uuc).collect();
    assert_eq!(uuc, vec![0.0, -1.0, 0.0]);
    let cfg = small(
        richness::nn::Family::Mlp3,
        ScaleChoice {
            abc: Some(abc),
            ..ScaleChoice::default()
        },
    );
    let (rep, _) = check::run(&cfg, 2, false).unwrap();
    let text = rep.to_text();
    assert_eq!(
        criterion(&rep, "UUC layer 2").judged.verdict,
        Verdict::Fail,
        "{text}"
    );
    assert_eq!(
        criterion(&rep, "MAX layer 2").judged.verdict,
        Verdict::Fail,
        "{text}"
    );
    for l in [1, 3] {
        assert_ne!(
            criterion(&rep, &format!("UUC layer {l}")).judged.verdict,
            Verdict::Fail,
            "{text}"
        );
    }
    // The measured slope of the layer's own update is the predicted n⁻¹, and the
    // total with the passthrough is flat.
    let own = claim(&rep, "uuc", 2);
    assert_eq!(own.predicted, Some(-1.0));
    assert_ne!(own.verdict(), Some(Verdict::Fail), "{text}");
    let total = check::fit(&check::scan(&cfg, 2, false).unwrap().0, "uuc_total", 2, &[]).unwrap();
    assert!(total.slope.abs() < 0.1, "{total:?}");
}

/// r = −1/4: f₀ grows like n^{1/4}. Uncentred, its residual drives the updates
/// (‖δ_L‖ ~ n^{1/4}); centred (f − f₀ trained, the default), the residual is y and every
/// update follows the on-scale rules while ‖f₀‖ still grows. The predictions must know
/// which was measured. Failed on the code whose predictions assumed an uncentred output
/// (the centred ‖Δf‖ and UUC claims failed against +0.25 and +0.5).
#[test]
fn predictions_at_negative_r_know_whether_the_output_is_centred() {
    for center in [true, false] {
        let cfg = small(
            richness::nn::Family::Linear3,
            ScaleChoice {
                center: Some(center),
                ..ScaleChoice::scale(-0.25, Gauge::Mup)
            },
        );
        let (rep, _) = check::run(&cfg, 2, false).unwrap();
        let text = rep.to_text();
        assert_eq!(rep.centred, center);
        let want = |q: &str, l: usize, on: f64, off: f64| {
            let c = claim(&rep, q, l);
            assert_eq!(c.predicted, Some(if center { on } else { off }), "{q} {l}");
            assert!(
                matches!(c.verdict(), Some(Verdict::Pass | Verdict::Unclear)),
                "centred {center}: {q} {l}: {:?}\n{text}",
                c.judged
            );
        };
        want("df_norm", 0, 0.0, 0.25);
        want("dh_norm", 2, -0.25, 0.0);
        want("uuc", 2, 0.0, 0.5);
        want("grad_norm", 2, 0.25, 0.5);
        // f₀ grows either way: never an overall pass.
        assert_eq!(claim(&rep, "f_norm", 0).predicted, Some(0.25));
        assert_eq!(
            criterion(&rep, "on the scale").judged.verdict,
            Verdict::Fail
        );
        assert!(!rep.pass, "{text}");
    }
}
