//! End-to-end tests of the `richness` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_richness"));
    c.arg("--quiet");
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("richness-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run richness")
}

/// The process failed with status 2 and exactly one line on stderr containing `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected exit 2, stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(
        lines[0].contains(needle),
        "`{}` does not mention `{needle}`",
        lines[0]
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn table_json_has_the_documented_fields() {
    let out = run(&[
        "table",
        "--dims",
        "64,1024,1024,10",
        "--activation",
        "relu",
        "--richness",
        "0.25",
        "--gamma0",
        "1",
        "--gauge",
        "mup",
        "--optimizer",
        "sgd",
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["width", "alpha", "richness", "gauge", "base_lr", "layers"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["width"], 1024);
    assert_eq!(v["richness"], 0.25);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for l in layers {
        for k in [
            "name",
            "role",
            "fan_in",
            "fan_out",
            "multiplier",
            "init_std",
            "lr",
            "eff_init_var",
            "eff_lr",
            "a",
            "b",
            "c",
        ] {
            assert!(l.get(k).is_some(), "layer missing {k}");
        }
    }
    assert_eq!(layers[1]["role"], "hidden");
    let alpha = 1024f64.powf(0.25);
    assert!((layers[1]["multiplier"].as_f64().unwrap() - alpha / 32.0).abs() < 1e-12);
    // Presets and the other formats.
    for preset in ["ntp", "ntp-lr", "mup", "mup-lr", "mfp", "sp"] {
        let out = run(&[
            "table",
            "--dims",
            "64,256,256,10",
            "--preset",
            preset,
            "--format",
            "toml",
        ]);
        assert!(out.status.success(), "{preset}");
    }
}

fn train_args<'a>(cfg: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["train", cfg, "--out", out, "--threads", "2"]
}

const SMALL: &str = r#"
seed = 3
[model]
width = 96
[param]
preset = "mup"
[optim]
momentum = 0.9
[data]
dataset = "digits"
train_size = 300
test_size = 100
[train]
epochs = 2
batch_size = 32
"#;

#[test]
fn identical_runs_write_identical_metrics_and_weights() {
    let d = tmp("determinism");
    let cfg = write(&d, "c.toml", SMALL);
    let (a, b) = (d.join("a"), d.join("b"));
    for out in [&a, &b] {
        let o = run(&train_args(cfg.to_str().unwrap(), out.to_str().unwrap()));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert!(
        read(a.join("metrics.csv")) == read(b.join("metrics.csv")),
        "metrics.csv differ"
    );
    assert!(
        read(a.join("weights.safetensors")) == read(b.join("weights.safetensors")),
        "weights differ"
    );
    // metrics.csv: header, step 0, one row per step (2 epochs × 10 batches).
    let csv = String::from_utf8(read(a.join("metrics.csv"))).unwrap();
    assert!(csv.starts_with("step,epoch,train_loss,test_loss,test_acc\n"));
    assert_eq!(csv.lines().count(), 1 + 1 + 20);
    // The resolved config is a valid config that reproduces the run.
    let c = d.join("c2");
    let o = run(&train_args(
        a.join("config.toml").to_str().unwrap(),
        c.to_str().unwrap(),
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        read(a.join("metrics.csv")) == read(c.join("metrics.csv")),
        "resolved config does not reproduce"
    );
    // Another seed gives another run.
    let e = d.join("e");
    let o = bin()
        .args(train_args(cfg.to_str().unwrap(), e.to_str().unwrap()))
        .args(["--seed", "4"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        read(a.join("metrics.csv")) != read(e.join("metrics.csv")),
        "seed has no effect"
    );
}

#[test]
fn init_weights_round_trip_and_metadata() {
    let d = tmp("initw");
    let cfg = write(&d, "c.toml", SMALL);
    let a = d.join("a");
    assert!(run(&train_args(cfg.to_str().unwrap(), a.to_str().unwrap()))
        .status
        .success());
    let w = a.join("weights.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    // safetensors header: 8-byte length then JSON with our tensor names and metadata.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(
        header["layers.0.weight"]["shape"],
        serde_json::json!([96, 64])
    );
    assert_eq!(
        header["layers.2.weight"]["shape"],
        serde_json::json!([10, 96])
    );
    assert_eq!(header["layers.0.weight"]["dtype"], "F32");
    let param: serde_json::Value = serde_json::from_str(
        header["__metadata__"]["richness.parameterization"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(param["richness"], 0.5);
    // Continue from those weights: the first evaluation equals the last one of run a.
    let b = d.join("b");
    let o = bin()
        .args(train_args(cfg.to_str().unwrap(), b.to_str().unwrap()))
        .args(["--init-weights", w.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let last_a = std::fs::read_to_string(a.join("metrics.csv"))
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .split(',')
        .nth(3)
        .unwrap()
        .to_string();
    let first_b = std::fs::read_to_string(b.join("metrics.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(3)
        .unwrap()
        .to_string();
    assert_eq!(last_a, first_b);
    // Weights of another shape are refused with one line.
    let other = write(&d, "wide.toml", &SMALL.replace("width = 96", "width = 128"));
    let o = bin()
        .args(train_args(
            other.to_str().unwrap(),
            d.join("c").to_str().unwrap(),
        ))
        .args(["--init-weights", w.to_str().unwrap()])
        .output()
        .unwrap();
    assert_one_line_error(&o, "shape");
}

#[test]
fn diverged_run_stops_with_status_3_and_keeps_metrics() {
    let d = tmp("diverge");
    let cfg = write(
        &d,
        "c.toml",
        &SMALL.replace("preset = \"mup\"", "preset = \"mup\"\nbase_lr = 1e6"),
    );
    let out = d.join("o");
    let o = run(&train_args(cfg.to_str().unwrap(), out.to_str().unwrap()));
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("diverged"));
    assert!(out.join("metrics.csv").exists());
    assert!(!out.join("weights.safetensors").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "diverged");
}

fn npy(descr: &str, shape: &[usize], raw: &[u8]) -> Vec<u8> {
    let shape_txt = if shape.len() == 1 {
        format!("({},)", shape[0])
    } else {
        format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(raw);
    b
}

#[test]
fn bad_input_gives_one_line_errors() {
    let d = tmp("bad");
    let ds = d.to_str().unwrap();
    // Unknown key in a config.
    let c = write(&d, "unknown.toml", "[model]\nwidht = 64\n");
    assert_one_line_error(&run(&["train", c.to_str().unwrap()]), "widht");
    let c = write(&d, "unknown_top.toml", "sed = 1\n");
    assert_one_line_error(&run(&["train", c.to_str().unwrap()]), "sed");
    // Negative width, in a config and on the command line.
    let c = write(&d, "neg.toml", "[model]\nwidth = -3\n");
    assert_one_line_error(&run(&["train", c.to_str().unwrap()]), "width");
    assert_one_line_error(&run(&["train", "--width", "-3"]), "--width");
    assert_one_line_error(&run(&["table", "--dims", "64,-3,10"]), "--dims");
    assert_one_line_error(&run(&["table", "--dims", "64,0,10"]), "dims");
    // r that is not a number.
    assert_one_line_error(
        &run(&["table", "--dims", "64,256,10", "--richness", "abc"]),
        "--richness",
    );
    let c = write(&d, "r.toml", "[param]\nrichness = \"abc\"\n");
    assert_one_line_error(&run(&["train", c.to_str().unwrap()]), "richness");
    let c = write(&d, "rnan.toml", "[param]\nrichness = nan\n");
    assert_one_line_error(&run(&["train", c.to_str().unwrap()]), "richness");
    // Conflicting choices.
    assert_one_line_error(
        &run(&[
            "table",
            "--dims",
            "64,256,10",
            "--preset",
            "mup",
            "--richness",
            "0.1",
        ]),
        "preset",
    );
    // Missing .npy.
    let spec = format!("npy:{ds}/nope.npy,{ds}/nope_y.npy");
    assert_one_line_error(&run(&["train", "--data", &spec]), "nope.npy");
    // Malformed .npy: wrong magic, header/data disagreement, object dtype.
    std::fs::write(d.join("junk.npy"), b"not an npy file at all").unwrap();
    let y = npy("<i8", &[4], &[0u8; 32]);
    std::fs::write(d.join("y4.npy"), &y).unwrap();
    let spec = format!("npy:{ds}/junk.npy,{ds}/y4.npy");
    assert_one_line_error(&run(&["train", "--data", &spec]), "junk.npy");
    std::fs::write(d.join("short.npy"), npy("<f4", &[4, 3], &[0u8; 40])).unwrap();
    let spec = format!("npy:{ds}/short.npy,{ds}/y4.npy");
    assert_one_line_error(&run(&["train", "--data", &spec]), "short.npy");
    std::fs::write(d.join("obj.npy"), npy("|O", &[4, 3], &[0u8; 96])).unwrap();
    let spec = format!("npy:{ds}/obj.npy,{ds}/y4.npy");
    assert_one_line_error(&run(&["train", "--data", &spec]), "object");
    // Shape mismatches: rows of x and y, and dims against the data.
    std::fs::write(d.join("x5.npy"), npy("<f4", &[5, 3], &[0u8; 60])).unwrap();
    let spec = format!("npy:{ds}/x5.npy,{ds}/y4.npy");
    assert_one_line_error(&run(&["train", "--data", &spec]), "rows");
    std::fs::write(d.join("x4.npy"), npy("<f4", &[4, 3], &[0u8; 48])).unwrap();
    let c = write(&d, "dims.toml", "[model]\ndims = [5, 32, 32, 1]\n");
    let spec = format!("npy:{ds}/x4.npy,{ds}/y4.npy");
    assert_one_line_error(
        &run(&["train", c.to_str().unwrap(), "--data", &spec]),
        "dims",
    );
    // A sane npy pair trains.
    let xs: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.1).to_le_bytes())
        .collect();
    std::fs::write(d.join("xok.npy"), npy("<f4", &[4, 3], &xs)).unwrap();
    let labels: Vec<u8> = [0i64, 1, 2, 1]
        .iter()
        .flat_map(|l| l.to_le_bytes())
        .collect();
    std::fs::write(d.join("yok.npy"), npy("<i8", &[4], &labels)).unwrap();
    let spec = format!("npy:{ds}/xok.npy,{ds}/yok.npy");
    let o = run(&["train", "--data", &spec, "--width", "16", "--steps", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Unknown dataset, bad --set.
    assert_one_line_error(&run(&["train", "--data", "imagenet"]), "imagenet");
    assert_one_line_error(&run(&["train", "--set", "train.epochs"]), "key=value");
    // A missing config file.
    assert_one_line_error(
        &run(&["train", "/nonexistent/c.toml"]),
        "/nonexistent/c.toml",
    );
}

#[test]
fn example_configs_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml")
            && !p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sweep")
        {
            let o = run(&["train", p.to_str().unwrap(), "--dry-run"]);
            assert!(
                o.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn regression_runs_report_no_accuracy() {
    let d = tmp("regression-acc");
    let out = d.join("reg");
    let o = run(&[
        "train",
        "--data",
        "synthetic:teacher=linear,task=regression,n=64,n_test=32,d=4,k=1",
        "--width",
        "16",
        "--steps",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("test loss"), "{stdout}");
    assert!(!stdout.contains("test acc"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut evaluated = 0;
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), 5, "{line}");
        assert_eq!(cells[4], "", "test_acc of a regression run: {line}");
        if !cells[3].is_empty() {
            evaluated += 1;
        }
    }
    assert!(evaluated >= 2, "{csv}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["final_test_loss"].is_number());
    assert!(summary["final_test_acc"].is_null(), "{summary}");

    // Classification keeps its accuracy.
    let cfg = write(&d, "c.toml", SMALL);
    let cls = d.join("cls");
    let o = run(&train_args(cfg.to_str().unwrap(), cls.to_str().unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("test acc"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cls.join("summary.json")).unwrap()).unwrap();
    let acc = summary["final_test_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let csv = std::fs::read_to_string(cls.join("metrics.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().split(',').nth(4).unwrap() != "");
}

/// Every config's header comment names the file itself in its command lines, and a
/// config with a preset describes that preset (and suggests overriding it with
/// another one, not with itself).
#[test]
fn config_headers_match_their_files() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    walk(&repo.join("configs"), &mut files);
    assert!(files.len() >= 20, "{files:?}");
    for p in files {
        let rel = p
            .strip_prefix(&repo)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&p).unwrap();
        let header: Vec<&str> = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim())
            .collect();
        assert!(!header.is_empty(), "{rel}: no header comment");
        for line in &header {
            let cmd = line.trim_start_matches("Run:").trim();
            if !cmd.starts_with("richness ") {
                continue;
            }
            for word in cmd.split_whitespace() {
                if word.starts_with("configs/") && word.ends_with(".toml") {
                    assert_eq!(
                        word, rel,
                        "{rel}: header command `{cmd}` names another file"
                    );
                }
            }
        }
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let preset = doc
            .get("param")
            .and_then(|t| t.get("preset"))
            .and_then(|v| v.as_str());
        if let Some(preset) = preset {
            let label = |p: &str| match p {
                "ntp" | "ntp-lr" => "NTP",
                "mup" | "mup-lr" => "μP",
                "mfp" => "MFP",
                _ => "SP",
            };
            assert!(
                header[0].contains(label(preset)),
                "{rel}: preset `{preset}` but the header says `{}`",
                header[0]
            );
            for other in ["NTP", "μP"].into_iter().filter(|l| *l != label(preset)) {
                assert!(
                    !header[0].contains(other),
                    "{rel}: preset `{preset}` but the header says `{}`",
                    header[0]
                );
            }
            let own = format!("--preset {preset},");
            assert!(
                !header.iter().any(|l| l.contains(&own)),
                "{rel}: the header suggests overriding preset `{preset}` with itself"
            );
        }
    }
}

/// The command lines of an "Examples:" section (a wrapped example continues on the
/// next lines until a blank line or the next `richness` line).
fn help_examples(help: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_examples = false;
    let mut open = false;
    for line in help.lines() {
        let t = line.trim();
        if t.starts_with("Examples:") || t.starts_with("Example:") {
            in_examples = true;
            continue;
        }
        if !in_examples {
            continue;
        }
        if t.is_empty() {
            open = false;
            continue;
        }
        if t.starts_with(prefix) {
            out.push(t.to_string());
            open = true;
        } else if open && line.starts_with(' ') {
            let last = out.last_mut().unwrap();
            last.push(' ');
            last.push_str(t);
        } else {
            open = false;
        }
    }
    out
}

/// Every example of `richness train --help` (and the --set example in the option
/// list, and the overrides a config header suggests) runs, as a dry run.
#[test]
fn train_help_examples_work() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let help = String::from_utf8(run(&["train", "--help"]).stdout).unwrap();
    let mut commands = help_examples(&help, "richness train");
    assert!(commands.len() >= 4, "{help}");
    // The option list's own example.
    let set_example = help
        .split_whitespace()
        .skip_while(|w| *w != "--set")
        .find(|w| w.contains('=') && !w.starts_with('<'))
        .unwrap()
        .trim_end_matches(['.', ',', ')'])
        .to_string();
    assert_eq!(set_example, "param.richness=0.25");
    commands.push(format!(
        "richness train configs/digits-mup.toml --set {set_example}"
    ));
    // configs/digits-*.toml: "Any key can be overridden: --preset …, --richness …".
    for name in ["digits-mup.toml", "digits-ntp.toml"] {
        let text = std::fs::read_to_string(repo.join("configs").join(name)).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("can be overridden"))
            .unwrap();
        let overrides = line.split_once(':').unwrap().1;
        for o in overrides
            .split(',')
            .map(str::trim)
            .filter(|o| o.starts_with("--"))
        {
            commands.push(format!("richness train configs/{name} {o}"));
        }
    }
    for cmd in &commands {
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let o = bin()
            .args(&args)
            .arg("--dry-run")
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "`{cmd} --dry-run` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        if cmd.contains("richness=0.25") || cmd.contains("--richness 0.25") {
            assert!(out.contains("# r=0.25 gauge=mup"), "{cmd}:\n{out}");
        }
    }
}

#[test]
fn set_replaces_the_keys_it_is_an_alternative_to() {
    let d = tmp("set-alternatives");
    let dry = |cfg: &str, sets: &[&str]| -> String {
        let c = write(&d, "c.toml", cfg);
        let mut args = vec!["train", c.to_str().unwrap(), "--dry-run"];
        for s in sets {
            args.extend(["--set", s]);
        }
        let o = run(&args);
        assert!(
            o.status.success(),
            "{sets:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let preset = "[model]\nwidth = 32\n[param]\npreset = \"mup\"\n[train]\nepochs = 2\n";
    let out = dry(preset, &["param.richness=0.25"]);
    assert!(out.contains("# r=0.25 gauge=mup"), "{out}");
    assert!(!out.contains("preset ="), "{out}");
    let out = dry(preset, &["param.alpha=2"]);
    assert!(out.contains("# alpha=2"), "{out}");
    let scale = "[model]\ndims = [64, 32, 32, 10]\n[param]\nrichness = 0.25\ngauge = \"layerwise\"\n[train]\nsteps = 5\n";
    let out = dry(scale, &["param.preset=ntp"]);
    assert!(out.contains("# preset=ntp"), "{out}");
    let out = dry(scale, &["model.width=48", "train.epochs=1"]);
    assert!(out.contains("dims = [64, 48, 48, 10]"), "{out}");
    assert!(
        out.contains("epochs = 1") && !out.contains("steps ="),
        "{out}"
    );
    // The last override wins.
    let out = dry(preset, &["param.richness=0.25", "param.preset=ntp"]);
    assert!(out.contains("# preset=ntp"), "{out}");
}

/// The scale flags follow the rule `--set` uses (`ScaleChoice::clear_alternatives`):
/// each replaces what it is an alternative to in the config, while two flags that
/// contradict each other are still an error.
#[test]
fn scale_flags_replace_their_alternatives_in_the_config() {
    let d = tmp("flag-alternatives");
    let preset = write(
        &d,
        "p.toml",
        "[model]\nwidth = 32\n[param]\npreset = \"mup\"\n[train]\nepochs = 2\n",
    );
    let scale = write(
        &d,
        "s.toml",
        "[model]\nwidth = 32\n[param]\nrichness = 0.25\ngauge = \"layerwise\"\n[train]\nepochs = 2\n",
    );
    let dry = |cfg: &Path, flags: &[&str]| {
        let mut args = vec!["train", cfg.to_str().unwrap(), "--dry-run"];
        args.extend(flags);
        run(&args)
    };
    let out = |o: Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let o = out(dry(&preset, &["--richness", "0.25"]));
    assert!(
        o.contains("# r=0.25 gauge=mup") && !o.contains("preset ="),
        "{o}"
    );
    let o = out(dry(&preset, &["--alpha", "2"]));
    assert!(o.contains("# alpha=2"), "{o}");
    // A preset fixes the gauge, so it replaces the file's gauge too.
    let o = out(dry(&scale, &["--preset", "ntp"]));
    assert!(o.contains("# preset=ntp") && !o.contains("gauge ="), "{o}");
    // r replaces r and keeps the file's gauge.
    let o = out(dry(&scale, &["--richness", "0.5"]));
    assert!(o.contains("# r=0.5 gauge=layerwise"), "{o}");
    let o = dry(&scale, &["--preset", "ntp", "--richness", "0.5"]);
    assert!(!o.status.success(), "conflicting flags were accepted");
}

/// `--set` errors name the override as typed, never a line of the re-serialised
/// config the user did not write.
#[test]
fn set_errors_name_the_override() {
    let cases = [
        ("train.epochs=abc", "expected a non-negative integer"),
        ("model.widht=3", "unknown field `widht`"),
        ("param.richness=x", "expected a number"),
        ("seed.x=1", "`seed` is not a table"),
    ];
    for (set, needle) in cases {
        let o = run(&["train", "--set", set, "--dry-run"]);
        assert_one_line_error(&o, &format!("--set {set}: "));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{set}: {err}");
        assert!(!err.contains("line "), "{set}: {err}");
    }
    // Errors in a config file still point at its line.
    let d = tmp("set-errors");
    let c = write(&d, "c.toml", "seed = 1\n[train]\nepochs = \"abc\"\n");
    let o = run(&["train", c.to_str().unwrap()]);
    assert_one_line_error(&o, "line 3 (`epochs = \"abc\"`)");
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected a non-negative integer"));
}

/// `data fetch --help` and `data list --help` describe the data folder as the code
/// chooses it: --dir, $RICHNESS_DATA, $XDG_DATA_HOME/richness/data, ~/.local/share.
#[test]
fn data_help_gives_the_data_folder_order() {
    for sub in ["fetch", "list"] {
        let o = run(&["data", sub, "--help"]);
        assert!(o.status.success());
        let help = String::from_utf8(o.stdout).unwrap();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let dir = flat
            .split("--dir <DIR>")
            .nth(1)
            .unwrap_or_else(|| panic!("{help}"));
        let order = [
            "$RICHNESS_DATA",
            "$XDG_DATA_HOME/richness/data",
            "~/.local/share/richness/data",
        ];
        let pos: Vec<usize> = order
            .iter()
            .map(|w| {
                dir.find(w)
                    .unwrap_or_else(|| panic!("data {sub} --help: no {w} in --dir: {dir}"))
            })
            .collect();
        assert!(pos.windows(2).all(|p| p[0] < p[1]), "data {sub}: {dir}");
    }
}

/// `mnist:DIR` reads the files from DIR itself; a missing file says so, rather
/// than blaming the data folder (which this spec does not use).
#[test]
fn mnist_dir_spec_reads_that_folder() {
    let d = tmp("mnist-dir");
    let spec = format!("mnist:{}", d.display());
    let o = run(&["train", "--data", &spec, "--dry-run"]);
    assert_one_line_error(
        &o,
        &format!(
            "{}: not found: `{spec}`",
            d.join("train-images-idx3-ubyte").display()
        ),
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("data folder"));
    // Without DIR, the data folder (here: RICHNESS_DATA) is meant.
    let o = bin()
        .args(["train", "--data", "mnist", "--dry-run"])
        .env("RICHNESS_DATA", &d)
        .output()
        .unwrap();
    assert_one_line_error(&o, "mnist is not in the data folder");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&d.join("mnist").display().to_string()));
}

/// Output into a pipe whose reader has gone (`… --dry-run | head -1`) ends the
/// process quietly: no panic, nothing on stderr.
#[cfg(unix)]
#[test]
fn closed_stdout_pipe_is_not_a_panic() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let commands: [&[&str]; 4] = [
        &["train", "configs/digits-mup.toml", "--dry-run"],
        &["table", "--dims", "64,256,256,10", "--preset", "mup"],
        &["train", "--help"],
        &["data", "list", "--dir", "/nonexistent/richness-data"],
    ];
    for args in commands {
        // A pipe whose read end is closed before the process starts: its first
        // write to stdout meets a broken pipe, whatever the timing.
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        let o = bin()
            .args(args)
            .current_dir(&repo)
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.trim().is_empty(), "{args:?}: {err}");
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            o.status
        );
    }
}

/// A file the OS cannot open is one clean line that says the OS error once.
#[test]
fn missing_files_say_the_os_error_once() {
    let d = tmp("missing-files");
    let ds = d.display();
    let cases = [
        format!("idx:{ds}/a-images,{ds}/a-labels"),
        format!("idx:x={ds}/b-images,y={ds}/b-labels"),
        format!("npy:{ds}/c.npy,{ds}/c_y.npy"),
    ];
    for spec in &cases {
        let o = run(&["train", "--data", spec, "--dry-run"]);
        let first = spec
            .split([':', ',', '='])
            .find(|p| p.starts_with('/'))
            .unwrap();
        assert_one_line_error(&o, &format!("error: {first}: "));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.matches("os error").count(), 1, "{err}");
    }
    let o = run(&["train", &format!("{ds}/nope.toml")]);
    assert_one_line_error(&o, "nope.toml");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .matches("os error")
            .count(),
        1
    );
}

/// Every subcommand's --help, found by following the "Commands:" lists.
fn all_helps() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let o = bin().args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        let help = String::from_utf8(o.stdout).unwrap();
        let mut in_commands = false;
        for line in help.lines() {
            if line.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if in_commands {
                if !line.starts_with("  ") {
                    in_commands = false;
                    continue;
                }
                // "  name  description"; continuation lines are indented further.
                if line.starts_with("   ") {
                    continue;
                }
                let name = line.split_whitespace().next().unwrap();
                if name != "help" {
                    let mut sub = path.clone();
                    sub.push(name.to_string());
                    todo.push(sub);
                }
            }
        }
        out.push((path.join(" "), help));
    }
    out
}

/// No option's help states its default twice (clap's `[default: …]` plus one
/// written into the doc comment).
#[test]
fn help_never_states_a_default_twice() {
    let helps = all_helps();
    assert!(helps.len() >= 20, "{}", helps.len());
    for (cmd, help) in helps {
        // Split the help into one block per option (an indented line starting with
        // a dash begins one; an unindented line is a section heading). Long help
        // puts clap's `[default: …]` after a blank line, so blank lines do not end
        // a block.
        let mut blocks: Vec<String> = Vec::new();
        for line in help.lines() {
            let t = line.trim_start();
            if t.starts_with('-') && line.starts_with(' ') {
                blocks.push(String::new());
            } else if !line.trim().is_empty() && !line.starts_with(' ') {
                blocks.push(String::new());
                continue;
            }
            if let Some(b) = blocks.last_mut() {
                b.push_str(t);
                b.push(' ');
            }
        }
        for b in blocks {
            assert!(
                b.matches("[default:").count() <= 1,
                "richness {cmd} --help: {b}"
            );
        }
    }
}

/// `--arch resmlp` end to end: train writes B + 2 weight tensors with the resolved
/// residual keys in its config, and the empirical NTK of those weights (read back with
/// their metadata) has the shape of the data.
#[test]
fn resmlp_trains_and_its_weights_give_a_kernel() {
    let dir = tmp("resmlp");
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--arch",
        "resmlp",
        "--blocks",
        "3",
        "--norm",
        "layer",
        "--branch",
        "sqrt-depth",
        "--width",
        "32",
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--dtype",
        "f64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
    for key in [
        "arch = \"resmlp\"",
        "blocks = 3",
        "norm = \"layer\"",
        "branch = \"sqrt-depth\"",
    ] {
        assert!(cfg.contains(key), "config.toml lacks {key}:\n{cfg}");
    }
    let weights = std::fs::read(out.join("weights.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&weights[8..8 + header_len]);
    assert!(header.contains("layers.4.weight") && !header.contains("layers.5.weight"));
    // Inputs: 20 embedded test digits, as an .npy of 64 columns.
    let digits = dir.join("digits");
    let o = run(&[
        "data",
        "export",
        "digits",
        "--test-size",
        "20",
        "--out",
        digits.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let x = digits.join("x_test.npy");
    let k = dir.join("k.npy");
    let o = run(&[
        "ntk",
        "empirical",
        "--init-weights",
        out.join("weights.safetensors").to_str().unwrap(),
        "--x",
        x.to_str().unwrap(),
        "--out",
        k.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resmlp"));
    // The resolved config names the residual defaults too.
    let o = run(&["train", "--arch", "resmlp", "--dry-run"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for key in ["blocks = 2", "norm = \"none\"", "branch = \"one\""] {
        assert!(text.contains(key), "dry run lacks {key}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
