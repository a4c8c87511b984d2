//! scikit-learn's 8×8 handwritten digits, compiled into the binary.
//!
//! 1,797 images of 8×8 pixels with 17 grey levels (0–16), 10 classes. Source: the
//! UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak,
//! 1998), CC BY 4.0, as shipped in scikit-learn's `sklearn/datasets/data/digits.csv.gz`
//! (see `data/ATTRIBUTION.md` in this crate). Pixels are scaled to [0, 1] by /16.
//!
//! The default split keeps the file's order: the first 1,297 images train, the last
//! 500 test.

use super::{Dataset, Split};
use crate::error::{Error, Result};
use crate::tensor::Mat;
use std::io::Read;

/// The gzipped CSV exactly as scikit-learn ships it (64 pixel columns, then the label).
pub static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Number of images.
pub const N: usize = 1797;
/// Default number of training images (the rest are the test set).
pub const TRAIN: usize = 1297;

/// All 1,797 digits as one dataset.
pub fn all() -> Result<Dataset> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::file("<embedded digits>", e.to_string()))?;
    let mut x = Vec::with_capacity(N * 64);
    let mut labels = Vec::with_capacity(N);
    for (i, line) in text.lines().enumerate() {
        let vals: Vec<&str> = line.split(',').collect();
        if vals.len() != 65 {
            return Err(Error::file(
                "<embedded digits>",
                format!("line {} has {} fields", i + 1, vals.len()),
            ));
        }
        for v in &vals[..64] {
            let p: f64 = v
                .trim()
                .parse()
                .map_err(|_| Error::file("<embedded digits>", format!("bad pixel `{v}`")))?;
            x.push(p / 16.0);
        }
        let l: f64 = vals[64]
            .trim()
            .parse()
            .map_err(|_| Error::file("<embedded digits>", "bad label"))?;
        labels.push(l as u32);
    }
    let n = labels.len();
    Ok(Dataset {
        name: "digits".into(),
        x: Mat::from_vec(n, 64, x),
        y: Dataset::one_hot(&labels, 10),
        labels: Some(labels),
        image_shape: Some([1, 8, 8]),
        vocab: None,
    })
}

/// The default split: first 1,297 train, last 500 test.
pub fn load() -> Result<Split> {
    let all = all()?;
    let train: Vec<usize> = (0..TRAIN).collect();
    let test: Vec<usize> = (TRAIN..all.len()).collect();
    Ok(Split {
        train: all.select(&train),
        test: Some(all.select(&test)),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_decode_to_the_published_counts() {
        let d = super::all().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.input_dim(), 64);
        let labels = d.labels.as_ref().unwrap();
        let mut counts = [0usize; 10];
        labels.iter().for_each(|&l| counts[l as usize] += 1);
        // Class counts from scikit-learn's documentation of load_digits.
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        assert!(d.x.as_slice().iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert_eq!(labels[0], 0);
    }
}
