//! Sweeps: grids of training runs over any config keys, run in parallel on one
//! machine or as a SLURM job array, stored in a crash-safe SQLite database.
//!
//! The pieces, in the order data flows through them:
//!
//! | module | what |
//! |---|---|
//! | [`spec`] | the sweep spec (base config + axes, product and zip) → planned runs with stable ids |
//! | [`runner`] | runs in parallel, diverged runs recorded, sharding (`--shard i/N`) |
//! | [`store`] | the SQLite results store (runs, tidy metrics), one transaction per run |
//! | [`export`] | `runs.csv` + `metrics.csv` for pandas |
//! | [`slurm`] | `sbatch --array` scripts and merging shard databases |
//! | [`transfer`] | rate transfer across width (experiments.md T5) |
//! | [`plot`] | metric against width / r / step, with log–log fits |
//!
//! ```
//! use richness::sweep::{spec::SweepSpec, store::Store, runner::{run_sweep, RunnerOptions}};
//! let spec = SweepSpec::from_toml(r#"
//!     [base]
//!     model = { width = 16 }
//!     train = { steps = 3 }
//!     [[axes]]
//!     "param.preset" = ["ntp", "mup"]
//!     [[axes]]
//!     seed = { range = [0, 2] }
//! "#, "example", None, "example").unwrap();
//! assert_eq!(spec.count(), 4);
//! let dir = std::env::temp_dir().join(format!("richness-doc-sweep-{}", std::process::id()));
//! let mut store = Store::create(dir.join("sweep.sqlite")).unwrap();
//! let opts = RunnerOptions { threads: 1, progress: false, shard: None, resume: false };
//! let report = run_sweep(&spec, &mut store, &opts).unwrap();
//! assert_eq!(report.completed, 4);
//! assert_eq!(store.runs().unwrap().len(), 4);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

pub mod export;
pub mod plot;
pub mod runner;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod transfer;

pub use runner::{run_sweep, RunnerOptions, Shard, SweepReport};
pub use spec::{PlannedRun, SweepSpec};
pub use store::Store;
