//! Hostile option values: NaN, infinities, negatives, zeros and absurd sizes across
//! the subcommands. Each must end in a one-line error that names the option (or the
//! derived quantity) and a non-zero exit, never a panic. Every case fails before any
//! training starts, so the table runs in seconds.

use std::process::Command;

/// (arguments, expected exit status, fragment the error line must contain).
const CASES: &[(&[&str], i32, &str)] = &[
    // rayon's global pool used to panic when it could not start this many threads.
    (
        &["--threads", "3000", "table", "--dims", "4,8,2"],
        2,
        "--threads",
    ),
    (
        &["--threads", "0", "table", "--dims", "4,8,2"],
        2,
        "--threads",
    ),
    (
        &["--threads", "-1", "table", "--dims", "4,8,2"],
        2,
        "--threads",
    ),
    // The scale flags, shared by table, train, check, coord, diagnose, ntk empirical.
    (
        &["table", "--dims", "4,8,2", "--gamma0", "nan"],
        2,
        "--gamma0",
    ),
    (
        &["table", "--dims", "4,8,2", "--gamma0", "-1"],
        2,
        "--gamma0",
    ),
    (
        &["table", "--dims", "4,8,2", "--gamma0", "0"],
        2,
        "--gamma0",
    ),
    (
        &["table", "--dims", "4,8,2", "--richness", "inf"],
        2,
        "--richness",
    ),
    (
        &["table", "--dims", "4,8,2", "--alpha", "-inf"],
        2,
        "--alpha",
    ),
    (&["table", "--dims", "4,8,2", "--lr", "-1"], 2, "--lr"),
    // Finite γ₀ and r, but α = γ₀·n^r overflows.
    (
        &["table", "--dims", "4,1024,2", "--gamma0", "1e308"],
        2,
        "alpha",
    ),
    (
        &["table", "--dims", "4,1024,2", "--richness", "1e300"],
        2,
        "alpha",
    ),
    (
        &["train", "--width", "64", "--gamma0", "1e308", "--dry-run"],
        2,
        "alpha",
    ),
    (
        &["train", "--width", "8", "--lr", "nan", "--dry-run"],
        2,
        "--lr",
    ),
    (&["train", "--width", "-8", "--dry-run"], 2, "--width"),
    // check / coord / diagnose.
    (&["check", "--widths", "8,16", "--seeds", "0"], 2, "--seeds"),
    (&["check", "--widths", "0,16"], 2, "--widths"),
    (
        &["check", "--widths", "8,16", "--momentum", "nan"],
        2,
        "--momentum",
    ),
    (
        &["check", "--widths", "8,16", "--tolerance", "0"],
        2,
        "--tolerance",
    ),
    (
        &["check", "--widths", "8,16", "--lr-exponent", "inf"],
        2,
        "--lr-exponent",
    ),
    (
        &["check", "--widths", "8,16", "--seed-exponent", "-1"],
        2,
        "--seed-exponent",
    ),
    (&["check", "--widths", "8,16", "--batch", "0"], 2, "--batch"),
    (
        &["coord", "--widths", "8,16", "--momentum", "inf"],
        2,
        "--momentum",
    ),
    // In range for the parser, out of range for SGD: coord used to train on it.
    (
        &["coord", "--widths", "8,16", "--momentum", "2"],
        2,
        "momentum",
    ),
    (
        &["diagnose", "--preset", "sp", "--lr-exponent", "nan"],
        2,
        "--lr-exponent",
    ),
    (&["diagnose", "--gamma0", "1e308"], 2, "alpha"),
    // ntk.
    (
        &[
            "ntk", "infinite", "--depth", "2", "--x", "X.npy", "--out", "K.npy", "--nodes", "0",
        ],
        2,
        "--nodes",
    ),
    (
        &[
            "ntk", "infinite", "--depth", "0", "--x", "X.npy", "--out", "K.npy",
        ],
        2,
        "--depth",
    ),
    (
        &[
            "ntk", "infinite", "--depth", "2", "--x", "X.npy", "--out", "K.npy", "--alpha", "nan",
        ],
        2,
        "--alpha",
    ),
    (
        &[
            "ntk", "infinite", "--depth", "2", "--x", "X.npy", "--out", "K.npy", "--gain", "-1",
        ],
        2,
        "--gain",
    ),
    (
        &[
            "ntk",
            "empirical",
            "--dims",
            "3,8,1",
            "--x",
            "X.npy",
            "--out",
            "K.npy",
            "--block",
            "0",
        ],
        2,
        "--block",
    ),
    (
        &[
            "ntk",
            "predict",
            "--k-train",
            "K.npy",
            "--y",
            "Y.npy",
            "--out",
            "P.npy",
            "--time",
            "nan",
        ],
        2,
        "--time",
    ),
    (
        &[
            "ntk",
            "predict",
            "--k-train",
            "K.npy",
            "--y",
            "Y.npy",
            "--out",
            "P.npy",
            "--ridge",
            "-1",
        ],
        2,
        "--ridge",
    ),
    (&["ntk", "compare", "--seeds", "0"], 2, "--seeds"),
    (&["ntk", "compare", "--rs", "nan"], 2, "--rs"),
    (&["ntk", "compare", "--gamma0", "-1"], 2, "--gamma0"),
    (&["ntk", "compare", "--lr", "0"], 2, "--lr"),
    (&["ntk", "compare", "--train", "0"], 2, "--train"),
    // sweep, transfer, demo.
    (
        &[
            "sweep",
            "submit",
            "spec.toml",
            "--no-submit",
            "--shards",
            "0",
        ],
        2,
        "--shards",
    ),
    // NaN made the optimum search panic ("finite").
    (
        &["transfer", "--db", "t.sqlite", "--diverged-loss", "nan"],
        2,
        "--diverged-loss",
    ),
    (
        &["transfer", "--db", "t.sqlite", "--diverged-loss", "-1"],
        2,
        "--diverged-loss",
    ),
    (
        &["transfer", "--db", "t.sqlite", "--tolerance", "inf"],
        2,
        "--tolerance",
    ),
    (&["demo", "--width", "0"], 2, "--width"),
    (&["demo", "--epochs", "0"], 2, "--epochs"),
];

#[test]
fn hostile_option_values_get_a_one_line_error_and_no_panic() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for (args, code, needle) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_richness"))
            .arg("--quiet")
            .args(*args)
            .current_dir(&dir)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run richness");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let problem = if err.contains("panicked") || err.contains("backtrace") {
            Some("panicked")
        } else if out.status.code() != Some(*code) {
            Some("wrong exit status")
        } else if lines.len() != 1 {
            Some("not one line")
        } else if !lines[0].contains(needle) {
            Some("does not name the problem")
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!(
                "{p}: richness {} → exit {:?} (want {code}, `{needle}`): {err}",
                args.join(" "),
                out.status.code()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_values_in_a_spec_file_are_refused_too() {
    // The same validation must hold where the flag is not the way in: a diagnose
    // spec file's lr_exponent (TOML has nan and inf).
    let dir = std::env::temp_dir().join(format!("richness-hostile-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("abc.toml");
    std::fs::write(
        &spec,
        "a = [-0.5, 0.0, 0.5]\nb = [0.5, 0.5, 0.5]\nc = [0.0, 0.0, 0.0]\nlr_exponent = nan\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_richness"))
        .args(["diagnose", "--spec", spec.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("lr_exponent"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
