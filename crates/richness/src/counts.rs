//! The counts a user types (seeds, depth, blocks, steps, …) and the range each may
//! take.
//!
//! A count sizes an allocation or a loop: `--seeds 100000000000` asked for 2.4 TB of
//! probe jobs, `--depth 4000000000` for a 128 GB list of layers, `--steps 10¹¹` for
//! hours of silent work, and `2⁶⁴ − 1` overflowed the arithmetic that sized them. The
//! memory [`crate::budget`] catches what a count costs once it is known; these ranges
//! catch, at parse time and in configs, the counts that are absurd on their face,
//! each refused in one line with its range. The command line ([`Count::parse`], used
//! as a clap value parser), the config files ([`Count::check`]) and the Python
//! package share the same table, so a count means the same everywhere.
//!
//! The bounds are far above any run this toolkit is for (a 10⁴-layer network, 10⁷
//! seeds, 10⁹ steps) and far below where a count alone overflows or exhausts memory;
//! a count inside its range can still be refused by the budget.

use crate::error::{Error, Result};

/// A named range of whole numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// What is counted, as a config key says it (`seeds`, `depth`).
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
}

/// Seeds of a scan (`check`, `coord`, `ntk compare`, Python `check`).
pub const SEEDS: Count = Count::new("seeds", 1, 10_000_000);
/// Seeds for the output at init (`--init-seeds`).
pub const INIT_SEEDS: Count = Count::new("init_seeds", 1, 10_000_000);
/// Weight layers of an MLP (`--depth`, `model.depth`, the length of `dims` less one).
pub const DEPTH: Count = Count::new("depth", 1, 10_000);
/// Residual blocks (`--blocks`, `model.blocks`).
pub const BLOCKS: Count = Count::new("blocks", 1, 10_000);
/// Training steps (`train --steps`, `train.steps`); 0 only initialises.
pub const TRAIN_STEPS: Count = Count::new("steps", 0, 1_000_000_000);
/// Optimizer steps of a probe (`check`/`coord --steps`, `ntk compare --steps`).
pub const PROBE_STEPS: Count = Count::new("steps", 1, 1_000_000_000);
/// Gradient-descent steps of a kernel prediction (`ntk predict --steps`): a closed
/// form, so any count costs the same; 0 is the prediction at init.
pub const PREDICT_STEPS: Count = Count::new("steps", 0, 1_000_000_000_000);
/// Passes over the training set (`--epochs`, `train.epochs`).
pub const EPOCHS: Count = Count::new("epochs", 0, 1_000_000);
/// Epochs of `demo` (two networks on the 1,297 digits; one epoch is a few seconds).
pub const DEMO_EPOCHS: Count = Count::new("epochs", 1, 10_000);
/// Minibatch rows of a training run (`--batch-size`); 0 = full batch, and a batch
/// larger than the data set is the full batch.
pub const BATCH_SIZE: Count = Count::new("batch_size", 0, 1_000_000_000);
/// Rows of a probe batch (`check`/`coord --batch`): at most the data set's rows.
pub const PROBE_BATCH: Count = Count::new("batch", 1, 1_000_000_000);
/// Points of a kernel experiment (`ntk compare --train/--test`).
pub const POINTS: Count = Count::new("points", 1, 1_000_000);
/// Rows per block of a kernel computation (`ntk empirical --block`).
pub const KERNEL_BLOCK: Count = Count::new("block", 1, 1_000_000);
/// Shards of a SLURM array (`sweep submit --shards`).
pub const SHARDS: Count = Count::new("shards", 1, 100_000);

impl Count {
    pub const fn new(name: &'static str, min: usize, max: usize) -> Self {
        Count { name, min, max }
    }

    /// `expected a whole number from 1 to 10000000`.
    pub fn expected(&self) -> String {
        format!("expected a whole number from {} to {}", self.min, self.max)
    }

    /// Whether `v` is in range.
    pub fn contains(&self, v: usize) -> bool {
        (self.min..=self.max).contains(&v)
    }

    /// Parse a command-line value: a whole number in range, or the range as the
    /// error (clap names the flag). `1e11`, `-1`, `2⁶⁴` and `abc` are refused alike.
    pub fn parse(&self, s: &str) -> std::result::Result<usize, String> {
        match s.trim().parse::<u128>() {
            Ok(v) if v <= usize::MAX as u128 && self.contains(v as usize) => Ok(v as usize),
            _ => Err(self.expected()),
        }
    }

    /// Check a count from a config or a library call: `seeds = 0: expected …`.
    pub fn check(&self, v: usize) -> Result<()> {
        self.check_named(self.name, v)
    }

    /// [`Count::check`] under another key name (`train.steps`, `model.depth`).
    pub fn check_named(&self, key: &str, v: usize) -> Result<()> {
        if self.contains(v) {
            Ok(())
        } else {
            Err(Error::config(format!("{key} = {v}: {}", self.expected())))
        }
    }

    /// [`Count::check`] of an optional count.
    pub fn check_opt(&self, key: &str, v: Option<usize>) -> Result<()> {
        v.map_or(Ok(()), |v| self.check_named(key, v))
    }
}

/// Clap value parsers, one per range (`value_parser = richness::counts::cli::seeds`).
pub mod cli {
    use super::*;

    macro_rules! parsers {
        ($($f:ident => $c:ident),* $(,)?) => {
            $(
                #[doc = concat!("Parse a count in [`", stringify!($c), "`].")]
                pub fn $f(s: &str) -> std::result::Result<usize, String> {
                    $c.parse(s)
                }
            )*
        };
    }

    parsers! {
        seeds => SEEDS,
        init_seeds => INIT_SEEDS,
        depth => DEPTH,
        blocks => BLOCKS,
        train_steps => TRAIN_STEPS,
        probe_steps => PROBE_STEPS,
        predict_steps => PREDICT_STEPS,
        epochs => EPOCHS,
        demo_epochs => DEMO_EPOCHS,
        batch_size => BATCH_SIZE,
        probe_batch => PROBE_BATCH,
        points => POINTS,
        kernel_block => KERNEL_BLOCK,
        shards => SHARDS,
    }
}

/// Useful flops per second per thread the duration estimates assume: what probes
/// of widths 512–1024 reached on the project's 2-core machine (≈ 5·10¹⁰ measured;
/// rounded down, so the estimate errs long). Small widths reach less.
pub const FLOPS_PER_THREAD: f64 = 4e10;

/// Work of about `flops` floating-point operations on `threads` threads, as a rough
/// duration (`about 3 h`) at [`FLOPS_PER_THREAD`]; `None` below `min_seconds`.
pub fn rough_duration(flops: f64, threads: usize, min_seconds: f64) -> Option<String> {
    let secs = flops / (FLOPS_PER_THREAD * threads.max(1) as f64);
    if !(secs >= min_seconds) {
        return None;
    }
    Some(if secs < 3600.0 {
        format!("about {:.0} min", (secs / 60.0).ceil())
    } else if secs < 86400.0 * 2.0 {
        format!("about {:.1} h", secs / 3600.0)
    } else {
        format!("about {:.0} days", secs / 86400.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_inside_their_range_only() {
        assert_eq!(SEEDS.parse("8"), Ok(8));
        assert_eq!(SEEDS.parse(" 10000000 "), Ok(10_000_000));
        for bad in [
            "0",
            "-1",
            "1e11",
            "100000000000",
            "18446744073709551615",
            "18446744073709551616",
            "abc",
            "",
            "1.5",
        ] {
            assert_eq!(SEEDS.parse(bad), Err(SEEDS.expected()), "{bad}");
        }
        assert_eq!(TRAIN_STEPS.parse("0"), Ok(0));
        assert!(PROBE_STEPS.parse("0").is_err());
        assert!(DEPTH.parse("10001").is_err());
    }

    #[test]
    fn config_counts_name_the_key_and_the_range() {
        let e = DEPTH.check_named("model.depth", 100_000_000).unwrap_err();
        assert_eq!(e.to_string().lines().count(), 1, "one line: {e}");
        assert!(e.to_string().contains("model.depth = 100000000"), "{e}");
        assert!(e.to_string().contains("from 1 to 10000"), "{e}");
        assert!(BLOCKS.check(4).is_ok());
        assert!(EPOCHS.check_opt("train.epochs", None).is_ok());
    }

    #[test]
    fn durations_are_said_only_when_long() {
        let f = FLOPS_PER_THREAD;
        assert_eq!(rough_duration(f, 1, 60.0), None);
        assert_eq!(
            rough_duration(1000.0 * f, 1, 60.0).as_deref(),
            Some("about 17 min")
        );
        assert_eq!(
            rough_duration(7200.0 * f, 2, 60.0).as_deref(),
            Some("about 1.0 h")
        );
        assert_eq!(
            rough_duration(864000.0 * f, 1, 60.0).as_deref(),
            Some("about 10 days")
        );
        assert_eq!(rough_duration(f64::NAN, 1, 60.0), None);
    }
}
