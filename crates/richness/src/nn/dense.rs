//! The dense (fully connected) layer kind: forward and backward, side by side.
//!
//! Written by hand rather than through an autograd crate, on purpose: the probes and
//! kernels read this layer's internals (its input, pre-activation, backward signal
//! and gradient) directly, and the hot loop must not allocate.
//!
//! With a batch of B rows,
//!
//! ```text
//! forward   z  = g · a · Wᵀ + g_b · 1 bᵀ          a: [B, fan_in], W: [fan_out, fan_in], z: [B, fan_out]
//! backward  ∂W = g · ∂zᵀ · a                     [fan_out, fan_in]
//!           ∂b = g_b · Σ_rows ∂z                  [fan_out]
//!           ∂a = g · ∂z · W                       [B, fan_in]   (skipped for the first layer)
//! ```
//!
//! Role and fan-in: a dense layer's fan-in is its input width; it is read-in when
//! fed by the network's input, read-out when it produces the output.
//! Empirical NTK factors: ∂f/∂W = δ aᵀ (an outer product), so its contribution to
//! K(x, x') is λ · ⟨δ(x), δ(x')⟩ · ⟨a(x), a(x')⟩ (see `kernel`).

use crate::linalg::Compute;
use crate::tensor::{MatMut, MatRef, Scalar};

/// `z = g · inp · Wᵀ + g_b · b`.
///
/// `inp`: [batch, fan_in]; `w`: [fan_out, fan_in]; `b`: [fan_out]; `z`: [batch, fan_out].
#[allow(clippy::too_many_arguments)]
pub fn dense_forward<T: Scalar>(
    cx: &Compute,
    z: &mut [T],
    inp: &[T],
    w: &[T],
    b: Option<&[T]>,
    g: T,
    g_b: T,
    batch: usize,
    fan_in: usize,
    fan_out: usize,
) {
    cx.matmul(
        MatMut::new(z, batch, fan_out),
        MatRef::new(inp, batch, fan_in),
        MatRef::new(w, fan_out, fan_in).t(),
        g,
        T::zero(),
    );
    if let Some(b) = b {
        for row in z[..batch * fan_out].chunks_exact_mut(fan_out) {
            row.iter_mut().zip(b).for_each(|(z, &b)| *z += g_b * b);
        }
    }
}

/// Gradients of a dense layer from its output gradient `dz`.
///
/// `dz`: [batch, fan_out]; `inp`: [batch, fan_in] (the forward input); `w`:
/// [fan_out, fan_in]. Writes `dw` ([fan_out, fan_in]) as `dw ← g·dzᵀ·inp + acc·dw`,
/// `db` ([fan_out]) likewise, and, when given, `dinp` ([batch, fan_in]) = g·dz·W.
/// `acc = 0` overwrites, `acc = 1` accumulates.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward<T: Scalar>(
    cx: &Compute,
    dz: &[T],
    inp: &[T],
    w: &[T],
    g: T,
    g_b: T,
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    dw: &mut [T],
    db: Option<&mut [T]>,
    dinp: Option<&mut [T]>,
    acc: T,
) {
    let dzv = MatRef::new(dz, batch, fan_out);
    cx.matmul(MatMut::new(dw, fan_out, fan_in), dzv.t(), MatRef::new(inp, batch, fan_in), g, acc);
    if let Some(db) = db {
        db.iter_mut().for_each(|x| *x = *x * acc);
        for row in dz[..batch * fan_out].chunks_exact(fan_out) {
            db.iter_mut().zip(row).for_each(|(d, &r)| *d += g_b * r);
        }
    }
    if let Some(dinp) = dinp {
        cx.matmul(MatMut::new(dinp, batch, fan_in), dzv, MatRef::new(w, fan_out, fan_in), g, T::zero());
    }
}
