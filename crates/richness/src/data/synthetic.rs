//! Synthetic data: Gaussian inputs labelled by a random teacher.
//!
//! Inputs x ~ N(0, I_d). Teachers, drawn from the stream `(seed, "teacher", ·)`:
//! - `linear`: y = W x / √d, W ~ N(0, 1)^{k×d};
//! - `mlp`: y = V·√2·relu(U x / √d) / √h with h = 64 hidden units.
//!
//! `task=regression` adds `noise`·N(0, 1) to y; `task=classification` takes
//! labels = argmax of the teacher's k ≥ 2 outputs and one-hot targets.
//!
//! ```
//! let s: richness::data::synthetic::SyntheticSpec = "teacher=mlp,n=100,n_test=10,d=5,k=3".parse().unwrap();
//! let split = s.generate().unwrap();
//! assert_eq!(split.train.x.shape(), (100, 5));
//! assert_eq!(split.test.unwrap().y.shape(), (10, 3));
//! ```

use super::{parse_kv, Dataset, Split};
use crate::error::{Error, Result};
use crate::rng::normal_vec;
use crate::tensor::Mat;
use std::str::FromStr;

/// Which function generates the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teacher {
    Linear,
    Mlp,
}

/// Regression (real targets) or classification (one-hot argmax labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Regression,
    Classification,
}

/// Everything that defines a synthetic dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    pub teacher: Teacher,
    pub task: Task,
    /// Training examples.
    pub n: usize,
    /// Test examples.
    pub n_test: usize,
    /// Input dimension.
    pub d: usize,
    /// Outputs (classes for classification).
    pub k: usize,
    /// Label noise std (regression only).
    pub noise: f64,
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            teacher: Teacher::Linear,
            task: Task::Regression,
            n: 1000,
            n_test: 500,
            d: 32,
            k: 1,
            noise: 0.0,
            seed: 0,
        }
    }
}

const TEACHER_HIDDEN: usize = 64;

impl SyntheticSpec {
    /// Draw the data.
    pub fn generate(&self) -> Result<Split> {
        if self.d == 0 || self.k == 0 || self.n == 0 {
            return Err(Error::config(
                "synthetic data needs n, d and k of at least 1",
            ));
        }
        if self.task == Task::Classification && self.k < 2 {
            return Err(Error::config(
                "synthetic classification needs k >= 2 classes",
            ));
        }
        let total = self.n.saturating_add(self.n_test);
        // Inputs, targets, noise and the train/test copies (crate::budget).
        crate::budget::ensure(
            || format!("synthetic data of {total} examples x {} inputs", self.d),
            crate::budget::product(
                &[total, self.d.saturating_add(self.k.saturating_mul(3))],
                8 * 2,
            ),
        )?;
        let x = Mat::from_vec(
            total,
            self.d,
            normal_vec(self.seed, "synthetic/x", 0, total * self.d, 1.0),
        );
        let f = self.teach(&x);
        let (y, labels) = match self.task {
            Task::Regression => {
                let noise = normal_vec(self.seed, "synthetic/noise", 0, total * self.k, self.noise);
                let y = Mat::from_vec(
                    total,
                    self.k,
                    f.as_slice().iter().zip(noise).map(|(a, b)| a + b).collect(),
                );
                (y, None)
            }
            Task::Classification => {
                let labels: Vec<u32> = (0..total)
                    .map(|i| {
                        let r = f.row(i);
                        (0..self.k).fold(0, |b, j| if r[j] > r[b] { j } else { b }) as u32
                    })
                    .collect();
                (Dataset::one_hot(&labels, self.k), Some(labels))
            }
        };
        let all = Dataset {
            name: self.to_string(),
            x,
            y,
            labels,
            image_shape: None,
            vocab: None,
        };
        let train = all.select(&(0..self.n).collect::<Vec<_>>());
        let test = (self.n_test > 0).then(|| all.select(&(self.n..total).collect::<Vec<_>>()));
        Ok(Split { train, test })
    }

    fn teach(&self, x: &Mat<f64>) -> Mat<f64> {
        let d = self.d as f64;
        match self.teacher {
            Teacher::Linear => {
                let w = normal_vec(self.seed, "teacher/w", 0, self.k * self.d, 1.0 / d.sqrt());
                Mat::from_fn(x.rows(), self.k, |i, j| {
                    x.row(i)
                        .iter()
                        .zip(&w[j * self.d..(j + 1) * self.d])
                        .map(|(a, b)| a * b)
                        .sum()
                })
            }
            Teacher::Mlp => {
                let h = TEACHER_HIDDEN;
                let u = normal_vec(self.seed, "teacher/u", 0, h * self.d, 1.0 / d.sqrt());
                let v = normal_vec(
                    self.seed,
                    "teacher/v",
                    0,
                    self.k * h,
                    (2.0 / h as f64).sqrt(),
                );
                Mat::from_fn(x.rows(), self.k, |i, j| {
                    (0..h)
                        .map(|m| {
                            let pre: f64 = x
                                .row(i)
                                .iter()
                                .zip(&u[m * self.d..(m + 1) * self.d])
                                .map(|(a, b)| a * b)
                                .sum();
                            v[j * h + m] * pre.max(0.0)
                        })
                        .sum()
                })
            }
        }
    }
}

impl FromStr for SyntheticSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut spec = SyntheticSpec::default();
        let mut k_given = false;
        let num = |k: &str, v: &str| -> Result<usize> {
            v.parse().map_err(|_| {
                Error::config(format!(
                    "synthetic data: `{k}` must be a non-negative integer, got `{v}`"
                ))
            })
        };
        for (k, v) in parse_kv(s)? {
            match k.as_str() {
                "teacher" => {
                    spec.teacher = match v.as_str() {
                        "linear" => Teacher::Linear,
                        "mlp" => Teacher::Mlp,
                        _ => {
                            return Err(Error::config(format!("synthetic data: unknown teacher `{v}` (linear or mlp)")))
                        }
                    }
                }
                "task" => {
                    spec.task = match v.as_str() {
                        "regression" => Task::Regression,
                        "classification" => Task::Classification,
                        _ => {
                            return Err(Error::config(format!(
                                "synthetic data: unknown task `{v}` (regression or classification)"
                            )))
                        }
                    }
                }
                "n" => spec.n = num(&k, &v)?,
                "n_test" => spec.n_test = num(&k, &v)?,
                "d" => spec.d = num(&k, &v)?,
                "k" => {
                    spec.k = num(&k, &v)?;
                    k_given = true;
                }
                "seed" => {
                    spec.seed = v.parse().map_err(|_| Error::config(format!("synthetic data: bad seed `{v}`")))?
                }
                "noise" => {
                    spec.noise = v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| {
                        Error::config(format!("synthetic data: noise must be a non-negative number, got `{v}`"))
                    })?
                }
                _ => {
                    return Err(Error::config(format!(
                        "synthetic data: unknown key `{k}` (expected teacher, task, n, n_test, d, k, noise, seed)"
                    )))
                }
            }
        }
        // Classification defaults to 10 classes. (Testing the text for "k=" would
        // find it inside "task=" itself.)
        if spec.task == Task::Classification && !k_given {
            spec.k = 10;
        }
        Ok(spec)
    }
}

impl std::fmt::Display for SyntheticSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "synthetic:teacher={},task={},n={},n_test={},d={},k={},noise={},seed={}",
            match self.teacher {
                Teacher::Linear => "linear",
                Teacher::Mlp => "mlp",
            },
            match self.task {
                Task::Regression => "regression",
                Task::Classification => "classification",
            },
            self.n,
            self.n_test,
            self.d,
            self.k,
            self.noise,
            self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_defaults_to_ten_classes() {
        let s: SyntheticSpec = "task=classification".parse().unwrap();
        assert_eq!(s.k, 10);
        let s: SyntheticSpec = "task=classification,k=3".parse().unwrap();
        assert_eq!(s.k, 3);
        assert_eq!(
            s.to_string()
                .trim_start_matches("synthetic:")
                .parse::<SyntheticSpec>()
                .unwrap(),
            s
        );
    }
}
