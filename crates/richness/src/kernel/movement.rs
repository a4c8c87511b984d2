//! How far the empirical NTK moves during training, and how well it fits the task.
//!
//! For the kernel K₀ at init and K_t after t steps, on the same points:
//!
//! ```text
//! relative change     ‖K_t − K₀‖_F / ‖K₀‖_F            (theory.md §4.1: mean ~ n^{2r−1} plus
//!                                                     fluctuations; not n^{r−1/2})
//! kernel distance     1 − ⟨K₀, K_t⟩_F / (‖K₀‖_F ‖K_t‖_F) (0 when K_t ∝ K₀; scale-free)
//! target alignment    ⟨K, YYᵀ⟩_F / (‖K‖_F ‖YYᵀ‖_F)       (Cristianini et al., uncentred;
//!                     = yᵀKy / (‖K‖_F ‖y‖²) for one output)
//! ```
//!
//! [`MovementTracker`] records these during `richness train` when the config has an
//! `[ntk]` table ([`NtkTrackConfig`]), on the first `points` training examples,
//! using the output-mean kernel ([`super::empirical::Outputs::Mean`]), and writes
//! `ntk_movement.csv`: `step,rel_change,kernel_distance,target_alignment,frobenius_norm`.
//!
//! ```
//! use richness::kernel::movement::{kernel_distance, relative_change, target_alignment};
//! use richness::tensor::Mat;
//! let k0 = Mat::from_vec(2, 2, vec![2.0, 0.0, 0.0, 2.0]);
//! let kt = Mat::from_vec(2, 2, vec![4.0, 0.0, 0.0, 4.0]);
//! assert_eq!(relative_change(&k0, &kt), 1.0);
//! assert!(kernel_distance(&k0, &kt).abs() < 1e-15);
//! let y = Mat::from_vec(2, 1, vec![1.0, -1.0]);
//! // yᵀKy = 4, ‖K‖_F = 2√2, ‖yyᵀ‖_F = ‖y‖² = 2: alignment 4/(4√2) = 1/√2.
//! assert!((target_alignment(&k0, &y) - 0.5f64.sqrt()).abs() < 1e-15);
//! ```

use super::empirical::{empirical_ntk, NtkOptions};
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::nn::Model;
use crate::tensor::{Mat, Scalar};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// ‖K_t − K₀‖_F / ‖K₀‖_F.
pub fn relative_change(k0: &Mat<f64>, kt: &Mat<f64>) -> f64 {
    assert_eq!(k0.shape(), kt.shape(), "kernels of different shapes");
    let d: f64 = k0
        .as_slice()
        .iter()
        .zip(kt.as_slice())
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    d.sqrt() / k0.norm()
}

/// 1 − ⟨K₀, K_t⟩_F / (‖K₀‖_F ‖K_t‖_F).
pub fn kernel_distance(k0: &Mat<f64>, kt: &Mat<f64>) -> f64 {
    assert_eq!(k0.shape(), kt.shape(), "kernels of different shapes");
    let ip: f64 = k0
        .as_slice()
        .iter()
        .zip(kt.as_slice())
        .map(|(a, b)| a * b)
        .sum();
    1.0 - ip / (k0.norm() * kt.norm())
}

/// ⟨K, YYᵀ⟩_F / (‖K‖_F ‖YYᵀ‖_F) for a kernel [B, B] and targets Y [B, k], without
/// forming YYᵀ (⟨K, YYᵀ⟩ = Σ_c y_cᵀ K y_c and ‖YYᵀ‖_F = ‖YᵀY‖_F).
pub fn target_alignment(k: &Mat<f64>, y: &Mat<f64>) -> f64 {
    let b = k.rows();
    assert_eq!(
        (k.cols(), y.rows()),
        (b, b),
        "kernel and targets do not match"
    );
    let kc = y.cols();
    let mut num = 0.0;
    for c in 0..kc {
        for i in 0..b {
            let yi = y[(i, c)];
            if yi == 0.0 {
                continue;
            }
            num += yi
                * k.row(i)
                    .iter()
                    .enumerate()
                    .map(|(j, kij)| kij * y[(j, c)])
                    .sum::<f64>();
        }
    }
    let mut gram = 0.0;
    for c in 0..kc {
        for d in 0..kc {
            let g: f64 = (0..b).map(|i| y[(i, c)] * y[(i, d)]).sum();
            gram += g * g;
        }
    }
    num / (k.norm() * gram.sqrt())
}

/// The `[ntk]` table of a training config: record kernel movement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtkTrackConfig {
    /// Record every this many steps (and always at step 0 and the last step);
    /// 0 = only at the start and the end.
    #[serde(default = "default_every")]
    pub every: usize,
    /// Use the first this many training examples (default 128).
    #[serde(default = "default_points")]
    pub points: usize,
}

fn default_every() -> usize {
    10
}
fn default_points() -> usize {
    128
}

impl Default for NtkTrackConfig {
    fn default() -> Self {
        NtkTrackConfig {
            every: default_every(),
            points: default_points(),
        }
    }
}

/// One row of `ntk_movement.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MovementRow {
    pub step: usize,
    pub rel_change: f64,
    pub kernel_distance: f64,
    pub target_alignment: f64,
    pub frobenius_norm: f64,
}

impl MovementRow {
    pub const HEADER: &'static str =
        "step,rel_change,kernel_distance,target_alignment,frobenius_norm";
    pub fn csv(&self) -> String {
        format!(
            "{},{:e},{:e},{:e},{:e}",
            self.step,
            self.rel_change,
            self.kernel_distance,
            self.target_alignment,
            self.frobenius_norm
        )
    }
}

/// Records kernel movement on a fixed subset of the training data.
pub struct MovementTracker<T> {
    cfg: NtkTrackConfig,
    x: Mat<T>,
    y: Mat<f64>,
    k0: Mat<f64>,
    pub rows: Vec<MovementRow>,
}

impl<T: Scalar> MovementTracker<T> {
    /// Take the first `cfg.points` rows of (x, y) and record step 0.
    pub fn new(
        cfg: &NtkTrackConfig,
        model: &Model<T>,
        cx: &Compute,
        x: &Mat<T>,
        y: &Mat<T>,
    ) -> Result<Self> {
        if cfg.points < 2 {
            return Err(Error::config(format!(
                "ntk.points = {} must be at least 2",
                cfg.points
            )));
        }
        let m = cfg.points.min(x.rows());
        let x = x.head(m);
        let y: Mat<f64> = y.head(m).cast();
        let k0 = empirical_ntk(model, cx, &x, None, &NtkOptions::default())?.remove(0);
        let row = MovementRow {
            step: 0,
            rel_change: 0.0,
            kernel_distance: 0.0,
            target_alignment: target_alignment(&k0, &y),
            frobenius_norm: k0.norm(),
        };
        Ok(MovementTracker {
            cfg: cfg.clone(),
            x,
            y,
            k0,
            rows: vec![row],
        })
    }

    /// The kernel at init.
    pub fn initial_kernel(&self) -> &Mat<f64> {
        &self.k0
    }

    /// Record after `step` if it is due (every `every` steps, or `last`).
    pub fn observe(
        &mut self,
        step: usize,
        model: &Model<T>,
        cx: &Compute,
        last: bool,
    ) -> Result<()> {
        let due = (self.cfg.every > 0 && step % self.cfg.every == 0) || last;
        if !due || self.rows.last().is_some_and(|r| r.step == step) {
            return Ok(());
        }
        let kt = empirical_ntk(model, cx, &self.x, None, &NtkOptions::default())?.remove(0);
        self.rows.push(MovementRow {
            step,
            rel_change: relative_change(&self.k0, &kt),
            kernel_distance: kernel_distance(&self.k0, &kt),
            target_alignment: target_alignment(&kt, &self.y),
            frobenius_norm: kt.norm(),
        });
        Ok(())
    }

    /// Write `ntk_movement.csv`.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut s = String::from(MovementRow::HEADER);
        s.push('\n');
        for r in &self.rows {
            s.push_str(&r.csv());
            s.push('\n');
        }
        crate::files::write_atomic(path, s.as_bytes())
    }
}
