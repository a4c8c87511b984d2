//! Training: a config, a step function, and a run that writes its results.
//!
//! [`Trainer::step`] is one optimizer step on one batch (forward, loss, backward,
//! update) with no allocation. [`run`] drives a whole training from a
//! [`TrainConfig`] and writes to an output folder:
//!
//! | file | contents |
//! |---|---|
//! | `config.toml` | the fully resolved config (every default filled in, dims resolved) |
//! | `parameterization.json`, `.txt` | the per-layer scaling, as `richness table` prints it |
//! | `metrics.csv` | `step,epoch,train_loss,test_loss,test_acc`: one row per step (train loss of that step's batch, before the update) plus evaluation rows (step 0 = init); `test_acc` only for classification data (integer labels), empty for regression |
//! | `summary.json` | status (`completed` / `diverged`), final metrics, timing |
//! | `weights.safetensors` | final raw weights (not written for a diverged run) |
//! | `ntk_movement.csv` | with an `[ntk]` table only: empirical-NTK movement (see [`crate::kernel::movement`]) |
//!
//! `model.arch = "gpt"` runs go to [`gpt`] (its own model, metrics with perplexity).
//!
//! Reproducibility: the same config, seed and thread count give bitwise-identical
//! metrics and weights (all randomness comes from [`crate::rng`] streams).

pub mod config;
pub mod gpt;
mod run;
mod trainer;

pub use crate::files::{one_line, toml_error};
pub use config::{
    LoopConfig, ModelConfig, TrainConfig, DEFAULT_WIDTH, GPT_DEFAULTS, GPT_ONLY_TRAIN,
};
pub use run::{
    check_budget, prepare, prepare_with_data, run, run_typed, MetricRow, Outcome, Prepared,
    RunOptions, Status,
};
pub use trainer::Trainer;
