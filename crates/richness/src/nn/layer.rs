//! What a weight-layer kind is: one trait, implemented once per kind, and one
//! registration line.
//!
//! A kind (dense, conv, …) states in its own file ([`super::dense`],
//! [`super::conv`]) everything the rest of the library asks of it:
//!
//! | asked by | method |
//! |---|---|
//! | parameterization (role, fan-in) | [`WeightKind::fans`] |
//! | forward / backward passes, [`super::Trace`] buffers | [`forward`](WeightKind::forward), [`backward_input`](WeightKind::backward_input), [`backward_weight`](WeightKind::backward_weight), [`out_len`](WeightKind::out_len), [`work_len`](WeightKind::work_len), pooling |
//! | probes (z, a, ∂L/∂z of every layer) | read from the trace the passes fill |
//! | empirical NTK | [`outer_product_gradient`](WeightKind::outer_product_gradient): ∂f/∂W = δ aᵀ per example (Gram factorisation) or per-example gradients |
//! | checkpoints | [`torch_shape`](WeightKind::torch_shape), [`to_torch`](WeightKind::to_torch), [`from_torch`](WeightKind::from_torch) |
//!
//! Shapes: a batch of B examples is row-major [B, values per example]; a weight is
//! stored [fan_out, fan_in] (PyTorch's dense layout). Multipliers g (and β for a
//! residual block) are passed in, never stored in the tensors.
//!
//! **Adding a kind** takes two files: a new `nn/<kind>.rs` with a `Copy` struct of
//! the kind's shapes and `impl WeightKind for it`, and one line in the
//! `layer_kinds!` list in `nn/mod.rs`, which generates the [`super::LayerKind`] enum
//! and its dispatch. Architectures (`Arch::kinds`) then say where the kind sits.
//! Parameter-free maps between weight layers (activation, LayerNorm, pooling, the
//! residual skip) are applied by [`super::Model`] from the architecture.

use crate::linalg::Compute;
use crate::tensor::Scalar;

/// One weight-layer kind: shapes, forward/backward, NTK form and checkpoint layout.
pub trait WeightKind: Copy + std::fmt::Debug + PartialEq {
    /// (fan-in, fan-out) for the parameterization: fan-in is the number of inputs
    /// each output reads (C_in·k² for a conv), fan-out the number of output units.
    /// The stored weight is [fan_out, fan_in].
    fn fans(&self) -> (usize, usize);

    /// Values per example of the output z.
    fn out_len(&self) -> usize;

    /// Values per example after the kind's own pooling, when it pools.
    fn pooled_len(&self) -> Option<usize> {
        None
    }

    /// Working space (values) the passes need for up to `capacity` examples.
    fn work_len(&self, capacity: usize) -> usize;

    /// `z = g·W(inp) + g_b·b`. `inp`: [batch, in], `z`: [batch, out_len].
    #[allow(clippy::too_many_arguments)]
    fn forward<T: Scalar>(
        &self,
        cx: &Compute,
        z: &mut [T],
        inp: &[T],
        w: &[T],
        b: Option<&[T]>,
        g: T,
        g_b: T,
        batch: usize,
        work: &mut [T],
    );

    /// `dinp = g·Wᵀ(dz)`, [batch, in].
    #[allow(clippy::too_many_arguments)]
    fn backward_input<T: Scalar>(
        &self,
        cx: &Compute,
        dz: &[T],
        w: &[T],
        g: T,
        batch: usize,
        work: &mut [T],
        dinp: &mut [T],
    );

    /// `dw ← scale·∂L/∂W + keep·dw`, `db ← scale_b·∂L/∂b + keep_b·db` (with
    /// `scale = −η, keep = 1 − η·wd` and `dw = W` this is the SGD update).
    #[allow(clippy::too_many_arguments)]
    fn backward_weight<T: Scalar>(
        &self,
        cx: &Compute,
        dz: &[T],
        inp: &[T],
        g: T,
        g_b: T,
        batch: usize,
        work: &mut [T],
        dw: &mut [T],
        db: Option<&mut [T]>,
        scale: T,
        keep: T,
        keep_b: T,
        scale_b: T,
    );

    /// Pool the post-activation `a` into `out` (kinds that pool).
    fn pool_forward<T: Scalar>(&self, _a: &[T], _batch: usize, _out: &mut [T]) {}

    /// `da` from ∂L/∂(pooled output) (kinds that pool).
    fn pool_backward<T: Scalar>(&self, _dout: &[T], _batch: usize, _da: &mut [T]) {}

    /// Whether ∂f/∂W of one example is one outer product δ·aᵀ (δ = ∂f/∂z, a the
    /// input), so the empirical NTK factors into Gram matrices; otherwise it is
    /// computed from per-example gradients.
    fn outer_product_gradient(&self) -> bool;

    /// The weight's shape in PyTorch's layout.
    fn torch_shape(&self) -> Vec<usize>;

    /// Whether the stored layout is PyTorch's (checkpoints are then read and
    /// written in place).
    fn torch_native(&self) -> bool;

    /// The weight in PyTorch's layout, or `None` when the stored layout already is.
    fn to_torch<T: Scalar>(&self, w: &[T]) -> Option<Vec<T>>;

    /// The inverse of [`to_torch`](Self::to_torch) (only called when that is `Some`).
    fn from_torch<T: Scalar>(&self, values: &[T], w: &mut [T]);
}

/// Generate the [`super::LayerKind`] enum (one variant per registered kind) and its
/// [`WeightKind`] dispatch.
macro_rules! layer_kinds {
    ($($(#[$doc:meta])* $variant:ident($kind:ty)),* $(,)?) => {
        /// The kind and shapes of one weight layer (see [`layer`](crate::nn::layer)).
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum LayerKind {
            $($(#[$doc])* $variant($kind)),*
        }

        impl $crate::nn::layer::WeightKind for LayerKind {
            fn fans(&self) -> (usize, usize) {
                match self { $(LayerKind::$variant(k) => k.fans()),* }
            }
            fn out_len(&self) -> usize {
                match self { $(LayerKind::$variant(k) => $crate::nn::layer::WeightKind::out_len(k)),* }
            }
            fn pooled_len(&self) -> Option<usize> {
                match self { $(LayerKind::$variant(k) => $crate::nn::layer::WeightKind::pooled_len(k)),* }
            }
            fn work_len(&self, capacity: usize) -> usize {
                match self { $(LayerKind::$variant(k) => k.work_len(capacity)),* }
            }
            fn forward<T: $crate::tensor::Scalar>(
                &self, cx: &$crate::linalg::Compute, z: &mut [T], inp: &[T], w: &[T],
                b: Option<&[T]>, g: T, g_b: T, batch: usize, work: &mut [T],
            ) {
                match self { $(LayerKind::$variant(k) => k.forward(cx, z, inp, w, b, g, g_b, batch, work)),* }
            }
            fn backward_input<T: $crate::tensor::Scalar>(
                &self, cx: &$crate::linalg::Compute, dz: &[T], w: &[T], g: T, batch: usize,
                work: &mut [T], dinp: &mut [T],
            ) {
                match self { $(LayerKind::$variant(k) => k.backward_input(cx, dz, w, g, batch, work, dinp)),* }
            }
            fn backward_weight<T: $crate::tensor::Scalar>(
                &self, cx: &$crate::linalg::Compute, dz: &[T], inp: &[T], g: T, g_b: T,
                batch: usize, work: &mut [T], dw: &mut [T], db: Option<&mut [T]>, scale: T,
                keep: T, keep_b: T, scale_b: T,
            ) {
                match self {
                    $(LayerKind::$variant(k) => k.backward_weight(
                        cx, dz, inp, g, g_b, batch, work, dw, db, scale, keep, keep_b, scale_b,
                    )),*
                }
            }
            fn pool_forward<T: $crate::tensor::Scalar>(&self, a: &[T], batch: usize, out: &mut [T]) {
                match self { $(LayerKind::$variant(k) => k.pool_forward(a, batch, out)),* }
            }
            fn pool_backward<T: $crate::tensor::Scalar>(&self, dout: &[T], batch: usize, da: &mut [T]) {
                match self { $(LayerKind::$variant(k) => k.pool_backward(dout, batch, da)),* }
            }
            fn outer_product_gradient(&self) -> bool {
                match self { $(LayerKind::$variant(k) => k.outer_product_gradient()),* }
            }
            fn torch_native(&self) -> bool {
                match self { $(LayerKind::$variant(k) => k.torch_native()),* }
            }
            fn torch_shape(&self) -> Vec<usize> {
                match self { $(LayerKind::$variant(k) => k.torch_shape()),* }
            }
            fn to_torch<T: $crate::tensor::Scalar>(&self, w: &[T]) -> Option<Vec<T>> {
                match self { $(LayerKind::$variant(k) => k.to_torch(w)),* }
            }
            fn from_torch<T: $crate::tensor::Scalar>(&self, values: &[T], w: &mut [T]) {
                match self { $(LayerKind::$variant(k) => k.from_torch(values, w)),* }
            }
        }
    };
}
pub(crate) use layer_kinds;
