//! End-to-end tests of `richness check`, `coord` and `diagnose`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_richness"))
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run richness")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("richness-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const SYN: &str = "synthetic:teacher=linear,d=8,k=1,n=64,n_test=0";

#[test]
fn check_writes_reproducible_files_with_the_documented_columns() {
    let (a, b) = (tmp("a"), tmp("b"));
    for out in [&a, &b] {
        let o = run(&[
            "check",
            "--arch",
            "linear3",
            "--richness",
            "0.25",
            "--widths",
            "64,128,256,512",
            "--seeds",
            "3",
            "--dtype",
            "f64",
            "--data",
            SYN,
            "--batch",
            "32",
            "--out",
            out.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains("estimated r = "), "{stdout}");
        assert!(stdout.contains("UUC layer 2"));
    }
    for f in [
        "check.json",
        "check.csv",
        "fits.csv",
        "plots/dh_norm.png",
        "plots/dh_norm.svg",
        "plots/dh_norm.csv",
    ] {
        assert!(a.join(f).exists(), "missing {f}");
    }
    for f in ["check.json", "check.csv", "fits.csv"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs between runs"
        );
    }
    let csv = std::fs::read_to_string(a.join("check.csv")).unwrap();
    assert!(csv.starts_with("width,seed,layer,quantity,value\n"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("check.json")).unwrap()).unwrap();
    assert!(report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["quantity"] == "dh_norm" && c["predicted"] == 0.25));
}

#[test]
fn check_exit_status_follows_the_verdicts() {
    // SP with a Θ(1) rate violates NTC: exit 1 with the criterion failing.
    let o = run(&[
        "check",
        "--arch",
        "linear3",
        "--preset",
        "sp",
        "--widths",
        "64,128,256,512",
        "--seeds",
        "4",
        "--dtype",
        "f64",
        "--data",
        SYN,
        "--batch",
        "16",
        "--no-spectral",
        "--lr",
        "0.01",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.lines()
            .any(|l| l.starts_with("NTC") && l.ends_with("fail")),
        "{s}"
    );
}

#[test]
fn diagnose_explains_the_standard_parameterization() {
    let o = run(&["diagnose", "--preset", "sp"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("the read-out update is n times too large (unstable)"),
        "{s}"
    );
    let o = run(&["diagnose", "--preset", "sp", "--lr-exponent", "1"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("UUC fails for layer 1 (read-in)") && s.contains("vanishes as n^-1"),
        "{s}"
    );
    for (preset, r) in [
        ("ntp", "0"),
        ("ntp-lr", "0"),
        ("mup", "0.5"),
        ("mup-lr", "0.5"),
        ("mfp", "0.5"),
    ] {
        let o = run(&["diagnose", "--preset", preset]);
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(
            s.contains(&format!("on the richness scale at r = {r} ")),
            "{preset}: {s}"
        );
    }
    let o = run(&[
        "diagnose",
        "--richness",
        "0.25",
        "--gauge",
        "layerwise",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["implied_r"], 0.25);
    // Exponents and spec files.
    let o = run(&["diagnose", "--a=-0.5,0,0.5", "--b=0.5,0.5,0.5", "--c=0,0,0"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("r = 0.5"));
    let spec = tmp("spec.toml");
    std::fs::write(
        &spec,
        "a = [0, 0, 0]\nb = [0, 0.5, 0.5]\nc = [0, 0, 0]\nlr_exponent = 1\n",
    )
    .unwrap();
    let o = run(&["diagnose", "--spec", spec.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("UUC fails for layer 1 (read-in)"));
    std::fs::write(
        &spec,
        "a = [0, 0]\nb = [0, 0.5, 0.5]\nc = [0, 0, 0]\nbogus = 1\n",
    )
    .unwrap();
    let o = run(&["diagnose", "--spec", spec.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bogus"));
}

#[test]
fn diagnose_measure_confirms_the_analysis() {
    let o = run(&[
        "diagnose",
        "--preset",
        "mup",
        "--measure",
        "--arch",
        "linear3",
        "--widths",
        "64,128,256,512",
        "--seeds",
        "3",
        "--dtype",
        "f64",
        "--data",
        SYN,
        "--batch",
        "32",
        "--no-spectral",
        "--tolerance",
        "0.1",
    ]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("measuring") && s.contains("estimated r = 0.4")
            || s.contains("estimated r = 0.5"),
        "{s}"
    );
}

#[test]
fn coord_check_writes_panels_and_a_verdict() {
    let d = tmp("coord");
    let o = run(&[
        "coord",
        "--arch",
        "mlp3",
        "--preset",
        "mup",
        "--widths",
        "64,128,256",
        "--seeds",
        "2",
        "--steps",
        "2",
        "--batch",
        "64",
        "--out",
        d.to_str().unwrap(),
    ]);
    let s = String::from_utf8_lossy(&o.stdout);
    // μP does not grow; with 2 seeds and 3 widths the intervals are wide, so the
    // verdict may be pass or unclear, and neither exits 1.
    assert!(
        s.contains("verdict: pass") || s.contains("verdict: unclear"),
        "{s}"
    );
    assert!(!s.contains("GROWS"), "{s}");
    assert_eq!(o.status.code(), Some(0), "{s}");
    assert!(
        d.join("coord.png").exists()
            && d.join("coord.csv").exists()
            && d.join("coord.json").exists()
    );
    let o = run(&["coord", "--widths", "64"]);
    assert_eq!(o.status.code(), Some(2));
    // SP with a Θ(1) rate: coordinates grow with width after a few steps, clearly
    // enough (seed-jackknife intervals wholly above the tolerance) to exit 1.
    let o = run(&[
        "coord",
        "--arch",
        "mlp3",
        "--preset",
        "sp",
        "--widths",
        "128,256,512,1024",
        "--seeds",
        "4",
        "--steps",
        "3",
    ]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("GROWS") && s.contains("verdict: fail"), "{s}");
    assert_eq!(o.status.code(), Some(1), "{s}");
}

#[test]
fn quiet_keeps_the_results_and_drops_the_timing_and_file_lines() {
    let out = tmp("quiet");
    let args = [
        "check",
        "--arch",
        "linear3",
        "--widths",
        "16,32",
        "--seeds",
        "2",
        "--data",
        SYN,
        "--batch",
        "16",
        "--no-spectral",
        "--out",
        out.to_str().unwrap(),
        // The same folder twice: the second scan replaces the first as a whole.
        "--overwrite",
    ];
    let loud = Command::new(env!("CARGO_BIN_EXE_richness"))
        .args(args)
        .output()
        .unwrap();
    let loud = String::from_utf8_lossy(&loud.stdout).into_owned();
    // The control: without --quiet both summary lines are there.
    assert!(
        loud.contains("probes in") && loud.contains("wrote "),
        "{loud}"
    );
    let quiet = run(&args);
    let text = String::from_utf8_lossy(&quiet.stdout);
    assert!(text.contains("h_rms"), "the results are kept: {text}");
    assert!(
        !text.contains("probes in") && !text.contains("wrote "),
        "{text}"
    );
    assert!(out.join("check.csv").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// Issue 27: `check --arch mlp3 --richness 0.75 …` was an overall pass (every slope
/// matched its off-scale prediction). The stability row fails it, and so does
/// diagnose's analysis: exit 1, never PASS.
#[test]
fn check_off_the_scale_at_r_three_quarters_is_never_a_pass() {
    let o = run(&[
        "check",
        "--arch",
        "mlp3",
        "--richness",
        "0.75",
        "--widths",
        "64,128,256,512",
        "--seeds",
        "4",
        "--seed-exponent",
        "1",
        "--dtype",
        "f64",
        "--data",
        SYN,
        "--batch",
        "32",
        "--lr",
        "0.1",
        "--no-spectral",
    ]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("stability") && l.trim_end().ends_with("fail")),
        "{s}"
    );
    assert!(!s.contains("overall: PASS"), "{s}");
}

/// `check --sequential` adds rounds, reports them (text and check.json), and its
/// flags without `--sequential`, or a bad budget, are one-line errors (exit 2).
#[test]
fn check_sequential_reports_its_rounds_and_refuses_bad_flags() {
    let out = tmp("sequential");
    let args = [
        "check",
        "--arch",
        "linear3",
        "--richness",
        "0.25",
        "--widths",
        "64,128,256",
        "--seeds",
        "3",
        "--dtype",
        "f64",
        "--data",
        SYN,
        "--batch",
        "32",
        "--no-spectral",
        "--quantities",
        "dh_norm,f_norm",
        "--sequential",
        "--max-seeds",
        "12",
        "--out",
    ];
    let mut a: Vec<&str> = args.to_vec();
    let o_str = out.to_str().unwrap();
    a.push(o_str);
    let o = run(&a);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{o:?}"
    );
    assert!(
        text.contains("sequential seeds:") && text.contains("98.3% level"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("check.json")).unwrap()).unwrap();
    let seq = &json["sequential"];
    assert!(
        seq["looks"]
            .as_array()
            .is_some_and(|l| !l.is_empty() && l.len() <= 3),
        "{seq}"
    );
    assert!(json["config"]["seeds"].as_u64().unwrap() <= 12);
    let level = json["config"]["ci_level"].as_f64().unwrap();
    assert!((level - (1.0 - 0.05 / 3.0)).abs() < 1e-12, "{level}");
    for (bad, msg) in [
        (vec!["check", "--max-seeds", "5"], "add --sequential"),
        (
            vec!["check", "--sequential", "--budget", "3x"],
            "expected a duration",
        ),
        (vec!["check", "--sequential", "--looks", "0"], "--looks"),
    ] {
        let o = run(&bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains(msg), "{bad:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
