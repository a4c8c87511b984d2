//! The lazy end of the scale: tangent kernels, their movement, and the kernel
//! machine a lazy network trains like.
//!
//! **The kernel.** For a network with raw weights W_ℓ, per-layer rate factors η_ℓ
//! (the parameterization's `lr`; the base rate η₀ is excluded) and multipliers g_ℓ,
//! the neural tangent kernel of output u is
//!
//! ```text
//! K_u(x, x') = Σ_ℓ η_ℓ ⟨∂f_u(x)/∂W_ℓ, ∂f_u(x')/∂W_ℓ⟩  (+ the same for biases)
//!            = Σ_ℓ λ_ℓ ⟨∂f_u(x)/∂W̃_ℓ, ∂f_u(x')/∂W̃_ℓ⟩,   λ_ℓ = g_ℓ²η_ℓ,  W̃ = gW
//!            = Σ_ℓ ⟨δ_ℓ(x), δ_ℓ(x')⟩ · (λ_ℓ ⟨a_{ℓ−1}(x), a_{ℓ−1}(x')⟩ + λ_bℓ)
//! ```
//!
//! (theory.md §5), the kernel that governs SGD: one full-batch step on MSE changes
//! the outputs by −η₀·(2/(B·k))·K(f − y) to first order. It depends only on
//! effective weights and rates, so it is gauge-invariant, and at init on the
//! richness scale it does not depend on r.
//!
//! | module | what |
//! |---|---|
//! | [`empirical`] | K of a finite network by the layerwise Gram factorisation (fast, blockwise) |
//! | [`reference`] | the same by explicit per-example Jacobians (test/benchmark only) |
//! | [`infinite`] | the infinite-width NNGP and NTK of MLPs and resmlps (closed forms / quadrature), f64 |
//! | [`quadrature`] | Gauss–Hermite and kink-aware Gauss–Legendre Gaussian expectations |
//! | [`regression`] | linearised training and kernel (ridge) regression in closed form |
//! | [`movement`] | ‖K_t − K₀‖/‖K₀‖, kernel distance, kernel–target alignment; `[ntk]` in training |
//!
//! ```
//! use richness::kernel::{empirical, infinite::InfiniteMlp};
//! use richness::linalg::Compute;
//! use richness::nn::{Activation, Arch, Model};
//! use richness::param::{OptimizerKind, Preset, ScaleChoice};
//! use richness::tensor::Mat;
//! // A wide ReLU net's NTK at init is close to the infinite-width one.
//! let x = Mat::from_vec(2, 2, vec![1.0, 0.0, 0.6, 0.8]);
//! let arch = Arch::mlp(vec![2, 2048, 1], Activation::Relu);
//! let model = Model::<f64>::init(&arch, &ScaleChoice::preset(Preset::Mup), OptimizerKind::Sgd, 0).unwrap();
//! let k = empirical::ntk(&model, &Compute::new(1), &x, None).unwrap();
//! let kinf = InfiniteMlp::on_scale(2, Activation::Relu, 1.0, false).kernels(&x, None).unwrap().ntk;
//! assert!((k[(0, 1)] - kinf[(0, 1)]).abs() < 0.1 * kinf[(0, 1)]);
//! ```

pub mod empirical;
pub mod infinite;
pub mod movement;
pub mod quadrature;
pub mod reference;
pub mod regression;

pub use empirical::{empirical_ntk, ntk, NtkOptions, Outputs};
pub use infinite::{InfiniteKernels, InfiniteMlp};
pub use regression::{Horizon, LinearisedMse};
