//! The results store: one SQLite file per sweep (or per shard).
//!
//! ```text
//! meta    (key TEXT PRIMARY KEY, value TEXT)        spec, shard, version
//! runs    (run_id TEXT PRIMARY KEY, idx, label, params JSON, config TOML,
//!          config_json, status, diverged_step, reason, steps, final_train_loss,
//!          final_test_loss, final_test_acc, num_params, seconds, threads, host,
//!          shard, started_unix, finished_unix)
//! metrics (run_id, step, name, layer, value)        tidy: one value per row
//! ```
//!
//! `status` is `completed`, `diverged` (with the step and the reason) or `failed`
//! (the run could not start or stopped with an error; `reason` says why; `--resume`
//! tries failed runs again). `layer` is NULL for whole-network metrics and the
//! 1-based weight layer otherwise. Non-finite metric values are stored as NULL.
//!
//! Crash safety: each run (its `runs` row and all its metrics) is written in one
//! transaction, with SQLite's rollback journal and `synchronous = FULL`, so a
//! process killed at any moment (SIGKILL included) leaves either the whole run or
//! none of it. The rollback journal (not WAL) also works on the network file systems
//! that clusters share.

use crate::error::{Error, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    label TEXT NOT NULL,
    params TEXT NOT NULL,
    config TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    diverged_step INTEGER,
    reason TEXT,
    steps INTEGER,
    final_train_loss REAL,
    final_test_loss REAL,
    final_test_acc REAL,
    num_params INTEGER,
    seconds REAL NOT NULL,
    threads INTEGER NOT NULL,
    host TEXT NOT NULL,
    shard TEXT,
    started_unix REAL NOT NULL,
    finished_unix REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    layer INTEGER,
    value REAL
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, name, step);
";

/// The columns of `runs`, in table order.
pub const RUN_COLUMNS: [&str; 20] = [
    "run_id",
    "idx",
    "label",
    "params",
    "config",
    "config_json",
    "status",
    "diverged_step",
    "reason",
    "steps",
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "num_params",
    "seconds",
    "threads",
    "host",
    "shard",
    "started_unix",
    "finished_unix",
];

/// One row of `runs`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub index: i64,
    pub label: String,
    /// Axis assignments, JSON object.
    pub params: String,
    /// The resolved config (TOML).
    pub config: String,
    pub config_json: String,
    /// `completed`, `diverged` or `failed`.
    pub status: String,
    pub diverged_step: Option<i64>,
    pub reason: Option<String>,
    pub steps: Option<i64>,
    pub final_train_loss: Option<f64>,
    pub final_test_loss: Option<f64>,
    pub final_test_acc: Option<f64>,
    pub num_params: Option<i64>,
    pub seconds: f64,
    pub threads: i64,
    pub host: String,
    pub shard: Option<String>,
    pub started_unix: f64,
    pub finished_unix: f64,
}

impl RunRecord {
    /// The axis assignments as a JSON map.
    pub fn params_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(&self.params) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => Default::default(),
        }
    }

    /// True for a run that finished (completed or diverged): it is not run again.
    pub fn finished(&self) -> bool {
        self.status != "failed"
    }
}

/// One row of `metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRecord {
    pub step: i64,
    pub name: String,
    /// 1-based weight layer, or `None` for whole-network metrics.
    pub layer: Option<i64>,
    pub value: f64,
}

/// An open results database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| {
        Error::file(
            path,
            format!("database error: {}", crate::files::one_line(&e.to_string())),
        )
    }
}

impl Store {
    /// Open (creating if needed) a results database for writing.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        if path.is_dir() {
            return Err(Error::file(&path, "is a folder, not a database file"));
        }
        let conn = Connection::open(&path).map_err(sql_err(&path))?;
        let store = Store { conn, path };
        store.setup(true)?;
        Ok(store)
    }

    /// Open an existing results database (an error if the file is missing or is not
    /// a `richness` sweep database).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Open an existing results database read-only.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self> {
        if !path.exists() {
            return Err(Error::file(path, "no such database file"));
        }
        if path.is_dir() {
            return Err(Error::file(path, "is a folder, not a database file"));
        }
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(sql_err(path))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.setup(false)?;
        let has_runs: bool = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('runs', 'metrics')",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql_err(path))?
            == 2;
        if !has_runs {
            return Err(Error::file(
                path,
                "not a richness sweep database (no runs/metrics tables)",
            ));
        }
        Ok(store)
    }

    fn setup(&self, create: bool) -> Result<()> {
        let p = &self.path;
        self.conn
            .busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sql_err(p))?;
        // A file that is not SQLite fails here, on the first read.
        let tables = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql_err(p))?;
        if tables > 0 {
            self.quick_check()?;
        }
        if create {
            self.conn
                .execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;")
                .map_err(sql_err(p))?;
            self.conn.execute_batch(SCHEMA).map_err(sql_err(p))?;
        }
        Ok(())
    }

    /// `PRAGMA quick_check` before an existing store is trusted: zeroed or torn pages
    /// can leave the schema readable while the rows are not, and a resume then
    /// counted the damaged store's runs as done ("18 already done") that export
    /// called malformed. Costs one pass over the file.
    fn quick_check(&self) -> Result<()> {
        let p = &self.path;
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check(3)")
            .map_err(sql_err(p))?;
        let found: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sql_err(p))?
            .collect::<std::result::Result<_, _>>()
            .map_err(sql_err(p))?;
        if found.len() == 1 && found[0] == "ok" {
            return Ok(());
        }
        Err(Error::file(
            p,
            format!(
                "the database is damaged (SQLite quick_check: {}): restore it from a copy, or start a new --db",
                crate::files::one_line(&found.join("; "))
            ),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection (for queries the store has no method for).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql_err(&self.path))
    }

    /// Set a `meta` value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(sql_err(&self.path))
    }

    /// Ids of the runs that finished (completed or diverged).
    pub fn finished_ids(&self) -> Result<HashSet<String>> {
        let mut st = self
            .conn
            .prepare("SELECT run_id FROM runs WHERE status != 'failed'")
            .map_err(sql_err(&self.path))?;
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sql_err(&self.path))?
            .collect::<rusqlite::Result<HashSet<_>>>()
            .map_err(sql_err(&self.path))?;
        Ok(ids)
    }

    /// Number of rows in `runs`.
    pub fn run_count(&self) -> Result<usize> {
        self.conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(sql_err(&self.path))
    }

    /// Store one run and its metrics in one transaction. A failed row of the same
    /// run is replaced; a finished row is kept (the call then stores nothing and
    /// returns false).
    pub fn insert_run(&mut self, run: &RunRecord, metrics: &[MetricRecord]) -> Result<bool> {
        let path = self.path.clone();
        let err = sql_err(&path);
        let tx = self.conn.transaction().map_err(&err)?;
        tx.execute(
            "DELETE FROM metrics WHERE run_id IN (SELECT run_id FROM runs WHERE run_id = ?1 AND status = 'failed')",
            [&run.run_id],
        )
        .map_err(&err)?;
        tx.execute(
            "DELETE FROM runs WHERE run_id = ?1 AND status = 'failed'",
            [&run.run_id],
        )
        .map_err(&err)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                params![
                    run.run_id,
                    run.index,
                    run.label,
                    run.params,
                    run.config,
                    run.config_json,
                    run.status,
                    run.diverged_step,
                    run.reason,
                    run.steps,
                    finite(run.final_train_loss),
                    finite(run.final_test_loss),
                    finite(run.final_test_acc),
                    run.num_params,
                    run.seconds,
                    run.threads,
                    run.host,
                    run.shard,
                    run.started_unix,
                    run.finished_unix
                ],
            )
            .map_err(&err)?
            == 1;
        if inserted {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO metrics (run_id, step, name, layer, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&err)?;
            for m in metrics {
                st.execute(params![
                    run.run_id,
                    m.step,
                    m.name,
                    m.layer,
                    finite(Some(m.value))
                ])
                .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(inserted)
    }

    /// Every run, ordered by index then id.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let err = sql_err(&self.path);
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM runs ORDER BY idx, run_id",
                RUN_COLUMNS.join(", ")
            ))
            .map_err(&err)?;
        let rows = st
            .query_map([], |r| {
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    index: r.get(1)?,
                    label: r.get(2)?,
                    params: r.get(3)?,
                    config: r.get(4)?,
                    config_json: r.get(5)?,
                    status: r.get(6)?,
                    diverged_step: r.get(7)?,
                    reason: r.get(8)?,
                    steps: r.get(9)?,
                    final_train_loss: r.get(10)?,
                    final_test_loss: r.get(11)?,
                    final_test_acc: r.get(12)?,
                    num_params: r.get(13)?,
                    seconds: r.get(14)?,
                    threads: r.get(15)?,
                    host: r.get(16)?,
                    shard: r.get(17)?,
                    started_unix: r.get(18)?,
                    finished_unix: r.get(19)?,
                })
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        Ok(rows)
    }

    /// The metrics of one run (or of every run with `None`), as
    /// (run_id, record), ordered by run, name, layer, step.
    pub fn metrics(&self, run_id: Option<&str>) -> Result<Vec<(String, MetricRecord)>> {
        let err = sql_err(&self.path);
        let sql = "SELECT run_id, step, name, layer, value FROM metrics WHERE ?1 IS NULL OR run_id = ?1 ORDER BY run_id, name, layer, step, rowid";
        let mut st = self.conn.prepare(sql).map_err(&err)?;
        let rows = st
            .query_map([run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    MetricRecord {
                        step: r.get(1)?,
                        name: r.get(2)?,
                        layer: r.get(3)?,
                        value: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
                    },
                ))
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        Ok(rows)
    }

    /// Copy every run of `other` that this store lacks (or has only as `failed`)
    /// with its metrics, in one transaction; returns how many runs were copied.
    /// Merging the same file twice copies nothing the second time.
    pub fn merge_from(&mut self, other: &Path) -> Result<usize> {
        let path = self.path.clone();
        let err = sql_err(&path);
        // Validate the other file first, for a clear error.
        drop(Store::open_read_only(other)?);
        self.conn
            .execute("ATTACH DATABASE ?1 AS shard", [other.to_string_lossy()])
            .map_err(&err)?;
        let result = (|| -> rusqlite::Result<usize> {
            let tx = self.conn.transaction()?;
            // Failed rows here that the shard has finished: replace them.
            let replace = "SELECT run_id FROM main.runs WHERE status = 'failed' AND run_id IN (SELECT run_id FROM shard.runs WHERE status != 'failed')";
            tx.execute(
                &format!("DELETE FROM main.metrics WHERE run_id IN ({replace})"),
                [],
            )?;
            tx.execute(
                &format!("DELETE FROM main.runs WHERE run_id IN ({replace})"),
                [],
            )?;
            let new =
                "SELECT run_id FROM shard.runs WHERE run_id NOT IN (SELECT run_id FROM main.runs)";
            tx.execute(
                &format!(
                    "INSERT INTO main.metrics (run_id, step, name, layer, value) SELECT run_id, step, name, layer, value FROM shard.metrics WHERE run_id IN ({new}) ORDER BY rowid"
                ),
                [],
            )?;
            let cols = RUN_COLUMNS.join(", ");
            let n = tx.execute(
                &format!("INSERT INTO main.runs ({cols}) SELECT {cols} FROM shard.runs WHERE run_id IN ({new})"),
                [],
            )?;
            tx.commit()?;
            Ok(n)
        })();
        let detach = self.conn.execute("DETACH DATABASE shard", []);
        let n = result.map_err(&err)?;
        detach.map_err(&err)?;
        Ok(n)
    }
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}
