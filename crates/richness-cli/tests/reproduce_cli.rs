//! `richness reproduce` end to end on tiny configs (the real ones take minutes),
//! and the HTML report opened in headless Chromium: a screenshot that must not be
//! blank and a console that must stay free of errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("richness-repro-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_richness"))
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run richness")
}

/// Tiny versions of every experiment's config (same schema as configs/reproduce/).
fn tiny_configs(dir: &Path) {
    let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    w(
        "t1.toml",
        r#"rs = [0.5]
[check]
data = "synthetic:teacher=linear,task=regression,n=32,n_test=0,d=10,k=1,seed=0"
widths = [32, 64, 128]
seeds = 3
batch = 32
dtype = "f64"
[check.model]
arch = "linear3"
"#,
    );
    w(
        "t2.toml",
        r#"presets = ["ntp", "mup"]
[check]
data = "digits"
widths = [32, 64, 128]
seeds = 3
batch = 32
spectral = false
[check.model]
arch = "mlp3"
"#,
    );
    let t3 = r#"presets = ["ntp", "ntp-lr", "mup", "mup-lr"]
seeds = 2
bundles = [["ntp", "ntp-lr"], ["mup", "mup-lr"]]
coincide_tol = 1e-6
[train]
dtype = "f64"
[train.model]
arch = "ARCH"
width = WIDTH
[train.optim]
momentum = 0.9
[train.data]
dataset = "digits"
train_size = 200
test_size = 100
[train.train]
epochs = 2
batch_size = 50
"#;
    w(
        "t3.toml",
        &t3.replace("ARCH", "mlp3").replace("WIDTH", "32"),
    );
    w(
        "t4.toml",
        &t3.replace("ARCH", "myrtle5").replace("WIDTH", "4"),
    );
    w(
        "t5.toml",
        r#"name = "t5-tiny"
[base]
model = { arch = "mlp3" }
optim = { momentum = 0.9 }
data = { dataset = "digits", train_size = 200, test_size = 100 }
train = { steps = 4, batch_size = 50 }
[[axes]]
"param.preset" = ["mup", "ntp"]
[[axes]]
"model.width" = [16, 32, 64]
[[axes]]
"param.base_lr" = { logspace = [0.5, 8, 5] }
[[axes]]
seed = { range = [0, 2] }
"#,
    );
    w(
        "t6.toml",
        r#"rs = [0.0]
quantities = ["dW_op_rel", "align", "grad_norm"]
[[checks]]
data = "synthetic:teacher=linear,task=regression,n=32,n_test=0,d=10,k=1,seed=0"
widths = [32, 64, 128]
seeds = 3
batch = 32
dtype = "f64"
[checks.model]
arch = "linear3"
"#,
    );
    w(
        "t7.toml",
        r#"rs = [-0.25, 0.0, 0.5, 0.75]
[check]
data = "digits"
widths = [32, 64, 128]
seeds = 2
batch = 32
spectral = false
[check.model]
arch = "mlp3"
[train]
[train.model]
arch = "mlp3"
width = 64
[train.data]
dataset = "digits"
train_size = 200
[train.train]
steps = 5
batch_size = 50
"#,
    );
    w(
        "t8.toml",
        r#"[compare]
widths = [32, 64]
rs = [0.0, 0.5]
seeds = 1
kernel_seeds = 2
depth = 3
n_train = 12
n_test = 6
steps = 3
base_lr = 0.2
gauge = "mup"
dtype = "f32"
"#,
    );
    w(
        "t9.toml",
        r#"name = "t9-tiny"
[base]
seed = 0
dtype = "f32"
param = { preset = "mup" }
model = { arch = "resmlp", width = 16, bias = false }
optim = { kind = "sgd", momentum = 0.9 }
data = { dataset = "digits", train_size = 128, test_size = 64 }
train = { steps = 4, batch_size = 32, eval_every = 4, loss = "mse" }
[[axes]]
"model.branch" = ["one", "sqrt-depth"]
[[axes]]
"model.blocks" = [1, 2, 4]
[[axes]]
"param.base_lr" = { logspace = [0.25, 16, 7] }
[[axes]]
seed = { range = [0, 3] }
"#,
    );
}

/// Shared: one tiny reproduce run per test binary.
fn report_dir() -> &'static PathBuf {
    use std::sync::OnceLock;
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tmp("report");
        let cfg = d.join("cfg");
        std::fs::create_dir_all(&cfg).unwrap();
        tiny_configs(&cfg);
        let out = d.join("out");
        let o = run(&[
            "reproduce",
            "--config-dir",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        // Tiny widths miss some predictions, but a written report exits 0.
        assert!(
            o.status.code() == Some(0),
            "status {:?}\n{stdout}\n{stderr}",
            o.status
        );
        assert!(stdout.contains("report:"), "{stdout}");
        out
    })
}

#[test]
fn every_experiment_has_a_section_and_every_claim_a_verdict() {
    let out = report_dir();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let exps = json["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 9);
    for (i, e) in exps.iter().enumerate() {
        let id = format!("T{}", i + 1);
        assert_eq!(e["id"], id.as_str());
        assert!(
            html.contains(&format!("id=\"t{}\"", i + 1)),
            "no section for {id}"
        );
        let claims = e["claims"].as_array().unwrap();
        assert!(e["error"].is_null(), "{id} could not run: {}", e["error"]);
        {
            assert!(!claims.is_empty(), "{id} has no claims");
            assert!(
                !e["figures"].as_array().unwrap().is_empty(),
                "{id} has no figure"
            );
        }
        for c in claims {
            let v = c["verdict"].as_str().unwrap();
            assert!(["pass", "fail", "unclear"].contains(&v), "{id}: {v}");
            assert!(!c["measured"].as_str().unwrap().is_empty());
        }
        // Every linked data file exists.
        for f in e["files"].as_array().unwrap() {
            assert!(out.join(f.as_str().unwrap()).is_file(), "{id}: missing {f}");
        }
        // The config used is saved for editing.
        assert!(out
            .join("configs")
            .join(format!("t{}.toml", i + 1))
            .is_file());
    }
    // Self-contained: figures inline, no external resources.
    assert!(html.matches("<svg").count() >= 9);
    for bad in ["http://", "https://", "<script", "src=\""] {
        let hits: Vec<&str> = html
            .match_indices(bad)
            .map(|(i, _)| &html[i.saturating_sub(40)..(i + 60).min(html.len())])
            .filter(|ctx| !ctx.contains("xmlns"))
            .collect();
        assert!(hits.is_empty(), "external reference {bad}: {hits:?}");
    }
    // T3 under identical seeds and data order: the gauge bundles coincide.
    let t3 = &exps[2]["claims"].as_array().unwrap();
    assert_eq!(t3[0]["verdict"], "pass", "{}", t3[0]);
}

#[test]
fn resume_keeps_finished_experiments() {
    let out = report_dir();
    let before = std::fs::read_to_string(out.join("t3/result.json")).unwrap();
    let o = run(&[
        "reproduce",
        "T3",
        "--resume",
        "--config-dir",
        out.parent().unwrap().join("cfg").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let after = std::fs::read_to_string(out.join("t3/result.json")).unwrap();
    assert_eq!(before, after, "a finished experiment was rerun");
}

#[test]
fn bad_experiment_names_and_configs_are_one_line_errors() {
    let d = tmp("bad");
    let o = run(&["reproduce", "T11", "--out", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown experiment `T11`") && err.lines().count() == 1,
        "{err}"
    );
    let o = run(&["reproduce", "--scale", "huge", "--out", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    // A broken file in --config-dir is refused before anything runs: one line naming
    // the file, exit 2, no report. T1's file is sound, so had T1 run first (it comes
    // before T3) its folder would exist.
    let cfg = d.join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    tiny_configs(&cfg);
    std::fs::write(cfg.join("t3.toml"), "presets = [\"nope\"]\n").unwrap();
    let out = d.join("out");
    let o = run(&[
        "reproduce",
        "T1",
        "T3",
        "--config-dir",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("t3.toml") && err.contains("T3 config"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.join("t1").exists() && !out.join("index.html").exists());
    // A missing file too.
    std::fs::remove_file(cfg.join("t3.toml")).unwrap();
    let o = run(&[
        "reproduce",
        "T3",
        "--config-dir",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("t3.toml") && err.trim().lines().count() == 1,
        "{err}"
    );
    // A well-formed file whose values only fail when the experiment runs (one width):
    // the report is written with that experiment's error, exit 0; --strict exits 1.
    let bad_values = d.join("cfg-values");
    std::fs::create_dir_all(&bad_values).unwrap();
    tiny_configs(&bad_values);
    let t1 = std::fs::read_to_string(bad_values.join("t1.toml")).unwrap();
    std::fs::write(
        bad_values.join("t1.toml"),
        t1.replace("widths = [32, 64, 128]", "widths = [32]"),
    )
    .unwrap();
    let out = d.join("out-values");
    let args = [
        "reproduce",
        "T1",
        "--config-dir",
        bad_values.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("error:") && out.join("index.html").exists(),
        "{stdout}"
    );
    let o = run(&[&args[..], &["--strict"]].concat());
    assert_eq!(o.status.code(), Some(1));
}

fn chromium() -> Option<PathBuf> {
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "headless_shell",
    ]
    .iter()
    .find_map(|name| {
        let ok = Command::new(name)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then(|| PathBuf::from(name))
    })
}

/// Screenshot `page` with headless Chromium; returns (non-white pixel fraction,
/// console error lines).
fn screenshot(browser: &Path, page: &Path, png_out: &Path) -> (f64, Vec<String>) {
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1600",
        ])
        .arg(format!("--screenshot={}", png_out.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let log = String::from_utf8_lossy(&o.stderr);
    let console: Vec<String> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(String::from)
        .collect();
    let file = std::fs::File::open(png_out)
        .unwrap_or_else(|e| panic!("no screenshot ({e}); chromium said:\n{log}"));
    let mut dec = png::Decoder::new(file);
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let n = px.len() / ch;
    let nonwhite = px
        .chunks(ch)
        .filter(|p| p.iter().take(3).any(|&v| v < 235))
        .count();
    (nonwhite as f64 / n as f64, console)
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var_os("RICHNESS_REQUIRE_CHROMIUM").is_some() {
            panic!("RICHNESS_REQUIRE_CHROMIUM is set but no chromium was found");
        }
        eprintln!("SKIPPED: headless Chromium not installed (apt-get install chromium); the report was not rendered");
        return;
    };
    let out = report_dir();
    let d = tmp("shot");
    // Controls first: the checks must be able to fail. A blank page is blank, and a
    // script error reaches the console log we read.
    let blank = d.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let (ink, _) = screenshot(&browser, &blank, &d.join("blank.png"));
    assert!(ink < 0.001, "blank control page has ink {ink}");
    let broken = d.join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('control-error'); undefinedFunction();</script></body></html>",
    )
    .unwrap();
    let (_, console) = screenshot(&browser, &broken, &d.join("broken.png"));
    assert!(
        !console.is_empty(),
        "the console-error control produced no console line: the check would be blind"
    );
    // The report itself.
    let shot = out.join("screenshot.png");
    let (ink, console) = screenshot(&browser, &out.join("index.html"), &shot);
    assert!(
        ink > 0.02,
        "the report's first screen looks blank (ink {ink})"
    );
    assert!(console.is_empty(), "console errors: {console:?}");
}
