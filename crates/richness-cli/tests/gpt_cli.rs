//! `--arch gpt` on the command line: `table`, a tiny `train` on the embedded corpus,
//! the weights round trip through `--save-init` / `--init-weights`, and bad keys
//! refused in one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn richness(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_richness"))
        .args(["--quiet", "--threads", "1"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("richness-gpt-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const TINY: [&str; 10] = [
    "--arch",
    "gpt",
    "--width",
    "32",
    "--blocks",
    "1",
    "--context",
    "16",
    "--batch-size",
    "8",
];

#[test]
fn table_lists_every_tensor_with_its_scale_and_the_attention_multiplier() {
    let dir = scratch("table");
    let o = richness(
        &dir,
        &[
            "table",
            "--arch",
            "gpt",
            "--width",
            "64",
            "--blocks",
            "2",
            "--head-dim",
            "16",
            "--vocab",
            "50",
            "--richness",
            "0.5",
            "--gauge",
            "layerwise",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for name in [
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.1.attn.c_proj.weight",
        "transformer.h.1.mlp.c_fc.weight",
        "transformer.h.1.mlp.c_proj.weight",
        "lm_head.weight",
    ] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
    // c_att = d_h^{-(1/2 + r)} = 16^{-1} at r = 1/2.
    assert!(out.contains("c_att = 0.0625"), "{out}");
    // The read-out row: fan-in 64, fan-out 50, eff. init variance 1/(α² n) = 1/64².
    let lm = out
        .lines()
        .find(|l| l.starts_with("lm_head.weight"))
        .unwrap();
    let cols: Vec<&str> = lm.split_whitespace().collect();
    assert_eq!(&cols[1..4], &["read-out", "64", "50"], "{lm}");
    let v: f64 = cols[7].parse().unwrap();
    assert!((v - 1.0 / 4096.0).abs() < 1e-8, "{lm}");
}

#[test]
fn train_runs_on_the_embedded_corpus_and_writes_perplexity() {
    let dir = scratch("train");
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend([
        "--steps",
        "5",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--out",
        "run",
    ]);
    let o = richness(&dir, &args);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let csv = std::fs::read_to_string(dir.join("run/metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "step,epoch,train_loss,train_ppl,test_loss,test_ppl"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 6, "{csv}");
    for r in &rows[1..] {
        let (loss, ppl): (f64, f64) = (r[2].parse().unwrap(), r[3].parse().unwrap());
        assert!((ppl - loss.exp()).abs() < 1e-9 * ppl, "{r:?}");
    }
    // Near uniform over the 73 symbols at init: log 73 ≈ 4.29 nats.
    let first: f64 = rows[0][4].parse().unwrap();
    assert!((first - 73f64.ln()).abs() < 0.5, "{first}");
    for f in [
        "config.toml",
        "summary.json",
        "weights.safetensors",
        "parameterization.txt",
    ] {
        assert!(dir.join("run").join(f).exists(), "{f}");
    }
    // A small text file of one's own, byte vocabulary, tied and zero-query: fewer test
    // sequences than the default evaluation takes.
    std::fs::write(
        dir.join("t.txt"),
        "to be or not to be, that is the question. ".repeat(40),
    )
    .unwrap();
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend([
        "--steps",
        "2",
        "--tie",
        "--zero-query",
        "--data",
        "text:t.txt,vocab=byte",
        "--out",
        "own",
    ]);
    let o = richness(&dir, &args);
    assert!(o.status.success(), "{}", text(&o).1);
    let cfg = std::fs::read_to_string(dir.join("own/config.toml")).unwrap();
    assert!(cfg.contains("vocab = 256"), "{cfg}");
    // The resolved config trains again as it stands.
    let o = richness(
        &dir,
        &["train", "run/config.toml", "--steps", "1", "--out", "again"],
    );
    assert!(o.status.success(), "{}", text(&o).1);
}

#[test]
fn save_init_and_init_weights_round_trip() {
    let dir = scratch("init");
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend([
        "--steps",
        "0",
        "--dtype",
        "f64",
        "--save-init",
        "a.safetensors",
    ]);
    let o = richness(&dir, &args);
    assert!(o.status.success(), "{}", text(&o).1);
    // Loaded into another seed's model and saved again: the same file.
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend([
        "--steps",
        "0",
        "--dtype",
        "f64",
        "--seed",
        "5",
        "--init-weights",
        "a.safetensors",
        "--save-init",
        "b.safetensors",
    ]);
    let o = richness(&dir, &args);
    assert!(o.status.success(), "{}", text(&o).1);
    let (a, b) = (
        std::fs::read(dir.join("a.safetensors")).unwrap(),
        std::fs::read(dir.join("b.safetensors")).unwrap(),
    );
    assert_eq!(a, b);
    // A different seed without loading gives different weights.
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend([
        "--steps",
        "0",
        "--dtype",
        "f64",
        "--seed",
        "5",
        "--save-init",
        "c.safetensors",
    ]);
    assert!(richness(&dir, &args).status.success());
    assert_ne!(a, std::fs::read(dir.join("c.safetensors")).unwrap());
}

#[test]
fn bad_gpt_keys_are_refused_in_one_line() {
    let dir = scratch("bad");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--head-dim", "5"], "does not divide"),
        (vec!["--tie", "--gauge", "layerwise"], "mup gauge"),
        (vec!["--tie", "--preset", "sp"], "mup gauge"),
        (vec!["--vocab", "12"], "vocabulary"),
        (vec!["--set", "model.depth=3"], "not for arch `gpt`"),
        (vec!["--set", "param.center=true"], "center"),
        (vec!["--tie", "--zero-readout"], "zero_readout"),
        (vec!["--roles", "read-in,hidden"], "param.roles"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["train"];
        args.extend(TINY);
        args.extend(["--steps", "1"]);
        args.extend(extra.iter().copied());
        let o = richness(&dir, &args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    // gpt keys on another architecture.
    let o = richness(&dir, &["train", "--context", "16", "--steps", "1"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("for arch `gpt`"), "{err}");
    // check --arch gpt probes the stream, the branches and the attention logits.
    let o = richness(
        &dir,
        &[
            "check",
            "--arch",
            "gpt",
            "--widths",
            "32,64",
            "--seeds",
            "2",
            "--batch",
            "1",
            "--context",
            "8",
            "--blocks",
            "1",
            "--head-dim",
            "8",
        ],
    );
    let (out, err) = text(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
    assert!(
        out.contains("att_logits_drms") && out.contains("NTC"),
        "{out}"
    );
    // and refuses bad gpt keys there too, in one line.
    let o = richness(
        &dir,
        &[
            "check",
            "--arch",
            "gpt",
            "--widths",
            "32,64",
            "--head-dim",
            "7",
        ],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("head_dim"), "{err}");
}
