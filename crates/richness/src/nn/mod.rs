//! Layer kinds and networks, with explicit forward and backward passes.
//!
//! - [`activation`]: pointwise φ with gain c_φ;
//! - [`dense`]: the fully connected layer (forward/backward pair);
//! - [`conv`]: k × k convolutions and pooling (forward/backward pairs);
//! - [`model`]: architectures, models, the [`Trace`] of one pass, gradients;
//! - [`loss`]: MSE, cross-entropy, accuracy;
//! - [`attention`], [`gpt`]: causal self-attention and the GPT (its own model, not on
//!   the [`WeightKind`] door).

pub mod activation;
pub mod attention;
pub mod conv;
pub mod dense;
pub mod gpt;
pub mod layer;
pub mod layernorm;
pub mod loss;
pub mod memory;
pub mod model;
pub mod residual;

pub use activation::Activation;
pub use conv::Pool;
pub use layer::WeightKind;
pub use layernorm::Norm;
pub use loss::{accuracy, Loss};
pub use model::{Arch, BiasInit, ConvSpec, Family, Grads, Model, Trace};
pub use residual::{Branch, ResidualSpec};

// The registered weight-layer kinds: one line each (see `layer`).
layer::layer_kinds! {
    /// A fully connected layer.
    Dense(dense::Dense),
    /// A k × k convolution ("same" padding, stride 1), with its pooling.
    Conv(conv::ConvGeom),
}
