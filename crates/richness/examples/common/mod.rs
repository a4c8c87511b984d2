//! Command-line flags of the profiling examples (`--name VALUE`, `--name`), so each
//! example does not parse them again. Profiling tools for developers: a bad value
//! panics with the flag's name.

// Each example uses only some of these.
#![allow(dead_code)]

/// The value after `--name`, parsed; `None` when the flag is absent.
pub fn flag<T: std::str::FromStr>(name: &str) -> Option<T>
where
    T::Err: std::fmt::Debug,
{
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    let v = args
        .get(i + 1)
        .unwrap_or_else(|| panic!("{name} needs a value"));
    Some(v.parse().unwrap_or_else(|e| panic!("{name} {v}: {e:?}")))
}

/// Whether the bare flag `--name` was given.
pub fn has(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}
