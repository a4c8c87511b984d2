//! SLURM job arrays: one array task per shard, each into its own database file,
//! merged afterwards by [`collect`].
//!
//! [`Submission::write`] lays out a sweep folder:
//!
//! ```text
//! DIR/spec.toml        the spec, self-contained (base inlined): what every task runs
//! DIR/sweep.json       the manifest: name, shard count, run count
//! DIR/sweep.sbatch     the array script (task i: `richness sweep run DIR/spec.toml --shard i/N --db DIR/shard-i.sqlite --resume`)
//! DIR/logs/            one log per task
//! DIR/shard-i.sqlite   written by task i
//! ```
//!
//! Tasks resume, so resubmitting a task (or the whole array) after a failure or a
//! preemption only runs what is missing.

use super::runner::{selected_runs, Shard};
use super::spec::SweepSpec;
use super::store::Store;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The manifest `DIR/sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub shards: usize,
    pub runs: usize,
    /// The spec file (relative to the folder).
    pub spec: String,
}

/// An array job about to be written.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The sweep folder (made absolute by [`Submission::new`]).
    pub dir: PathBuf,
    pub shards: usize,
    /// The `richness` binary the tasks run.
    pub binary: PathBuf,
    /// Extra `#SBATCH` lines (`--time=1:00:00`, `--partition=cpu`, …).
    pub sbatch_args: Vec<String>,
    /// Threads per task when SLURM does not say (`SLURM_CPUS_PER_TASK`).
    pub threads: usize,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        Ok(cwd.join(p))
    }
}

/// Quote for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Submission {
    pub fn new(
        dir: &Path,
        shards: usize,
        binary: &Path,
        sbatch_args: Vec<String>,
        threads: usize,
    ) -> Result<Self> {
        if shards == 0 {
            return Err(Error::config("--shards must be at least 1"));
        }
        for a in &sbatch_args {
            if a.contains('\n') {
                return Err(Error::config(format!(
                    "sbatch option `{a}` contains a newline"
                )));
            }
            if a.starts_with("--array") || a.starts_with("-a") {
                return Err(Error::config(
                    "the array is set by --shards; do not pass --array as an sbatch option",
                ));
            }
        }
        Ok(Submission {
            dir: absolute(dir)?,
            shards,
            binary: absolute(binary)?,
            sbatch_args,
            threads: threads.max(1),
        })
    }

    /// The `sbatch --array` script.
    pub fn script(&self, spec: &SweepSpec) -> String {
        let dir = self.dir.display().to_string();
        let q = |p: &str| shell_quote(p);
        let n = self.shards;
        let mut s = String::new();
        s.push_str("#!/bin/bash\n");
        s.push_str(&format!(
            "# richness sweep `{}`: {} runs in {n} shards, one array task per shard.\n",
            spec.name,
            spec.count()
        ));
        s.push_str("# Written by `richness sweep submit`. When the tasks are done:\n");
        s.push_str(&format!(
            "#   richness sweep collect --from {} --db {}\n",
            q(&dir),
            q(&format!("{dir}/merged.sqlite"))
        ));
        s.push_str(&format!(
            "#SBATCH --job-name={}\n",
            shell_quote(&format!("richness-{}", spec.name)).replace(' ', "_")
        ));
        s.push_str(&format!("#SBATCH --array=0-{}\n", n - 1));
        s.push_str(&format!("#SBATCH --output={dir}/logs/shard-%a.log\n"));
        for a in &self.sbatch_args {
            s.push_str(&format!("#SBATCH {a}\n"));
        }
        s.push_str("set -eu\n");
        s.push_str("i=\"${SLURM_ARRAY_TASK_ID:?not running as a SLURM array task}\"\n");
        s.push_str(&format!(
            "exec {} --quiet --threads \"${{SLURM_CPUS_PER_TASK:-{}}}\" sweep run {} --shard \"$i/{n}\" --db {}/shard-\"$i\".sqlite --resume\n",
            q(&self.binary.display().to_string()),
            self.threads,
            q(&format!("{dir}/spec.toml")),
            q(&dir),
        ));
        s
    }

    /// Write the sweep folder; returns the script's path.
    pub fn write(&self, spec: &SweepSpec) -> Result<PathBuf> {
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
        crate::files::write_atomic(&self.dir.join("spec.toml"), spec.to_toml().as_bytes())?;
        let manifest = Manifest {
            name: spec.name.clone(),
            shards: self.shards,
            runs: spec.count() as usize,
            spec: "spec.toml".into(),
        };
        crate::files::write_atomic(
            &self.dir.join("sweep.json"),
            serde_json::to_string_pretty(&manifest)
                .expect("json")
                .as_bytes(),
        )?;
        let script = self.dir.join("sweep.sbatch");
        crate::files::write_atomic(&script, self.script(spec).as_bytes())?;
        Ok(script)
    }
}

/// Run `sbatch` on a script; returns the job id.
pub fn sbatch(script: &Path) -> Result<String> {
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::config("sbatch not found: is SLURM installed here? (--dry-run prints the script without submitting)")
            } else {
                Error::io("sbatch", e)
            }
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::config(format!(
            "sbatch failed: {}",
            crate::files::one_line(err.trim())
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // --parsable prints `jobid` or `jobid;cluster`.
    Ok(text.trim().split(';').next().unwrap_or("").to_string())
}

/// One shard's state after a collect.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShardState {
    pub shard: Shard,
    pub file: PathBuf,
    /// False when the database file does not exist.
    pub present: bool,
    /// Runs the shard should hold.
    pub expected: usize,
    /// Runs it holds that finished.
    pub finished: usize,
    /// Runs it holds as failed.
    pub failed: usize,
    /// Newly copied into the merged store by this collect.
    pub copied: usize,
}

impl ShardState {
    pub fn complete(&self) -> bool {
        self.present && self.finished >= self.expected && self.failed == 0
    }
    /// One line for the report.
    pub fn describe(&self) -> String {
        if !self.present {
            format!(
                "shard {}: missing ({} not found)",
                self.shard,
                self.file.display()
            )
        } else if self.failed > 0 {
            format!(
                "shard {}: {} of {} runs finished, {} failed",
                self.shard, self.finished, self.expected, self.failed
            )
        } else if self.finished < self.expected {
            format!(
                "shard {}: incomplete, {} of {} runs finished",
                self.shard, self.finished, self.expected
            )
        } else {
            format!("shard {}: complete, {} runs", self.shard, self.finished)
        }
    }
}

/// What [`collect`] found and did.
#[derive(Clone, Debug, Serialize)]
pub struct CollectReport {
    pub shards: Vec<ShardState>,
    /// Runs in the merged store after the collect.
    pub merged_runs: usize,
    /// Runs the spec has.
    pub expected_runs: usize,
    /// Runs copied by this collect (0 when collecting again).
    pub copied: usize,
}

impl CollectReport {
    /// Shards to resubmit (missing, incomplete or with failed runs).
    pub fn to_resubmit(&self) -> Vec<usize> {
        self.shards
            .iter()
            .filter(|s| !s.complete())
            .map(|s| s.shard.index)
            .collect()
    }
}

/// Merge the shard databases of a sweep folder into `merged`. Idempotent: merging
/// again copies nothing new, and shards that were rerun add what they now have.
pub fn collect(dir: &Path, merged: &Path) -> Result<CollectReport> {
    if !dir.is_dir() {
        return Err(Error::file(dir, "no such sweep folder"));
    }
    let manifest_path = dir.join("sweep.json");
    let (spec, count) = if manifest_path.is_file() {
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::file(&manifest_path, format!("bad manifest: {e}")))?;
        if m.shards == 0 {
            return Err(Error::file(&manifest_path, "bad manifest: 0 shards"));
        }
        (SweepSpec::from_file(dir.join(&m.spec))?, m.shards)
    } else {
        // No manifest: learn the spec and shard count from the shard files.
        let first = shard_files(dir)?.into_iter().next().ok_or_else(|| {
            Error::file(
                dir,
                "no sweep.json and no shard-*.sqlite files: not a sweep folder",
            )
        })?;
        let store = Store::open_read_only(&first)?;
        let text = store
            .meta("spec")?
            .ok_or_else(|| Error::file(&first, "no spec recorded in this database"))?;
        let shard: Shard = store
            .meta("shard")?
            .unwrap_or_default()
            .parse()
            .map_err(|e: String| Error::file(&first, e))?;
        (
            SweepSpec::from_toml(&text, &first.display().to_string(), None, "sweep")?,
            shard.count,
        )
    };
    let runs = spec.runs()?;
    let expected_runs = runs.len();
    if merged.exists() && merged.is_dir() {
        return Err(Error::file(merged, "is a folder, not a database file"));
    }
    let mut out = Store::create(merged)?;
    out.set_meta("name", &spec.name)?;
    out.set_meta("spec", &spec.to_toml())?;
    out.set_meta("shard", "all")?;
    out.set_meta("richness_version", env!("CARGO_PKG_VERSION"))?;
    let mut states = Vec::new();
    let mut copied_total = 0;
    for index in 0..count {
        let shard = Shard { index, count };
        let file = dir.join(format!("shard-{index}.sqlite"));
        let ids: HashSet<String> = selected_runs(&spec, Some(shard))?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut state = ShardState {
            shard,
            file: file.clone(),
            present: file.is_file(),
            expected: ids.len(),
            finished: 0,
            failed: 0,
            copied: 0,
        };
        if state.present {
            {
                let s = Store::open_read_only(&file)?;
                for r in s.runs()? {
                    if ids.contains(&r.run_id) {
                        if r.finished() {
                            state.finished += 1;
                        } else {
                            state.failed += 1;
                        }
                    }
                }
            }
            state.copied = out.merge_from(&file)?;
            copied_total += state.copied;
        }
        states.push(state);
    }
    Ok(CollectReport {
        shards: states,
        merged_runs: out.run_count()?,
        expected_runs,
        copied: copied_total,
    })
}

/// `shard-*.sqlite` files in a folder, sorted.
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".sqlite"))
        })
        .collect();
    v.sort();
    Ok(v)
}
