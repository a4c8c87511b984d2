//! Datasets: the embedded digits and Shakespeare, synthetic teachers, MNIST-style
//! IDX files, CIFAR binaries, and the user's `.npy`, CSV and text files.
//!
//! A [`Dataset`] is a pair of row-major matrices: inputs `x` [N, d] and targets `y`
//! [N, k] (one-hot rows for classification, with the integer `labels` kept too).
//! Text data ([`text`]) are token sequences: `x` [N, T] token ids and `y` [N, T]
//! the next tokens' ids, with the vocabulary in `vocab`.
//! Images are stored flattened in C order from [C, H, W], with `image_shape` =
//! [C, H, W] kept beside them: an MLP reads the rows as they are, a CNN reads each
//! row as a [C, H, W] block ([`Dataset::nchw`]). Pixels stored as bytes become
//! [0, 1] floats (÷ 255).
//!
//! A [`DataSource`] is parsed from a short spec, the same in configs and on the
//! command line:
//!
//! | spec | what |
//! |---|---|
//! | `digits` | scikit-learn's 8×8 digits, embedded (1,797 images; pixels /16 → [0, 1]) |
//! | `synthetic:teacher=linear,task=regression,n=1000,n_test=500,d=32,k=1,noise=0,seed=0` | Gaussian inputs, a random linear or `mlp` teacher; `task=classification` gives one-hot argmax labels |
//! | `mnist`, `fashion-mnist` | from the data folder (see [`catalog`]; `richness data fetch mnist` puts them there); `mnist:DIR` reads the four files from DIR itself instead |
//! | `cifar10:DIR` | CIFAR-10's binary batches in DIR (or DIR/cifar-10-batches-bin) |
//! | `cifar100:DIR[,labels=fine\|coarse]` | CIFAR-100's `train.bin`/`test.bin`; 100 fine or 20 coarse classes |
//! | `idx:x=IMAGES,y=LABELS[,x_test=…,y_test=…]` | any IDX image/label files, raw or .gz (`idx:X,Y[,XT,YT]` for short) |
//! | `npy:x=X.npy,y=Y.npy[,x_test=…,y_test=…]` | your arrays (`npy:X.npy,Y.npy` for short); integer 1-D `y` = class labels |
//! | `csv:FILE[,test=FILE][,label=last\|first\|none\|NAME\|INDEX][,header=auto\|yes\|no][,task=…]` | numeric CSV (see [`csv`]) |
//! | `shakespeare[:vocab=char\|byte,context=T,stride=S,test_fraction=F]` | six Shakespeare tragedies, embedded (841,800 characters), as next-character sequences (see [`text`]) |
//! | `text:PATH[,vocab=char\|byte][,context=T][,stride=S][,test_fraction=F]` | your UTF-8 text file, as next-token sequences (see [`text`]) |
//!
//! The `[data]` table of a config ([`DataConfig`]) adds `train_size`/`test_size`
//! (the first N examples, as the tutorial's experiments take them, or a seeded
//! random subset with `subset_seed`) and `standardize`.
//!
//! ```
//! use richness::data::DataSource;
//! let split = "digits".parse::<DataSource>().unwrap().load().unwrap();
//! assert_eq!(split.train.len() + split.test.as_ref().unwrap().len(), 1797);
//! assert_eq!(split.train.input_dim(), 64);
//! assert_eq!(split.train.nchw(), Some([1297, 1, 8, 8]));
//! ```

pub mod catalog;
pub mod cifar;
pub mod csv;
pub mod digits;
pub mod fetch;
pub mod idx;
pub mod inspect;
pub mod npy;
pub mod synthetic;
pub mod text;

use crate::error::{Error, Result};
use crate::tensor::{Mat, Scalar};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

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
    /// For text data: `x` and `y` hold token ids of this vocabulary.
    pub vocab: Option<Arc<text::Vocab>>,
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
    /// The vocabulary size, for text data.
    pub fn vocab_size(&self) -> Option<usize> {
        self.vocab.as_ref().map(|v| v.len())
    }
    /// [N, C, H, W] for image data: each row of `x` is one C-ordered [C, H, W] image.
    pub fn nchw(&self) -> Option<[usize; 4]> {
        self.image_shape.map(|[c, h, w]| [self.len(), c, h, w])
    }
    /// The first `n` examples.
    pub fn head(&self, n: usize) -> Dataset {
        Dataset {
            name: self.name.clone(),
            x: self.x.head(n),
            y: self.y.head(n),
            labels: self.labels.as_ref().map(|l| l[..n.min(l.len())].to_vec()),
            image_shape: self.image_shape,
            vocab: self.vocab.clone(),
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
            vocab: self.vocab.clone(),
        }
    }
    /// Inputs and targets in the training precision.
    /// Refuse values that do not fit the precision `dtype` (f32 ends at ±3.4·10³⁸):
    /// cast, 1e300 becomes inf and trains to NaN weights under a "completed" run.
    /// Names the data set (its file) and the first such value's row and column.
    pub fn check_fits(&self, dtype: crate::tensor::Dtype) -> Result<()> {
        if dtype != crate::tensor::Dtype::F32 {
            return Ok(());
        }
        for (m, what) in [(&self.x, "input"), (&self.y, "target")] {
            let cols = m.cols().max(1);
            if let Some(i) = m.as_slice().iter().position(|v| v.abs() > f32::MAX as f64) {
                return Err(Error::config(format!(
                    "{}: {what} value {:e} at row {}, column {} is beyond f32's range (±3.4e38): use dtype = \"f64\", or rescale the data",
                    self.name,
                    m.as_slice()[i],
                    i / cols,
                    i % cols
                )));
            }
        }
        Ok(())
    }

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
    /// Refuse text data (token sequences) for a model that reads real-valued
    /// inputs (`arch` names it): an MLP would fit token ids as numbers, a silent
    /// wrong answer.
    /// [`Dataset::check_fits`] of the training and test sets.
    pub fn check_fits(&self, dtype: crate::tensor::Dtype) -> Result<()> {
        self.train.check_fits(dtype)?;
        self.test.as_ref().map_or(Ok(()), |t| t.check_fits(dtype))
    }

    pub fn refuse_tokens(&self, arch: &str) -> Result<()> {
        match self.train.vocab_size() {
            Some(v) => Err(Error::config(format!(
                "`{}` is text data (token sequences, vocabulary of {v}): model.arch = \"{arch}\" reads real-valued inputs; text needs a sequence model (model.arch = \"gpt\")",
                self.train.name
            ))),
            None => Ok(()),
        }
    }

    /// Keep at most `train` / `test` examples (the first ones, as the tutorial does).
    pub fn limit(self, train: Option<usize>, test: Option<usize>) -> Result<Split> {
        self.take(train, test, |d, n, _| d.head(n))
    }

    /// Keep `train` / `test` examples drawn at random without replacement: the
    /// first n of a permutation from the stream `(seed, "data/subset/train", 0)`
    /// (or `…/test`), kept in file order so that the subset is a set, not an
    /// ordering (training shuffles anyway).
    pub fn subset(self, train: Option<usize>, test: Option<usize>, seed: u64) -> Result<Split> {
        self.take(train, test, |d, n, which| {
            let mut idx = crate::rng::permutation(
                &mut crate::rng::stream(seed, &format!("data/subset/{which}"), 0),
                d.len(),
            );
            idx.truncate(n);
            idx.sort_unstable();
            d.select(&idx)
        })
    }

    /// Standardise inputs with the training set's statistics, applied to both sets:
    /// per channel for images (one mean and std over each channel's pixels, as
    /// torchvision's `Normalize` is used), per feature otherwise. A constant group
    /// (std 0, e.g. MNIST's always-black border pixels) is only centred.
    pub fn standardize(mut self) -> Split {
        let d = self.train.input_dim();
        let group_of: Box<dyn Fn(usize) -> usize> = match self.train.image_shape {
            Some([c, h, w]) if c * h * w == d && c > 0 => Box::new(move |j| j / (h * w)),
            _ => Box::new(|j| j),
        };
        let groups = (0..d).map(&group_of).max().map_or(0, |g| g + 1);
        let (mut sum, mut sq, mut cnt) = (
            vec![0.0f64; groups],
            vec![0.0f64; groups],
            vec![0usize; groups],
        );
        for i in 0..self.train.len() {
            for (j, &v) in self.train.x.row(i).iter().enumerate() {
                let g = group_of(j);
                sum[g] += v;
                cnt[g] += 1;
            }
        }
        let mean: Vec<f64> = sum
            .iter()
            .zip(&cnt)
            .map(|(s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
            .collect();
        for i in 0..self.train.len() {
            for (j, &v) in self.train.x.row(i).iter().enumerate() {
                let g = group_of(j);
                sq[g] += (v - mean[g]).powi(2);
            }
        }
        let scale: Vec<f64> = sq
            .iter()
            .zip(&cnt)
            .map(|(s, &n)| {
                let sd = if n > 0 { (s / n as f64).sqrt() } else { 0.0 };
                if sd > 1e-12 {
                    1.0 / sd
                } else {
                    1.0
                }
            })
            .collect();
        let apply = |x: &mut Mat<f64>| {
            for i in 0..x.rows() {
                for (j, v) in x.row_mut(i).iter_mut().enumerate() {
                    let g = group_of(j);
                    *v = (*v - mean[g]) * scale[g];
                }
            }
        };
        apply(&mut self.train.x);
        if let Some(t) = self.test.as_mut() {
            if t.input_dim() == d {
                apply(&mut t.x);
            }
        }
        self
    }

    /// The size checks shared by [`Split::limit`] and [`Split::subset`]; `pick`
    /// takes n examples of a dataset (`"train"` or `"test"`).
    fn take(
        mut self,
        train: Option<usize>,
        test: Option<usize>,
        pick: impl Fn(&Dataset, usize, &str) -> Dataset,
    ) -> Result<Split> {
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
            self.train = pick(&self.train, n, "train");
        }
        if let (Some(n), Some(t)) = (test, self.test.as_ref()) {
            if n > t.len() {
                return Err(Error::config(format!(
                    "test_size = {n} but `{}` has only {} test examples",
                    t.name,
                    t.len()
                )));
            }
            self.test = if n == 0 {
                None
            } else {
                Some(pick(t, n, "test"))
            };
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
    /// MNIST from the data folder, or from the given folder.
    Mnist(Option<PathBuf>),
    /// Fashion-MNIST from the data folder, or from the given folder.
    FashionMnist(Option<PathBuf>),
    /// Any IDX images and labels (raw or gzipped).
    Idx {
        x: PathBuf,
        y: PathBuf,
        x_test: Option<PathBuf>,
        y_test: Option<PathBuf>,
    },
    /// CIFAR-10's binary batches in a folder.
    Cifar10(PathBuf),
    /// CIFAR-100's binary files in a folder; 20 superclasses when `coarse`.
    Cifar100 {
        dir: PathBuf,
        coarse: bool,
    },
    Csv(self::csv::CsvSpec),
    /// The embedded Shakespeare or a text file, as next-token sequences.
    Text(text::TextSpec),
}

impl DataSource {
    /// Load (or generate) the data. Text data are cut at the spec's context, else
    /// [`text::DEFAULT_CONTEXT`]; a model loads them with [`DataSource::load_with_context`].
    pub fn load(&self) -> Result<Split> {
        self.load_with_context(None)
    }

    /// Load the data for a model whose context length is `context`: text data are
    /// cut into sequences of that many tokens ([`text::TextSpec::load`]); other
    /// data ignore it.
    pub fn load_with_context(&self, context: Option<usize>) -> Result<Split> {
        match self {
            DataSource::Digits => digits::load(),
            DataSource::Synthetic(s) => s.generate(),
            DataSource::Npy {
                x,
                y,
                x_test,
                y_test,
            } => {
                let test = test_pair(x_test, y_test)?
                    .map(|(a, b)| load_npy_pair(a, b))
                    .transpose()?;
                paired(load_npy_pair(x, y)?, test)
            }
            DataSource::Idx {
                x,
                y,
                x_test,
                y_test,
            } => {
                let test = test_pair(x_test, y_test)?
                    .map(|(a, b)| load_idx_pair(a, b, None))
                    .transpose()?;
                paired(load_idx_pair(x, y, None)?, test)
            }
            DataSource::Mnist(dir) => catalog::load(&catalog::MNIST, dir.as_deref()),
            DataSource::FashionMnist(dir) => catalog::load(&catalog::FASHION_MNIST, dir.as_deref()),
            DataSource::Cifar10(dir) => cifar::load_cifar10(dir),
            DataSource::Cifar100 { dir, coarse } => cifar::load_cifar100(dir, *coarse),
            DataSource::Csv(spec) => spec.load(),
            DataSource::Text(spec) => spec.load(context),
        }
    }
}

fn test_pair<'a>(
    x: &'a Option<PathBuf>,
    y: &'a Option<PathBuf>,
) -> Result<Option<(&'a PathBuf, &'a PathBuf)>> {
    match (x, y) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (None, None) => Ok(None),
        _ => Err(Error::config("give both x_test and y_test, or neither")),
    }
}

/// A training set and an optional test set that must fit it. Class labels decide
/// the number of classes over both sets together (max label + 1), so a test set
/// that happens to lack the last class still gets targets of the right width.
fn paired(mut train: Dataset, test: Option<Dataset>) -> Result<Split> {
    let Some(mut t) = test else {
        return Ok(Split { train, test: None });
    };
    if let (Some(a), Some(b)) = (&train.labels, &t.labels) {
        let classes = train.output_dim().max(t.output_dim());
        if train.output_dim() != classes {
            train.y = Dataset::one_hot(a, classes);
        }
        if t.output_dim() != classes {
            t.y = Dataset::one_hot(b, classes);
        }
    }
    if t.input_dim() != train.input_dim() || t.output_dim() != train.output_dim() {
        return Err(Error::Shape(format!(
            "test arrays ({} inputs, {} outputs) do not match training arrays ({}, {})",
            t.input_dim(),
            t.output_dim(),
            train.input_dim(),
            train.output_dim()
        )));
    }
    Ok(Split {
        train,
        test: Some(t),
    })
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

type PairSpec = (PathBuf, PathBuf, Option<PathBuf>, Option<PathBuf>);

/// `X,Y[,X_TEST,Y_TEST]` or `x=…,y=…[,x_test=…,y_test=…]` (npy and idx specs).
fn parse_pair(kind: &str, rest: &str) -> Result<PairSpec> {
    let (mut x, mut y, mut xt, mut yt) = (None, None, None, None);
    if !rest.contains('=') {
        let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
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
                return Err(Error::config(format!(
                    "{kind} data: expected {kind}:X,Y[,X_TEST,Y_TEST]"
                )))
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
                        "unknown {kind} data key `{k}` (expected x, y, x_test, y_test)"
                    )))
                }
            }
        }
    }
    let missing = |w: &str| Error::config(format!("{kind} data: missing {w}"));
    let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let (xt, yt) = (nonempty(xt), nonempty(yt));
    // A test set needs both files; one alone would be silently ignored.
    if xt.is_some() != yt.is_some() {
        return Err(Error::config(format!(
            "{kind} data: give both x_test and y_test, or neither"
        )));
    }
    Ok((
        nonempty(x).ok_or_else(|| missing("x"))?,
        nonempty(y).ok_or_else(|| missing("y"))?,
        xt,
        yt,
    ))
}

/// `DIR` or `dir=DIR` plus other keys, for folder specs.
fn parse_dir(
    kind: &str,
    rest: &str,
    keys: &mut dyn FnMut(&str, &str) -> Result<()>,
) -> Result<PathBuf> {
    let mut dir = None;
    for (i, part) in rest.split(',').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            None if i == 0 => dir = Some(PathBuf::from(part)),
            None => {
                return Err(Error::config(format!(
                    "expected key=value in {kind} spec, got `{part}`"
                )))
            }
            Some(("dir", v)) => dir = Some(PathBuf::from(v.trim())),
            Some((k, v)) => keys(k.trim(), v.trim())?,
        }
    }
    dir.filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| Error::config(format!("{kind} data: give the folder ({kind}:DIR)")))
}

impl FromStr for DataSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let optional_dir = |r: &str| (!r.trim().is_empty()).then(|| PathBuf::from(r.trim()));
        match kind {
            "digits" if rest.is_empty() => Ok(DataSource::Digits),
            "synthetic" => Ok(DataSource::Synthetic(rest.parse()?)),
            "npy" => {
                let (x, y, x_test, y_test) = parse_pair("npy", rest)?;
                Ok(DataSource::Npy { x, y, x_test, y_test })
            }
            "idx" => {
                let (x, y, x_test, y_test) = parse_pair("idx", rest)?;
                Ok(DataSource::Idx { x, y, x_test, y_test })
            }
            "mnist" => Ok(DataSource::Mnist(optional_dir(rest))),
            "fashion-mnist" => Ok(DataSource::FashionMnist(optional_dir(rest))),
            "cifar10" => Ok(DataSource::Cifar10(parse_dir("cifar10", rest, &mut |k, _| {
                Err(Error::config(format!("unknown cifar10 data key `{k}` (cifar10:DIR takes no options)")))
            })?)),
            "cifar100" => {
                let mut coarse = false;
                let dir = parse_dir("cifar100", rest, &mut |k, v| match (k, v) {
                    ("labels", "fine") => {
                        coarse = false;
                        Ok(())
                    }
                    ("labels", "coarse") => {
                        coarse = true;
                        Ok(())
                    }
                    ("labels", _) => Err(Error::config(format!("cifar100 data: labels must be fine or coarse, got `{v}`"))),
                    _ => Err(Error::config(format!("unknown cifar100 data key `{k}` (expected dir, labels)"))),
                })?;
                Ok(DataSource::Cifar100 { dir, coarse })
            }
            "csv" => Ok(DataSource::Csv(rest.parse()?)),
            "shakespeare" | "text" => Ok(DataSource::Text(s.parse()?)),
            _ => Err(Error::config(format!(
                "unknown dataset `{s}` (expected digits, synthetic:…, mnist, fashion-mnist, cifar10:DIR, cifar100:DIR, idx:…, npy:…, csv:…, shakespeare, text:PATH)"
            ))),
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pair = |f: &mut std::fmt::Formatter<'_>,
                    kind: &str,
                    x: &Path,
                    y: &Path,
                    xt: &Option<PathBuf>,
                    yt: &Option<PathBuf>| {
            write!(f, "{kind}:x={},y={}", x.display(), y.display())?;
            if let (Some(a), Some(b)) = (xt, yt) {
                write!(f, ",x_test={},y_test={}", a.display(), b.display())?;
            }
            Ok(())
        };
        match self {
            DataSource::Digits => write!(f, "digits"),
            DataSource::Synthetic(s) => write!(f, "{s}"),
            DataSource::Npy {
                x,
                y,
                x_test,
                y_test,
            } => pair(f, "npy", x, y, x_test, y_test),
            DataSource::Idx {
                x,
                y,
                x_test,
                y_test,
            } => pair(f, "idx", x, y, x_test, y_test),
            DataSource::Mnist(None) => write!(f, "mnist"),
            DataSource::Mnist(Some(d)) => write!(f, "mnist:{}", d.display()),
            DataSource::FashionMnist(None) => write!(f, "fashion-mnist"),
            DataSource::FashionMnist(Some(d)) => write!(f, "fashion-mnist:{}", d.display()),
            DataSource::Cifar10(d) => write!(f, "cifar10:{}", d.display()),
            DataSource::Cifar100 { dir, coarse } => {
                write!(
                    f,
                    "cifar100:{},labels={}",
                    dir.display(),
                    if *coarse { "coarse" } else { "fine" }
                )
            }
            DataSource::Csv(c) => write!(f, "{c}"),
            DataSource::Text(t) => write!(f, "{t}"),
        }
    }
}

/// Bytes to [0, 1] floats (÷ 255). A 256-entry table holds the exactly rounded
/// quotients, so each pixel costs one load: this is the whole cost of loading
/// MNIST once the file is in memory.
pub fn unit_scaled<T: Scalar>(bytes: &[u8]) -> Vec<T> {
    let lut: Vec<T> = (0..256).map(|b| T::of(b as f64 / 255.0)).collect();
    bytes.iter().map(|&b| lut[b as usize]).collect()
}

/// Integer labels as class indices: each in 0..classes when `classes` is given,
/// else in 0..=65,535.
pub fn check_labels(path: &Path, labels: Vec<i64>, classes: Option<usize>) -> Result<Vec<u32>> {
    let limit = classes.map_or(65_536, |c| c as i64);
    if let Some((i, &bad)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l < 0 || l >= limit)
    {
        let range = match classes {
            Some(c) => format!("0..{} ({c} classes)", c.saturating_sub(1)),
            None => "0..65535".into(),
        };
        return Err(Error::file(
            path,
            format!("label {bad} at index {i} is out of range {range}"),
        ));
    }
    Ok(labels.into_iter().map(|l| l as u32).collect())
}

/// One-hot targets for checked labels: `classes` when given, else max label + 1.
fn classified(
    name: String,
    x: Mat<f64>,
    labels: Vec<u32>,
    classes: Option<usize>,
    image_shape: Option<[usize; 3]>,
) -> Dataset {
    let classes = classes.unwrap_or_else(|| labels.iter().copied().max().unwrap_or(0) as usize + 1);
    Dataset {
        name,
        y: Dataset::one_hot(&labels, classes),
        x,
        labels: Some(labels),
        image_shape,
        vocab: None,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Images and labels from two IDX files (raw or gzipped). Images are u8 (÷ 255)
/// or float, [N, H, W] (one channel), [N, C, H, W] or [N, d]; labels are 1-D
/// integers, below `classes` when given.
pub fn load_idx_pair(xp: &Path, yp: &Path, classes: Option<usize>) -> Result<Dataset> {
    let xa = idx::read_idx(xp)?;
    let ya = idx::read_idx(yp)?;
    let x = xa.images::<f64>(xp)?;
    if x.rows() == 0 || x.cols() == 0 {
        return Err(Error::file(
            xp,
            format!("no images (shape {})", idx::fmt_shape(&xa.shape)),
        ));
    }
    let labels = ya.labels(yp, classes)?;
    if labels.len() != x.rows() {
        return Err(Error::Shape(format!(
            "{} has {} images but {} has {} labels",
            xp.display(),
            x.rows(),
            yp.display(),
            labels.len()
        )));
    }
    Ok(classified(
        file_name(xp),
        x,
        labels,
        classes,
        xa.image_shape(),
    ))
}

/// Inputs and targets from two `.npy` files. `x` is [N, d] (or [N, …], flattened;
/// [N, C, H, W] and [N, H, W] keep their image shape); u8 inputs are pixels and
/// become [0, 1] (÷ 255). `y` is [N, k] real targets, or [N] integer labels
/// (one-hot encoded, classes = max label + 1).
pub fn load_npy_pair(xp: &Path, yp: &Path) -> Result<Dataset> {
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
    let xv = match &xa.data {
        npy::NpyData::U8(b) => unit_scaled(b),
        _ => xa.to_f64(),
    };
    if let Some(i) = xv.iter().position(|v| !v.is_finite()) {
        return Err(Error::file(
            xp,
            format!("non-finite value at flat index {i}"),
        ));
    }
    let x = Mat::from_vec(n, d, xv);
    let name = file_name(xp);
    if ya.shape.len() == 1 {
        let labels = ya.to_i64().ok_or_else(|| {
            Error::file(
                yp,
                "1-D targets must be integer class labels (use shape [N, k] for real targets)",
            )
        })?;
        let labels = check_labels(yp, labels, None)?;
        Ok(classified(name, x, labels, None, image_shape))
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
            vocab: None,
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
    /// Data spec: `digits`, `synthetic:…`, `mnist`, `fashion-mnist`, `cifar10:DIR`,
    /// `cifar100:DIR`, `idx:…`, `npy:…`, `csv:…`, `shakespeare`, `text:PATH` (see
    /// the module docs).
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// Use only N training examples (the first N, or a random N with `subset_seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_size: Option<usize>,
    /// Use only N test examples (0 = no test set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_size: Option<usize>,
    /// Draw the `train_size`/`test_size` examples at random with this seed instead
    /// of taking the first ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset_seed: Option<u64>,
    /// Standardise inputs with training-set statistics (per channel for images,
    /// per feature otherwise).
    #[serde(default, skip_serializing_if = "is_false")]
    pub standardize: bool,
}

fn default_dataset() -> String {
    "digits".into()
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: default_dataset(),
            train_size: None,
            test_size: None,
            subset_seed: None,
            standardize: false,
        }
    }
}

impl DataConfig {
    /// Parse the spec, load, take the subset, and standardise.
    pub fn load(&self) -> Result<Split> {
        self.load_with_context(None)
    }

    /// This table as a sequence model (`model.arch = "gpt"`) reads it: the default
    /// data set (`digits`, which no sequence model can read) stands for the
    /// embedded text, [`text::DEFAULT_SPEC`]; data that are not text are refused.
    /// Load the result with [`DataConfig::load_with_context`] at the model's
    /// context, and keep it as the run's resolved `[data]` table.
    pub fn for_sequences(&self) -> Result<DataConfig> {
        let mut cfg = self.clone();
        if cfg.dataset == default_dataset() {
            cfg.dataset = text::DEFAULT_SPEC.into();
        }
        match cfg.dataset.parse::<DataSource>()? {
            DataSource::Text(_) => Ok(cfg),
            _ => Err(Error::config(format!(
                "a sequence model reads text data (`shakespeare`, `text:FILE`), not `{}`",
                self.dataset
            ))),
        }
    }

    /// [`DataConfig::load`] for a model whose context length is `context` (text
    /// data are cut into sequences of that many tokens; see
    /// [`DataSource::load_with_context`]).
    pub fn load_with_context(&self, context: Option<usize>) -> Result<Split> {
        let src: DataSource = self.dataset.parse()?;
        if self.standardize && matches!(src, DataSource::Text(_)) {
            return Err(Error::config(format!(
                "data.standardize applies to real-valued inputs, not to the token ids of `{}`",
                self.dataset
            )));
        }
        let split = src.load_with_context(context)?;
        let split = match self.subset_seed {
            Some(seed) => split.subset(self.train_size, self.test_size, seed)?,
            None => split.limit(self.train_size, self.test_size)?,
        };
        Ok(if self.standardize {
            split.standardize()
        } else {
            split
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_round_trips_through_display() {
        for s in [
            "digits",
            "mnist",
            "mnist:/data/m",
            "fashion-mnist",
            "fashion-mnist:f",
            "cifar10:/c",
            "cifar100:/c,labels=coarse",
            "cifar100:/c,labels=fine",
            "idx:x=a,y=b",
            "idx:x=a,y=b,x_test=c,y_test=d",
            "npy:x=a.npy,y=b.npy",
            "csv:path=a.csv,label=first,header=no,task=regression",
            "shakespeare",
            "shakespeare:vocab=byte,context=32",
            "text:a.txt",
            "text:a.txt,vocab=byte,stride=1,test_fraction=0",
        ] {
            let src: DataSource = s.parse().unwrap();
            assert_eq!(src.to_string(), s);
            assert_eq!(src.to_string().parse::<DataSource>().unwrap(), src);
        }
        assert_eq!(
            "idx:a,b".parse::<DataSource>().unwrap().to_string(),
            "idx:x=a,y=b"
        );
        assert_eq!(
            "cifar100:dir=/c".parse::<DataSource>().unwrap().to_string(),
            "cifar100:/c,labels=fine"
        );
    }

    #[test]
    fn bad_specs_are_one_line_errors() {
        let msg = |s: &str| s.parse::<DataSource>().unwrap_err().to_string();
        assert!(msg("imagenet").contains("unknown dataset `imagenet`"));
        assert!(msg("cifar10:").contains("give the folder"));
        assert!(msg("cifar10:/c,labels=fine").contains("unknown cifar10 data key `labels`"));
        assert!(msg("cifar100:/c,labels=medium").contains("fine or coarse"));
        assert!(msg("idx:a").contains("expected idx:X,Y"));
        assert!(msg("idx:x=a").contains("missing y"));
        assert!(msg("csv:").contains("missing the file"));
        assert!(msg("text:").contains("give the file"));
        assert!(msg("shakespeare:vocab=word").contains("char or byte"));
    }

    fn toy() -> Split {
        let x = Mat::from_fn(10, 4, |i, j| (i * 4 + j) as f64);
        let labels: Vec<u32> = (0..10).map(|i| i % 3).collect();
        let d = Dataset {
            name: "toy".into(),
            y: Dataset::one_hot(&labels, 3),
            x,
            labels: Some(labels),
            image_shape: Some([2, 1, 2]),
            vocab: None,
        };
        Split {
            train: d.clone(),
            test: Some(d.head(4)),
        }
    }

    #[test]
    fn seeded_subsets_are_reproducible_sets() {
        let a = toy().subset(Some(5), Some(2), 7).unwrap();
        assert_eq!(a, toy().subset(Some(5), Some(2), 7).unwrap());
        assert_ne!(a.train, toy().subset(Some(5), None, 8).unwrap().train);
        let rows: Vec<f64> = (0..5).map(|i| a.train.x.row(i)[0]).collect();
        assert!(
            rows.windows(2).all(|w| w[0] < w[1]),
            "kept in file order: {rows:?}"
        );
        assert_eq!(a.test.as_ref().unwrap().len(), 2);
        assert!(toy()
            .subset(Some(11), None, 0)
            .unwrap_err()
            .to_string()
            .contains("only 10 training examples"));
    }

    #[test]
    fn standardize_is_per_channel_for_images() {
        let s = toy().standardize();
        let x = &s.train.x;
        for ch in 0..2 {
            let v: Vec<f64> = (0..10)
                .flat_map(|i| x.row(i)[2 * ch..2 * ch + 2].to_vec())
                .collect();
            let mean = v.iter().sum::<f64>() / 20.0;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 20.0;
            assert!(
                mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12,
                "channel {ch}: {mean} {var}"
            );
        }
        // The test set gets the training statistics: its rows equal the train rows.
        assert_eq!(s.test.unwrap().x, s.train.x.head(4));
    }

    #[test]
    fn old_configs_still_parse_and_new_keys_default() {
        let c: DataConfig = toml::from_str("dataset = \"digits\"\ntrain_size = 10").unwrap();
        assert_eq!((c.subset_seed, c.standardize), (None, false));
        assert_eq!(
            toml::to_string(&c).unwrap(),
            "dataset = \"digits\"\ntrain_size = 10\n"
        );
        let c: DataConfig =
            toml::from_str("train_size = 100\nsubset_seed = 3\nstandardize = true").unwrap();
        let s = c.load().unwrap();
        assert_eq!(s.train.len(), 100);
        assert!(toml::from_str::<DataConfig>("standardise = true").is_err());
    }

    #[test]
    fn sequence_models_default_to_the_embedded_text_and_refuse_other_data() {
        let c = DataConfig::default().for_sequences().unwrap();
        assert_eq!(c.dataset, "shakespeare");
        let split = c.load_with_context(Some(32)).unwrap();
        assert_eq!(
            (split.train.input_dim(), split.train.vocab_size()),
            (32, Some(73))
        );
        let mine = DataConfig {
            dataset: "text:a.txt,vocab=byte".into(),
            ..Default::default()
        };
        assert_eq!(mine.for_sequences().unwrap(), mine);
        let e = DataConfig {
            dataset: "mnist".into(),
            ..Default::default()
        }
        .for_sequences()
        .unwrap_err()
        .to_string();
        assert!(e.contains("not `mnist`"), "{e}");
        // Other data ignore a context; text data without one take the default.
        let d = DataConfig::default().load_with_context(Some(32)).unwrap();
        assert_eq!(d.train.input_dim(), 64);
        let t: DataSource = "shakespeare".parse().unwrap();
        assert_eq!(t.load().unwrap().train.input_dim(), text::DEFAULT_CONTEXT);
    }

    #[test]
    fn labels_are_checked() {
        let p = Path::new("l");
        assert!(check_labels(p, vec![0, -1], None)
            .unwrap_err()
            .to_string()
            .contains("label -1 at index 1 is out of range 0..65535"));
        assert!(check_labels(p, vec![70_000], None).is_err());
        assert_eq!(check_labels(p, vec![3, 0], Some(4)).unwrap(), vec![3, 0]);
    }
}
