//! The GPT (`nn::gpt`): forward against a plain re-implementation from the effective
//! tensors, every gradient against central differences (f64), the causal mask, the
//! scale of every tensor, gauge equivalence over training, and the weights files.

use richness::linalg::Compute;
use richness::nn::gpt::{Gpt, GptGrads, GptSpec, GptTrace, WPE, WTE};
use richness::nn::Branch;
use richness::optim::OptimConfig;
use richness::param::{Gauge, OptimizerKind, Preset, Role, ScaleChoice};
use richness::train::gpt::GptTrainer;

fn cx() -> Compute {
    Compute::new(1)
}

fn tokens(batch: usize, spec: &GptSpec, salt: u32) -> (Vec<u32>, Vec<u32>) {
    let n = batch * spec.context;
    let v = spec.vocab as u32;
    let seq: Vec<u32> = (0..n + batch)
        .map(|i| (i as u32 * 7 + salt * 3 + (i as u32 * i as u32) % 5) % v)
        .collect();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for b in 0..batch {
        let s = &seq[b * (spec.context + 1)..];
        x.extend_from_slice(&s[..spec.context]);
        y.extend_from_slice(&s[1..spec.context + 1]);
    }
    (x, y)
}

fn small(tie: bool) -> GptSpec {
    GptSpec {
        tie,
        branch: Branch::SqrtDepth,
        ..GptSpec::new(8, 2, 4, 5, 7)
    }
}

/// The GPT of theory.md §9.1 written plainly from effective tensors (β and g folded
/// in), in f64 loops: logits [rows, V].
fn reference_logits(g: &Gpt<f64>, x: &[u32], batch: usize) -> Vec<f64> {
    plain_logits(&g.spec, &g.effective(), g.c_att, g.spec.gain, x, batch)
}

/// The same from any tensors (one per parameterization row), logit multiplier and
/// GELU gain: with c_att = 1/√d_h and gain 1 this is nanoGPT's forward pass.
fn plain_logits(
    s: &GptSpec,
    eff: &[richness::tensor::Mat<f64>],
    c_att: f64,
    gain: f64,
    x: &[u32],
    batch: usize,
) -> Vec<f64> {
    let (n, tt, dh) = (s.width, s.context, s.head_dim);
    let ln = |h: &[f64]| {
        let m = h.iter().sum::<f64>() / n as f64;
        let v = h.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n as f64;
        h.iter()
            .map(|a| (a - m) / (v + 1e-5).sqrt())
            .collect::<Vec<_>>()
    };
    let mv = |w: &richness::tensor::Mat<f64>, u: &[f64]| {
        (0..w.rows())
            .map(|i| w.row(i).iter().zip(u).map(|(a, b)| a * b).sum::<f64>())
            .collect::<Vec<_>>()
    };
    let gelu = |z: f64| z * 0.5 * (1.0 + libm::erf(z / 2f64.sqrt()));
    let mut out = Vec::new();
    for b in 0..batch {
        let mut h: Vec<Vec<f64>> = (0..tt)
            .map(|t| {
                let tok = x[b * tt + t] as usize;
                (0..n)
                    .map(|i| eff[WTE][(tok, i)] + eff[WPE][(t, i)])
                    .collect()
            })
            .collect();
        for l in 0..s.blocks {
            let w = |j| &eff[GptSpec::block_tensor(l, j)];
            let qkv: Vec<Vec<f64>> = h.iter().map(|hi| mv(w(0), &ln(hi))).collect();
            let mut o = vec![vec![0.0; n]; tt];
            for head in 0..s.heads() {
                let r = head * dh..(head + 1) * dh;
                for i in 0..tt {
                    let sc: Vec<f64> = (0..=i)
                        .map(|j| c_att * r.clone().map(|d| qkv[i][d] * qkv[j][n + d]).sum::<f64>())
                        .collect();
                    let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = sc.iter().map(|v| (v - m).exp()).sum();
                    for j in 0..=i {
                        let p = (sc[j] - m).exp() / z;
                        for d in r.clone() {
                            o[i][d] += p * qkv[j][2 * n + d];
                        }
                    }
                }
            }
            for i in 0..tt {
                let a = mv(w(1), &o[i]);
                h[i].iter_mut().zip(&a).for_each(|(h, a)| *h += a);
                let m1 = mv(w(2), &ln(&h[i]));
                let act: Vec<f64> = m1.iter().map(|&z| gain * gelu(z)).collect();
                let y = mv(w(3), &act);
                h[i].iter_mut().zip(&y).for_each(|(h, a)| *h += a);
            }
        }
        for hi in &h {
            out.extend(mv(&eff[s.lm_head()], &ln(hi)));
        }
    }
    out
}

#[test]
fn forward_matches_a_plain_reimplementation() {
    for (tie, choice) in [
        (false, ScaleChoice::scale(0.25, Gauge::Layerwise)),
        (true, ScaleChoice::preset(Preset::Mup)),
        (false, ScaleChoice::preset(Preset::Sp)),
    ] {
        let spec = small(tie);
        let g = Gpt::<f64>::init(&spec, &choice, OptimizerKind::Sgd, 3).unwrap();
        let (x, _) = tokens(2, &spec, 1);
        let mut tr = GptTrace::new(&spec, 2);
        g.forward(&cx(), &x, 2, &mut tr);
        let want = reference_logits(&g, &x, 2);
        let got = tr.logits.as_slice();
        let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(scale > 0.0);
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-12 * scale.max(1.0),
                "tie={tie}: {a} vs {b}"
            );
        }
    }
}

/// Every entry of every tensor's gradient against central differences.
fn check_gradients(spec: &GptSpec, choice: &ScaleChoice) {
    let mut g = Gpt::<f64>::init(spec, choice, OptimizerKind::Sgd, 11).unwrap();
    let batch = 2;
    let (x, y) = tokens(batch, spec, 2);
    let mut tr = GptTrace::new(spec, batch);
    let mut grads = GptGrads::new(&g);
    g.gradient(&cx(), &x, &y, batch, &mut tr, &mut grads);
    check_stream_gradients(&g, &tr, &grads);
    let loss_at = |g: &Gpt<f64>| {
        let mut t = GptTrace::new(spec, batch);
        g.evaluate(&cx(), &x, &y, batch, &mut t)
    };
    for i in 0..g.tensors.len() {
        let an = grads.tensors[i].as_slice().to_vec();
        let norm = an.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm > 0.0, "{}: zero gradient", spec.name(i));
        let mut err = 0.0f64;
        for k in 0..an.len() {
            let w0 = g.tensors[i].as_slice()[k];
            let h = 1e-5 * w0.abs().max(1e-2);
            g.tensors[i].as_mut_slice()[k] = w0 + h;
            let lp = loss_at(&g);
            g.tensors[i].as_mut_slice()[k] = w0 - h;
            let lm = loss_at(&g);
            g.tensors[i].as_mut_slice()[k] = w0;
            let fd = (lp - lm) / (2.0 * h);
            err = err.max((fd - an[k]).abs());
        }
        let max = an.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(
            err < 1e-6 * max,
            "{} (tie={}): max |fd − analytic| = {err:e}, max |grad| = {max:e}",
            spec.name(i),
            spec.tie
        );
    }
}

/// The stream's gradients dh[l] (what the probes read) against the tensor gradients
/// that the central differences confirm: ∂L/∂W_2 of block l is β g_2 dh[l+1]ᵀ act,
/// which fixes dh[l+1] when act has full row rank (rows ≤ 4n here), and
/// ∂L/∂P[t] = g_P Σ_sequences dh[0] at position t.
fn check_stream_gradients(g: &Gpt<f64>, tr: &GptTrace<f64>, grads: &GptGrads<f64>) {
    let s = &g.spec;
    let (n, rows) = (s.width, tr.rows());
    assert!(rows <= 4 * n);
    for l in 0..s.blocks {
        let i = GptSpec::block_tensor(l, 3);
        let f = g.multiplier(i);
        let (dh, act) = (&tr.dh[l + 1], &tr.blocks[l].act);
        let want = &grads.tensors[i];
        let scale = want.as_slice().iter().map(|v| v.abs()).fold(0.0, f64::max);
        for a in 0..n {
            for b in 0..4 * n {
                let v: f64 = (0..rows).map(|r| dh[(r, a)] * act[(r, b)]).sum::<f64>() * f;
                assert!((v - want[(a, b)]).abs() < 1e-12 * scale, "dh[{}]", l + 1);
            }
        }
    }
    let gp = g.multiplier(WPE);
    for t in 0..s.context {
        for a in 0..n {
            let v: f64 = (0..rows / s.context)
                .map(|b| tr.dh[0][(b * s.context + t, a)])
                .sum::<f64>()
                * gp;
            assert!((v - grads.tensors[WPE][(t, a)]).abs() < 1e-12, "dh[0]");
        }
    }
}

#[test]
fn gradients_match_central_differences_untied() {
    check_gradients(&small(false), &ScaleChoice::scale(0.25, Gauge::Layerwise));
}

#[test]
fn gradients_match_central_differences_tied() {
    check_gradients(&small(true), &ScaleChoice::preset(Preset::Mup));
}

#[test]
fn gradients_match_central_differences_with_zero_query() {
    // q = 0 at init: the query's gradient comes only through the uniform attention.
    let spec = GptSpec {
        zero_query: true,
        ..small(false)
    };
    check_gradients(&spec, &ScaleChoice::preset(Preset::Ntp));
}

#[test]
fn the_mask_is_causal_and_probabilities_are_rows_of_the_simplex() {
    let spec = small(false);
    let g = Gpt::<f64>::init(
        &spec,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        5,
    )
    .unwrap();
    let (mut x, _) = tokens(2, &spec, 0);
    let mut a = GptTrace::new(&spec, 2);
    g.forward(&cx(), &x, 2, &mut a);
    let t0 = 3;
    x[spec.context + t0] = (x[spec.context + t0] + 1) % spec.vocab as u32;
    let mut b = GptTrace::new(&spec, 2);
    g.forward(&cx(), &x, 2, &mut b);
    let v = spec.vocab;
    for row in 0..2 * spec.context {
        let same = a.logits.row(row) == b.logits.row(row);
        let (seq, t) = (row / spec.context, row % spec.context);
        if seq == 0 || t < t0 {
            assert!(same, "row {row} changed by a later token");
        } else {
            assert!(!same, "row {row} should see the changed token");
        }
    }
    assert_eq!(a.logits.cols(), v);
    let tt = spec.context;
    for blk in &a.blocks {
        for (r, p) in blk.probs.chunks(tt).enumerate() {
            let i = r % tt;
            let sum: f64 = p.iter().sum();
            assert!((sum - 1.0).abs() < 1e-12);
            assert!(p[i + 1..].iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn roles_fan_ins_and_the_attention_multiplier_follow_the_scale() {
    let spec = GptSpec::new(64, 2, 16, 8, 11);
    for r in [0.0, 0.25, 0.5] {
        let p = spec
            .resolve(&ScaleChoice::scale(r, Gauge::Layerwise), OptimizerKind::Sgd)
            .unwrap();
        let n = 64f64;
        let alpha = n.powf(r);
        for (i, l) in p.layers.iter().enumerate() {
            let (role, d) = match i {
                WTE | WPE => (Role::ReadIn, 1.0),
                i if i == spec.lm_head() => (Role::ReadOut, n),
                i if (i - 2) % 4 == 3 => (Role::Hidden, 4.0 * n),
                _ => (Role::Hidden, n),
            };
            assert_eq!(l.role, role, "{}", l.name);
            assert_eq!(l.fan_in as f64, d, "{}", l.name);
            // theory.md §9.2 (SGD): v = 1/d (in, hidden), 1/(α² n) out; λ = α²/d, 1/n.
            let (v, lam) = if role == Role::ReadOut {
                (1.0 / (alpha * alpha * n), 1.0 / n)
            } else {
                (1.0 / d, alpha * alpha / d)
            };
            assert!((l.eff_init_var - v).abs() < 1e-12 * v, "{}", l.name);
            assert!((l.eff_lr - lam).abs() < 1e-12 * lam, "{}", l.name);
        }
        let g = Gpt::<f64>::init(
            &spec,
            &ScaleChoice::scale(r, Gauge::Mup),
            OptimizerKind::Sgd,
            0,
        )
        .unwrap();
        assert!((g.c_att - 16f64.powf(-(0.5 + r))).abs() < 1e-15);
    }
    // Adam (theory.md §9.2): embeddings α/√n, hidden α/(d√n), read-out 1/n.
    let p = spec
        .resolve(
            &ScaleChoice::scale(0.5, Gauge::Layerwise),
            OptimizerKind::Adam,
        )
        .unwrap();
    assert!((p.layers[WTE].eff_lr - 1.0).abs() < 1e-12);
    assert!((p.layers[2].eff_lr - 1.0 / 64.0).abs() < 1e-12);
    assert!((p.layers[spec.lm_head()].eff_lr - 1.0 / 64.0).abs() < 1e-12);
    let sp = Gpt::<f64>::init(
        &spec,
        &ScaleChoice::preset(Preset::Sp),
        OptimizerKind::Sgd,
        0,
    )
    .unwrap();
    assert_eq!(sp.c_att, 0.25);
    let over = ScaleChoice {
        attention_scale: Some(0.125),
        ..ScaleChoice::preset(Preset::Mup)
    };
    let g = Gpt::<f64>::init(&spec, &over, OptimizerKind::Sgd, 0).unwrap();
    assert_eq!(g.c_att, 0.125);
}

#[test]
fn tying_outside_the_mup_gauge_and_bad_shapes_are_refused_in_one_line() {
    let tied = small(true);
    for choice in [
        ScaleChoice::scale(0.25, Gauge::Layerwise),
        ScaleChoice::scale(0.0, Gauge::Rescale),
        ScaleChoice::preset(Preset::Sp),
        ScaleChoice::preset(Preset::Mfp),
    ] {
        let e = tied
            .resolve(&choice, OptimizerKind::Sgd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mup gauge") && !e.contains('\n'), "{e}");
    }
    assert!(tied
        .resolve(&ScaleChoice::preset(Preset::Ntp), OptimizerKind::Adam)
        .is_ok());
    let bad = GptSpec::new(10, 1, 4, 4, 5);
    let e = bad
        .resolve(&ScaleChoice::default(), OptimizerKind::Sgd)
        .unwrap_err()
        .to_string();
    assert!(e.contains("head_dim") && e.contains("divide"), "{e}");
    let abc = ScaleChoice {
        abc: Some(richness::param::Abc {
            a: vec![0.0; 11],
            b: vec![0.5; 11],
            c: vec![0.0; 11],
        }),
        ..ScaleChoice::default()
    };
    let e = small(false)
        .resolve(&abc, OptimizerKind::Sgd)
        .unwrap_err()
        .to_string();
    assert!(e.contains("custom exponents") && !e.contains('\n'), "{e}");
    let both = GptSpec {
        zero_readout: true,
        ..small(true)
    };
    assert!(both
        .resolve(&ScaleChoice::default(), OptimizerKind::Sgd)
        .is_err());
}

#[test]
fn tied_gauge_uses_one_raw_tensor_with_both_roles_multipliers() {
    // theory.md §9.4: in the mup gauge g_E = α, g_L = 1/√n and one σ = 1/α.
    let spec = GptSpec {
        tie: true,
        ..GptSpec::new(64, 1, 16, 4, 9)
    };
    let p = spec
        .resolve(&ScaleChoice::scale(0.25, Gauge::Mup), OptimizerKind::Sgd)
        .unwrap();
    let alpha = 64f64.powf(0.25);
    let (e, l) = (&p.layers[WTE], &p.layers[spec.lm_head()]);
    assert!((e.multiplier - alpha).abs() < 1e-12);
    assert!((l.multiplier - 1.0 / 8.0).abs() < 1e-12);
    assert!((e.init_std - l.init_std).abs() < 1e-15 && (e.lr - l.lr).abs() < 1e-15);
}

/// Five steps of the same GPT in three gauges: outputs and effective tensors agree.
fn gauge_run(r: f64, gauge: Gauge, optim: &OptimConfig) -> (Vec<f64>, Vec<Vec<f64>>) {
    let spec = GptSpec {
        branch: Branch::SqrtDepth,
        ..GptSpec::new(16, 2, 4, 6, 7)
    };
    let choice = ScaleChoice {
        base_lr: if optim.kind == OptimizerKind::Adam {
            0.02
        } else {
            0.5
        },
        ..ScaleChoice::scale(r, gauge)
    };
    let g = Gpt::<f64>::init(&spec, &choice, optim.kind, 7).unwrap();
    let mut t = GptTrainer::new(g, optim, cx(), 3);
    let mut losses = Vec::new();
    for step in 0..5 {
        let (x, y) = tokens(3, &spec, step);
        losses.push(t.step(&x, &y, 3));
    }
    let (x, _) = tokens(3, &spec, 9);
    t.gpt.forward(&cx(), &x, 3, &mut t.trace);
    losses.extend_from_slice(t.trace.logits.as_slice());
    let eff = t
        .gpt
        .effective()
        .into_iter()
        .map(|m| m.into_vec())
        .collect();
    (losses, eff)
}

fn close(a: &[f64], b: &[f64], what: &str) {
    let scale = a.iter().map(|v| v.abs()).fold(0.0, f64::max);
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-10 * scale, "{what}: {x} vs {y}");
    }
}

#[test]
fn gauges_train_the_same_network_sgd_momentum_and_adam() {
    let sgd = OptimConfig {
        momentum: 0.9,
        weight_decay: 0.01,
        ..OptimConfig::sgd(0.9)
    };
    let adam = OptimConfig {
        weight_decay: 0.01,
        ..OptimConfig::adam()
    };
    for optim in [sgd, adam] {
        for r in [0.0, 0.25, 0.5] {
            let (l0, e0) = gauge_run(r, Gauge::Layerwise, &optim);
            // The run must have moved, or equality would prove nothing.
            assert!((l0[4] - l0[0]).abs() > 1e-4, "r={r}: loss did not move");
            for gauge in [Gauge::Mup, Gauge::Rescale] {
                let (l, e) = gauge_run(r, gauge, &optim);
                let what = format!("{} r={r} {}", optim.kind.name(), gauge.name());
                close(&l0, &l, &format!("{what}: losses and logits"));
                for (a, b) in e0.iter().zip(&e) {
                    close(a, b, &format!("{what}: effective tensors"));
                }
            }
        }
    }
}

#[test]
fn weights_round_trip_and_read_as_nanogpt() {
    let dir = tempdir();
    for (tie, choice) in [
        (false, ScaleChoice::scale(0.25, Gauge::Rescale)),
        (true, ScaleChoice::scale(0.25, Gauge::Mup)),
    ] {
        let spec = GptSpec {
            zero_query: false,
            ..small(tie)
        };
        let g = Gpt::<f64>::init(&spec, &choice, OptimizerKind::Sgd, 4).unwrap();
        let path = dir.join(format!("w{tie}.safetensors"));
        richness::io::save_gpt_weights(&g, &path).unwrap();
        // Same model: the raw tensors come back.
        let mut same = Gpt::<f64>::init(&spec, &choice, OptimizerKind::Sgd, 99).unwrap();
        richness::io::load_gpt_weights_into(&mut same, &path).unwrap();
        for (a, b) in g.tensors.iter().zip(&same.tensors) {
            close(a.as_slice(), b.as_slice(), "raw tensors");
        }
        // Another gauge of the same r: the same function.
        let mut other = Gpt::<f64>::init(
            &spec,
            &ScaleChoice::scale(0.25, Gauge::Mup),
            OptimizerKind::Sgd,
            1,
        )
        .unwrap();
        richness::io::load_gpt_weights_into(&mut other, &path).unwrap();
        let (x, _) = tokens(2, &spec, 3);
        let (mut ta, mut tb) = (GptTrace::new(&spec, 2), GptTrace::new(&spec, 2));
        g.forward(&cx(), &x, 2, &mut ta);
        other.forward(&cx(), &x, 2, &mut tb);
        close(
            ta.logits.as_slice(),
            tb.logits.as_slice(),
            "logits after loading",
        );
        // nanoGPT's forward on the file's tensors: q·k/√d_h, plain GELU.
        let names: Vec<(String, Vec<usize>)> = (0..spec.rows())
            .map(|i| {
                let (r, c) = spec.shape(i);
                (spec.name(i), vec![r, c])
            })
            .chain((0..spec.blocks).flat_map(|l| {
                [
                    (format!("transformer.h.{l}.ln_1.weight"), vec![spec.width]),
                    (format!("transformer.h.{l}.ln_2.weight"), vec![spec.width]),
                ]
            }))
            .chain(std::iter::once((
                "transformer.ln_f.weight".to_string(),
                vec![spec.width],
            )))
            .collect();
        let (vals, meta) = richness::io::read_named_tensors::<f64>(&path, &names).unwrap();
        assert!(meta.contains_key(richness::io::META_GPT));
        let mats: Vec<_> = (0..spec.rows())
            .map(|i| {
                let (r, c) = spec.shape(i);
                richness::tensor::Mat::from_vec(r, c, vals[i].clone())
            })
            .collect();
        let nano = plain_logits(
            &spec,
            &mats,
            1.0 / (spec.head_dim as f64).sqrt(),
            1.0,
            &x,
            2,
        );
        close(ta.logits.as_slice(), &nano, "nanoGPT semantics");
    }
    // A file with a LayerNorm gain other than 1 is refused in one line.
    let spec = small(false);
    let g = Gpt::<f64>::init(&spec, &ScaleChoice::default(), OptimizerKind::Sgd, 0).unwrap();
    let path = dir.join("shape.safetensors");
    richness::io::save_gpt_weights(&g, &path).unwrap();
    let mut wider = Gpt::<f64>::init(
        &GptSpec::new(12, 2, 4, 5, 7),
        &ScaleChoice::default(),
        OptimizerKind::Sgd,
        0,
    )
    .unwrap();
    let e = richness::io::load_gpt_weights_into(&mut wider, &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shape") && !e.contains('\n'), "{e}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("richness-gpt-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn f32_follows_f64_over_a_few_adam_steps() {
    let spec = GptSpec::new(32, 2, 8, 8, 11);
    let choice = ScaleChoice {
        base_lr: 0.01,
        ..ScaleChoice::preset(Preset::Mup)
    };
    let g64 = Gpt::<f64>::init(&spec, &choice, OptimizerKind::Adam, 2).unwrap();
    let mut a = GptTrainer::new(g64.clone(), &OptimConfig::adam(), cx(), 4);
    let mut b = GptTrainer::new(g64.cast::<f32>(), &OptimConfig::adam(), cx(), 4);
    for step in 0..3 {
        let (x, y) = tokens(4, &spec, step);
        let (la, lb) = (a.step(&x, &y, 4), b.step(&x, &y, 4));
        assert!((la - lb).abs() < 1e-4 * la, "step {step}: {la} vs {lb}");
    }
}
