//! Sweep specs: a base config plus axes, expanded into a list of runs.
//!
//! ```toml
//! name = "example"
//! base = "../digits-mup.toml"      # a config file (relative to this file), or an inline [base] table
//!
//! [set]                           # overrides on the base, by dotted key
//! "train.steps" = 100
//!
//! [[axes]]                        # one key: an axis
//! "model.width" = [64, 128, 256]
//!
//! [[axes]]                        # several keys: a zip group (they vary together)
//! "param.preset" = ["ntp", "mup"]
//! "optim.momentum" = [0.0, 0.9]
//!
//! [[axes]]
//! "param.base_lr" = { logspace = [0.5, 64, 8] }   # 8 values from 0.5 to 64, log-spaced
//!
//! [[axes]]
//! seed = { range = [0, 3] }                       # 0, 1, 2
//! ```
//!
//! Runs are the Cartesian product of the `[[axes]]` groups, in the order written
//! (the first group is the outermost loop); the keys of one group are zipped (and
//! listed alphabetically in run labels). Every
//! key is a dotted [`TrainConfig`] key, as `richness train --set` takes. Value forms:
//! a list of TOML values; `{ logspace = [lo, hi, count] }` (geometric, endpoints
//! included; add `integer = true` to round, e.g. for widths); `{ linspace = [lo, hi,
//! count] }`; `{ range = [start, stop] }` or `[start, stop, step]` (integers, stop
//! excluded).
//!
//! A run's id is the first 16 hex digits of the SHA-256 of its config as canonical
//! TOML ([`TrainConfig::to_toml`]): the same config always has the same id, whatever
//! the spec's order, shard or machine. Log-spaced values are computed with the
//! portable `libm`, so they (and the ids) do not depend on the platform's libm.

use crate::error::{Error, Result};
use crate::train::TrainConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Most runs one spec may expand to.
pub const MAX_RUNS: usize = 1_000_000;

/// What the runner stores per run besides the evaluation rows.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Store the training (batch) loss every this many steps (0 = only the last).
    #[serde(default = "one")]
    pub every: usize,
}

fn one() -> usize {
    1
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig { every: 1 }
    }
}

/// One key and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<toml::Value>,
}

/// Axes that vary together (one axis when it has one key).
#[derive(Clone, Debug, PartialEq)]
pub struct AxisGroup {
    pub axes: Vec<Axis>,
}

impl AxisGroup {
    pub fn len(&self) -> usize {
        self.axes.first().map(|a| a.values.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed sweep spec.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    pub name: String,
    /// The base config, with `[set]` applied.
    pub base: TrainConfig,
    pub groups: Vec<AxisGroup>,
    pub record: RecordConfig,
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// Position in the expanded spec (0-based).
    pub index: usize,
    /// Stable id: hash of the config.
    pub id: String,
    /// `key=value` for each axis, space-separated.
    pub label: String,
    /// The axis assignments of this run, in axis order.
    pub params: Vec<(String, toml::Value)>,
    pub config: TrainConfig,
}

impl PlannedRun {
    /// The axis assignments as a JSON object (key → value).
    pub fn params_json(&self) -> String {
        let mut m = serde_json::Map::new();
        for (k, v) in &self.params {
            m.insert(k.clone(), toml_to_json(v));
        }
        serde_json::Value::Object(m).to_string()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: Option<String>,
    base: Option<toml::Value>,
    #[serde(default)]
    set: toml::Table,
    #[serde(default)]
    axes: Vec<toml::Table>,
    #[serde(default)]
    record: RecordConfig,
}

impl SweepSpec {
    /// Read a spec file; `base = "file.toml"` is looked up next to the spec, then
    /// in the current folder.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::files::read_config_text(path)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into());
        Self::from_toml(&text, &path.display().to_string(), path.parent(), &stem)
    }

    /// Parse spec text. `origin` names it in errors, `dir` is where a base file is
    /// looked up first, `default_name` is used when the spec has no `name`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        dir: Option<&Path>,
        default_name: &str,
    ) -> Result<Self> {
        let file: SpecFile = toml::from_str(text)
            .map_err(|e| Error::config(crate::files::toml_error(origin, text, &e)))?;
        let mut base = match &file.base {
            None => TrainConfig::default(),
            Some(toml::Value::Table(t)) => TrainConfig::from_toml(
                &toml::to_string(t).expect("toml"),
                &format!("{origin}: [base]"),
            )?,
            Some(toml::Value::String(p)) => {
                let candidates: Vec<PathBuf> = match dir {
                    Some(d) if Path::new(p).is_relative() => vec![d.join(p), PathBuf::from(p)],
                    _ => vec![PathBuf::from(p)],
                };
                let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
                    Error::config(format!(
                        "{origin}: base config `{p}` not found (looked in {})",
                        candidates
                            .iter()
                            .map(|c| c.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ))
                })?;
                TrainConfig::from_file(found)?
            }
            Some(_) => {
                return Err(Error::config(format!(
                    "{origin}: `base` must be a file name or a [base] table"
                )))
            }
        };
        for (k, v) in &file.set {
            base.set_value(k, v.clone(), &format!("{origin}: [set] `{k}`"))?;
        }
        let mut groups = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (gi, table) in file.axes.iter().enumerate() {
            let what = format!("{origin}: [[axes]] #{}", gi + 1);
            if table.is_empty() {
                return Err(Error::config(format!("{what} is empty")));
            }
            let mut axes = Vec::new();
            for (key, spec) in table {
                if seen.contains(key) {
                    return Err(Error::config(format!(
                        "{what}: `{key}` appears in two axes"
                    )));
                }
                seen.push(key.clone());
                let values = axis_values(spec)
                    .map_err(|m| Error::config(format!("{what}: `{key}`: {m}")))?;
                axes.push(Axis {
                    key: key.clone(),
                    values,
                });
            }
            let n = axes[0].values.len();
            if let Some(bad) = axes.iter().find(|a| a.values.len() != n) {
                return Err(Error::config(format!(
                    "{what}: a zip group needs equal lengths, but `{}` has {n} values and `{}` has {}",
                    axes[0].key,
                    bad.key,
                    bad.values.len()
                )));
            }
            groups.push(AxisGroup { axes });
        }
        let spec = SweepSpec {
            name: match file.name {
                Some(n) => checked_name(origin, n)?,
                // A file's stem: made safe rather than refused.
                None => default_name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .take(100)
                    .collect(),
            },
            base,
            groups,
            record: file.record,
        };
        let count = spec.count();
        if count > MAX_RUNS as u128 {
            return Err(Error::config(format!(
                "{origin}: {count} runs is more than {MAX_RUNS}"
            )));
        }
        Ok(spec)
    }

    /// Number of runs (the product of the group lengths).
    pub fn count(&self) -> u128 {
        // Saturating: 128 axes of two values each overflow u128.
        self.groups
            .iter()
            .fold(1u128, |n, g| n.saturating_mul(g.len() as u128))
    }

    /// Every run, in order. Errors name the first run whose config is invalid, and
    /// two runs with the same config.
    pub fn runs(&self) -> Result<Vec<PlannedRun>> {
        let base: toml::Table = toml::from_str(&self.base.to_toml()).expect("round trip");
        let n = self.count() as usize;
        // Each planned run holds its config, label and id (a few KiB at most).
        crate::budget::ensure(
            || format!("planning the {n} runs of this sweep"),
            crate::budget::product(&[n, 4096], 1),
        )?;
        let mut runs = Vec::with_capacity(n);
        let mut ids = std::collections::HashMap::new();
        for index in 0..n {
            // Mixed-radix digits, the last group fastest.
            let mut rem = index;
            let mut pick = vec![0; self.groups.len()];
            for (g, group) in self.groups.iter().enumerate().rev() {
                pick[g] = rem % group.len();
                rem /= group.len();
            }
            let mut params = Vec::new();
            for (g, group) in self.groups.iter().enumerate() {
                for a in &group.axes {
                    params.push((a.key.clone(), a.values[pick[g]].clone()));
                }
            }
            let label = params
                .iter()
                .map(|(k, v)| format!("{k}={}", show_value(v)))
                .collect::<Vec<_>>()
                .join(" ");
            let config = apply(&base, &params)
                .map_err(|e| Error::config(format!("run {index} ({label}): {e}")))?;
            let id = run_id(&config);
            if let Some(other) = ids.insert(id.clone(), index) {
                return Err(Error::config(format!(
                    "runs {other} and {index} ({label}) have the same config: every run must differ"
                )));
            }
            runs.push(PlannedRun {
                index,
                id,
                label,
                params,
                config,
            });
        }
        Ok(runs)
    }

    /// The spec as self-contained TOML (the base inlined, `[set]` applied), which
    /// expands to the same runs with the same ids.
    pub fn to_toml(&self) -> String {
        let mut doc = toml::Table::new();
        doc.insert("name".into(), toml::Value::String(self.name.clone()));
        doc.insert(
            "base".into(),
            toml::Value::Table(toml::from_str(&self.base.to_toml()).expect("round trip")),
        );
        doc.insert(
            "record".into(),
            toml::Value::Table(
                toml::from_str(&toml::to_string(&self.record).expect("toml")).expect("toml"),
            ),
        );
        let axes: Vec<toml::Value> = self
            .groups
            .iter()
            .map(|g| {
                let mut t = toml::Table::new();
                for a in &g.axes {
                    t.insert(a.key.clone(), toml::Value::Array(a.values.clone()));
                }
                toml::Value::Table(t)
            })
            .collect();
        doc.insert("axes".into(), toml::Value::Array(axes));
        toml::to_string(&doc).expect("toml")
    }

    /// `key ×len` for each axis, for messages.
    pub fn describe_axes(&self) -> String {
        if self.groups.is_empty() {
            return "no axes: one run of the base config".into();
        }
        self.groups
            .iter()
            .map(|g| {
                let keys: Vec<&str> = g.axes.iter().map(|a| a.key.as_str()).collect();
                if keys.len() == 1 {
                    format!("{} ×{}", keys[0], g.len())
                } else {
                    format!("zip({}) ×{}", keys.join(", "), g.len())
                }
            })
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// The config of `base` with each dotted key set.
fn apply(base: &toml::Table, params: &[(String, toml::Value)]) -> Result<TrainConfig> {
    let mut doc = base.clone();
    for (key, value) in params {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(Error::config(format!("`{key}` is not a dotted config key")));
        }
        let mut table = &mut doc;
        for p in &parts[..parts.len() - 1] {
            table = table
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .ok_or_else(|| Error::config(format!("`{key}`: `{p}` is not a table")))?;
        }
        table.insert(parts.last().unwrap().to_string(), value.clone());
    }
    let text = toml::to_string(&doc).expect("toml");
    toml::from_str::<TrainConfig>(&text)
        .map_err(|e| Error::config(crate::files::one_line(e.message())))
}

/// The stable id of a config.
pub fn run_id(config: &TrainConfig) -> String {
    let digest = Sha256::digest(config.to_toml().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The values of one axis from its spec (a list or a range table).
fn axis_values(spec: &toml::Value) -> std::result::Result<Vec<toml::Value>, String> {
    let values = match spec {
        toml::Value::Array(a) => a.clone(),
        toml::Value::Table(t) => {
            let nums = |k: &str| -> std::result::Result<Vec<f64>, String> {
                let arr = t[k]
                    .as_array()
                    .ok_or_else(|| format!("`{k}` must be a list of numbers"))?;
                arr.iter()
                    .map(|v| {
                        v.as_float()
                            .or_else(|| v.as_integer().map(|i| i as f64))
                            .ok_or_else(|| format!("`{k}` must be a list of numbers"))
                    })
                    .collect()
            };
            let integer = match t.get("integer") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err("`integer` must be true or false".into()),
            };
            let known = ["logspace", "linspace", "range", "integer"];
            if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!(
                    "unknown range form `{k}` (expected a list, or a table with logspace, linspace or range)"
                ));
            }
            let kinds: Vec<&str> = ["logspace", "linspace", "range"]
                .into_iter()
                .filter(|k| t.contains_key(*k))
                .collect();
            if kinds.len() != 1 {
                return Err("give exactly one of logspace, linspace or range".into());
            }
            let floats = match kinds[0] {
                "logspace" | "linspace" => {
                    let v = nums(kinds[0])?;
                    if v.len() != 3 || v[2] < 1.0 || v[2].fract() != 0.0 {
                        return Err(format!(
                            "{} = [lo, hi, count] with a whole count ≥ 1",
                            kinds[0]
                        ));
                    }
                    let (lo, hi, count) = (v[0], v[1], v[2] as usize);
                    if kinds[0] == "logspace" {
                        if !(lo > 0.0 && hi > 0.0 && lo.is_finite() && hi.is_finite()) {
                            return Err("logspace needs positive, finite lo and hi".into());
                        }
                        logspace(lo, hi, count)
                    } else {
                        linspace(lo, hi, count)
                    }
                }
                _ => {
                    let v = nums("range")?;
                    if !(v.len() == 2 || v.len() == 3) || v.iter().any(|x| x.fract() != 0.0) {
                        return Err(
                            "range = [start, stop] or [start, stop, step], whole numbers".into(),
                        );
                    }
                    let step = if v.len() == 3 { v[2] as i64 } else { 1 };
                    if step == 0 {
                        return Err("range step must not be 0".into());
                    }
                    let (start, stop) = (v[0] as i64, v[1] as i64);
                    let mut out = Vec::new();
                    let mut i = start;
                    while (step > 0 && i < stop) || (step < 0 && i > stop) {
                        out.push(toml::Value::Integer(i));
                        i += step;
                        if out.len() > MAX_RUNS {
                            return Err("range has too many values".into());
                        }
                    }
                    return nonempty(out);
                }
            };
            if integer {
                let mut ints: Vec<i64> = floats.iter().map(|x| x.round() as i64).collect();
                ints.dedup();
                ints.into_iter().map(toml::Value::Integer).collect()
            } else {
                floats.into_iter().map(toml::Value::Float).collect()
            }
        }
        v => vec![v.clone()],
    };
    nonempty(values)
}

fn nonempty(v: Vec<toml::Value>) -> std::result::Result<Vec<toml::Value>, String> {
    if v.is_empty() {
        Err("no values".into())
    } else {
        Ok(v)
    }
}

/// `count` values from `lo` to `hi`, evenly spaced in log (both endpoints exact).
pub fn logspace(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if count == 1 {
        return vec![lo];
    }
    let (a, b) = (libm::log(lo), libm::log(hi));
    (0..count)
        .map(|i| {
            if i == 0 {
                lo
            } else if i == count - 1 {
                hi
            } else {
                libm::exp(a + (b - a) * i as f64 / (count - 1) as f64)
            }
        })
        .collect()
}

/// `count` values from `lo` to `hi`, evenly spaced (both endpoints exact).
pub fn linspace(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if count == 1 {
        return vec![lo];
    }
    (0..count)
        .map(|i| {
            if i == count - 1 {
                hi
            } else {
                lo + (hi - lo) * i as f64 / (count - 1) as f64
            }
        })
        .collect()
}

/// A value for labels: strings bare, floats with at most 4 significant digits.
pub fn show_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Float(f) => short_float(*f),
        other => other.to_string(),
    }
}

/// At most 4 significant digits, without trailing zeros.
pub fn short_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let a = f.abs();
    if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{f:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{f:.3e}")
    }
}

/// A TOML value as JSON.
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A sweep's name becomes a folder name (`sweeps/NAME`): `../../etc/x` made
/// `submit` write outside `sweeps/`. Letters, digits, `-`, `_` and `.` only, not
/// starting with a dot, at most 100 characters.
fn checked_name(origin: &str, name: String) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name)
    } else {
        Err(Error::config(format!(
            "{origin}: sweep name `{}`: use letters, digits, `-`, `_` and `.` (not first), at most 100 characters: it names the folder sweeps/NAME",
            name.chars().take(100).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<SweepSpec> {
        SweepSpec::from_toml(text, "spec.toml", None, "t")
    }

    #[test]
    fn product_and_zip_expand_in_order() {
        let s = spec(
            r#"
            [base]
            train = { steps = 5 }
            [[axes]]
            "model.width" = [8, 16]
            [[axes]]
            "param.preset" = ["ntp", "mup"]
            "param.base_lr" = [1.0, 2.0]
            [[axes]]
            seed = { range = [0, 3] }
            "#,
        )
        .unwrap();
        assert_eq!(s.count(), 12);
        let runs = s.runs().unwrap();
        assert_eq!(runs.len(), 12);
        // Within a zip group, keys are listed alphabetically.
        assert_eq!(
            runs[0].label,
            "model.width=8 param.base_lr=1 param.preset=ntp seed=0"
        );
        assert_eq!(
            runs[4].label,
            "model.width=8 param.base_lr=2 param.preset=mup seed=1"
        );
        assert_eq!(runs[11].config.model.width, Some(16));
        assert_eq!(runs[11].config.seed, 2);
        assert_eq!(runs[11].config.train.steps, Some(5));
        // Ids are a function of the config only.
        let again = spec(&s.to_toml()).unwrap().runs().unwrap();
        assert_eq!(
            runs.iter().map(|r| &r.id).collect::<Vec<_>>(),
            again.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn ranges() {
        let v = logspace(1.0, 64.0, 7);
        assert_eq!(v[0], 1.0);
        assert_eq!(v[6], 64.0);
        assert!((v[3] - 8.0).abs() < 1e-12);
        let s = spec(
            r#"
            [[axes]]
            "model.width" = { logspace = [64, 1024, 5], integer = true }
            [[axes]]
            "param.richness" = { linspace = [0, 0.5, 3] }
            "#,
        )
        .unwrap();
        let runs = s.runs().unwrap();
        let widths: Vec<_> = runs
            .iter()
            .step_by(3)
            .map(|r| r.config.model.width.unwrap())
            .collect();
        assert_eq!(widths, vec![64, 128, 256, 512, 1024]);
        assert_eq!(runs[1].config.param.richness, Some(0.25));
    }

    #[test]
    fn errors_are_one_line_and_name_the_problem() {
        let cases = [
            ("[[axes]]\n\"model.width\" = []", "no values"),
            ("[[axes]]\na = [1, 2]\nb = [1]", "equal lengths"),
            ("[[axes]]\n\"model.widht\" = [1]", "widht"),
            ("[[axes]]\nseed = { logspace = [0, 1, 3] }", "positive"),
            (
                "[[axes]]\nseed = { spaced = [0, 1, 3] }",
                "unknown range form",
            ),
            ("[[axes]]\nseed = [1, 1]", "same config"),
            ("axes = 3", "spec.toml"),
            ("base = \"/nonexistent.toml\"", "not found"),
            ("[[axes]]\nseed = [1]\n[[axes]]\nseed = [2]", "two axes"),
        ];
        for (text, want) in cases {
            let err = spec(text)
                .and_then(|s| s.runs().map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn short_floats() {
        assert_eq!(short_float(2.0), "2");
        assert_eq!(short_float(2.519842099789746), "2.52");
        assert_eq!(short_float(0.0123456), "0.01235");
        assert_eq!(short_float(12345.6), "12346");
    }
}
