//! Hostile option values: NaN, infinities, negatives, zeros and absurd sizes across
//! the subcommands. Each must end in a one-line error that names the option (or the
//! derived quantity) and a non-zero exit, never a panic. Every case fails before any
//! training starts, so the table runs in seconds.

use std::process::Command;

/// (arguments, expected exit status, fragment the error line must contain).
const CASES: &[(&[&str], i32, &str)] = &[
    // One folder holds one scan: a folder with files is refused before any work.
    (
        &[
            "check", "--arch", "linear3", "--widths", "32,64", "--out", "/etc",
        ],
        2,
        "--overwrite",
    ),
    (
        &[
            "coord", "--arch", "linear3", "--widths", "32,64", "--out", "/etc",
        ],
        2,
        "--overwrite",
    ),
    // The residual MLP's flags (docs/layers.md).
    (
        &[
            "table", "--dims", "4,8,8,2", "--arch", "resmlp", "--blocks", "0",
        ],
        2,
        "--blocks",
    ),
    (
        &[
            "table", "--dims", "4,8,8,2", "--arch", "resmlp", "--norm", "batch",
        ],
        2,
        "unknown norm",
    ),
    (
        &[
            "table", "--dims", "4,8,8,2", "--arch", "resmlp", "--branch", "half",
        ],
        2,
        "unknown branch",
    ),
    (
        &["table", "--dims", "4,8,8,2", "--blocks", "2"],
        2,
        "resmlp",
    ),
    (
        &[
            "table",
            "--dims",
            "4,8,9,8,2",
            "--arch",
            "resmlp",
            "--blocks",
            "2",
        ],
        2,
        "hidden widths",
    ),
    (
        &[
            "table", "--dims", "4,8,8,2", "--arch", "resmlp", "--blocks", "3",
        ],
        2,
        "weight layers",
    ),
    (
        &["table", "--dims", "4,8,2", "--arch", "cnn"],
        2,
        "unknown arch",
    ),
    (
        &[
            "ntk",
            "infinite",
            "--arch",
            "myrtle5",
            "--x",
            "/dev/null",
            "--out",
            "/tmp/k.npy",
        ],
        2,
        "--arch",
    ),
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

// ---------------------------------------------------------------------------------
// Sizes, non-finite values, files and folders (issue 15, items 1, 3, 4, 6). Every
// case is refused before anything big is allocated, so each takes milliseconds.

/// A little-endian float64 `.npy` file.
fn npy(path: &std::path::Path, shape: &[usize], vals: &[f64]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if shape.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({shape}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in vals {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// A safetensors file of float32 tensors (name, shape, values).
fn safetensors(path: &std::path::Path, tensors: &[(&str, &[usize], &[f32])]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, vals) in tensors {
        let start = data.len();
        for v in *vals {
            data.extend(v.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// The fixtures the cases below name, in `dir`.
fn fixtures(dir: &std::path::Path) {
    npy(
        &dir.join("nan.npy"),
        &[4, 2],
        &[1., 1., 1., 1., 1., f64::NAN, 1., 1.],
    );
    npy(&dir.join("inf.npy"), &[3], &[0., f64::INFINITY, 0.]);
    // 100,000 inputs: an 800 kB file whose n × n kernel would need 80 GB.
    npy(&dir.join("many.npy"), &[100_000, 1], &vec![0.5; 100_000]);
    npy(&dir.join("asym.npy"), &[2, 2], &[1., 0.5, 0.2, 1.]);
    npy(&dir.join("indef.npy"), &[2, 2], &[1., 2., 2., 1.]);
    npy(&dir.join("eye.npy"), &[2, 2], &[1., 0., 0., 1.]);
    npy(&dir.join("y.npy"), &[2, 1], &[1., -1.]);
    npy(&dir.join("x.npy"), &[2, 2], &[1., 0., 0., 1.]);
    // A [2, 3, 1] MLP whose first weight matrix holds a NaN.
    safetensors(
        &dir.join("nan.safetensors"),
        &[
            (
                "layers.0.weight",
                &[3, 2],
                &[0.1, 0.2, f32::NAN, 0.4, 0.5, 0.6],
            ),
            ("layers.1.weight", &[1, 3], &[0.1, 0.2, 0.3]),
        ],
    );
    std::fs::create_dir_all(dir.join("used")).unwrap();
    std::fs::write(dir.join("used/summary.json"), "{}").unwrap();
    std::fs::write(
        dir.join("impossible.toml"),
        "name = \"impossible\"\n[base.data]\ndataset = \"synthetic:n=32,n_test=8,d=4,k=1\"\n[base.train]\nsteps = 1\n[[axes]]\n\"model.width\" = [1000000, 2000000]\n",
    )
    .unwrap();
}

const FILE_CASES: &[(&[&str], i32, &str)] = &[
    // Sizes a typo implies: refused with the estimate, never allocated (exit 134).
    (
        &["train", "--width", "100000", "--steps", "1"],
        2,
        "needs about",
    ),
    (
        &[
            "train",
            "--width",
            "512",
            "--set",
            "model.depth=10000",
            "--steps",
            "1",
        ],
        2,
        "needs about",
    ),
    // Beyond any depth: refused by its range before an estimate.
    (
        &[
            "train",
            "--width",
            "512",
            "--set",
            "model.depth=100000",
            "--steps",
            "1",
        ],
        2,
        "model.depth = 100000",
    ),
    (
        &[
            "train",
            "--data",
            "synthetic:n=1000000000,d=32",
            "--steps",
            "1",
        ],
        2,
        "synthetic data",
    ),
    (&["check", "--widths", "8,300000"], 2, "needs about"),
    (&["coord", "--widths", "8,300000"], 2, "needs about"),
    (
        &[
            "diagnose",
            "--preset",
            "mup",
            "--measure",
            "--widths",
            "8,300000",
        ],
        2,
        "needs about",
    ),
    (
        &[
            "ntk", "infinite", "--depth", "2", "--x", "many.npy", "--out", "K.npy",
        ],
        2,
        "100000 x 100000",
    ),
    (
        &[
            "ntk",
            "empirical",
            "--dims",
            "1,8,1",
            "--x",
            "many.npy",
            "--out",
            "K.npy",
        ],
        2,
        "100000 x 100000",
    ),
    (
        &[
            "ntk", "infinite", "--depth", "2", "--x", "x.npy", "--out", "K.npy", "--nodes", "5000",
        ],
        2,
        "--nodes",
    ),
    (
        &[
            "--max-memory",
            "1M",
            "train",
            "--width",
            "256",
            "--steps",
            "1",
        ],
        2,
        "--max-memory",
    ),
    (
        &["--max-memory", "0", "table", "--dims", "4,8,2"],
        2,
        "--max-memory",
    ),
    (
        &["--max-memory", "lots", "table", "--dims", "4,8,2"],
        2,
        "--max-memory",
    ),
    (
        &["sweep", "plan", "impossible.toml"],
        2,
        "no run of this spec can start",
    ),
    // Non-finite values, with the file and the position.
    (
        &[
            "ntk", "infinite", "--depth", "2", "--x", "nan.npy", "--out", "K.npy",
        ],
        2,
        "row 2, column 1",
    ),
    (
        &[
            "ntk",
            "empirical",
            "--dims",
            "1,4,1",
            "--x",
            "inf.npy",
            "--out",
            "K.npy",
        ],
        2,
        "inf.npy",
    ),
    (
        &[
            "ntk",
            "empirical",
            "--dims",
            "2,3,1",
            "--init-weights",
            "nan.safetensors",
            "--x",
            "x.npy",
            "--out",
            "K.npy",
        ],
        2,
        "flat index 2",
    ),
    (
        &[
            "ntk",
            "predict",
            "--k-train",
            "nan.npy",
            "--y",
            "y.npy",
            "--out",
            "P.npy",
        ],
        2,
        "nan.npy",
    ),
    // Kernels that are not kernels, and a rate that diverges.
    (
        &[
            "ntk",
            "predict",
            "--k-train",
            "asym.npy",
            "--y",
            "y.npy",
            "--out",
            "P.npy",
        ],
        2,
        "not symmetric",
    ),
    (
        &[
            "ntk",
            "predict",
            "--k-train",
            "indef.npy",
            "--y",
            "y.npy",
            "--out",
            "P.npy",
        ],
        2,
        "positive semi-definite",
    ),
    (
        &[
            "ntk",
            "predict",
            "--k-train",
            "eye.npy",
            "--y",
            "y.npy",
            "--out",
            "P.npy",
            "--steps",
            "10",
            "--lr",
            "1000",
        ],
        2,
        "unstable",
    ),
    // Device files and folders where a file is expected.
    (&["train", "/dev/zero"], 2, "not a regular file"),
    (
        &[
            "train",
            "--width",
            "8",
            "--steps",
            "1",
            "--data",
            "npy:/dev/zero,y.npy",
        ],
        2,
        "not a regular file",
    ),
    (&["sweep", "plan", "/dev/zero"], 2, "not a regular file"),
    (&["check", "--config", "."], 2, "folder"),
    // Meaningless combinations.
    (
        &[
            "train",
            "--width",
            "8",
            "--steps",
            "1",
            "--data",
            "synthetic:n=16,d=2,k=1",
            "--set",
            "train.loss=cross-entropy",
        ],
        2,
        "cross-entropy",
    ),
    (&["check", "--widths", "64,64"], 2, "distinct"),
    (&["coord", "--widths", "32,32,32"], 2, "distinct"),
    (&["ntk", "compare", "--widths", "64,64"], 2, "distinct"),
    // A run folder holds one run.
    (
        &["train", "--width", "8", "--steps", "1", "--out", "used"],
        2,
        "--overwrite",
    ),
    (
        &["train", "--width", "8", "--steps", "1", "--overwrite"],
        2,
        "required",
    ),
];

/// Run `richness --quiet ARGS` in `dir`, under `ulimit -v KB` when given; the
/// reason it does not meet (code, needle), if any.
fn check_case(
    dir: &std::path::Path,
    args: &[&str],
    code: i32,
    needle: &str,
    ulimit_kb: Option<u64>,
) -> Option<String> {
    let bin = env!("CARGO_BIN_EXE_richness");
    let mut cmd = match ulimit_kb {
        Some(kb) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -v {kb} && exec \"$0\" \"$@\""))
                .arg(bin)
                .args(["--threads", "2"]);
            c
        }
        None => Command::new(bin),
    };
    let out = cmd
        .arg("--quiet")
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run richness");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let problem = if err.contains("panicked")
        || err.contains("backtrace")
        || err.contains("memory allocation")
    {
        Some("panicked or aborted")
    } else if out.status.code() != Some(code) {
        Some("wrong exit status")
    } else if lines.len() != 1 {
        Some("not one line")
    } else if !lines[0].contains(needle) {
        Some("does not name the problem")
    } else {
        None
    };
    problem.map(|p| {
        format!(
            "{p}{}: richness {} → exit {:?} (want {code}, `{needle}`): {err}",
            if ulimit_kb.is_some() {
                " (under ulimit -v)"
            } else {
                ""
            },
            args.join(" "),
            out.status.code()
        )
    })
}

#[test]
fn sizes_non_finite_values_devices_and_used_folders_are_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    fixtures(&dir);
    let failures: Vec<String> = FILE_CASES
        .iter()
        .filter_map(|(args, code, needle)| check_case(&dir, args, *code, needle, None))
        .collect();
    // The used folder is untouched by the refusal.
    assert!(dir.join("used/summary.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(CASES.len() + FILE_CASES.len() >= 60);
}

#[cfg(target_os = "linux")]
#[test]
fn under_a_4gb_address_space_limit_every_case_is_still_a_one_line_refusal() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-ulimit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    fixtures(&dir);
    let mut failures: Vec<String> = FILE_CASES
        .iter()
        .filter_map(|(args, code, needle)| check_case(&dir, args, *code, needle, Some(4_000_000)))
        .collect();
    // A model that fits most machines' memory but not 4 GB of address space: the
    // limit is read (RLIMIT_AS), so this is refused instead of aborting in malloc.
    if let Some(f) = check_case(
        &dir,
        &["train", "--width", "20000", "--steps", "1"],
        2,
        "needs about",
        Some(4_000_000),
    ) {
        failures.push(f);
    }
    // A small run still trains under the limit.
    if let Some(f) = check_case(
        &dir,
        &["train", "--width", "16", "--steps", "1", "--dry-run"],
        0,
        "",
        Some(4_000_000),
    ) {
        if !f.contains("not one line") {
            failures.push(f);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn richness(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_richness"))
        .args(["--quiet", "--threads", "1"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn overwrite_replaces_a_run_folder_as_a_whole() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = [
        "train",
        "--width",
        "8",
        "--steps",
        "2",
        "--data",
        "synthetic:n=16,n_test=4,d=2,k=1",
        "--out",
        "run",
    ];
    let o = richness(&dir, &base);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("run/weights.safetensors").exists());
    std::fs::write(dir.join("run/stray.txt"), "from another run").unwrap();
    // Without --overwrite: refused, the old run untouched.
    let o = richness(&dir, &base);
    assert_eq!(o.status.code(), Some(2));
    assert!(dir.join("run/stray.txt").exists());
    // A diverged run over a completed one: no weights, no stray file, no staging left.
    let mut diverge = base.to_vec();
    diverge.extend(["--overwrite", "--set", "train.diverge_above=1e-12"]);
    let o = richness(&dir, &diverge);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.toml",
            "metrics.csv",
            "parameterization.json",
            "parameterization.txt",
            "summary.json"
        ]
    );
    let siblings: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(siblings, ["run"]);
    let _ = std::fs::remove_dir_all(&dir);
}

const TINY_SWEEP: &str = "name = \"tiny\"\n[base.model]\nwidth = 8\n[base.data]\ndataset = \"synthetic:n=32,n_test=8,d=4,k=1\"\n[base.train]\nsteps = 2\n[[axes]]\nseed = [0, 1, 2]\n";

#[test]
fn a_second_writer_is_refused_and_resume_checks_the_spec() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("richness-hostile-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.toml"), TINY_SWEEP).unwrap();
    std::fs::write(
        dir.join("other.toml"),
        TINY_SWEEP.replace("[0, 1, 2]", "[0, 1, 7]"),
    )
    .unwrap();
    // The first sweep parks after its first stored run (test hook), holding the lock.
    let mut first = Command::new(env!("CARGO_BIN_EXE_richness"))
        .args([
            "--quiet",
            "--threads",
            "1",
            "sweep",
            "run",
            "s.toml",
            "--db",
            "d.sqlite",
        ])
        .current_dir(&dir)
        .env("RICHNESS_TEST_PAUSE_AFTER_RUNS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(first.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("test pause"), "{line}");
    let o = richness(
        &dir,
        &["sweep", "run", "s.toml", "--db", "d.sqlite", "--resume"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let pid = first.id().to_string();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("another sweep is writing") && err.contains(&pid),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Once the holder is gone (SIGKILL), the lock is free: another spec is refused...
    let o = richness(
        &dir,
        &["sweep", "run", "other.toml", "--db", "d.sqlite", "--resume"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("another sweep spec"), "{err}");
    // ...and the same spec resumes, running only what is missing.
    let o = richness(
        &dir,
        &["sweep", "run", "s.toml", "--db", "d.sqlite", "--resume"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("2 runs") && out.contains("1 already done"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_impossible_run_in_a_sweep_is_recorded_as_failed_and_the_rest_run() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("s.toml"),
        TINY_SWEEP.replace("seed = [0, 1, 2]", "\"model.width\" = [8, 1000000, 16]"),
    )
    .unwrap();
    let o = richness(&dir, &["sweep", "run", "s.toml", "--db", "d.sqlite"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("2 completed") && out.contains("1 failed"),
        "{out}"
    );
    assert!(
        err.contains("model.width=1000000") && err.contains("needs about"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_export_that_fails_part_way_leaves_no_partial_folder() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.toml"), TINY_SWEEP).unwrap();
    let o = richness(&dir, &["sweep", "run", "s.toml", "--db", "d.sqlite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Damage the store behind the runs table: a metric row whose step is not a number
    // (read after runs.csv is already written).
    let conn = rusqlite::Connection::open(dir.join("d.sqlite")).unwrap();
    conn.execute(
        "INSERT INTO metrics (run_id, step, name, layer, value) VALUES ('zzz', 'not a step', 'x', NULL, 1.0)",
        [],
    )
    .unwrap();
    drop(conn);
    let o = richness(
        &dir,
        &[
            "sweep", "export", "--db", "d.sqlite", "--format", "csv", "--out", "ex",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ex"))
        .collect();
    assert!(left.is_empty(), "an export folder was left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Text data (`text:PATH`, `shakespeare`; data/text.rs) ----

/// The malformed text files the cases below name, in `dir`.
fn text_fixtures(dir: &std::path::Path) {
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    w("bad-utf8.txt", b"hello\xff world");
    w(
        "cut-utf8.txt",
        "caf\u{e9}".as_bytes().split_last().unwrap().1,
    );
    w("empty.txt", b"");
    w("bom-only.txt", b"\xef\xbb\xbf");
    w("short.txt", b"too short for a context of 64\n");
    w(
        "ok.txt",
        "the quick brown fox jumps over the lazy dog. "
            .repeat(40)
            .as_bytes(),
    );
    // 180 kB: small to read, but 2.9 GB of sequences at stride 1 (context 64).
    w(
        "mid.txt",
        "the quick brown fox jumps over the lazy dog. "
            .repeat(4000)
            .as_bytes(),
    );
    // 16,385 distinct characters: one more than a char vocabulary may have.
    let wide: String = (0..16_385u32)
        .map(|i| char::from_u32(0x4e00 + i).unwrap())
        .collect();
    w("wide.txt", wide.as_bytes());
    // A sparse file: 64 GiB on the file system's word, no blocks. Its length is real
    // (stat), so the budget refuses it before a byte is read.
    std::fs::File::create(dir.join("huge.txt"))
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    std::fs::create_dir_all(dir.join("folder.txt")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.txt").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
}

const TEXT_CASES: &[(&[&str], i32, &str)] = &[
    (
        &["data", "inspect", "text:bad-utf8.txt"],
        2,
        "invalid byte 0xff at byte offset 5",
    ),
    (
        &["data", "inspect", "text:cut-utf8.txt"],
        2,
        "cut off at the end of the file at byte offset 3",
    ),
    (&["data", "inspect", "text:empty.txt"], 2, "empty file"),
    (&["data", "inspect", "text:bom-only.txt"], 2, "empty file"),
    (
        &["data", "inspect", "text:short.txt"],
        2,
        "fewer than one context + 1 (65)",
    ),
    (
        &["data", "inspect", "text:ok.txt,context=400"],
        2,
        "the test part (180 tokens)",
    ),
    (&["data", "inspect", "text:wide.txt"], 2, "use vocab=byte"),
    (&["data", "inspect", "text:folder.txt"], 2, "is a folder"),
    (&["data", "inspect", "text:fifo.txt"], 2, "FIFO"),
    (
        &["data", "inspect", "text:/dev/zero"],
        2,
        "not a regular file",
    ),
    (
        &["data", "inspect", "text:nonexistent.txt"],
        2,
        "nonexistent.txt",
    ),
    (
        &["--max-memory", "1G", "data", "inspect", "text:huge.txt"],
        2,
        "needs about",
    ),
    (&["data", "inspect", "text:"], 2, "give the file"),
    (
        &["data", "inspect", "text:ok.txt,vocab=word"],
        2,
        "char or byte",
    ),
    (
        &["data", "inspect", "text:ok.txt,context=0"],
        2,
        "context must be a positive integer",
    ),
    (
        &["data", "inspect", "text:ok.txt,stride=x"],
        2,
        "stride must be a positive integer",
    ),
    (
        &["data", "inspect", "text:ok.txt,test_fraction=0.9"],
        2,
        "[0, 0.5]",
    ),
    (
        &["data", "inspect", "shakespeare:vocab=word"],
        2,
        "char or byte",
    ),
    (
        &["data", "inspect", "shakespeare:path=x"],
        2,
        "unknown shakespeare data key",
    ),
    (
        &["train", "--steps", "1", "--data", "text:bad-utf8.txt"],
        2,
        "byte offset 5",
    ),
    (
        &["train", "--steps", "1", "--data", "text:fifo.txt"],
        2,
        "FIFO",
    ),
    (
        &[
            "--max-memory",
            "1G",
            "train",
            "--steps",
            "1",
            "--data",
            "text:huge.txt",
        ],
        2,
        "needs about",
    ),
    // The whole job is estimated from the file's size before it is read, and the
    // sequences again before they are cut.
    (
        &[
            "--max-memory",
            "64M",
            "train",
            "--steps",
            "1",
            "--data",
            "text:mid.txt,stride=1",
        ],
        2,
        "(180000 bytes, context 64, stride 1) needs about",
    ),
    (
        &[
            "--max-memory",
            "256M",
            "train",
            "--steps",
            "1",
            "--data",
            "shakespeare:stride=1",
        ],
        2,
        "757556 sequences × context 64",
    ),
    (
        &["train", "--steps", "1", "--data", "text:ok.txt,context=8"],
        2,
        "sequence model",
    ),
    (
        &["train", "--steps", "1", "--data", "shakespeare"],
        2,
        "sequence model",
    ),
    (
        &[
            "train",
            "--steps",
            "1",
            "--data",
            "shakespeare",
            "--set",
            "data.standardize=true",
        ],
        2,
        "token ids",
    ),
    (
        &["check", "--widths", "8,16", "--data", "shakespeare"],
        2,
        "sequence model",
    ),
];

/// [`check_case`] with a deadline: a reader that opened the FIFO would wait for a
/// writer forever, which must fail this test, not hang CI. The deadline only
/// matters when the code is broken; a passing case takes milliseconds.
fn check_text_case(
    dir: &std::path::Path,
    case: &(&'static [&'static str], i32, &'static str),
    ulimit_kb: Option<u64>,
) -> Option<String> {
    let (args, code, needle) = *case;
    let (tx, rx) = std::sync::mpsc::channel();
    let (dir2, args2): (std::path::PathBuf, Vec<String>) = (
        dir.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect(),
    );
    std::thread::spawn(move || {
        let a: Vec<&str> = args2.iter().map(String::as_str).collect();
        let _ = tx.send(check_case(&dir2, &a, code, needle, ulimit_kb));
    });
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .unwrap_or_else(|_| {
            Some(format!(
                "richness {} did not finish (blocked on the FIFO?)",
                args.join(" ")
            ))
        })
}

#[test]
fn malformed_text_data_is_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-text-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    text_fixtures(&dir);
    let mut failures: Vec<String> = vec![];
    for limit in [None, Some(4_000_000)] {
        failures.extend(
            TEXT_CASES
                .iter()
                .filter_map(|c| check_text_case(&dir, c, limit)),
        );
    }
    // The same files, well formed, load: the refusals above are not blanket ones.
    for ok in [
        "text:ok.txt,context=8",
        "text:wide.txt,vocab=byte,context=8",
        "shakespeare",
    ] {
        let o = richness(&dir, &["data", "inspect", ok]);
        if !o.status.success() {
            failures.push(format!("{ok}: {}", String::from_utf8_lossy(&o.stderr)));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The values every count-valued flag is tried at: zero, one, negative, 10¹¹ (a
/// typo's worth of memory or hours), 2⁶⁴ − 1 (overflows any size arithmetic) and a
/// non-number.
const COUNT_VALUES: &[&str] = &["0", "1", "-1", "1e11", "18446744073709551615", "abc"];

/// (base arguments, the flag as `--flag={}` or `--set key={}`, the values at which
/// the command legitimately runs). Bases are small so legitimate values finish in
/// well under a second.
const COUNT_FLAGS: &[(&[&str], &str, &[&str])] = &[
    // check / coord / diagnose --measure share the scan flags.
    (SCAN, "--seeds={}", &["1"]),
    (SCAN, "--init-seeds={}", &["1"]),
    (SCAN, "--steps={}", &["1"]),
    (SCAN, "--batch={}", &["1"]),
    (SCAN, "--widths=8,{}", &["1"]),
    (SCAN_MLP, "--depth={}", &[]),
    (SCAN_RESMLP, "--blocks={}", &["1"]),
    (COORD, "--seeds={}", &["1"]),
    (COORD, "--steps={}", &["1"]),
    (COORD, "--batch={}", &["1"]),
    (COORD_MLP, "--depth={}", &[]),
    (COORD_RESMLP, "--blocks={}", &["1"]),
    (
        &[
            "diagnose",
            "--preset",
            "mup",
            "--measure",
            "--arch",
            "linear3",
            "--widths",
            "8,16",
            "--batch",
            "8",
            "--no-spectral",
        ],
        "--seeds={}",
        &["1"],
    ),
    // train (steps, epochs, batch size, widths, seeds) and config keys.
    (TRAIN, "--steps={}", &["0", "1"]),
    (TRAIN_NO_STEPS, "--epochs={}", &["0", "1"]),
    (TRAIN, "--batch-size={}", &["0", "1"]),
    (TRAIN_NO_WIDTH, "--width={}", &["1"]),
    (TRAIN_NO_WIDTH, "--dims=64,{},10", &["1"]),
    (TRAIN, "--seed={}", &["0", "1", "18446744073709551615"]),
    (TRAIN_RESMLP, "--blocks={}", &["1"]),
    (TRAIN, "--set=model.depth={}", &[]),
    (TRAIN_NO_STEPS, "--set=train.steps={}", &["0", "1"]),
    (TRAIN_NO_STEPS, "--set=train.epochs={}", &["0", "1"]),
    (TRAIN, "--set=train.batch_size={}", &["0", "1"]),
    // demo.
    (
        &["demo", "--epochs", "1", "--out", "demo"],
        "--width={}",
        &["1"],
    ),
    (
        &["demo", "--width", "4", "--out", "demo"],
        "--epochs={}",
        &["1"],
    ),
    // table.
    (
        &["table", "--dims", "4,8,8,2", "--arch", "resmlp"],
        "--blocks={}",
        &["1"],
    ),
    // ntk.
    (
        &["ntk", "infinite", "--x", "x.npy", "--out", "K.npy"],
        "--depth={}",
        &["1"],
    ),
    (
        &[
            "ntk", "infinite", "--x", "x.npy", "--out", "K.npy", "--arch", "resmlp",
        ],
        "--blocks={}",
        &["1"],
    ),
    (
        &[
            "ntk",
            "infinite",
            "--depth",
            "3",
            "--activation",
            "tanh",
            "--x",
            "x.npy",
            "--out",
            "K.npy",
        ],
        "--nodes={}",
        &["1"],
    ),
    (
        &[
            "ntk",
            "empirical",
            "--dims",
            "2,8,1",
            "--x",
            "x.npy",
            "--out",
            "K.npy",
        ],
        "--block={}",
        &["1"],
    ),
    (
        &[
            "ntk",
            "empirical",
            "--dims",
            "2,8,1",
            "--x",
            "x.npy",
            "--out",
            "K.npy",
        ],
        "--seed={}",
        &["0", "1", "18446744073709551615"],
    ),
    (
        &["ntk", "empirical", "--x", "x.npy", "--out", "K.npy"],
        "--dims=2,{},1",
        &["1"],
    ),
    (
        &[
            "ntk",
            "predict",
            "--k-train",
            "eye.npy",
            "--y",
            "y.npy",
            "--lr",
            "0.1",
            "--out",
            "P.npy",
        ],
        "--steps={}",
        &["0", "1"],
    ),
    (COMPARE, "--seeds={}", &["1"]),
    (COMPARE, "--depth={}", &[]),
    (COMPARE, "--train={}", &[]),
    (COMPARE, "--test={}", &["1"]),
    (COMPARE, "--steps={}", &["0", "1"]),
    (COMPARE_NO_WIDTHS, "--widths=8,{}", &["1"]),
    // sweep.
    (
        &[
            "sweep",
            "submit",
            "s.toml",
            "--slurm",
            "--no-submit",
            "--dir",
            "sw",
        ],
        "--shards={}",
        &["1"],
    ),
];

const SCAN: &[&str] = &[
    "check",
    "--arch",
    "linear3",
    "--widths",
    "8,16",
    "--batch",
    "8",
    "--seeds",
    "1",
    "--no-spectral",
];
const SCAN_MLP: &[&str] = &[
    "check",
    "--arch",
    "mlp",
    "--widths",
    "8,16",
    "--batch",
    "8",
    "--seeds",
    "2",
    "--no-spectral",
];
const SCAN_RESMLP: &[&str] = &[
    "check",
    "--arch",
    "resmlp",
    "--widths",
    "8,16",
    "--batch",
    "8",
    "--seeds",
    "2",
    "--no-spectral",
];
const COORD: &[&str] = &[
    "coord", "--arch", "linear3", "--widths", "8,16", "--batch", "8",
];
const COORD_MLP: &[&str] = &[
    "coord", "--arch", "mlp", "--widths", "8,16", "--batch", "8", "--seeds", "1",
];
const COORD_RESMLP: &[&str] = &[
    "coord", "--arch", "resmlp", "--widths", "8,16", "--batch", "8", "--seeds", "1",
];
const TRAIN: &[&str] = &["train", "--width", "8", "--steps", "1"];
const TRAIN_NO_STEPS: &[&str] = &["train", "--width", "8", "--batch-size", "0"];
const TRAIN_NO_WIDTH: &[&str] = &["train", "--steps", "1"];
const TRAIN_RESMLP: &[&str] = &["train", "--arch", "resmlp", "--width", "8", "--steps", "1"];
const COMPARE: &[&str] = &[
    "ntk", "compare", "--widths", "8,16", "--rs", "0", "--seeds", "1", "--train", "8", "--test",
    "4", "--steps", "2", "--out", "t8",
];
const COMPARE_NO_WIDTHS: &[&str] = &[
    "ntk", "compare", "--rs", "0", "--seeds", "1", "--train", "8", "--test", "4", "--steps", "2",
    "--out", "t8",
];

/// Run `richness --threads 2 --quiet ARGS` in `dir` under `ulimit -v 4000000`, killed
/// after 300 s (a safety net against a hang, far beyond what any case needs: the
/// test does not depend on it to pass): (exit status, stderr).
#[cfg(target_os = "linux")]
fn run_limited(dir: &std::path::Path, args: &[String]) -> (Option<i32>, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4000000 && exec timeout -s KILL 300 \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_richness"))
        .args(["--threads", "2", "--quiet"])
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run richness");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn every_count_flag_at_every_hostile_value_is_refused_in_one_line_or_runs() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-counts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    fixtures(&dir);
    std::fs::write(dir.join("s.toml"), TINY_SWEEP).unwrap();
    // (arguments, legitimate, what the refusal must name).
    let mut cases: Vec<(Vec<String>, bool, String)> = Vec::new();
    for (base, flag, legit) in COUNT_FLAGS {
        // `--seeds={}` → `seeds`, `--set=train.batch_size={}` → `batch_size`; lists
        // (`--widths=8,{}`) are refused in words of their own (widths, dims, sizes).
        let key = match flag.strip_prefix("--set=") {
            Some(k) => k.split('=').next().unwrap().rsplit('.').next().unwrap(),
            None => flag.trim_start_matches('-').split('=').next().unwrap(),
        };
        // A width is refused by the memory it needs, in words of sizes.
        let needle = if flag.contains(',') || key == "width" {
            String::new()
        } else {
            key.to_string()
        };
        // The base's own value of this flag gives way to the tried one.
        let name = flag.split('=').next().unwrap();
        let mut kept: Vec<String> = Vec::new();
        let mut skip = false;
        for a in base.iter() {
            if skip {
                skip = false;
            } else if *a == name && name != "--set" {
                skip = true;
            } else {
                kept.push(a.to_string());
            }
        }
        for v in COUNT_VALUES {
            let mut args = kept.clone();
            args.push(flag.replace("{}", v));
            cases.push((args, legit.contains(v), needle.clone()));
        }
    }
    // The cases from the issue, verbatim, and two that are not counts of one flag.
    for args in [
        &[
            "check",
            "--widths",
            "8,16",
            "--seeds",
            "100000000000",
            "--batch",
            "16",
        ][..],
        &[
            "check",
            "--widths",
            "8,16",
            "--batch",
            "16",
            "--init-seeds",
            "100000000000",
        ],
        &[
            "check",
            "--widths",
            "8,16",
            "--batch",
            "16",
            "--arch",
            "mlp",
            "--depth",
            "100000000",
        ],
        &[
            "check",
            "--widths",
            "8,16",
            "--batch",
            "16",
            "--arch",
            "resmlp",
            "--blocks",
            "100000000",
        ],
        &[
            "ntk",
            "infinite",
            "--depth",
            "4000000000",
            "--x",
            "x.npy",
            "--out",
            "K.npy",
        ],
        &[
            "check",
            "--widths",
            "8,16",
            "--batch",
            "16",
            "--seeds",
            "18446744073709551615",
        ],
        &[
            "check",
            "--widths",
            "8,16",
            "--batch",
            "16",
            "--steps",
            "100000000000",
        ],
        &["train", "--steps", "3", "--epochs", "2"],
        &["train", "--batch-size", "18446744073709551615"],
        // Counts inside their ranges whose memory does not fit 4 GB: the budget.
        &[
            "check",
            "--widths",
            "8,16",
            "--batch",
            "16",
            "--seeds",
            "10000000",
            "--init-seeds",
            "10000000",
        ],
        &[
            "coord", "--widths", "8,16", "--batch", "16", "--seeds", "10000", "--steps", "1000000",
        ],
        &[
            "train",
            "--width",
            "8",
            "--steps",
            "1000000000",
            "--set",
            "train.eval_every=1000000000",
        ],
    ] {
        cases.push((
            args.iter().map(|s| s.to_string()).collect(),
            false,
            String::new(),
        ));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((args, legit, needle)) = cases.get(i) else {
                    break;
                };
                // Each case in its own folder: legitimate runs write files.
                let d = dir.join(format!("case{i}"));
                std::fs::create_dir_all(&d).unwrap();
                for f in ["x.npy", "eye.npy", "y.npy", "s.toml"] {
                    std::fs::copy(dir.join(f), d.join(f)).unwrap();
                }
                let (code, err) = run_limited(&d, args);
                let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
                let problem = if err.contains("panicked")
                    || err.contains("memory allocation")
                    || matches!(code, Some(101) | Some(134) | Some(137) | None)
                {
                    Some("panicked, aborted or hung")
                } else if *legit {
                    // A check may end in a failing verdict (exit 1) at these sizes.
                    (!matches!(code, Some(0) | Some(1))).then_some("refused a legitimate value")
                } else if code != Some(2) {
                    Some("not refused with exit 2")
                } else if lines != 1 {
                    Some("not one line")
                } else if !err.contains(needle.as_str()) {
                    Some("does not name the count")
                } else {
                    None
                };
                if let Some(p) = problem {
                    failures.lock().unwrap().push(format!(
                        "{p}: richness {} → exit {code:?}: {err}",
                        args.join(" ")
                    ));
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `richness --quiet --threads 1 ARGS` in `dir`, killed after 120 s (a safety net
/// against a hang; no case needs more than a few seconds): (exit status, stderr).
fn run_bounded(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .args(["-s", "KILL", "120"])
        .arg(env!("CARGO_BIN_EXE_richness"))
        .args(["--quiet", "--threads", "1"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run richness");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 2 with one line on stderr containing `needle`; else the reason.
fn refused(dir: &std::path::Path, args: &[&str], needle: &str) -> Option<String> {
    let (code, err) = run_bounded(dir, args);
    let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
    (code != Some(2) || lines != 1 || !err.contains(needle)).then(|| {
        format!(
            "richness {} → exit {code:?} (want 2, one line with `{needle}`): {err}",
            args.join(" ")
        )
    })
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[cfg(target_os = "linux")]
#[test]
fn outputs_never_replace_a_device_or_fifo() {
    use std::os::unix::fs::FileTypeExt;
    let dir = std::env::temp_dir().join(format!("richness-hostile-outputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    fixtures(&dir);
    mkfifo(&dir.join("fifo"));
    // A link to /dev/null stands for the device: were the check to regress, the
    // rename would replace the link, not /dev/null itself.
    std::os::unix::fs::symlink("/dev/null", dir.join("null")).unwrap();
    let mut failures = Vec::new();
    for (args, needle) in [
        (
            &[
                "ntk", "infinite", "--depth", "2", "--x", "x.npy", "--out", "fifo",
            ][..],
            "not a regular file",
        ),
        (
            &[
                "ntk",
                "infinite",
                "--depth",
                "2",
                "--x",
                "x.npy",
                "--out",
                "K.npy",
                "--eigenvalues",
                "null",
            ],
            "not a regular file",
        ),
        (
            &[
                "ntk",
                "empirical",
                "--dims",
                "2,8,1",
                "--x",
                "x.npy",
                "--out",
                "null",
            ],
            "not a regular file",
        ),
        (
            &[
                "ntk",
                "predict",
                "--k-train",
                "eye.npy",
                "--y",
                "y.npy",
                "--out",
                "fifo",
            ],
            "not a regular file",
        ),
        (
            &[
                "train",
                "--width",
                "8",
                "--steps",
                "0",
                "--save-init",
                "null",
            ],
            "not a regular file",
        ),
        (
            &["train", "--width", "8", "--steps", "1", "--out", "null"],
            "not a folder",
        ),
        (
            &["train", "--width", "8", "--steps", "1", "--out", "fifo"],
            "not a folder",
        ),
        (
            &["check", "--widths", "8,16", "--batch", "8", "--out", "null"],
            "not a folder",
        ),
        (
            &["reproduce", "T1", "--markdown", "fifo", "--out", "r"],
            "not a regular file",
        ),
        (
            &["reproduce", "T1", "--markdown", "null", "--out", "r"],
            "not a regular file",
        ),
    ] {
        failures.extend(refused(&dir, args, needle));
    }
    let fifo = std::fs::symlink_metadata(dir.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo(), "the FIFO was replaced");
    let null = std::fs::symlink_metadata(dir.join("null")).unwrap();
    assert!(
        null.file_type().is_symlink(),
        "the link to /dev/null was replaced"
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // A refused reproduce did no work.
    assert!(!dir.join("r").exists());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (steps in config.toml, in summary.json, of the last metrics row) of a run folder:
/// one run's files agree on all three.
fn run_steps(dir: &std::path::Path) -> (String, String, String) {
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let c = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("steps = "))
        .unwrap_or("?")
        .to_string();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let s = summary["steps"].to_string();
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let m = metrics
        .lines()
        .last()
        .and_then(|l| l.split(',').next())
        .unwrap_or("?")
        .to_string();
    (c, s, m)
}

#[test]
fn concurrent_runs_on_one_out_folder_are_refused_not_mixed() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for overwrite in [false, true] {
        // Four runs at once, each with its own step count; whatever the order, each
        // either finishes alone or is refused, and the folder holds one run.
        let children: Vec<_> = (0..4)
            .map(|i| {
                let steps = (40 + i).to_string();
                let mut c = Command::new(env!("CARGO_BIN_EXE_richness"));
                c.args([
                    "--quiet",
                    "--threads",
                    "1",
                    "train",
                    "--width",
                    "16",
                    "--steps",
                    &steps,
                    "--out",
                    "race",
                ])
                .current_dir(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
                if overwrite {
                    c.arg("--overwrite");
                }
                c.spawn().unwrap()
            })
            .collect();
        let mut ok = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => ok += 1,
                Some(2) => {
                    assert_eq!(err.trim().lines().count(), 1, "{err}");
                    assert!(
                        err.contains("another run is writing")
                            || err.contains("already holds files"),
                        "{err}"
                    );
                }
                other => panic!("exit {other:?}: {err}"),
            }
        }
        assert!(ok >= 1, "no run finished (overwrite {overwrite})");
        let (c, s, m) = run_steps(&dir.join("race"));
        assert!(
            c == s && s == m,
            "mixed folder (overwrite {overwrite}): config {c}, summary {s}, metrics {m}"
        );
        // No lock or staging folder is left behind.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["race".to_string()], "{names:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn overflowing_inputs_configs_stores_and_names_are_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-inputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    // A value beyond f32 trained to NaN weights under "completed".
    std::fs::write(
        dir.join("big.csv"),
        "a,b,label\n0,1,0\n2,1e300,1\n0,0,1\n1,1,0\n",
    )
    .unwrap();
    failures.extend(refused(
        &dir,
        &[
            "train",
            "--data",
            "csv:big.csv",
            "--width",
            "8",
            "--steps",
            "1",
        ],
        "input value 1e300 at row 1, column 1",
    ));
    failures.extend(refused(
        &dir,
        &[
            "train",
            "--data",
            "csv:big.csv",
            "--width",
            "8",
            "--steps",
            "1",
        ],
        "big.csv",
    ));
    failures.extend(refused(
        &dir,
        &["check", "--data", "csv:big.csv", "--widths", "8,16"],
        "beyond f32",
    ));
    // f64 holds it: trained (a loss that large diverges, exit 3, an honest result).
    let (code, err) = run_bounded(
        &dir,
        &[
            "train",
            "--data",
            "csv:big.csv",
            "--width",
            "8",
            "--steps",
            "1",
            "--dtype",
            "f64",
        ],
    );
    if !matches!(code, Some(0) | Some(3)) {
        failures.push(format!("f64 holds 1e300: exit {code:?}: {err}"));
    }
    // Finite γ₀ whose derived scalings are not.
    failures.extend(refused(
        &dir,
        &["table", "--dims", "4,1024,2", "--gamma0", "1e-300"],
        "not all finite",
    ));
    // A FIFO as a config would block forever.
    mkfifo(&dir.join("fifo.toml"));
    failures.extend(refused(&dir, &["train", "fifo.toml"], "FIFO"));
    failures.extend(refused(&dir, &["check", "--config", "fifo.toml"], "FIFO"));
    failures.extend(refused(&dir, &["sweep", "plan", "fifo.toml"], "FIFO"));
    // A sweep name is a folder name.
    std::fs::write(
        dir.join("evil.toml"),
        TINY_SWEEP.replace("name = \"tiny\"", "name = \"../../evil\""),
    )
    .unwrap();
    failures.extend(refused(
        &dir,
        &["sweep", "submit", "evil.toml", "--slurm", "--no-submit"],
        "sweep name",
    ));
    assert!(!dir.parent().unwrap().join("evil").exists() && !dir.join("evil").exists());
    // Error text: control characters escaped, length capped.
    let (_, err) = run_bounded(&dir, &["train", "no\u{1b}[31msuch.toml"]);
    if err.contains('\u{1b}') || !err.contains("\\u{1b}") {
        failures.push(format!("escape character printed raw: {err:?}"));
    }
    std::fs::write(
        dir.join("long.toml"),
        format!("[model]\narch = \"{}\"\n", "x".repeat(2_000_000)),
    )
    .unwrap();
    let (code, err) = run_bounded(&dir, &["train", "long.toml"]);
    if code != Some(2) || err.len() > 2000 || err.trim().lines().count() != 1 {
        failures.push(format!("long error: exit {code:?}, {} bytes", err.len()));
    }
    // A gzip bomb: 128 MiB of CSV in a few hundred kB, under a 256 MiB budget.
    {
        use std::io::Write;
        let f = std::fs::File::create(dir.join("bomb.csv.gz")).unwrap();
        let mut z = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        z.write_all(b"a,label\n").unwrap();
        let block = "0,1\n".repeat(1 << 16);
        for _ in 0..(128 << 20) / block.len() {
            z.write_all(block.as_bytes()).unwrap();
        }
        z.finish().unwrap();
    }
    for args in [
        &["--max-memory", "256M", "data", "inspect", "bomb.csv.gz"][..],
        &[
            "--max-memory",
            "256M",
            "train",
            "--data",
            "csv:bomb.csv.gz",
            "--steps",
            "1",
        ],
    ] {
        failures.extend(refused(&dir, args, "decompressing"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_damaged_store_is_not_trusted_on_resume_or_export() {
    let dir = std::env::temp_dir().join(format!("richness-hostile-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.toml"), TINY_SWEEP).unwrap();
    let (code, err) = run_bounded(&dir, &["sweep", "run", "s.toml", "--db", "d.sqlite"]);
    assert_eq!(code, Some(0), "{err}");
    // Zero every page but the first (the schema stays readable, the rows do not).
    let mut bytes = std::fs::read(dir.join("d.sqlite")).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() > page, "one-page store");
    for b in &mut bytes[page..] {
        *b = 0;
    }
    std::fs::write(dir.join("d.sqlite"), &bytes).unwrap();
    let mut failures = Vec::new();
    failures.extend(refused(
        &dir,
        &["sweep", "run", "s.toml", "--db", "d.sqlite", "--resume"],
        "d.sqlite",
    ));
    failures.extend(refused(
        &dir,
        &["sweep", "export", "--db", "d.sqlite", "--out", "e"],
        "d.sqlite",
    ));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
