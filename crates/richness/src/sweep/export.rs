//! Export a results store as CSV for pandas: `runs.csv` and `metrics.csv`.
//!
//! `runs.csv` has one row per run: the `runs` columns except the config TOML, one
//! column per axis key (`model.width`, `param.base_lr`, …) and the resolved config
//! as JSON last. `metrics.csv` is the tidy `metrics` table
//! (`run_id,step,name,layer,value`; empty `layer` for whole-network metrics).
//! Floats are written in their shortest round-trip form, so pandas reads back the
//! exact stored values.

use super::store::Store;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files written by [`export_csv`].
#[derive(Clone, Debug)]
pub struct Exported {
    pub runs_csv: PathBuf,
    pub metrics_csv: PathBuf,
    pub runs: usize,
    pub metrics: usize,
}

/// A float as CSV text: shortest round trip, exponent form when very small or large;
/// empty for missing or non-finite.
pub fn csv_float(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            let a = x.abs();
            if a == 0.0 || (1e-4..1e15).contains(&a) {
                format!("{x}")
            } else {
                format!("{x:e}")
            }
        }
        _ => String::new(),
    }
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json_cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => field(s),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => csv_float(n.as_f64()),
        },
        Some(v) => field(&v.to_string()),
    }
}

/// One row of the metrics table: run id, step, name, layer, value.
type MetricRow = (String, i64, String, Option<i64>, Option<f64>);

/// Write `runs.csv` and `metrics.csv` into `dir`.
///
/// Both files are written into a sibling staging folder first and moved into `dir`
/// only when both are complete, so an export that fails part-way (a damaged
/// database) leaves `dir` as it was.
pub fn export_csv(store: &Store, dir: &Path) -> Result<Exported> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let stage = parent.join(format!(".{name}.export-partial"));
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| Error::io(&stage, e))?;
    }
    std::fs::create_dir_all(&stage).map_err(|e| Error::io(&stage, e))?;
    let staged = match write_csv(store, &stage) {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(e);
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let runs_csv = dir.join("runs.csv");
    let metrics_csv = dir.join("metrics.csv");
    std::fs::rename(&staged.runs_csv, &runs_csv).map_err(|e| Error::io(&runs_csv, e))?;
    std::fs::rename(&staged.metrics_csv, &metrics_csv).map_err(|e| Error::io(&metrics_csv, e))?;
    let _ = std::fs::remove_dir_all(&stage);
    Ok(Exported {
        runs_csv,
        metrics_csv,
        ..staged
    })
}

fn write_csv(store: &Store, dir: &Path) -> Result<Exported> {
    let runs = store.runs()?;
    // Axis columns in order of first appearance.
    let mut keys: Vec<String> = Vec::new();
    for r in &runs {
        for k in r.params_map().keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let runs_path = dir.join("runs.csv");
    let mut s = String::from("run_id,index,label,status,diverged_step,reason,steps,final_train_loss,final_test_loss,final_test_acc,num_params,seconds,threads,host,shard,started_unix,finished_unix");
    for k in &keys {
        s.push(',');
        s.push_str(&field(k));
    }
    s.push_str(",config_json\n");
    let opt_i = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in &runs {
        let params = r.params_map();
        let mut cells = vec![
            field(&r.run_id),
            r.index.to_string(),
            field(&r.label),
            field(&r.status),
            opt_i(r.diverged_step),
            field(r.reason.as_deref().unwrap_or("")),
            opt_i(r.steps),
            csv_float(r.final_train_loss),
            csv_float(r.final_test_loss),
            csv_float(r.final_test_acc),
            opt_i(r.num_params),
            csv_float(Some(r.seconds)),
            r.threads.to_string(),
            field(&r.host),
            field(r.shard.as_deref().unwrap_or("")),
            csv_float(Some(r.started_unix)),
            csv_float(Some(r.finished_unix)),
        ];
        for k in &keys {
            cells.push(json_cell(params.get(k)));
        }
        cells.push(field(&r.config_json));
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    crate::files::write_atomic(&runs_path, s.as_bytes())?;

    let metrics_path = dir.join("metrics.csv");
    let tmp = dir.join(".metrics.csv.tmp");
    let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::new(f);
    let werr = |e| Error::io(&metrics_path, e);
    writeln!(w, "run_id,step,name,layer,value").map_err(werr)?;
    let mut count = 0;
    let conn = store.connection();
    let mut st = conn
        .prepare("SELECT run_id, step, name, layer, value FROM metrics ORDER BY run_id, name, layer, step, rowid")
        .map_err(|e| Error::file(store.path(), format!("database error: {e}")))?;
    let mut rows = st
        .query([])
        .map_err(|e| Error::file(store.path(), format!("database error: {e}")))?;
    while let Some(r) = rows
        .next()
        .map_err(|e| Error::file(store.path(), format!("database error: {e}")))?
    {
        let get = || -> rusqlite::Result<MetricRow> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        };
        let (id, step, name, layer, value) =
            get().map_err(|e| Error::file(store.path(), format!("database error: {e}")))?;
        writeln!(
            w,
            "{},{step},{},{},{}",
            field(&id),
            field(&name),
            layer.map(|l| l.to_string()).unwrap_or_default(),
            csv_float(value)
        )
        .map_err(werr)?;
        count += 1;
    }
    w.flush().map_err(werr)?;
    drop(w);
    std::fs::rename(&tmp, &metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    Ok(Exported {
        runs_csv: runs_path,
        metrics_csv: metrics_path,
        runs: runs.len(),
        metrics: count,
    })
}
