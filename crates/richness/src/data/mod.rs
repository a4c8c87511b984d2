//! Datasets: the embedded digits, synthetic teachers, and the user's `.npy` files.
//!
//! A [`Dataset`] is a pair of row-major matrices: inputs `x` [N, d] and targets `y`
//! [N, k] (one-hot rows for classification, with the integer `labels` kept too).
//! A [`DataSource`] is parsed from a short spec, the same in configs and on the
//! command line:
//!
//! | spec | what |
//! |---|---|
//! | `digits` | scikit-learn's 8×8 digits, embedded (1,797 images; pixels /16 → [0, 1]) |
//! | `synthetic:teacher=linear,task=regression,n=1000,n_test=500,d=32,k=1,noise=0,seed=0` | Gaussian inputs, a random linear or `mlp` teacher; `task=classification` gives one-hot argmax labels |
//! | `npy:x=X.npy,y=Y.npy[,x_test=…,y_test=…]` | your arrays (`npy:X.npy,Y.npy` for short); integer 1-D `y` = class labels |
//!
//! ```
//! use richness::data::DataSource;
//! let split = "digits".parse::<DataSource>().unwrap().load().unwrap();
//! assert_eq!(split.train.len() + split.test.as_ref().unwrap().len(), 1797);
//! assert_eq!(split.train.input_dim(), 64);
//! ```

pub mod digits;
pub mod npy;
pub mod synthetic;

use crate::error::{Error, Result};
use crate::tensor::{Mat, Scalar};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// Inputs, targets and (for classification) labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// [N, d] inputs.
    pub x: Mat<f64>,
    /// [N, k] targets.
    pub y: Mat<f64>,
    /// Class labels, for classification data.
    pub labels: Option<Vec<u32>>,
    /// Image shape [C, H, W] when the inputs are flattened images.
    pub image_shape: Option<[usize; 3]>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.x.rows()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn input_dim(&self) -> usize {
        self.x.cols()
    }
    pub fn output_dim(&self) -> usize {
        self.y.cols()
    }
    /// The first `n` examples.
    pub fn head(&self, n: usize) -> Dataset {
        Dataset {
            name: self.name.clone(),
            x: self.x.head(n),
            y: self.y.head(n),
            labels: self.labels.as_ref().map(|l| l[..n.min(l.len())].to_vec()),
            image_shape: self.image_shape,
        }
    }
    /// The examples at `idx`.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            name: self.name.clone(),
            x: self.x.select_rows(idx),
            y: self.y.select_rows(idx),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
            image_shape: self.image_shape,
        }
    }
    /// Inputs and targets in the training precision.
    pub fn cast<T: Scalar>(&self) -> (Mat<T>, Mat<T>) {
        (self.x.cast(), self.y.cast())
    }
    /// One-hot targets for `labels` with `classes` classes.
    pub fn one_hot(labels: &[u32], classes: usize) -> Mat<f64> {
        let mut y = Mat::zeros(labels.len(), classes);
        for (i, &l) in labels.iter().enumerate() {
            y[(i, l as usize)] = 1.0;
        }
        y
    }
}

/// A training set and an optional test set.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Dataset,
    pub test: Option<Dataset>,
}

impl Split {
    /// Keep at most `train` / `test` examples (the first ones, as the tutorial does).
    pub fn limit(mut self, train: Option<usize>, test: Option<usize>) -> Result<Split> {
        if let Some(n) = train {
            if n == 0 {
                return Err(Error::config("train_size must be at least 1"));
            }
            if n > self.train.len() {
                return Err(Error::config(format!(
                    "train_size = {n} but `{}` has only {} training examples",
                    self.train.name,
                    self.train.len()
                )));
            }
            self.train = self.train.head(n);
        }
        if let (Some(n), Some(t)) = (test, self.test.as_ref()) {
            if n > t.len() {
                return Err(Error::config(format!(
                    "test_size = {n} but `{}` has only {} test examples",
                    t.name,
                    t.len()
                )));
            }
            self.test = if n == 0 { None } else { Some(t.head(n)) };
        }
        Ok(self)
    }
}

/// Where data comes from (parsed from a spec string; see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    Digits,
    Synthetic(synthetic::SyntheticSpec),
    Npy {
        x: PathBuf,
        y: PathBuf,
        x_test: Option<PathBuf>,
        y_test: Option<PathBuf>,
    },
}

impl DataSource {
    /// Load (or generate) the data.
    pub fn load(&self) -> Result<Split> {
        match self {
            DataSource::Digits => digits::load(),
            DataSource::Synthetic(s) => s.generate(),
            DataSource::Npy {
                x,
                y,
                x_test,
                y_test,
            } => {
                let train = load_npy_pair(x, y)?;
                let test = match (x_test, y_test) {
                    (Some(xt), Some(yt)) => {
                        let t = load_npy_pair(xt, yt)?;
                        if t.input_dim() != train.input_dim()
                            || t.output_dim() != train.output_dim()
                        {
                            return Err(Error::Shape(format!(
                                "test arrays ({} inputs, {} outputs) do not match training arrays ({}, {})",
                                t.input_dim(),
                                t.output_dim(),
                                train.input_dim(),
                                train.output_dim()
                            )));
                        }
                        Some(t)
                    }
                    (None, None) => None,
                    _ => return Err(Error::config("give both x_test and y_test, or neither")),
                };
                Ok(Split { train, test })
            }
        }
    }
}

/// Parse `key=value,key=value` (values may not contain commas).
pub(crate) fn parse_kv(s: &str) -> Result<Vec<(String, String)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                Error::config(format!("expected key=value in data spec, got `{p}`"))
            })?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

impl FromStr for DataSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "digits" if rest.is_empty() => Ok(DataSource::Digits),
            "synthetic" => Ok(DataSource::Synthetic(rest.parse()?)),
            "npy" => {
                let (mut x, mut y, mut xt, mut yt) = (None, None, None, None);
                if !rest.contains('=') {
                    let parts: Vec<&str> = rest.split(',').collect();
                    match parts.as_slice() {
                        [a, b] => (x, y) = (Some(a.into()), Some(b.into())),
                        [a, b, c, d] => {
                            (x, y, xt, yt) = (
                                Some(a.into()),
                                Some(b.into()),
                                Some(c.into()),
                                Some(d.into()),
                            )
                        }
                        _ => {
                            return Err(Error::config(
                                "npy data: expected npy:X.npy,Y.npy[,X_TEST.npy,Y_TEST.npy]",
                            ))
                        }
                    }
                } else {
                    for (k, v) in parse_kv(rest)? {
                        let p = Some(PathBuf::from(v));
                        match k.as_str() {
                            "x" => x = p,
                            "y" => y = p,
                            "x_test" => xt = p,
                            "y_test" => yt = p,
                            _ => {
                                return Err(Error::config(format!(
                                    "unknown npy data key `{k}` (expected x, y, x_test, y_test)"
                                )))
                            }
                        }
                    }
                }
                Ok(DataSource::Npy {
                    x: x.ok_or_else(|| Error::config("npy data: missing x"))?,
                    y: y.ok_or_else(|| Error::config("npy data: missing y"))?,
                    x_test: xt,
                    y_test: yt,
                })
            }
            _ => Err(Error::config(format!(
                "unknown dataset `{s}` (expected digits, synthetic:…, npy:…)"
            ))),
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Digits => write!(f, "digits"),
            DataSource::Synthetic(s) => write!(f, "{s}"),
            DataSource::Npy {
                x,
                y,
                x_test,
                y_test,
            } => {
                write!(f, "npy:x={},y={}", x.display(), y.display())?;
                if let (Some(a), Some(b)) = (x_test, y_test) {
                    write!(f, ",x_test={},y_test={}", a.display(), b.display())?;
                }
                Ok(())
            }
        }
    }
}

/// Inputs and targets from two `.npy` files. `x` is [N, d] (or [N, …], flattened;
/// [N, C, H, W] and [N, H, W] keep their image shape). `y` is [N, k] real targets,
/// or [N] integer labels (one-hot encoded, classes = max label + 1).
pub fn load_npy_pair(xp: &PathBuf, yp: &PathBuf) -> Result<Dataset> {
    let xa = npy::read_npy(xp)?;
    let ya = npy::read_npy(yp)?;
    if xa.shape.is_empty() || xa.shape[0] == 0 {
        return Err(Error::file(
            xp,
            format!(
                "expected a non-empty [N, d] array, got shape {:?}",
                xa.shape
            ),
        ));
    }
    let n = xa.shape[0];
    let d: usize = xa.shape[1..].iter().product();
    if d == 0 {
        return Err(Error::file(
            xp,
            format!("inputs have no features (shape {:?})", xa.shape),
        ));
    }
    let image_shape = match xa.shape.len() {
        4 => Some([xa.shape[1], xa.shape[2], xa.shape[3]]),
        3 => Some([1, xa.shape[1], xa.shape[2]]),
        _ => None,
    };
    if ya.shape.first() != Some(&n) {
        return Err(Error::Shape(format!(
            "{} has {} rows but {} has shape {:?}",
            xp.display(),
            n,
            yp.display(),
            ya.shape
        )));
    }
    let xv = xa.to_f64();
    if let Some(i) = xv.iter().position(|v| !v.is_finite()) {
        return Err(Error::file(
            xp,
            format!("non-finite value at flat index {i}"),
        ));
    }
    let x = Mat::from_vec(n, d, xv);
    let name = xp
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if ya.shape.len() == 1 {
        let labels = ya.to_i64().ok_or_else(|| {
            Error::file(
                yp,
                "1-D targets must be integer class labels (use shape [N, k] for real targets)",
            )
        })?;
        if let Some(&bad) = labels.iter().find(|&&l| l < 0 || l > 65_535) {
            return Err(Error::file(
                yp,
                format!("label {bad} is out of range (labels must be 0..65535)"),
            ));
        }
        let classes = labels.iter().copied().max().unwrap_or(0) as usize + 1;
        let labels: Vec<u32> = labels.into_iter().map(|l| l as u32).collect();
        let y = Dataset::one_hot(&labels, classes);
        Ok(Dataset {
            name,
            x,
            y,
            labels: Some(labels),
            image_shape,
        })
    } else if ya.shape.len() == 2 {
        let yv = ya.to_f64();
        if let Some(i) = yv.iter().position(|v| !v.is_finite()) {
            return Err(Error::file(
                yp,
                format!("non-finite value at flat index {i}"),
            ));
        }
        Ok(Dataset {
            name,
            x,
            y: Mat::from_vec(n, ya.shape[1], yv),
            labels: None,
            image_shape,
        })
    } else {
        Err(Error::file(
            yp,
            format!(
                "targets must be [N] labels or [N, k] values, got shape {:?}",
                ya.shape
            ),
        ))
    }
}

/// The `[data]` table of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Data spec: `digits`, `synthetic:…`, `npy:…`.
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// Use only the first N training examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_size: Option<usize>,
    /// Use only the first N test examples (0 = no test set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_size: Option<usize>,
}

fn default_dataset() -> String {
    "digits".into()
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: default_dataset(),
            train_size: None,
            test_size: None,
        }
    }
}

impl DataConfig {
    /// Parse the spec, load, and apply the size limits.
    pub fn load(&self) -> Result<Split> {
        let src: DataSource = self.dataset.parse()?;
        src.load()?.limit(self.train_size, self.test_size)
    }
}
