//! The CIFAR-10 and CIFAR-100 binary formats ("binary version" on A. Krizhevsky's page).
//!
//! A batch file is a run of fixed-size records with no header:
//!
//! | format | record |
//! |---|---|
//! | CIFAR-10 | 1 label byte (0–9), then 3,072 pixel bytes |
//! | CIFAR-100 | 1 coarse label byte (0–19), 1 fine label byte (0–99), then 3,072 pixel bytes |
//!
//! The pixels are one 32×32 image per channel, red then green then blue, each
//! row-major, which is exactly [C, H, W] = [3, 32, 32] in C order, so a record's
//! pixels are copied as they are and divided by 255.
//!
//! Folders as published: CIFAR-10's `cifar-10-batches-bin/` holds `data_batch_1.bin`
//! … `data_batch_5.bin` (train, 10,000 images each) and `test_batch.bin`; CIFAR-100's
//! `cifar-100-binary/` holds `train.bin` and `test.bin`. [`load_cifar10`] and
//! [`load_cifar100`] accept either that folder or the folder above it.
//!
//! No registry ships the images, so the tests write small batch files themselves.
//!
//! ```
//! use richness::data::cifar::{parse_batch, Cifar};
//! let mut rec = vec![7u8]; // label 7
//! rec.extend((0..3072).map(|i| (i % 256) as u8));
//! let b = parse_batch(&rec, "one.bin", Cifar::Ten).unwrap();
//! assert_eq!(b.labels, vec![7]);
//! assert_eq!(b.pixels.len(), 3072);
//! ```

use super::{Dataset, Split};
use crate::error::{Error, Result};
use crate::tensor::Mat;
use std::path::{Path, PathBuf};

/// Pixel bytes per image (3 × 32 × 32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// [C, H, W] of a CIFAR image.
pub const IMAGE_SHAPE: [usize; 3] = [3, 32, 32];

/// Which of the two formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    Ten,
    Hundred,
}

impl Cifar {
    /// Bytes per record.
    pub fn record_len(self) -> usize {
        match self {
            Cifar::Ten => 1 + IMAGE_BYTES,
            Cifar::Hundred => 2 + IMAGE_BYTES,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Cifar::Ten => "CIFAR-10",
            Cifar::Hundred => "CIFAR-100",
        }
    }
    /// Guess the format of a batch file: by its published name, else by which record
    /// length divides its size (a size both divide is read as CIFAR-10).
    pub fn guess(path: &Path, len: u64) -> Option<Cifar> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("data_batch_") || name == "test_batch.bin" {
            return Some(Cifar::Ten);
        }
        if name == "train.bin" || name == "test.bin" {
            return Some(Cifar::Hundred);
        }
        if len > 0 && len % Cifar::Ten.record_len() as u64 == 0 {
            Some(Cifar::Ten)
        } else if len > 0 && len % Cifar::Hundred.record_len() as u64 == 0 {
            Some(Cifar::Hundred)
        } else {
            None
        }
    }
}

/// The records of one batch file, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// CIFAR-10 labels, or CIFAR-100 fine labels.
    pub labels: Vec<u32>,
    /// CIFAR-100 coarse labels (superclasses).
    pub coarse: Option<Vec<u32>>,
    /// [N, 3072] pixel bytes, [C, H, W] per row.
    pub pixels: Vec<u8>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Parse a batch file's bytes; `path` names the file in errors.
pub fn parse_batch(bytes: &[u8], path: impl AsRef<Path>, kind: Cifar) -> Result<Batch> {
    let path = path.as_ref();
    let rec = kind.record_len();
    if bytes.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "empty file (a {} batch holds {rec}-byte records)",
                kind.name()
            ),
        ));
    }
    if bytes.len() % rec != 0 {
        return Err(Error::file(
            path,
            format!(
                "{} bytes is not a whole number of {rec}-byte {} records ({} records and {} bytes over)",
                bytes.len(),
                kind.name(),
                bytes.len() / rec,
                bytes.len() % rec
            ),
        ));
    }
    let n = bytes.len() / rec;
    let label_bytes = rec - IMAGE_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut coarse = (kind == Cifar::Hundred).then(|| Vec::with_capacity(n));
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let (fine, limit) = match kind {
            Cifar::Ten => (r[0], 10),
            Cifar::Hundred => (r[1], 100),
        };
        if let Some(c) = coarse.as_mut() {
            if r[0] >= 20 {
                return Err(Error::file(
                    path,
                    format!("coarse label {} of record {i} is out of range 0..19", r[0]),
                ));
            }
            c.push(r[0] as u32);
        }
        if fine >= limit {
            let what = if kind == Cifar::Hundred {
                "fine label"
            } else {
                "label"
            };
            return Err(Error::file(
                path,
                format!(
                    "{what} {fine} of record {i} is out of range 0..{}",
                    limit - 1
                ),
            ));
        }
        labels.push(fine as u32);
        pixels.extend_from_slice(&r[label_bytes..]);
    }
    Ok(Batch {
        labels,
        coarse,
        pixels,
    })
}

/// Read and validate one batch file.
pub fn read_batch(path: impl AsRef<Path>, kind: Cifar) -> Result<Batch> {
    let path = path.as_ref();
    let bytes = crate::files::read_file(path, None)?;
    parse_batch(&bytes, path, kind)
}

/// The folder holding the batch files: `dir` itself, or its published subfolder.
fn batch_dir(dir: &Path, sub: &str, probe: &str) -> Result<PathBuf> {
    for d in [dir.to_path_buf(), dir.join(sub)] {
        if d.join(probe).is_file() {
            return Ok(d);
        }
    }
    Err(Error::file(
        dir,
        format!("no {probe} here or in {sub}/ (expected the binary version of the data set)"),
    ))
}

/// Batches read one after another into one dataset.
fn concat(name: &str, files: &[PathBuf], kind: Cifar, coarse: bool) -> Result<Dataset> {
    let mut labels = Vec::new();
    let mut pixels = Vec::new();
    for f in files {
        let b = read_batch(f, kind)?;
        labels.extend(if coarse {
            b.coarse.unwrap_or_default()
        } else {
            b.labels
        });
        pixels.extend_from_slice(&b.pixels);
    }
    let classes = match (kind, coarse) {
        (Cifar::Ten, _) => 10,
        (Cifar::Hundred, false) => 100,
        (Cifar::Hundred, true) => 20,
    };
    let n = labels.len();
    Ok(Dataset {
        name: name.into(),
        x: Mat::from_vec(n, IMAGE_BYTES, super::unit_scaled(&pixels)),
        y: Dataset::one_hot(&labels, classes),
        labels: Some(labels),
        image_shape: Some(IMAGE_SHAPE),
        vocab: None,
    })
}

/// CIFAR-10 from its binary folder: 50,000 training images (`data_batch_1..5.bin`)
/// and 10,000 test images (`test_batch.bin`).
pub fn load_cifar10(dir: &Path) -> Result<Split> {
    let d = batch_dir(dir, "cifar-10-batches-bin", "data_batch_1.bin")?;
    let train: Vec<PathBuf> = (1..=5)
        .map(|i| d.join(format!("data_batch_{i}.bin")))
        .collect();
    Ok(Split {
        train: concat("cifar10", &train, Cifar::Ten, false)?,
        test: Some(concat(
            "cifar10",
            &[d.join("test_batch.bin")],
            Cifar::Ten,
            false,
        )?),
    })
}

/// CIFAR-100 from its binary folder (`train.bin`, `test.bin`): fine labels (100
/// classes), or the 20 superclasses when `coarse`.
pub fn load_cifar100(dir: &Path, coarse: bool) -> Result<Split> {
    let d = batch_dir(dir, "cifar-100-binary", "train.bin")?;
    Ok(Split {
        train: concat("cifar100", &[d.join("train.bin")], Cifar::Hundred, coarse)?,
        test: Some(concat(
            "cifar100",
            &[d.join("test.bin")],
            Cifar::Hundred,
            coarse,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Cifar, labels: &[u8], fill: u8) -> Vec<u8> {
        let mut r = labels.to_vec();
        r.resize(kind.record_len(), fill);
        r
    }

    #[test]
    fn records_split_into_labels_and_pixels() {
        let mut b = record(Cifar::Hundred, &[3, 42], 9);
        b.extend(record(Cifar::Hundred, &[19, 99], 200));
        let batch = parse_batch(&b, "t.bin", Cifar::Hundred).unwrap();
        assert_eq!(batch.labels, vec![42, 99]);
        assert_eq!(batch.coarse, Some(vec![3, 19]));
        assert_eq!(batch.pixels[..2], [9, 9]);
        assert_eq!(batch.pixels[IMAGE_BYTES], 200);
    }

    #[test]
    fn malformed_batches_are_one_line_errors() {
        let msg = |b: &[u8], k| parse_batch(b, "t.bin", k).unwrap_err().to_string();
        assert!(msg(&[], Cifar::Ten).contains("empty file"));
        let m = msg(&record(Cifar::Ten, &[1], 0)[..3000], Cifar::Ten);
        assert!(
            m.contains(
                "not a whole number of 3073-byte CIFAR-10 records (0 records and 3000 bytes over)"
            ),
            "{m}"
        );
        let m = msg(&record(Cifar::Ten, &[10], 0), Cifar::Ten);
        assert!(
            m.contains("label 10 of record 0 is out of range 0..9"),
            "{m}"
        );
        let m = msg(&record(Cifar::Hundred, &[20, 1], 0), Cifar::Hundred);
        assert!(m.contains("coarse label 20"), "{m}");
        let m = msg(&record(Cifar::Hundred, &[2, 100], 0), Cifar::Hundred);
        assert!(m.contains("fine label 100"), "{m}");
    }

    #[test]
    fn formats_are_guessed_by_name_then_size() {
        assert_eq!(
            Cifar::guess(Path::new("x/data_batch_3.bin"), 5),
            Some(Cifar::Ten)
        );
        assert_eq!(
            Cifar::guess(Path::new("x/train.bin"), 5),
            Some(Cifar::Hundred)
        );
        assert_eq!(
            Cifar::guess(Path::new("a.bin"), 3074 * 2),
            Some(Cifar::Hundred)
        );
        assert_eq!(Cifar::guess(Path::new("a.bin"), 3073), Some(Cifar::Ten));
        assert_eq!(Cifar::guess(Path::new("a.bin"), 100), None);
    }
}
