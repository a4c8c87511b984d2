//! `richness data inspect`: validate a data file and describe it, like `h5ls` for
//! our formats.
//!
//! The format is decided by name, then by magic bytes:
//!
//! | evidence | format |
//! |---|---|
//! | `.npy`, or `\x93NUMPY` | NPY |
//! | gzip magic `1f 8b` | gzipped CSV when the name ends `.csv.gz`/`.txt.gz`, else gzipped IDX |
//! | `.bin` | CIFAR-10 or CIFAR-100 batch (by published name, else by record size) |
//! | `.csv`, `.txt` | CSV |
//! | `00 00 TT KK` (a known IDX type) | IDX |
//!
//! The file is then read with the same strict reader training uses, so `inspect`
//! succeeding means the file will load. The report gives format, element type,
//! shape, value range, label counts (for 1-D integer arrays, CIFAR labels, and a
//! CSV's last column when it holds small non-negative integers), the file's SHA-256
//! and, for gzip, the SHA-256 of the contents (what the data catalog pins), and
//! names the known data set file it matches, if any.
//!
//! Text data are described by spec, not by file name (`data inspect text:PATH`,
//! `shakespeare`): see [`super::text::inspect`].
//!
//! ```
//! use richness::data::{idx::write_idx_u8, inspect::inspect_bytes};
//! let mut b = Vec::new();
//! write_idx_u8(&mut b, &[4], &[0, 1, 1, 9]).unwrap();
//! let r = inspect_bytes(&b, "labels-idx1-ubyte".as_ref()).unwrap();
//! assert_eq!((r.format.as_str(), r.dtype.as_str(), r.shape.clone()), ("IDX", "u8", vec![4]));
//! assert_eq!(r.labels.unwrap(), vec![(0, 1), (1, 2), (9, 1)]);
//! ```

use super::cifar::{self, Cifar};
use super::npy::NpyData;
use super::{catalog, csv, idx, npy};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `inspect` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub path: PathBuf,
    /// `IDX`, `IDX (gzip)`, `NPY 1.0`, `CIFAR-10 binary`, `CSV`, …
    pub format: String,
    /// Element type: `u8`, `f32`, … (CSV: `f64`, as parsed).
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Smallest and largest finite value; `None` for an empty array.
    pub range: Option<(f64, f64)>,
    /// NaN and infinite values (float data only).
    pub non_finite: usize,
    /// (label, count), ascending, for label data.
    pub labels: Option<Vec<(i64, usize)>>,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// SHA-256 of the uncompressed contents, for gzip files.
    pub content_sha256: Option<String>,
    /// The known data set file whose pinned checksum this matches.
    pub known: Option<String>,
    /// Anything else worth a line (CSV header, CIFAR-100 superclasses, …).
    pub notes: Vec<String>,
}

/// Read, validate and describe a file.
pub fn inspect(path: &Path) -> Result<Report> {
    let bytes = crate::files::read_file(path, None)?;
    inspect_bytes(&bytes, path)
}

/// Validate and describe file contents; `path` gives the name (used to decide the
/// format) and names the file in errors.
pub fn inspect_bytes(bytes: &[u8], path: &Path) -> Result<Report> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let ext = |e: &str| name.ends_with(e);
    let gz = bytes.starts_with(&idx::GZIP_MAGIC);
    let mut r = Report {
        path: path.to_path_buf(),
        format: String::new(),
        dtype: String::new(),
        shape: vec![],
        range: None,
        non_finite: 0,
        labels: None,
        sha256: catalog::sha256_bytes(bytes),
        content_sha256: None,
        known: None,
        notes: vec![],
    };
    if ext(".npy") || bytes.starts_with(b"\x93NUMPY") {
        let a = npy::parse_npy(bytes, path)?;
        r.format = format!("NPY {}.0", bytes.get(6).copied().unwrap_or(1));
        r.dtype = a.dtype_name().into();
        r.shape = a.shape.clone();
        describe(&mut r, &a.data);
    } else if gz && (ext(".csv.gz") || ext(".txt.gz")) {
        r.format = "CSV (gzip)".into();
        describe_csv(&mut r, &csv::parse_csv(bytes, path, csv::Header::Auto)?);
        r.content_sha256 = Some(catalog::sha256_gunzip(bytes, path)?);
    } else if gz {
        let a = idx::parse_idx(bytes, path)?;
        r.format = "IDX (gzip)".into();
        describe_idx(&mut r, &a);
        r.content_sha256 = Some(catalog::sha256_gunzip(bytes, path)?);
    } else if ext(".bin") {
        let kind = Cifar::guess(path, bytes.len() as u64).ok_or_else(|| {
            Error::file(
                path,
                if bytes.is_empty() {
                    "empty file (a CIFAR batch holds 3073- or 3074-byte records)".to_string()
                } else {
                    format!(
                        "{} bytes is a whole number of neither 3073-byte CIFAR-10 nor 3074-byte CIFAR-100 records",
                        bytes.len()
                    )
                },
            )
        })?;
        let b = cifar::parse_batch(bytes, path, kind)?;
        r.format = format!("{} binary", kind.name());
        r.dtype = "u8".into();
        r.shape = vec![b.len(), 3, 32, 32];
        r.range = min_max(b.pixels.iter().map(|&p| p as f64));
        r.labels = Some(counts(b.labels.iter().map(|&l| l as i64)));
        if let Some(c) = &b.coarse {
            let k = counts(c.iter().map(|&l| l as i64));
            r.notes.push(format!(
                "labels are the fine labels; {} coarse classes (superclasses) present",
                k.len()
            ));
        }
    } else if ext(".csv") || ext(".txt") {
        r.format = "CSV".into();
        let table = csv::parse_csv(bytes, path, csv::Header::Auto).map_err(|e| match e {
            // Prose read as CSV fails on its first word: say how to read it as text.
            Error::File { path: p, msg } if ext(".txt") => Error::File {
                msg: format!("{msg} (read as CSV; for text data inspect `text:{p}`)"),
                path: p,
            },
            e => e,
        })?;
        describe_csv(&mut r, &table);
    } else if bytes.len() >= 4
        && bytes[0] == 0
        && bytes[1] == 0
        && idx::type_info(bytes[2]).is_some()
    {
        r.format = "IDX".into();
        describe_idx(&mut r, &idx::parse_idx(bytes, path)?);
    } else if name.contains("idx") || name.contains("ubyte") {
        // Named like IDX: let the IDX reader say what is wrong.
        idx::parse_idx(bytes, path)?;
        unreachable!("bytes without the IDX magic never parse as IDX");
    } else if bytes.is_empty() {
        return Err(Error::file(path, "empty file"));
    } else {
        return Err(Error::file(
            path,
            "unrecognised format (expected IDX raw or .gz, a CIFAR .bin batch, .npy or .csv)",
        ));
    }
    let sum = r.content_sha256.as_deref().unwrap_or(&r.sha256);
    r.known = catalog::identify(sum)
        .map(|(d, f)| format!("{} {} (pinned SHA-256 matches)", d.name, f.name));
    Ok(r)
}

fn describe_idx(r: &mut Report, a: &idx::IdxArray) {
    r.dtype = match a.data {
        NpyData::F32(_) => "f32",
        NpyData::F64(_) => "f64",
        NpyData::U8(_) => "u8",
        NpyData::I8(_) => "i8",
        NpyData::I16(_) => "i16",
        NpyData::I32(_) => "i32",
        _ => "?",
    }
    .into();
    r.shape = a.shape.clone();
    describe(r, &a.data);
}

/// Range, non-finite count and (for 1-D integer data) label counts, computed in
/// place: a 47 MB image file is never widened to 8-byte values.
fn describe(r: &mut Report, data: &NpyData) {
    let one_d = r.shape.len() == 1;
    macro_rules! ints {
        ($v:expr) => {{
            r.range = min_max($v.iter().map(|&x| x as f64));
            if one_d {
                r.labels = Some(counts(
                    $v.iter().map(|&x| i64::try_from(x).unwrap_or(i64::MAX)),
                ));
            }
        }};
    }
    match data {
        NpyData::F32(v) => {
            r.non_finite = v.iter().filter(|x| !x.is_finite()).count();
            r.range = min_max(v.iter().filter(|x| x.is_finite()).map(|&x| x as f64));
        }
        NpyData::F64(v) => {
            r.non_finite = v.iter().filter(|x| !x.is_finite()).count();
            r.range = min_max(v.iter().copied().filter(|x| x.is_finite()));
        }
        NpyData::U8(v) => ints!(v),
        NpyData::I8(v) => ints!(v),
        NpyData::I16(v) => ints!(v),
        NpyData::U16(v) => ints!(v),
        NpyData::I32(v) => ints!(v),
        NpyData::U32(v) => ints!(v),
        NpyData::I64(v) => ints!(v),
        NpyData::U64(v) => ints!(v),
        NpyData::Bool(v) => {
            let b: Vec<u8> = v.iter().map(|&x| x as u8).collect();
            ints!(b)
        }
    }
}

fn describe_csv(r: &mut Report, t: &csv::Table) {
    r.dtype = "f64".into();
    r.shape = vec![t.rows, t.cols];
    r.range = min_max(t.values.iter().copied());
    match &t.header {
        Some(h) => r.notes.push(format!("header: {}", abbreviate(h))),
        None => r.notes.push("no header row".into()),
    }
    let last: Vec<f64> = t.column(t.cols - 1).collect();
    if t.cols > 1
        && last
            .iter()
            .all(|&v| (0.0..=65_535.0).contains(&v) && v.fract() == 0.0)
    {
        let c = counts(last.iter().map(|&v| v as i64));
        if c.len() <= 1000 {
            r.labels = Some(c);
            r.notes.push(
                "labels: the last column (small non-negative integers), the default label column"
                    .into(),
            );
        }
    }
}

fn abbreviate(h: &[String]) -> String {
    if h.len() <= 8 {
        h.join(", ")
    } else {
        format!(
            "{}, … {} ({} columns)",
            h[..4].join(", "),
            h[h.len() - 1],
            h.len()
        )
    }
}

fn min_max(it: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    it.fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((a, b)) => Some((a.min(x), b.max(x))),
    })
}

fn counts(it: impl Iterator<Item = i64>) -> Vec<(i64, usize)> {
    let mut m = BTreeMap::new();
    for l in it {
        *m.entry(l).or_insert(0usize) += 1;
    }
    m.into_iter().collect()
}

/// A number as short as it is exact (`255`, `0.5`, `1e-7`).
fn num(x: f64) -> String {
    format!("{x}")
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "file     {}", self.path.display())?;
        writeln!(f, "format   {}", self.format)?;
        writeln!(f, "dtype    {}", self.dtype)?;
        writeln!(
            f,
            "shape    [{}]",
            self.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        match self.range {
            Some((a, b)) => writeln!(f, "range    {} … {}", num(a), num(b))?,
            None => writeln!(f, "range    (empty)")?,
        }
        if self.non_finite > 0 {
            writeln!(f, "nonfin   {} NaN or infinite values", self.non_finite)?;
        }
        if let Some(l) = &self.labels {
            const SHOW: usize = 20;
            let mut s: Vec<String> = l
                .iter()
                .take(SHOW)
                .map(|(k, n)| format!("{k}:{n}"))
                .collect();
            if l.len() > SHOW {
                s.push(format!("… ({} distinct)", l.len()));
            }
            writeln!(f, "labels   {}", s.join(" "))?;
        }
        writeln!(f, "sha256   {}", self.sha256)?;
        if let Some(c) = &self.content_sha256 {
            writeln!(f, "content  {c} (SHA-256 uncompressed)")?;
        }
        if let Some(k) = &self.known {
            writeln!(f, "known    {k}")?;
        }
        for n in &self.notes {
            writeln!(f, "note     {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart() {
        let rep = |b: &[u8], n: &str| inspect_bytes(b, Path::new(n)).unwrap();
        let mut npyb = Vec::new();
        npy::write_npy(&mut npyb, &[2], &[1.5f32, f32::NAN]).unwrap();
        let r = rep(&npyb, "a.npy");
        assert_eq!(
            (r.format.as_str(), r.dtype.as_str(), r.range, r.non_finite),
            ("NPY 1.0", "float32", Some((1.5, 1.5)), 1)
        );
        let r = rep(b"x,y\n1,0\n2,1\n3,1\n", "t.csv");
        assert_eq!(
            (r.shape.clone(), r.labels.clone()),
            (vec![3, 2], Some(vec![(0, 1), (1, 2)]))
        );
        let mut cifar = vec![3u8];
        cifar.resize(3073, 128);
        let r = rep(&cifar, "data_batch_1.bin");
        assert_eq!(
            (r.format.as_str(), r.shape.clone(), r.range),
            ("CIFAR-10 binary", vec![1, 3, 32, 32], Some((128.0, 128.0)))
        );
        let msg = |b: &[u8], n: &str| inspect_bytes(b, Path::new(n)).unwrap_err().to_string();
        assert!(msg(b"hello", "notes").contains("unrecognised format"));
        assert!(msg(b"", "notes").contains("empty file"));
        assert!(msg(b"hello", "x-idx1-ubyte").contains("not an IDX file"));
        assert!(msg(&[0; 100], "x.bin").contains("neither"));
        assert!(msg(b"To be, or not\n", "hamlet.txt").contains("inspect `text:hamlet.txt`"));
    }
}
