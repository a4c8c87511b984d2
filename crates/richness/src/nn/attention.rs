//! Causal multi-head self-attention on sequences, forward and backward by hand.
//!
//! Written out rather than through an autograd crate for the same reason as the
//! dense layer ([`super::dense`]): the probes read the internals (the logits s, the
//! probabilities p, the heads' output o) and the scale's bookkeeping needs c_att
//! as an explicit factor, not hidden inside a fused kernel.
//!
//! A batch of B sequences of T positions with width n is a [B·T, n] matrix (row
//! b·T + t is position t of sequence b). With head dimension d_h there are
//! H = n / d_h heads; head h owns coordinates h·d_h .. (h+1)·d_h.
//!
//! ```text
//! qkv   = g_A · u · W_Aᵀ                       u: [B·T, n], W_A: [3n, n], qkv: [B·T, 3n]
//!         q, k, v = columns 0..n, n..2n, 2n..3n (nanoGPT's fused c_attn layout)
//! s_ij  = c_att ⟨q_i, k_j⟩   (j ≤ i)            per sequence and head: logits [B, H, T, T]
//! p_ij  = softmax_j(s_i·)    (j ≤ i)            probs [B, H, T, T]
//! o_i   = Σ_j p_ij v_j                          heads: [B·T, n]
//! y     = g_O · o · W_Oᵀ                        W_O: [n, n], y: [B·T, n]
//! ```
//!
//! Entries above the diagonal (j > i, masked) are stored as 0 in both `logits` and
//! `probs`, so a probe's norm of either counts only the causal part.
//!
//! Backward, from ∂L/∂o (per sequence and head):
//!
//! ```text
//! ∂p_ij = ⟨∂o_i, v_j⟩           ∂v_j = Σ_i p_ij ∂o_i
//! ∂s_ij = p_ij (∂p_ij − Σ_k p_ik ∂p_ik)            (the softmax Jacobian)
//! ∂q_i  = c_att Σ_j ∂s_ij k_j   ∂k_j = c_att Σ_i ∂s_ij q_i
//! ```
//!
//! ```
//! use richness::nn::attention::{scores_forward, AttentionShape};
//! // One sequence of 2 positions, one head of dimension 1: q = k = v = the position's value.
//! let shape = AttentionShape { batch: 1, context: 2, width: 1, head_dim: 1 };
//! let qkv = [1.0f64, 1.0, 1.0, 2.0, 2.0, 2.0];
//! let (mut s, mut p, mut o) = ([0.0; 4], [0.0; 4], [0.0; 2]);
//! scores_forward(&shape, 1.0, &qkv, &mut s, &mut p, &mut o);
//! assert_eq!(p[0], 1.0); // the first position sees only itself
//! let p10 = 1.0 / (1.0 + (4.0f64 - 2.0).exp()); // softmax of (2, 4)
//! assert!((p[2] - p10).abs() < 1e-15 && (o[1] - (p10 + 2.0 * (1.0 - p10))).abs() < 1e-15);
//! ```

use crate::linalg::Compute;
use crate::tensor::{MatMut, MatRef, Scalar};
use rayon::prelude::*;

/// The sizes of one attention pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences B.
    pub batch: usize,
    /// Positions per sequence T.
    pub context: usize,
    /// Width n (= H · d_h).
    pub width: usize,
    /// Head dimension d_h.
    pub head_dim: usize,
}

impl AttentionShape {
    /// H = n / d_h.
    pub fn heads(&self) -> usize {
        self.width / self.head_dim
    }
    /// B·T, the rows of every [B·T, ·] buffer.
    pub fn rows(&self) -> usize {
        self.batch * self.context
    }
    /// B·H·T·T, the length of `logits` and `probs`.
    pub fn score_len(&self) -> usize {
        self.batch * self.heads() * self.context * self.context
    }
}

/// The attention core on the fused projections: `qkv` [B·T, 3n] → `logits`, `probs`
/// [B, H, T, T] and the heads' output `heads` [B·T, n].
pub fn scores_forward<T: Scalar>(
    shape: &AttentionShape,
    c_att: f64,
    qkv: &[T],
    logits: &mut [T],
    probs: &mut [T],
    heads: &mut [T],
) {
    let (tt, n) = (shape.context, shape.width);
    let per_seq = shape.heads() * tt * tt;
    let job = |((qkv, s), (p, o)): ((&[T], &mut [T]), (&mut [T], &mut [T]))| {
        sequence_forward(shape, T::of(c_att), qkv, s, p, o)
    };
    let (qkv, logits, probs, heads) = (
        &qkv[..shape.rows() * 3 * n],
        &mut logits[..shape.score_len()],
        &mut probs[..shape.score_len()],
        &mut heads[..shape.rows() * n],
    );
    if rayon::current_num_threads() > 1 && shape.batch > 1 {
        qkv.par_chunks(tt * 3 * n)
            .zip(logits.par_chunks_mut(per_seq))
            .zip(
                probs
                    .par_chunks_mut(per_seq)
                    .zip(heads.par_chunks_mut(tt * n)),
            )
            .for_each(job);
    } else {
        qkv.chunks(tt * 3 * n)
            .zip(logits.chunks_mut(per_seq))
            .zip(probs.chunks_mut(per_seq).zip(heads.chunks_mut(tt * n)))
            .for_each(job);
    }
}

/// One sequence: `qkv` [T, 3n], `s`, `p` [H, T, T], `o` [T, n].
fn sequence_forward<T: Scalar>(
    shape: &AttentionShape,
    c: T,
    qkv: &[T],
    s: &mut [T],
    p: &mut [T],
    o: &mut [T],
) {
    let (tt, n, dh) = (shape.context, shape.width, shape.head_dim);
    let row = |i: usize, part: usize, h: usize| {
        let at = i * 3 * n + part * n + h * dh;
        &qkv[at..at + dh]
    };
    o.iter_mut().for_each(|x| *x = T::zero());
    for h in 0..shape.heads() {
        for i in 0..tt {
            let base = (h * tt + i) * tt;
            let (si, pi) = (&mut s[base..base + tt], &mut p[base..base + tt]);
            let q = row(i, 0, h);
            let mut max = T::neg_infinity();
            for j in 0..=i {
                let k = row(j, 1, h);
                let v = c * q.iter().zip(k).map(|(&a, &b)| a * b).sum::<T>();
                si[j] = v;
                if v > max {
                    max = v;
                }
            }
            let mut z = T::zero();
            for j in 0..=i {
                let e = (si[j] - max).exp();
                pi[j] = e;
                z += e;
            }
            let oi = &mut o[i * n + h * dh..i * n + (h + 1) * dh];
            for j in 0..=i {
                pi[j] = pi[j] / z;
                let v = row(j, 2, h);
                oi.iter_mut().zip(v).for_each(|(o, &v)| *o += pi[j] * v);
            }
            for j in i + 1..tt {
                si[j] = T::zero();
                pi[j] = T::zero();
            }
        }
    }
}

/// Backward of [`scores_forward`]: `dqkv` [B·T, 3n] from `dheads` = ∂L/∂o [B·T, n].
pub fn scores_backward<T: Scalar>(
    shape: &AttentionShape,
    c_att: f64,
    qkv: &[T],
    probs: &[T],
    dheads: &[T],
    dqkv: &mut [T],
) {
    let (tt, n) = (shape.context, shape.width);
    let per_seq = shape.heads() * tt * tt;
    let job = |((qkv, p), (dout, dqkv)): ((&[T], &[T]), (&[T], &mut [T]))| {
        sequence_backward(shape, T::of(c_att), qkv, p, dout, dqkv)
    };
    let (qkv, probs, dheads, dqkv) = (
        &qkv[..shape.rows() * 3 * n],
        &probs[..shape.score_len()],
        &dheads[..shape.rows() * n],
        &mut dqkv[..shape.rows() * 3 * n],
    );
    if rayon::current_num_threads() > 1 && shape.batch > 1 {
        qkv.par_chunks(tt * 3 * n)
            .zip(probs.par_chunks(per_seq))
            .zip(
                dheads
                    .par_chunks(tt * n)
                    .zip(dqkv.par_chunks_mut(tt * 3 * n)),
            )
            .for_each(job);
    } else {
        qkv.chunks(tt * 3 * n)
            .zip(probs.chunks(per_seq))
            .zip(dheads.chunks(tt * n).zip(dqkv.chunks_mut(tt * 3 * n)))
            .for_each(job);
    }
}

fn sequence_backward<T: Scalar>(
    shape: &AttentionShape,
    c: T,
    qkv: &[T],
    p: &[T],
    dout: &[T],
    dqkv: &mut [T],
) {
    let (tt, n, dh) = (shape.context, shape.width, shape.head_dim);
    let at = |i: usize, part: usize, h: usize| i * 3 * n + part * n + h * dh;
    // One head's ∂q, ∂k, ∂v are accumulated in contiguous [T, d_h] blocks and written
    // out once: the inner loops then run over plain slices.
    let mut ds = vec![T::zero(); tt];
    let mut dq = vec![T::zero(); dh];
    let (mut dk, mut dv) = (vec![T::zero(); tt * dh], vec![T::zero(); tt * dh]);
    for h in 0..shape.heads() {
        dk.iter_mut()
            .chain(dv.iter_mut())
            .for_each(|x| *x = T::zero());
        for i in 0..tt {
            let pi = &p[(h * tt + i) * tt..(h * tt + i) * tt + i + 1];
            let doi = &dout[i * n + h * dh..i * n + (h + 1) * dh];
            let mut dot = T::zero();
            for ((j, &pij), dsj) in pi.iter().enumerate().zip(ds.iter_mut()) {
                let v = &qkv[at(j, 2, h)..at(j, 2, h) + dh];
                let dp = doi.iter().zip(v).map(|(&a, &b)| a * b).sum::<T>();
                *dsj = dp;
                dot += pij * dp;
                // ∂v_j += p_ij ∂o_i
                dv[j * dh..(j + 1) * dh]
                    .iter_mut()
                    .zip(doi)
                    .for_each(|(d, &g)| *d += pij * g);
            }
            dq.iter_mut().for_each(|x| *x = T::zero());
            let qi = &qkv[at(i, 0, h)..at(i, 0, h) + dh];
            for (j, (&pij, &dsj)) in pi.iter().zip(&ds).enumerate() {
                let g = c * pij * (dsj - dot);
                let kj = &qkv[at(j, 1, h)..at(j, 1, h) + dh];
                dq.iter_mut().zip(kj).for_each(|(d, &k)| *d += g * k);
                dk[j * dh..(j + 1) * dh]
                    .iter_mut()
                    .zip(qi)
                    .for_each(|(d, &q)| *d += g * q);
            }
            dqkv[at(i, 0, h)..at(i, 0, h) + dh].copy_from_slice(&dq);
        }
        for j in 0..tt {
            dqkv[at(j, 1, h)..at(j, 1, h) + dh].copy_from_slice(&dk[j * dh..(j + 1) * dh]);
            dqkv[at(j, 2, h)..at(j, 2, h) + dh].copy_from_slice(&dv[j * dh..(j + 1) * dh]);
        }
    }
}

/// The buffers of one attention branch (every one [B·T, ·] but the scores).
pub struct AttentionBuffers<'a, T> {
    /// [B·T, 3n].
    pub qkv: &'a mut [T],
    /// [B, H, T, T].
    pub logits: &'a mut [T],
    /// [B, H, T, T].
    pub probs: &'a mut [T],
    /// o, [B·T, n].
    pub heads: &'a mut [T],
}

/// The whole branch: `y = g_O · attention(g_A · u · W_Aᵀ) · W_Oᵀ`, with `u` [B·T, n],
/// `w_attn` [3n, n], `w_proj` [n, n], `y` [B·T, n]; fills the buffers.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward<T: Scalar>(
    cx: &Compute,
    shape: &AttentionShape,
    c_att: f64,
    u: &[T],
    w_attn: &[T],
    g_attn: T,
    w_proj: &[T],
    g_proj: T,
    buf: AttentionBuffers<'_, T>,
    y: &mut [T],
) {
    let (rows, n) = (shape.rows(), shape.width);
    linear(cx, buf.qkv, u, w_attn, g_attn, rows, n, 3 * n);
    scores_forward(shape, c_att, buf.qkv, buf.logits, buf.probs, buf.heads);
    linear(cx, y, buf.heads, w_proj, g_proj, rows, n, n);
}

/// Backward of [`attention_forward`] from `dy` = ∂L/∂y: writes the gradients of
/// `w_attn` and `w_proj` and ∂L/∂u into `du`. `dheads` [B·T, n] and `dqkv`
/// [B·T, 3n] are scratch (left holding ∂L/∂o and ∂L/∂qkv).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<T: Scalar>(
    cx: &Compute,
    shape: &AttentionShape,
    c_att: f64,
    u: &[T],
    w_attn: &[T],
    g_attn: T,
    w_proj: &[T],
    g_proj: T,
    qkv: &[T],
    probs: &[T],
    heads: &[T],
    dy: &[T],
    dw_attn: &mut [T],
    dw_proj: &mut [T],
    dheads: &mut [T],
    dqkv: &mut [T],
    du: &mut [T],
) {
    let (rows, n) = (shape.rows(), shape.width);
    linear_backward(
        cx,
        dy,
        heads,
        w_proj,
        g_proj,
        rows,
        n,
        n,
        dw_proj,
        Some(dheads),
    );
    scores_backward(shape, c_att, qkv, probs, dheads, dqkv);
    linear_backward(
        cx,
        dqkv,
        u,
        w_attn,
        g_attn,
        rows,
        n,
        3 * n,
        dw_attn,
        Some(du),
    );
}

/// `z = g · inp · Wᵀ` (no bias): `inp` [rows, fan_in], `w` [fan_out, fan_in].
#[allow(clippy::too_many_arguments)]
pub fn linear<T: Scalar>(
    cx: &Compute,
    z: &mut [T],
    inp: &[T],
    w: &[T],
    g: T,
    rows: usize,
    fan_in: usize,
    fan_out: usize,
) {
    cx.matmul(
        MatMut::new(&mut z[..rows * fan_out], rows, fan_out),
        MatRef::new(inp, rows, fan_in),
        MatRef::new(w, fan_out, fan_in).t(),
        g,
        T::zero(),
    );
}

/// Backward of [`linear`]: `dw = g · dzᵀ · inp` and, when asked, `dinp = g · dz · W`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Scalar>(
    cx: &Compute,
    dz: &[T],
    inp: &[T],
    w: &[T],
    g: T,
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    dw: &mut [T],
    dinp: Option<&mut [T]>,
) {
    cx.matmul(
        MatMut::new(dw, fan_out, fan_in),
        MatRef::new(dz, rows, fan_out).t(),
        MatRef::new(inp, rows, fan_in),
        g,
        T::zero(),
    );
    if let Some(dinp) = dinp {
        cx.matmul(
            MatMut::new(&mut dinp[..rows * fan_in], rows, fan_in),
            MatRef::new(dz, rows, fan_out),
            MatRef::new(w, fan_out, fan_in),
            g,
            T::zero(),
        );
    }
}
