//! Reading and writing files, and saying what is wrong with them in one line.
//!
//! The ground floor every module may stand on: atomic writes, bounded reads of
//! whole files (checked against the memory [`crate::budget`]), text configs, and
//! TOML / parser errors as one-line messages.

use crate::error::{Error, Result};
use std::path::Path;

/// Most bytes a text config (TOML spec, scan or sweep config) may have.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Read a whole file that must be a file: a folder, a FIFO (which blocks until a
/// writer comes) or a device (`/dev/zero`, which never ends) is a one-line error,
/// and so is a file longer than `cap` bytes. A regular file's size is checked against the
/// memory budget ([`crate::budget`]) before it is read.
pub fn read_file(path: &Path, cap: Option<u64>) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO blocks until a writer comes, forever if none does: open
        // without waiting, then refuse it from its metadata.
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let f = open.open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(Error::file(path, "is a folder, not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Err(Error::file(
                path,
                "is a FIFO (named pipe), not a regular file",
            ));
        }
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

/// Refuse an output target that exists and is not a regular file: the rename of
/// [`write_atomic`] would replace a device node (`/dev/null`, as root), a FIFO or a
/// socket with a file, and a folder cannot be written. Called before the work an
/// output is for, and again before each write.
pub fn ensure_replaceable(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::file(
            path,
            "is a folder: give a file name to write",
        )),
        Ok(m) if !m.is_file() => Err(Error::file(
            path,
            "is a device, FIFO or socket, not a regular file: refusing to replace it (give a file name)",
        )),
        _ => Ok(()),
    }
}

/// Write a file atomically: to a temporary name in the same folder, then rename.
/// A target that is not a regular file is refused ([`ensure_replaceable`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ensure_replaceable(path)?;
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// An exclusive `flock` on a lock file, held while the value lives and removed
/// when it is dropped. The kernel drops the lock when the holder exits, however it
/// ends (SIGKILL included), so a stale lock file never blocks anyone.
///
/// Removing the file races with a process that opened it just before: that process
/// may then lock the removed file while a third creates and locks a new one. So a
/// lock counts only when, once taken, the path still names the locked file (same
/// device and inode); otherwise the taker tries again.
#[derive(Debug)]
pub struct Lock {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Lock {
    /// Take the lock at `path`, or `Ok(None)` when another process holds it (then
    /// `holder` says who, as the holder wrote it: `pid N on HOST`).
    pub fn try_acquire(path: &Path, holder: &mut String) -> Result<Option<Lock>> {
        use std::io::{Read, Seek, Write};
        for _ in 0..64 {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                use std::os::unix::io::AsRawFd;
                // SAFETY: flock on a file descriptor this function owns.
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if rc != 0 {
                    let err = std::io::Error::last_os_error();
                    if err.kind() == std::io::ErrorKind::WouldBlock {
                        let _ = file.read_to_string(holder);
                        let h = holder.trim().to_string();
                        *holder = if h.is_empty() {
                            "holder unknown".into()
                        } else {
                            h
                        };
                        return Ok(None);
                    }
                    return Err(Error::io(path, err));
                }
                let mine = file.metadata().map_err(|e| Error::io(path, e))?;
                let same = std::fs::metadata(path)
                    .is_ok_and(|m| m.dev() == mine.dev() && m.ino() == mine.ino());
                if !same {
                    continue; // a holder removed it between our open and our flock
                }
            }
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "pid {} on {}", std::process::id(), hostname());
            let _ = file.flush();
            return Ok(Some(Lock {
                file,
                path: path.to_path_buf(),
            }));
        }
        Err(Error::file(
            path,
            "could not take the lock (it keeps being replaced)",
        ))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held (the lock goes with the descriptor, after).
        let _ = std::fs::remove_file(&self.path);
        let _ = &self.file;
    }
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

/// This machine's host name (for lock files and sweep records), or "unknown".
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
