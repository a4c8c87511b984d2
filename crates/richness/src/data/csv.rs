//! Numeric CSV files: one example per row, one number per field, an optional header
//! row, and one column of class labels (or regression targets).
//!
//! Parsed with BurntSushi's `csv` crate (quoting, CRLF and `#` comment lines are
//! its job); every field must then be a finite number. A file starting with the
//! gzip magic is decompressed first (scikit-learn ships its data as `.csv.gz`).
//!
//! As a data spec:
//!
//! ```text
//! csv:FILE[,test=FILE][,label=last|first|none|NAME|INDEX][,header=auto|yes|no][,task=classification|regression]
//! ```
//!
//! - `label` (default `last`): the column holding the class label (an integer
//!   0–65,535; targets become one-hot rows over max label + 1 classes) or, with
//!   `task=regression`, the real-valued target. `NAME` is a header name, `INDEX` a
//!   0-based column number. `none` reads inputs only (fine for `inspect`; training
//!   needs targets).
//! - `header` (default `auto`): `auto` treats the first row as a header when any of
//!   its fields is not a number.
//!
//! ```
//! use richness::data::csv::{parse_csv, Header};
//! let t = parse_csv(b"a,b,label\n0.5,1,3\n2,-1,0\n", "mem.csv", Header::Auto).unwrap();
//! assert_eq!(t.header.as_deref(), Some(&["a".to_string(), "b".into(), "label".into()][..]));
//! assert_eq!((t.rows, t.cols), (2, 3));
//! assert_eq!(t.values, vec![0.5, 1.0, 3.0, 2.0, -1.0, 0.0]);
//! let spec: richness::data::csv::CsvSpec = "train.csv,label=first".parse().unwrap();
//! assert_eq!(spec.to_string(), "csv:path=train.csv,label=first,header=auto,task=classification");
//! ```

use super::{parse_kv, Dataset, Split};
use crate::error::{Error, Result};
use crate::tensor::Mat;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Whether the first row names the columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Header {
    /// A header when any field of the first row is not a number.
    #[default]
    Auto,
    Yes,
    No,
}

/// Which column holds the labels (or targets).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LabelColumn {
    #[default]
    Last,
    First,
    /// No label column: every column is an input.
    None,
    /// A header name.
    Name(String),
    /// A 0-based column number.
    Index(usize),
}

/// What the label column means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CsvTask {
    /// Integer class labels, one-hot targets.
    #[default]
    Classification,
    /// A real-valued target, one output.
    Regression,
}

/// A parsed CSV file: all values row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub header: Option<Vec<String>>,
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f64>,
}

/// Parse CSV bytes (or gzipped CSV); `path` names the file in errors.
pub fn parse_csv(bytes: &[u8], path: impl AsRef<Path>, header: Header) -> Result<Table> {
    let path = path.as_ref();
    if bytes.starts_with(&super::idx::GZIP_MAGIC) {
        // The buffer grows only as data really decompresses, so a gzip bomb costs
        // what it expands to (at most 1032 times the file), never a header's claim;
        // and that is checked against the memory budget as it grows (1 MB of gzip
        // held a 1 GiB CSV that aborted in the allocator), counting the parsed
        // values too (at most 4 bytes of them per byte of text: `0,` is 8).
        let mut text = Vec::new();
        let mut z = flate2::read::MultiGzDecoder::new(bytes);
        let mut next_check = 16usize << 20;
        loop {
            let before = text.len();
            (&mut z)
                .take(1 << 20)
                .read_to_end(&mut text)
                .map_err(|e| Error::file(path, format!("corrupt gzip stream ({e})")))?;
            if text.len() == before {
                break;
            }
            if text.len() >= next_check {
                crate::budget::ensure(
                    || {
                        format!(
                            "decompressing {} (at least {} of CSV text, and its values)",
                            path.display(),
                            crate::budget::human(text.len() as u128)
                        )
                    },
                    (text.len() as u128).saturating_mul(5),
                )?;
                next_check = next_check.saturating_mul(2);
            }
        }
        return parse_plain(&text, path, header);
    }
    parse_plain(bytes, path, header)
}

fn parse_plain(bytes: &[u8], path: &Path, header: Header) -> Result<Table> {
    let err = |m: String| Error::file(path, m);
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(::csv::Trim::All)
        .from_reader(bytes);
    let mut rec = ::csv::ByteRecord::new();
    let mut names: Option<Vec<String>> = None;
    let mut values = Vec::new();
    let (mut rows, mut cols) = (0usize, 0usize);
    let mut first = true;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(err(format!("malformed CSV ({e})"))),
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() == 1 && rec[0].is_empty() {
            continue; // a blank line
        }
        if first {
            first = false;
            cols = rec.len();
            let numeric = rec.iter().all(|f| number(f).is_some());
            let is_header = match header {
                Header::Yes => true,
                Header::No => false,
                Header::Auto => !numeric,
            };
            if is_header {
                names = Some(
                    rec.iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect(),
                );
                continue;
            }
        }
        if rec.len() != cols {
            return Err(err(format!(
                "line {line} has {} fields, the first row has {cols}",
                rec.len()
            )));
        }
        for (c, f) in rec.iter().enumerate() {
            match number(f) {
                Some(v) if v.is_finite() => values.push(v),
                Some(_) => {
                    return Err(err(format!(
                        "line {line}, column {}: non-finite value `{}`",
                        c + 1,
                        show(f)
                    )))
                }
                None if f.is_empty() => {
                    return Err(err(format!("line {line}, column {}: empty field", c + 1)))
                }
                None => {
                    return Err(err(format!(
                        "line {line}, column {}: `{}` is not a number",
                        c + 1,
                        show(f)
                    )))
                }
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(err("no data rows".into()));
    }
    Ok(Table {
        header: names,
        rows,
        cols,
        values,
    })
}

fn number(f: &[u8]) -> Option<f64> {
    std::str::from_utf8(f).ok()?.parse().ok()
}

/// A field for an error message: lossy text, at most 40 characters.
fn show(f: &[u8]) -> String {
    let s = String::from_utf8_lossy(f);
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.into_owned()
    }
}

/// Read and parse a CSV file.
pub fn read_csv(path: impl AsRef<Path>, header: Header) -> Result<Table> {
    let path = path.as_ref();
    let bytes = crate::files::read_file(path, None)?;
    parse_csv(&bytes, path, header)
}

impl Table {
    /// The 0-based index of the label column, if any.
    pub fn label_index(&self, label: &LabelColumn, path: &Path) -> Result<Option<usize>> {
        let i = match label {
            LabelColumn::None => return Ok(None),
            LabelColumn::Last => self.cols - 1,
            LabelColumn::First => 0,
            LabelColumn::Index(i) => *i,
            LabelColumn::Name(n) => match &self.header {
                Some(h) => h.iter().position(|c| c == n).ok_or_else(|| {
                    Error::file(
                        path,
                        format!("no column named `{n}` (columns: {})", h.join(", ")),
                    )
                })?,
                None => {
                    return Err(Error::file(
                        path,
                        format!("label column `{n}` named, but the file has no header row"),
                    ))
                }
            },
        };
        if i >= self.cols {
            return Err(Error::file(
                path,
                format!(
                    "label column {i} does not exist (the file has {} columns)",
                    self.cols
                ),
            ));
        }
        Ok(Some(i))
    }

    /// The values of column `c`.
    pub fn column(&self, c: usize) -> impl Iterator<Item = f64> + '_ {
        self.values
            .iter()
            .skip(c)
            .step_by(self.cols.max(1))
            .copied()
    }

    /// Inputs: every column but `skip`, as [rows, cols − 1] (or all columns).
    pub fn inputs(&self, skip: Option<usize>) -> Mat<f64> {
        let d = self.cols - skip.is_some() as usize;
        let mut x = Vec::with_capacity(self.rows * d);
        for r in self.values.chunks_exact(self.cols) {
            for (c, &v) in r.iter().enumerate() {
                if Some(c) != skip {
                    x.push(v);
                }
            }
        }
        Mat::from_vec(self.rows, d, x)
    }

    /// Column `c` as class labels (integers 0–65,535).
    pub fn labels(&self, c: usize, path: &Path) -> Result<Vec<u32>> {
        self.column(c)
            .enumerate()
            .map(|(r, v)| {
                if (0.0..=65_535.0).contains(&v) && v.fract() == 0.0 {
                    Ok(v as u32)
                } else {
                    Err(Error::file(
                        path,
                        format!(
                            "label {v} in data row {} is not a class label (an integer 0–65535)",
                            r + 1
                        ),
                    ))
                }
            })
            .collect()
    }
}

/// A CSV data spec (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct CsvSpec {
    pub path: PathBuf,
    pub test: Option<PathBuf>,
    pub label: LabelColumn,
    pub header: Header,
    pub task: CsvTask,
}

impl CsvSpec {
    /// Read the file(s) into a split; classification targets have max label + 1
    /// classes over training and test labels together, so both sets agree.
    pub fn load(&self) -> Result<Split> {
        let train = read_csv(&self.path, self.header)?;
        let test = self
            .test
            .as_ref()
            .map(|p| read_csv(p, self.header).map(|t| (p, t)))
            .transpose()?;
        if let Some((p, t)) = &test {
            if t.cols != train.cols {
                return Err(Error::Shape(format!(
                    "{} has {} columns but {} has {}",
                    p.display(),
                    t.cols,
                    self.path.display(),
                    train.cols
                )));
            }
        }
        let lab = train.label_index(&self.label, &self.path)?.ok_or_else(|| {
            Error::config(format!(
                "csv data `{}`: label=none leaves no targets to train on (name the label column: label=last|first|NAME|INDEX)",
                self.path.display()
            ))
        })?;
        if train.cols < 2 {
            return Err(Error::file(
                &self.path,
                "only the label column: no input columns",
            ));
        }
        let name = self
            .path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let build = |t: &Table, p: &Path, classes: usize| -> Result<Dataset> {
            let c = t.label_index(&self.label, p)?.unwrap_or(lab);
            let x = t.inputs(Some(c));
            Ok(match self.task {
                CsvTask::Regression => {
                    let y = Mat::from_vec(t.rows, 1, t.column(c).collect());
                    Dataset {
                        name: name.clone(),
                        x,
                        y,
                        labels: None,
                        image_shape: None,
                        vocab: None,
                    }
                }
                CsvTask::Classification => {
                    let labels = t.labels(c, p)?;
                    Dataset {
                        name: name.clone(),
                        x,
                        y: Dataset::one_hot(&labels, classes),
                        labels: Some(labels),
                        image_shape: None,
                        vocab: None,
                    }
                }
            })
        };
        let mut classes = 1;
        if self.task == CsvTask::Classification {
            let mut max = train
                .labels(lab, &self.path)?
                .into_iter()
                .max()
                .unwrap_or(0);
            if let Some((p, t)) = &test {
                let c = t.label_index(&self.label, p)?.unwrap_or(lab);
                max = max.max(t.labels(c, p)?.into_iter().max().unwrap_or(0));
            }
            classes = max as usize + 1;
        }
        Ok(Split {
            train: build(&train, &self.path, classes)?,
            test: test
                .as_ref()
                .map(|(p, t)| build(t, p, classes))
                .transpose()?,
        })
    }
}

impl FromStr for CsvSpec {
    type Err = Error;
    /// `FILE[,key=value…]` or `path=FILE[,key=value…]` (the part after `csv:`).
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.splitn(2, ',');
        let first = parts.next().unwrap_or("").trim();
        let (mut path, rest) = if !first.is_empty() && !first.contains('=') {
            (Some(PathBuf::from(first)), parts.next().unwrap_or(""))
        } else {
            (None, s)
        };
        let mut spec = CsvSpec {
            path: PathBuf::new(),
            test: None,
            label: LabelColumn::Last,
            header: Header::Auto,
            task: CsvTask::Classification,
        };
        for (k, v) in parse_kv(rest)? {
            match k.as_str() {
                "path" => path = Some(v.into()),
                "test" => spec.test = Some(v.into()),
                "label" => {
                    spec.label = match v.as_str() {
                        "last" => LabelColumn::Last,
                        "first" => LabelColumn::First,
                        "none" => LabelColumn::None,
                        _ => match v.parse::<usize>() {
                            Ok(i) => LabelColumn::Index(i),
                            Err(_) if !v.is_empty() => LabelColumn::Name(v),
                            Err(_) => return Err(Error::config("csv data: empty label column")),
                        },
                    }
                }
                "header" => {
                    spec.header = match v.as_str() {
                        "auto" => Header::Auto,
                        "yes" | "true" => Header::Yes,
                        "no" | "false" => Header::No,
                        _ => {
                            return Err(Error::config(format!(
                                "csv data: header must be auto, yes or no, got `{v}`"
                            )))
                        }
                    }
                }
                "task" => {
                    spec.task = match v.as_str() {
                        "classification" => CsvTask::Classification,
                        "regression" => CsvTask::Regression,
                        _ => {
                            return Err(Error::config(format!(
                                "csv data: task must be classification or regression, got `{v}`"
                            )))
                        }
                    }
                }
                _ => {
                    return Err(Error::config(format!(
                        "unknown csv data key `{k}` (expected path, test, label, header, task)"
                    )))
                }
            }
        }
        spec.path = path.filter(|p| !p.as_os_str().is_empty()).ok_or_else(|| {
            Error::config(
                "csv data: missing the file (csv:FILE[,test=FILE][,label=…][,header=…][,task=…])",
            )
        })?;
        Ok(spec)
    }
}

impl std::fmt::Display for CsvSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "csv:path={}", self.path.display())?;
        if let Some(t) = &self.test {
            write!(f, ",test={}", t.display())?;
        }
        let label = match &self.label {
            LabelColumn::Last => "last".to_string(),
            LabelColumn::First => "first".into(),
            LabelColumn::None => "none".into(),
            LabelColumn::Name(n) => n.clone(),
            LabelColumn::Index(i) => i.to_string(),
        };
        let header = match self.header {
            Header::Auto => "auto",
            Header::Yes => "yes",
            Header::No => "no",
        };
        let task = match self.task {
            CsvTask::Classification => "classification",
            CsvTask::Regression => "regression",
        };
        write!(f, ",label={label},header={header},task={task}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(b: &[u8]) -> String {
        parse_csv(b, "t.csv", Header::Auto).unwrap_err().to_string()
    }

    #[test]
    fn header_detection_and_comments() {
        let t = parse_csv(b"# a comment\n1,2\n\n3,4\r\n", "t", Header::Auto).unwrap();
        assert_eq!(
            (t.header.is_none(), t.rows, t.values.clone()),
            (true, 2, vec![1.0, 2.0, 3.0, 4.0])
        );
        let t = parse_csv(b"1,2\n3,4\n", "t", Header::Yes).unwrap();
        assert_eq!(
            (t.header.unwrap(), t.rows),
            (vec!["1".to_string(), "2".into()], 1)
        );
        let t = parse_csv(b"\"x\",\" y \"\n1e-3, -2\n", "t", Header::Auto).unwrap();
        assert_eq!(t.header.unwrap(), vec!["x".to_string(), "y".into()]);
        assert_eq!(t.values, vec![1e-3, -2.0]);
    }

    #[test]
    fn malformed_files_are_one_line_errors() {
        assert!(msg(b"").contains("no data rows"));
        assert!(msg(b"a,b\n").contains("no data rows"));
        assert!(msg(b"1,2\n3\n").contains("line 2 has 1 fields, the first row has 2"));
        assert!(msg(b"1,2\n3,x\n").contains("line 2, column 2: `x` is not a number"));
        assert!(msg(b"1,2\n3,\n").contains("line 2, column 2: empty field"));
        assert!(msg(b"1,2\nnan,1\n").contains("non-finite value `nan`"));
        assert!(msg(b"\x1f\x8b\x08\x00garbage").contains("corrupt gzip stream"));
    }

    #[test]
    fn label_columns_resolve() {
        let t = parse_csv(b"a,y,b\n1,2,3\n", "t", Header::Auto).unwrap();
        let p = Path::new("t");
        assert_eq!(
            t.label_index(&LabelColumn::Name("y".into()), p).unwrap(),
            Some(1)
        );
        assert!(t
            .label_index(&LabelColumn::Name("z".into()), p)
            .unwrap_err()
            .to_string()
            .contains("columns: a, y, b"));
        assert!(t
            .label_index(&LabelColumn::Index(3), p)
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        assert_eq!(t.inputs(Some(1)).as_slice(), &[1.0, 3.0]);
        let t = parse_csv(b"1,2.5\n", "t", Header::Auto).unwrap();
        assert!(t
            .labels(1, p)
            .unwrap_err()
            .to_string()
            .contains("label 2.5 in data row 1"));
    }

    #[test]
    fn specs_round_trip() {
        for s in [
            "a.csv",
            "path=a.csv,test=b.csv,label=y,header=yes,task=regression",
            "a.csv,label=3,header=no",
        ] {
            let spec: CsvSpec = s.parse().unwrap();
            let again: CsvSpec = spec.to_string()["csv:".len()..].parse().unwrap();
            assert_eq!(spec, again);
        }
        assert!("label=first"
            .parse::<CsvSpec>()
            .unwrap_err()
            .to_string()
            .contains("missing the file"));
        assert!("a.csv,sep=;"
            .parse::<CsvSpec>()
            .unwrap_err()
            .to_string()
            .contains("unknown csv data key `sep`"));
    }
}
