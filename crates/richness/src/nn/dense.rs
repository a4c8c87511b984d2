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

use super::layer::WeightKind;
use crate::linalg::Compute;
use crate::tensor::{MatMut, MatRef, Scalar};

/// Up to this many outputs, [`dense_forward`] multiplies directly instead of
/// through the transpose.
const NARROW_FAN_OUT: usize = 256;

/// `z = g · inp · Wᵀ + g_b · b`.
///
/// `inp`: [batch, fan_in]; `w`: [fan_out, fan_in]; `b`: [fan_out]; `z`: [batch, fan_out];
/// `scratch`: at least batch·fan_out values.
///
/// Wide layers compute `zᵀ = g · W · inpᵀ` into `scratch` and transpose it: the
/// matrix-product kernel packs its left operand along rows, and W stored
/// [fan_out, fan_in] is already laid out that way, which measured ~14% faster at
/// batch 256, width 4096 than packing Wᵀ (see `examples/prof_mm.rs`). The transpose
/// touches only batch × fan_out values. Narrow layers (a read-out with a few
/// outputs) are faster the direct way: from width 4096 at batch 256, 10 outputs took
/// 0.56 ms direct against 1.93 ms transposed, 128 outputs 2.11 against 3.37 ms, 256
/// outputs 4.47 against 4.63 ms, while at 512 outputs the transposed form wins (9.24
/// against 6.78 ms; `cargo run --release --example prof_mm -p richness -- --readout
/// N`, 2026-11-29).
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
    scratch: &mut [T],
) {
    if fan_out <= NARROW_FAN_OUT {
        cx.matmul(
            MatMut::new(&mut z[..batch * fan_out], batch, fan_out),
            MatRef::new(inp, batch, fan_in),
            MatRef::new(w, fan_out, fan_in).t(),
            g,
            T::zero(),
        );
    } else {
        let zt = &mut scratch[..batch * fan_out];
        cx.matmul(
            MatMut::new(zt, fan_out, batch),
            MatRef::new(w, fan_out, fan_in),
            MatRef::new(inp, batch, fan_in).t(),
            g,
            T::zero(),
        );
        transpose_into(zt, fan_out, batch, &mut z[..batch * fan_out]);
    }
    if let Some(b) = b {
        for row in z[..batch * fan_out].chunks_exact_mut(fan_out) {
            row.iter_mut().zip(b).for_each(|(z, &b)| *z += g_b * b);
        }
    }
}

/// `dst` ([cols, rows]) = transpose of `src` ([rows, cols]), in cache-sized tiles.
pub fn transpose_into<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    const TILE: usize = 32;
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            for i in i0..(i0 + TILE).min(rows) {
                for j in j0..(j0 + TILE).min(cols) {
                    dst[j * rows + i] = src[i * cols + j];
                }
            }
        }
    }
}

/// Input gradient of a dense layer: `dinp = g · dz · W`.
///
/// `dz`: [batch, fan_out]; `w`: [fan_out, fan_in]; `dinp`: [batch, fan_in].
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_input<T: Scalar>(
    cx: &Compute,
    dz: &[T],
    w: &[T],
    g: T,
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    dinp: &mut [T],
) {
    cx.matmul(
        MatMut::new(dinp, batch, fan_in),
        MatRef::new(dz, batch, fan_out),
        MatRef::new(w, fan_out, fan_in),
        g,
        T::zero(),
    );
}

/// Weight (and bias) gradients of a dense layer, scaled and accumulated:
/// `dw ← scale·g·dzᵀ·inp + keep·dw` and `db ← scale·g_b·Σ_rows dz + keep·db`.
///
/// `dz`: [batch, fan_out]; `inp`: [batch, fan_in] (the forward input); `dw`:
/// [fan_out, fan_in]; `db`: [fan_out]. With `scale = 1, keep = 0` this writes the
/// gradient; with `scale = −η, keep = 1 − η·wd` and `dw = W` it *is* an SGD update,
/// fused into the product (no gradient buffer, one pass over W).
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_weight<T: Scalar>(
    cx: &Compute,
    dz: &[T],
    inp: &[T],
    g: T,
    g_b: T,
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    dw: &mut [T],
    db: Option<&mut [T]>,
    scale: T,
    keep: T,
    keep_b: T,
    scale_b: T,
) {
    let dzv = MatRef::new(dz, batch, fan_out);
    cx.matmul(
        MatMut::new(dw, fan_out, fan_in),
        dzv.t(),
        MatRef::new(inp, batch, fan_in),
        scale * g,
        keep,
    );
    if let Some(db) = db {
        db.iter_mut().for_each(|x| *x *= keep_b);
        let s = scale_b * g_b;
        for row in dz[..batch * fan_out].chunks_exact(fan_out) {
            db.iter_mut().zip(row).for_each(|(d, &r)| *d += s * r);
        }
    }
}

/// A dense layer's shapes: the [`WeightKind`] of fully connected layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    pub fan_in: usize,
    pub fan_out: usize,
}

impl WeightKind for Dense {
    fn fans(&self) -> (usize, usize) {
        (self.fan_in, self.fan_out)
    }
    fn out_len(&self) -> usize {
        self.fan_out
    }
    fn work_len(&self, capacity: usize) -> usize {
        capacity * self.fan_out
    }
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
    ) {
        dense_forward(
            cx,
            z,
            inp,
            w,
            b,
            g,
            g_b,
            batch,
            self.fan_in,
            self.fan_out,
            work,
        )
    }
    fn backward_input<T: Scalar>(
        &self,
        cx: &Compute,
        dz: &[T],
        w: &[T],
        g: T,
        batch: usize,
        _work: &mut [T],
        dinp: &mut [T],
    ) {
        dense_backward_input(cx, dz, w, g, batch, self.fan_in, self.fan_out, dinp)
    }
    fn backward_weight<T: Scalar>(
        &self,
        cx: &Compute,
        dz: &[T],
        inp: &[T],
        g: T,
        g_b: T,
        batch: usize,
        _work: &mut [T],
        dw: &mut [T],
        db: Option<&mut [T]>,
        scale: T,
        keep: T,
        keep_b: T,
        scale_b: T,
    ) {
        dense_backward_weight(
            cx,
            dz,
            inp,
            g,
            g_b,
            batch,
            self.fan_in,
            self.fan_out,
            dw,
            db,
            scale,
            keep,
            keep_b,
            scale_b,
        )
    }
    fn outer_product_gradient(&self) -> bool {
        true
    }
    fn torch_native(&self) -> bool {
        true
    }
    fn torch_shape(&self) -> Vec<usize> {
        vec![self.fan_out, self.fan_in]
    }
    fn to_torch<T: Scalar>(&self, _w: &[T]) -> Option<Vec<T>> {
        None
    }
    fn from_torch<T: Scalar>(&self, values: &[T], w: &mut [T]) {
        w.copy_from_slice(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::normal_vec;

    /// Both product orientations of `dense_forward` (narrow and wide layers) against
    /// the defining sum z[b, o] = g·Σ_i inp[b, i]·W[o, i] + g_b·b[o].
    #[test]
    fn forward_matches_the_defining_sum_on_both_sides_of_the_orientation_switch() {
        let cx = Compute::new(2);
        let (batch, fan_in) = (7, 33);
        for fan_out in [1, 10, NARROW_FAN_OUT, NARROW_FAN_OUT + 1, 300] {
            let inp = normal_vec(1, "inp", 0, batch * fan_in, 1.0);
            let w = normal_vec(2, "w", fan_out as u64, fan_out * fan_in, 1.0);
            let b = normal_vec(3, "b", fan_out as u64, fan_out, 1.0);
            let (g, g_b) = (0.37, -1.25);
            let mut z = vec![f64::NAN; batch * fan_out];
            let mut scratch = vec![f64::NAN; batch * fan_out];
            dense_forward(
                &cx,
                &mut z,
                &inp,
                &w,
                Some(&b),
                g,
                g_b,
                batch,
                fan_in,
                fan_out,
                &mut scratch,
            );
            for r in 0..batch {
                for o in 0..fan_out {
                    let sum: f64 = (0..fan_in)
                        .map(|i| inp[r * fan_in + i] * w[o * fan_in + i])
                        .sum();
                    let want = g * sum + g_b * b[o];
                    let got = z[r * fan_out + o];
                    assert!(
                        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                        "fan_out {fan_out}, z[{r}, {o}] = {got}, expected {want}"
                    );
                }
            }
        }
    }
}
