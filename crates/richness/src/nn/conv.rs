//! The convolutional layer kind (k × k, stride 1, "same" zero padding) and pooling.
//!
//! Written by hand for the same reason as the dense layer: probes and kernels read
//! the internals, and the hot loop must not allocate. Activations are stored per
//! example in HWC order (channels fastest), so a batch is a row-major
//! [B, H·W·C] matrix and a convolution is one matrix product over all positions:
//!
//! ```text
//! col   = im2col(a)                      [B·H·W, k·k·C_in]   patch of each position, (ky, kx, c) order
//! z     = g · col · Wᵀ (+ g_b b)          [B·H·W, C_out]      = [B, H·W·C_out] in HWC order
//! ∂W    = g · ∂zᵀ · col                   [C_out, k·k·C_in]
//! ∂a    = col2im(g · ∂z · W)              [B, H·W·C_in]       (scatter-add of the patches)
//! ```
//!
//! Role and fan-in: a conv layer's fan-in is C_in·k·k and its width is C_out
//! (theory.md §1). The network's input may be stored CHW (as image files are): the
//! first layer's im2col reads it in that order.
//!
//! Pooling: `avg2` (2 × 2 mean, stride 2, odd edges dropped, as PyTorch's
//! `AvgPool2d(2)`) and `global` (mean over all positions → [B, C]).

use super::layer::WeightKind;
use crate::linalg::Compute;
use crate::tensor::{MatMut, MatRef, Scalar};
use serde::{Deserialize, Serialize};

/// Pooling after a conv layer's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    #[default]
    None,
    /// 2 × 2 average, stride 2.
    Avg2,
    /// Mean over all positions.
    Global,
}

/// Shapes of one conv layer on a given input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub c_in: usize,
    pub c_out: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    /// The layer's input is stored CHW (the network input) instead of HWC.
    pub chw_input: bool,
    pub pool: Pool,
}

impl ConvGeom {
    /// Values per example of the pre-activation.
    pub fn out_len(&self) -> usize {
        self.h * self.w * self.c_out
    }
    /// Fan-in C_in·k·k.
    pub fn patch(&self) -> usize {
        self.c_in * self.k * self.k
    }
    /// Spatial size after pooling.
    pub fn pooled_hw(&self) -> (usize, usize) {
        match self.pool {
            Pool::None => (self.h, self.w),
            Pool::Avg2 => (self.h / 2, self.w / 2),
            Pool::Global => (1, 1),
        }
    }
    /// Values per example after pooling.
    pub fn pooled_len(&self) -> usize {
        let (h, w) = self.pooled_hw();
        h * w * self.c_out
    }
}

/// Index of (y, x, c) in one example's input.
#[inline]
fn idx(g: &ConvGeom, y: usize, x: usize, c: usize) -> usize {
    if g.chw_input {
        (c * g.h + y) * g.w + x
    } else {
        (y * g.w + x) * g.c_in + c
    }
}

/// `col` ([b·H·W, k·k·C_in]) = patches of `inp` ([b, H·W·C_in]), zero outside the image.
pub fn im2col<T: Scalar>(g: &ConvGeom, inp: &[T], b: usize, col: &mut [T]) {
    let (h, w, c, k) = (g.h, g.w, g.c_in, g.k);
    let pad = (k / 2) as isize;
    let per = h * w * c;
    let patch = g.patch();
    for n in 0..b {
        let x_n = &inp[n * per..(n + 1) * per];
        for y in 0..h {
            for x in 0..w {
                let row = &mut col[((n * h + y) * w + x) * patch..][..patch];
                let mut o = 0;
                for ky in 0..k {
                    let yy = y as isize + ky as isize - pad;
                    for kx in 0..k {
                        let xx = x as isize + kx as isize - pad;
                        if yy < 0 || yy >= h as isize || xx < 0 || xx >= w as isize {
                            row[o..o + c].iter_mut().for_each(|v| *v = T::zero());
                        } else if g.chw_input {
                            for ci in 0..c {
                                row[o + ci] = x_n[idx(g, yy as usize, xx as usize, ci)];
                            }
                        } else {
                            let s = idx(g, yy as usize, xx as usize, 0);
                            row[o..o + c].copy_from_slice(&x_n[s..s + c]);
                        }
                        o += c;
                    }
                }
            }
        }
    }
}

/// `dinp` ([b, H·W·C_in]) = scatter-add of `dcol` ([b·H·W, k·k·C_in]); the adjoint of [`im2col`].
pub fn col2im<T: Scalar>(g: &ConvGeom, dcol: &[T], b: usize, dinp: &mut [T]) {
    let (h, w, c, k) = (g.h, g.w, g.c_in, g.k);
    let pad = (k / 2) as isize;
    let per = h * w * c;
    let patch = g.patch();
    dinp[..b * per].iter_mut().for_each(|v| *v = T::zero());
    for n in 0..b {
        let d_n = &mut dinp[n * per..(n + 1) * per];
        for y in 0..h {
            for x in 0..w {
                let row = &dcol[((n * h + y) * w + x) * patch..][..patch];
                let mut o = 0;
                for ky in 0..k {
                    let yy = y as isize + ky as isize - pad;
                    for kx in 0..k {
                        let xx = x as isize + kx as isize - pad;
                        if !(yy < 0 || yy >= h as isize || xx < 0 || xx >= w as isize) {
                            for ci in 0..c {
                                d_n[idx(g, yy as usize, xx as usize, ci)] += row[o + ci];
                            }
                        }
                        o += c;
                    }
                }
            }
        }
    }
}

/// Examples per chunk so that one chunk's patch matrix holds at most `cap` values.
pub fn chunk_examples(g: &ConvGeom, cap: usize) -> usize {
    (cap / (g.h * g.w * g.patch()).max(1)).max(1)
}

/// Forward: `z = g · im2col(inp) · Wᵀ + g_b b` over `batch` examples, in chunks that
/// fit `col` (scratch). `inp`: [batch, in_len], `w`: [C_out, k·k·C_in], `z`: [batch, H·W·C_out].
#[allow(clippy::too_many_arguments)]
pub fn conv_forward<T: Scalar>(
    cx: &Compute,
    geom: &ConvGeom,
    z: &mut [T],
    inp: &[T],
    w: &[T],
    bias: Option<&[T]>,
    gain: T,
    gain_b: T,
    batch: usize,
    col: &mut [T],
) {
    let per_in = geom.h * geom.w * geom.c_in;
    let hw = geom.h * geom.w;
    let patch = geom.patch();
    let step = chunk_examples(geom, col.len());
    let mut n0 = 0;
    while n0 < batch {
        let nb = step.min(batch - n0);
        let rows = nb * hw;
        im2col(geom, &inp[n0 * per_in..(n0 + nb) * per_in], nb, col);
        cx.matmul(
            MatMut::new(
                &mut z[n0 * hw * geom.c_out..(n0 + nb) * hw * geom.c_out],
                rows,
                geom.c_out,
            ),
            MatRef::new(&col[..rows * patch], rows, patch),
            MatRef::new(w, geom.c_out, patch).t(),
            gain,
            T::zero(),
        );
        n0 += nb;
    }
    if let Some(b) = bias {
        for pos in z[..batch * geom.out_len()].chunks_exact_mut(geom.c_out) {
            pos.iter_mut().zip(b).for_each(|(z, &b)| *z += gain_b * b);
        }
    }
}

/// Input gradient: `dinp = col2im(g · dz · W)`, in chunks that fit `col`.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward_input<T: Scalar>(
    cx: &Compute,
    geom: &ConvGeom,
    dz: &[T],
    w: &[T],
    gain: T,
    batch: usize,
    col: &mut [T],
    dinp: &mut [T],
) {
    let per_in = geom.h * geom.w * geom.c_in;
    let hw = geom.h * geom.w;
    let patch = geom.patch();
    let step = chunk_examples(geom, col.len());
    let mut n0 = 0;
    while n0 < batch {
        let nb = step.min(batch - n0);
        let rows = nb * hw;
        cx.matmul(
            MatMut::new(&mut col[..rows * patch], rows, patch),
            MatRef::new(
                &dz[n0 * hw * geom.c_out..(n0 + nb) * hw * geom.c_out],
                rows,
                geom.c_out,
            ),
            MatRef::new(w, geom.c_out, patch),
            gain,
            T::zero(),
        );
        col2im(
            geom,
            &col[..rows * patch],
            nb,
            &mut dinp[n0 * per_in..(n0 + nb) * per_in],
        );
        n0 += nb;
    }
}

/// Weight (and bias) gradients, scaled and accumulated like
/// [`super::dense::dense_backward_weight`]: `dw ← scale·g·dzᵀ·col + keep·dw`,
/// `db ← scale_b·g_b·Σ dz + keep_b·db` (with `dw = W` this is a fused SGD update).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward_weight<T: Scalar>(
    cx: &Compute,
    geom: &ConvGeom,
    dz: &[T],
    inp: &[T],
    gain: T,
    gain_b: T,
    batch: usize,
    col: &mut [T],
    dw: &mut [T],
    db: Option<&mut [T]>,
    scale: T,
    keep: T,
    keep_b: T,
    scale_b: T,
) {
    let per_in = geom.h * geom.w * geom.c_in;
    let hw = geom.h * geom.w;
    let patch = geom.patch();
    let step = chunk_examples(geom, col.len());
    let mut n0 = 0;
    let mut first = true;
    while n0 < batch {
        let nb = step.min(batch - n0);
        let rows = nb * hw;
        im2col(geom, &inp[n0 * per_in..(n0 + nb) * per_in], nb, col);
        cx.matmul(
            MatMut::new(dw, geom.c_out, patch),
            MatRef::new(
                &dz[n0 * hw * geom.c_out..(n0 + nb) * hw * geom.c_out],
                rows,
                geom.c_out,
            )
            .t(),
            MatRef::new(&col[..rows * patch], rows, patch),
            scale * gain,
            if first { keep } else { T::one() },
        );
        first = false;
        n0 += nb;
    }
    if let Some(db) = db {
        db.iter_mut().for_each(|x| *x *= keep_b);
        let s = scale_b * gain_b;
        for pos in dz[..batch * geom.out_len()].chunks_exact(geom.c_out) {
            db.iter_mut().zip(pos).for_each(|(d, &v)| *d += s * v);
        }
    }
}

/// Pooling forward: `out` ([batch, pooled_len]) from `a` ([batch, H·W·C], HWC).
pub fn pool_forward<T: Scalar>(geom: &ConvGeom, a: &[T], batch: usize, out: &mut [T]) {
    let (h, w, c) = (geom.h, geom.w, geom.c_out);
    let (ph, pw) = geom.pooled_hw();
    let per = h * w * c;
    let pper = ph * pw * c;
    for n in 0..batch {
        let a_n = &a[n * per..(n + 1) * per];
        let o_n = &mut out[n * pper..(n + 1) * pper];
        match geom.pool {
            Pool::None => o_n.copy_from_slice(a_n),
            Pool::Global => {
                o_n.iter_mut().for_each(|v| *v = T::zero());
                for pos in a_n.chunks_exact(c) {
                    o_n.iter_mut().zip(pos).for_each(|(o, &v)| *o += v);
                }
                let s = T::of(1.0 / (h * w) as f64);
                o_n.iter_mut().for_each(|v| *v *= s);
            }
            Pool::Avg2 => {
                let q = T::of(0.25);
                for y in 0..ph {
                    for x in 0..pw {
                        for ch in 0..c {
                            let at = |yy: usize, xx: usize| a_n[(yy * w + xx) * c + ch];
                            o_n[(y * pw + x) * c + ch] = q
                                * (at(2 * y, 2 * x)
                                    + at(2 * y, 2 * x + 1)
                                    + at(2 * y + 1, 2 * x)
                                    + at(2 * y + 1, 2 * x + 1));
                        }
                    }
                }
            }
        }
    }
}

/// Pooling backward: `da` ([batch, H·W·C]) from `dout` ([batch, pooled_len]).
pub fn pool_backward<T: Scalar>(geom: &ConvGeom, dout: &[T], batch: usize, da: &mut [T]) {
    let (h, w, c) = (geom.h, geom.w, geom.c_out);
    let (ph, pw) = geom.pooled_hw();
    let per = h * w * c;
    let pper = ph * pw * c;
    for n in 0..batch {
        let d_n = &mut da[n * per..(n + 1) * per];
        let o_n = &dout[n * pper..(n + 1) * pper];
        match geom.pool {
            Pool::None => d_n.copy_from_slice(o_n),
            Pool::Global => {
                let s = T::of(1.0 / (h * w) as f64);
                for pos in d_n.chunks_exact_mut(c) {
                    pos.iter_mut().zip(o_n).for_each(|(d, &o)| *d = s * o);
                }
            }
            Pool::Avg2 => {
                d_n.iter_mut().for_each(|v| *v = T::zero());
                let q = T::of(0.25);
                for y in 0..ph {
                    for x in 0..pw {
                        for ch in 0..c {
                            let g = q * o_n[(y * pw + x) * c + ch];
                            for (yy, xx) in [
                                (2 * y, 2 * x),
                                (2 * y, 2 * x + 1),
                                (2 * y + 1, 2 * x),
                                (2 * y + 1, 2 * x + 1),
                            ] {
                                d_n[(yy * w + xx) * c + ch] = g;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Most values one chunk of conv patches may hold (conv layers work in chunks).
const COL_CAP: usize = 1 << 23;

impl WeightKind for ConvGeom {
    fn fans(&self) -> (usize, usize) {
        (self.patch(), self.c_out)
    }
    fn out_len(&self) -> usize {
        ConvGeom::out_len(self)
    }
    fn pooled_len(&self) -> Option<usize> {
        (self.pool != Pool::None).then(|| ConvGeom::pooled_len(self))
    }
    fn work_len(&self, capacity: usize) -> usize {
        let per = self.h * self.w * self.patch();
        (capacity * per).min(COL_CAP.max(per))
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
        conv_forward(cx, self, z, inp, w, b, g, g_b, batch, work)
    }
    fn backward_input<T: Scalar>(
        &self,
        cx: &Compute,
        dz: &[T],
        w: &[T],
        g: T,
        batch: usize,
        work: &mut [T],
        dinp: &mut [T],
    ) {
        conv_backward_input(cx, self, dz, w, g, batch, work, dinp)
    }
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
    ) {
        conv_backward_weight(
            cx, self, dz, inp, g, g_b, batch, work, dw, db, scale, keep, keep_b, scale_b,
        )
    }
    fn pool_forward<T: Scalar>(&self, a: &[T], batch: usize, out: &mut [T]) {
        if self.pool != Pool::None {
            pool_forward(self, a, batch, out)
        }
    }
    fn pool_backward<T: Scalar>(&self, dout: &[T], batch: usize, da: &mut [T]) {
        if self.pool != Pool::None {
            pool_backward(self, dout, batch, da)
        }
    }
    fn outer_product_gradient(&self) -> bool {
        // A conv weight is shared across positions: its gradient is a sum of outer
        // products, one per position.
        false
    }
    fn torch_native(&self) -> bool {
        false
    }
    fn torch_shape(&self) -> Vec<usize> {
        vec![self.c_out, self.c_in, self.k, self.k]
    }
    /// Our [C_out, (ky, kx, c_in)] rows become [C_out, C_in, k, k].
    fn to_torch<T: Scalar>(&self, w: &[T]) -> Option<Vec<T>> {
        let (co, ci, k) = (self.c_out, self.c_in, self.k);
        let patch = self.patch();
        let mut out = vec![T::zero(); co * ci * k * k];
        for o in 0..co {
            for ky in 0..k {
                for kx in 0..k {
                    for c in 0..ci {
                        out[((o * ci + c) * k + ky) * k + kx] =
                            w[o * patch + (ky * k + kx) * ci + c];
                    }
                }
            }
        }
        Some(out)
    }
    fn from_torch<T: Scalar>(&self, values: &[T], w: &mut [T]) {
        let (ci, k) = (self.c_in, self.k);
        let patch = self.patch();
        for o in 0..self.c_out {
            for ky in 0..k {
                for kx in 0..k {
                    for c in 0..ci {
                        w[o * patch + (ky * k + kx) * ci + c] =
                            values[((o * ci + c) * k + ky) * k + kx];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::normal_vec;

    /// Direct convolution by the definition, for comparison.
    fn direct(g: &ConvGeom, inp: &[f64], w: &[f64], b: usize) -> Vec<f64> {
        let mut out = vec![0.0; b * g.out_len()];
        let pad = (g.k / 2) as isize;
        for n in 0..b {
            for y in 0..g.h {
                for x in 0..g.w {
                    for co in 0..g.c_out {
                        let mut s = 0.0;
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let (yy, xx) = (
                                    y as isize + ky as isize - pad,
                                    x as isize + kx as isize - pad,
                                );
                                if yy < 0 || xx < 0 || yy >= g.h as isize || xx >= g.w as isize {
                                    continue;
                                }
                                for ci in 0..g.c_in {
                                    let v = inp[n * g.h * g.w * g.c_in
                                        + idx(g, yy as usize, xx as usize, ci)];
                                    s += v * w[co * g.patch() + (ky * g.k + kx) * g.c_in + ci];
                                }
                            }
                        }
                        out[n * g.out_len() + (y * g.w + x) * g.c_out + co] = s;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn im2col_convolution_matches_the_definition_and_col2im_is_its_adjoint() {
        for chw in [false, true] {
            let g = ConvGeom {
                c_in: 3,
                c_out: 4,
                h: 5,
                w: 6,
                k: 3,
                chw_input: chw,
                pool: Pool::None,
            };
            let b = 2;
            let inp = normal_vec(1, "i", 0, b * 5 * 6 * 3, 1.0);
            let w = normal_vec(2, "w", 0, 4 * 27, 1.0);
            let mut z = vec![0.0; b * g.out_len()];
            let mut col = vec![0.0; 7 * 5 * 6 * 27]; // forces chunks of 1 example? no: 7 ≥ 2
            conv_forward(
                &Compute::new(1),
                &g,
                &mut z,
                &inp,
                &w,
                None,
                1.0,
                0.0,
                b,
                &mut col,
            );
            let want = direct(&g, &inp, &w, b);
            assert!(z.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
            // Chunked (col holds one example) gives the same.
            let mut small = vec![0.0; 5 * 6 * 27];
            let mut z2 = vec![0.0; b * g.out_len()];
            conv_forward(
                &Compute::new(1),
                &g,
                &mut z2,
                &inp,
                &w,
                None,
                1.0,
                0.0,
                b,
                &mut small,
            );
            assert_eq!(z, z2);
            // ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩.
            let mut c1 = vec![0.0; b * 30 * 27];
            im2col(&g, &inp, b, &mut c1);
            let y = normal_vec(3, "y", 0, c1.len(), 1.0);
            let mut back = vec![0.0; inp.len()];
            col2im(&g, &y, b, &mut back);
            let l: f64 = c1.iter().zip(&y).map(|(a, b)| a * b).sum();
            let r: f64 = inp.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!((l - r).abs() < 1e-10 * l.abs().max(1.0));
        }
    }

    #[test]
    fn pooling_backward_is_the_adjoint_of_forward() {
        for pool in [Pool::Avg2, Pool::Global, Pool::None] {
            let g = ConvGeom {
                c_in: 1,
                c_out: 3,
                h: 5,
                w: 4,
                k: 3,
                chw_input: false,
                pool,
            };
            let b = 2;
            let a = normal_vec(4, "a", 0, b * g.out_len(), 1.0);
            let mut p = vec![0.0; b * g.pooled_len()];
            pool_forward(&g, &a, b, &mut p);
            let d = normal_vec(5, "d", 0, p.len(), 1.0);
            let mut da = vec![0.0; a.len()];
            pool_backward(&g, &d, b, &mut da);
            let l: f64 = p.iter().zip(&d).map(|(x, y)| x * y).sum();
            let r: f64 = a.iter().zip(&da).map(|(x, y)| x * y).sum();
            assert!((l - r).abs() < 1e-12, "{pool:?}");
        }
    }
}
