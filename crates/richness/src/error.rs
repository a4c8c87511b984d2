//! One error type for the whole library.
//!
//! Every variant renders as a single line that names the problem (and the file,
//! where there is one), because the command-line tool prints it as-is and exits
//! non-zero: users should never see a panic or a backtrace for bad input.

use std::path::Path;

/// Everything that can go wrong in `richness`, as one-line messages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value or a combination of options is invalid.
    #[error("{0}")]
    Config(String),
    /// A data or weights file is malformed; the message names the file.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    /// The operating system refused a file operation. The OS error is part of the
    /// message and deliberately not also a [`source`](std::error::Error::source):
    /// error reporters that print the chain (`anyhow`'s `{:#}`) would say it twice.
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    /// A job would need more memory than the process may use (see
    /// [`crate::budget`]); refused before anything is allocated.
    #[error("{0}")]
    Resource(String),
    /// Arrays whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

impl Error {
    /// A malformed file: `path: msg`.
    pub fn file(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::File {
            path: single_line(&path.as_ref().display().to_string()),
            msg: single_line(&msg.into()),
        }
    }

    /// An I/O failure on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            err: source,
        }
    }

    /// An invalid configuration value.
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(single_line(&msg.into()))
    }
}

/// Errors are one line: control characters that came from user input (a file's
/// header, a config value) are shown escaped (`\n`, `\u{1b}`), never printed raw.
fn single_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Most characters of an error line as printed: a 10 MB config value echoed in its
/// error made a 10 MB line.
pub const MAX_ERROR_CHARS: usize = 1000;

/// An error message as the command line prints it: one line, control characters
/// escaped (an escape sequence in a file name is shown, not run by the terminal),
/// at most [`MAX_ERROR_CHARS`] characters (the rest is counted, not shown).
pub fn for_terminal(msg: &str) -> String {
    let joined = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let escaped = single_line(&joined);
    let total = escaped.chars().count();
    if total <= MAX_ERROR_CHARS {
        return escaped;
    }
    let kept: String = escaped.chars().take(MAX_ERROR_CHARS).collect();
    format!("{kept}… ({} more characters)", total - MAX_ERROR_CHARS)
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_errors_are_one_capped_escaped_line() {
        assert_eq!(for_terminal("a\n  b\n"), "a b");
        assert_eq!(for_terminal("file \u{1b}[31mred"), "file \\u{1b}[31mred");
        let long = "x".repeat(MAX_ERROR_CHARS + 500);
        let t = for_terminal(&long);
        assert!(
            t.ends_with("… (500 more characters)"),
            "{}",
            &t[t.len() - 40..]
        );
        assert_eq!(t.chars().filter(|&c| c == 'x').count(), MAX_ERROR_CHARS);
    }

    #[test]
    fn io_errors_say_the_os_error_once() {
        let e = Error::io(
            "/x/y.idx",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(std::error::Error::source(&e).is_none());
        let shown = e.to_string();
        assert!(shown.starts_with("/x/y.idx: "), "{shown}");
        let os = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
        assert_eq!(shown.matches(&os).count(), 1, "{shown}");
    }
}
