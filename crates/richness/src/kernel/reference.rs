//! **Test and benchmark only — slow and memory-hungry.** The empirical NTK by
//! explicit per-example Jacobians, the way PyTorch's `torch.func` recipe and
//! neural-tangents' default implementation compute it.
//!
//! For each example and output unit, one forward and one full backward pass
//! ([`Model::backward`], the training code's own gradients) give ∂f_u(x)/∂θ for
//! every raw parameter; each tensor is scaled by √η (its per-layer rate factor) and
//! the rows are stacked into a B × P Jacobian J, so that K = J₁J₂ᵀ. That is
//! O(B·P) memory and O(B₁B₂·P) time — what [`super::empirical`] avoids — and shares
//! no code with it beyond the model's forward/backward, which is why the tests
//! compare the two.
//!
//! ```
//! use richness::kernel::{empirical, reference};
//! use richness::linalg::Compute;
//! use richness::nn::{Activation, Arch, Model};
//! use richness::param::{OptimizerKind, Preset, ScaleChoice};
//! use richness::tensor::Mat;
//! let model = Model::<f64>::init(&Arch::mlp(vec![2, 8, 1], Activation::Tanh), &ScaleChoice::preset(Preset::Mup), OptimizerKind::Sgd, 1).unwrap();
//! let x = Mat::from_vec(3, 2, vec![0.1, 0.2, -0.3, 0.4, 0.5, -0.6]);
//! let fast = empirical::ntk(&model, &Compute::new(1), &x, None).unwrap();
//! let slow = reference::ntk_reference(&model, &x, None, empirical::Outputs::Mean).remove(0);
//! assert!((fast[(0, 2)] - slow[(0, 2)]).abs() < 1e-12 * slow[(0, 0)].abs());
//! ```

use super::empirical::{gradient_rows, Outputs};
use crate::linalg::Compute;
use crate::nn::Model;
use crate::tensor::{Mat, Scalar};

/// The rate-scaled Jacobian of output unit `unit`: row i is
/// (√η_p · ∂f_unit(x_i)/∂θ_p)_p over all raw parameters in [`Model::params`] order.
/// [B, P], f64. (The same per-example gradients the conv path of
/// [`super::empirical`] uses, for the whole set at once.)
pub fn jacobian<T: Scalar>(model: &Model<T>, x: &Mat<T>, unit: usize) -> Mat<f64> {
    let j = gradient_rows(model, x.as_slice(), x.rows(), unit);
    Mat::from_fn(j.rows(), j.cols(), |r, c| j[(r, c)].f64())
}

/// The empirical NTK(s) from explicit Jacobians: K_u = J_u(x1) J_u(x2)ᵀ, then the
/// same output selection as [`super::empirical::empirical_ntk`].
pub fn ntk_reference<T: Scalar>(
    model: &Model<T>,
    x1: &Mat<T>,
    x2: Option<&Mat<T>>,
    outputs: Outputs,
) -> Vec<Mat<f64>> {
    let k = model.output_dim();
    let cx = Compute::new(1);
    let n2 = x2.map(|x| x.rows()).unwrap_or(x1.rows());
    let per_unit = |u: usize| {
        let j1 = jacobian(model, x1, u);
        let j2 = x2.map(|x2| jacobian(model, x2, u));
        let mut kk = Mat::zeros(x1.rows(), n2);
        cx.matmul(
            kk.view_mut(),
            j1.view(),
            j2.as_ref().unwrap_or(&j1).view().t(),
            1.0,
            0.0,
        );
        kk
    };
    match outputs {
        Outputs::Index(u) => vec![per_unit(u)],
        Outputs::Each => (0..k).map(per_unit).collect(),
        Outputs::Mean | Outputs::Sum => {
            let w = if outputs == Outputs::Sum {
                1.0
            } else {
                1.0 / k as f64
            };
            let mut acc = Mat::<f64>::zeros(x1.rows(), n2);
            for u in 0..k {
                let ku = per_unit(u);
                acc.as_mut_slice()
                    .iter_mut()
                    .zip(ku.as_slice())
                    .for_each(|(a, b)| *a += b * w);
            }
            vec![acc]
        }
    }
}
