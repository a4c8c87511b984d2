//! Reading and writing files, and saying what is wrong with them in one line.
//!
//! The ground floor every module may stand on: atomic writes, bounded reads of
//! whole files (checked against the memory [`crate::budget`]), text configs, and
//! TOML / parser errors as one-line messages.

use crate::error::{Error, Result};
use std::path::Path;

/// Most bytes a text config (TOML spec, scan or sweep config) may have.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Read a whole file that must be a file: a folder or a device (`/dev/zero`, which
/// never ends) is a one-line error, and so is a file longer than `cap` bytes (a
/// pipe is read up to the cap). A regular file's size is checked against the
/// memory budget ([`crate::budget`]) before it is read.
pub fn read_file(path: &Path, cap: Option<u64>) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(Error::file(path, "is a folder, not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() || ft.is_block_device() || ft.is_socket() {
            return Err(Error::file(
                path,
                "is a device or socket, not a regular file",
            ));
        }
    }
    let too_long = |cap: u64| {
        Error::file(
            path,
            format!(
                "is longer than the {} a file of this kind may have",
                crate::budget::human(cap as u128)
            ),
        )
    };
    let mut bytes = Vec::new();
    if ft.is_file() {
        let len = meta.len();
        if let Some(c) = cap.filter(|&c| len > c) {
            return Err(too_long(c));
        }
        crate::budget::ensure(|| format!("reading {}", path.display()), len as u128)?;
        bytes.reserve_exact(len as usize);
    }
    let limit = cap.map_or(u64::MAX, |c| c + 1);
    f.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if let Some(c) = cap.filter(|&c| bytes.len() as u64 > c) {
        return Err(too_long(c));
    }
    Ok(bytes)
}

/// A text config as a string ([`read_file`] with [`MAX_CONFIG_BYTES`], UTF-8).
pub fn read_config_text(path: &Path) -> Result<String> {
    let bytes = read_file(path, Some(MAX_CONFIG_BYTES))?;
    String::from_utf8(bytes).map_err(|_| Error::file(path, "is not UTF-8 text"))
}

/// Write a file atomically: to a temporary name in the same folder, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Write a CSV file from a header and rows of cells.
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut s = header.join(",");
    s.push('\n');
    for r in rows {
        s.push_str(&r.join(","));
        s.push('\n');
    }
    write_atomic(path, s.as_bytes())
}

/// A TOML error as one line: `origin: line N (`the line`): message`.
pub fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> String {
    let msg = friendly(e.message());
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!("{origin}: line {line_no} (`{line}`): {msg}")
        }
        None => format!("{origin}: {msg}"),
    }
}

/// A parser message as one line, with Rust type names (`expected usize`) said in
/// words (`expected a non-negative integer`).
pub(crate) fn friendly(msg: &str) -> String {
    let mut m = one_line(msg);
    for (rust, words) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
    ] {
        if let Some(i) = m.find(rust) {
            // Only whole words: `expected usize`, not a longer name starting with it.
            let end = i + rust.len();
            if !m[end..].starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                m.replace_range(i..end, words);
            }
        }
    }
    m
}

/// First line of a (possibly multi-line) parser message, trimmed.
pub fn one_line(msg: &str) -> String {
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // toml errors look like "TOML parse error at line 3, column 1\n | ... \n unknown field ..."
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if lines.len() > 1 => format!("{first}: {last}"),
        (Some(first), _) => first.to_string(),
        _ => msg.to_string(),
    }
}
