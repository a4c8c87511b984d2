//! A resource budget checked before allocating.
//!
//! A typo in a size (`--width 100000`, `n=1e9`, `--nodes 10000000`) used to reach the
//! allocator, which aborts the process ("memory allocation of … bytes failed", exit
//! 134) or swaps the machine to a halt. Every job that allocates in proportion to a
//! size the user typed first estimates, from the sizes alone, the memory it will need,
//! and refuses with a one-line [`Error::Resource`] naming the size, the estimate and
//! the limit when that exceeds what the process may use:
//!
//! * the machine's available memory (`MemAvailable` in `/proc/meminfo`);
//! * the address-space limit (`ulimit -v`, `RLIMIT_AS`, read from
//!   `/proc/self/limits`), less what the process has already mapped;
//! * `--max-memory` ([`set_max_memory`]), when given.
//!
//! The estimates count the big buffers (weights, gradients, optimizer state,
//! activations of one batch, kernels, data sets) and not the small change, so a job
//! that passes may still need somewhat more; a job that is refused would not have
//! fitted. Where a limit cannot be read (not Linux), only `--max-memory` applies.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// `--max-memory` in bytes; 0 = not set.
static MAX_MEMORY: AtomicU64 = AtomicU64::new(0);

/// Set (or clear) the process-wide `--max-memory` cap, in bytes.
pub fn set_max_memory(bytes: Option<u64>) {
    MAX_MEMORY.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// The `--max-memory` cap, when set.
pub fn max_memory() -> Option<u64> {
    match MAX_MEMORY.load(Ordering::Relaxed) {
        0 => None,
        b => Some(b),
    }
}

/// A memory size as people write it: `8G`, `512M`, `1.5T`, `64k`, `4000000000`
/// (bytes). The suffixes K, M, G, T (optionally followed by `B` or `iB`) are powers
/// of 1024, as `ulimit`, `free` and SLURM's `--mem` count.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a memory size (e.g. 8G, 512M, 4000000000)");
    let lower = t.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, scale) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = v * scale as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("`{s}`: expected a positive memory size (e.g. 8G)"));
    }
    Ok(bytes as u64)
}

/// Bytes as a short human number: `37.3 GiB`, `512 MiB`, `900 B`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The tightest memory limit in force, and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub bytes: u64,
    /// `--max-memory`, `available memory (MemAvailable)` or
    /// `the address-space limit (ulimit -v)`.
    pub source: &'static str,
}

/// The tightest of `--max-memory`, the available memory and the address-space
/// headroom; `None` when none is known.
pub fn limit() -> Option<Limit> {
    limit_from(max_memory(), mem_available(), address_space_headroom())
}

/// The tightest of the three limits, each when known.
fn limit_from(max: Option<u64>, available: Option<u64>, headroom: Option<u64>) -> Option<Limit> {
    let mut best: Option<Limit> = None;
    let mut offer = |bytes: Option<u64>, source: &'static str| {
        if let Some(b) = bytes {
            if best.as_ref().map_or(true, |l| b < l.bytes) {
                best = Some(Limit { bytes: b, source });
            }
        }
    };
    offer(max, "--max-memory");
    offer(available, "available memory (MemAvailable)");
    offer(headroom, "the address-space limit (ulimit -v)");
    best
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&text, "MemAvailable:")
}

/// `RLIMIT_AS` (soft) less the process's current virtual size, in bytes.
fn address_space_headroom() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    let soft: u64 = soft.parse().ok()?; // "unlimited" does not parse: no limit
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = kib_field(&status, "VmSize:").unwrap_or(0);
    Some(soft.saturating_sub(used))
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Refuse a job of `bytes` that does not fit the [`limit`]: `Err(Resource)` saying
/// `{what} needs about X, more than the Y of {source}`. `what` names the job and
/// the sizes that drive the estimate (`width 100000 (3 layers, batch 64, f32)`).
pub fn ensure(what: impl FnOnce() -> String, bytes: u128) -> Result<()> {
    ensure_within(what, bytes, limit())
}

/// [`ensure`] against a given limit (tests).
pub fn ensure_within(
    what: impl FnOnce() -> String,
    bytes: u128,
    limit: Option<Limit>,
) -> Result<()> {
    match limit {
        Some(l) if bytes > l.bytes as u128 => Err(Error::Resource(format!(
            "{} needs about {} of memory, more than the {} of {}{}",
            what(),
            human(bytes),
            human(l.bytes as u128),
            l.source,
            if l.source == "--max-memory" {
                ""
            } else {
                " (lower the sizes, or see --max-memory)"
            }
        ))),
        _ => Ok(()),
    }
}

/// `a × b × … × elem` bytes, saturating.
pub fn product(sizes: &[usize], elem: usize) -> u128 {
    sizes
        .iter()
        .fold(elem as u128, |acc, &s| acc.saturating_mul(s as u128))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("8GiB").unwrap(), 8 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("4000000000").unwrap(), 4_000_000_000);
        for bad in ["", "G", "-1G", "0", "nanG", "infG", "8X", "1e30T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_limit_is_the_tightest_known() {
        let l = limit_from(Some(1 << 20), Some(1 << 30), None).unwrap();
        assert_eq!((l.bytes, l.source), (1 << 20, "--max-memory"));
        let l = limit_from(Some(1 << 40), Some(1 << 30), Some(1 << 32)).unwrap();
        assert_eq!(l.source, "available memory (MemAvailable)");
        let l = limit_from(None, Some(1 << 34), Some(1 << 32)).unwrap();
        assert_eq!(l.source, "the address-space limit (ulimit -v)");
        assert_eq!(limit_from(None, None, None), None);
        // On Linux the machine's own numbers are readable.
        if cfg!(target_os = "linux") {
            assert!(mem_available().is_some());
        }
    }
}
