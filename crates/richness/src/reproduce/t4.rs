//! Experiment T4: CNN: Myrtle-5 lazy vs rich.

use super::common::parse;
use super::t3::{compare_presets, T3Config};
use super::{ExperimentId, ExperimentResult, Options};
use crate::error::Result;
use std::path::Path;

// T4 is T3's protocol on a CNN: the same config schema and the same claims.

/// Run T4 from its config text, writing under `dir`.
pub(super) fn run(text: &str, dir: &Path, opts: &Options, res: &mut ExperimentResult) -> Result<()> {
    compare_presets(&parse(text, ExperimentId::T4)?, dir, opts, res, "Myrtle-5")
}

/// Parse T4's config without running anything.
pub(super) fn check_config(text: &str) -> Result<()> {
    parse::<T3Config>(text, ExperimentId::T4).map(drop)
}
