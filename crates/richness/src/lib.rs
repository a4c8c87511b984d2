//! # richness
//!
//! Train wide neural networks anywhere on the *richness scale* and measure where
//! they really sit on it (D. Karkada, "The lazy (NTK) and rich (μP) regimes",
//! arXiv 2404.19719).
//!
//! One exponent r fixes every width-dependent hyperparameter: hidden
//! representations move by ‖Δh‖ = γ₀·n^r. r = 0 is the lazy, kernel (NTK) regime;
//! r = 1/2 is μP, where features learn. Everything else (multipliers, init scales,
//! per-layer rates) follows from r up to a *gauge* that does not change training.
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! config (train) → parameterization (param) → model (nn) → training (train, optim)
//!                → probes → store → fits → report
//! ```
//!
//! ## Layers
//!
//! The modules stand on each other in layers. **A module imports only from its own
//! layer or below**, and never in a circle (`tests/layering.rs` checks both, reading
//! this table):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | error, simd, tensor, rng, progress, budget, counts, files | the ground floor: errors, vectorized loops, matrices, random streams, progress bars, the memory budget, the ranges of counts, file reads and writes |
//! | 1 | linalg, fit, verdict, sequential, report | numerics, line fits, verdicts, sequential seeds (rounds and their stopping rule), figures |
//! | 2 | data, param | data sets; parameterizations (the richness scale) |
//! | 3 | nn | networks: forward and backward |
//! | 4 | optim, kernel, io | optimizers, neural tangent kernels, weights files and run folders |
//! | 5 | train | configs, the trainer, a whole run |
//! | 6 | probe, sweep | measurements across widths; sweeps and their store |
//! | 7 | reproduce | the experiments T1–T10 and their report |
//!
//! There are no exceptions: an architecture's memory estimates live in `nn`
//! (`nn/memory.rs`) and are checked against the ground floor's `budget`.
//!
//! ```
//! use richness::prelude::*;
//! // μP (r = 1/2) for a 64 → 256 → 256 → 10 ReLU network, trained 1 SGD step on digits.
//! let split = DataSource::Digits.load().unwrap();
//! let arch = Arch::mlp(vec![64, 256, 256, 10], Activation::Relu);
//! let model = Model::<f64>::init(&arch, &ScaleChoice::preset(Preset::Mup), OptimizerKind::Sgd, 0).unwrap();
//! let mut t = Trainer::new(model, &OptimConfig::sgd(0.0), Compute::new(1), Loss::Mse, 64);
//! let (x, y) = split.train.head(64).cast::<f64>();
//! let before = t.step(x.as_slice(), y.as_slice(), 64);
//! let after = t.evaluate(&x, &y).0;
//! assert!(after < before);
//! ```

pub mod budget;
pub mod counts;
pub mod data;
pub mod error;
pub mod files;
pub mod fit;
pub mod io;
pub mod kernel;
pub mod linalg;
pub mod nn;
pub mod optim;
pub mod param;
pub mod probe;
pub mod progress;
pub mod report;
pub mod reproduce;
pub mod rng;
pub mod sequential;
pub mod simd;
pub mod sweep;
pub mod tensor;
pub mod train;
pub mod verdict;

pub use error::{Error, Result};

/// The names most programs need.
pub mod prelude {
    pub use crate::data::{DataSource, Dataset, Split};
    pub use crate::error::{Error, Result};
    pub use crate::linalg::Compute;
    pub use crate::nn::{Activation, Arch, Grads, Loss, Model, Trace};
    pub use crate::optim::{OptimConfig, Optimizer};
    pub use crate::param::{Gauge, OptimizerKind, Parameterization, Preset, Role, ScaleChoice};
    pub use crate::tensor::{Dtype, Mat, Scalar};
    pub use crate::train::{TrainConfig, Trainer};
    pub use crate::verdict::{Judged, Verdict};
}
