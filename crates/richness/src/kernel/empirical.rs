//! The empirical NTK of a finite network, by layerwise Gram factorisation.
//!
//! For output unit u of a dense MLP, the gradient of f_u(x) with respect to the raw
//! weights of layer ℓ is an outer product, ∂f_u/∂W_ℓ = g_ℓ δ_ℓᵘ(x) a_{ℓ−1}(x)ᵀ, with
//! δ_ℓᵘ = ∂f_u/∂z_ℓ (the backward signal with ∂L/∂f = e_u) and a_{ℓ−1} the layer's
//! input; the bias gradient is g_bℓ δ_ℓᵘ. So the kernel
//!
//! ```text
//! Kᵤ(x, x') = Σ_ℓ η_ℓ ⟨∂f_u(x)/∂W_ℓ, ∂f_u(x')/∂W_ℓ⟩ + η_bℓ ⟨∂f_u(x)/∂b_ℓ, ∂f_u(x')/∂b_ℓ⟩
//!           = Σ_ℓ ⟨δ_ℓᵘ(x), δ_ℓᵘ(x')⟩ · (λ_ℓ ⟨a_{ℓ−1}(x), a_{ℓ−1}(x')⟩ + λ_bℓ),
//!   λ_ℓ = g_ℓ² η_ℓ,  λ_bℓ = g_bℓ² η_bℓ,
//! ```
//!
//! is, for a batch, a sum over layers of elementwise products of B₁×B₂ Gram
//! matrices: Kᵤ = Σ_ℓ (Δ_ℓ Δ'_ℓᵀ) ⊙ (λ_ℓ A_{ℓ−1} A'_{ℓ−1}ᵀ + λ_bℓ). η are the
//! parameterization's per-layer rate factors (the base rate η₀ is excluded), so
//! Kᵤ is the kernel that governs SGD: one step changes f_u on a batch by
//! −η₀ Σ_x' Kᵤ(·, x') ∂L/∂f_u(x') (plus cross-output terms for vector outputs).
//! Since the gradient with respect to W̃ = gW is ∂f/∂W / g, the same kernel is
//! Σ_ℓ λ_ℓ ⟨∂f/∂W̃_ℓ, ∂f/∂W̃'_ℓ⟩ (theory.md §5): it depends only on effective
//! weights and rates, hence not on the gauge.
//!
//! Cost: one forward pass and one backward-signal pass per output unit, then
//! O(L·B₁B₂·n) for the Gram products (B₁B₂·P for explicit Jacobians). Both input sets
//! are processed in blocks of `block` rows; per layer only the B×n activations and
//! signals and one block×block Gram pair are held, never a B×P Jacobian, a
//! per-example weight gradient, or a B²·n array. Block pairs run in parallel on the
//! rayon pool. Matrices are multiplied in the model's precision `T`; the kernel is
//! accumulated and returned in f64.
//!
//! **Convolutional models** (Myrtle-5): a conv weight is shared by all positions, so
//! its term is a double sum over positions, Σ_{p,p'} ⟨δ_p(x), δ_{p'}(x')⟩·⟨col_p(x),
//! col_{p'}(x')⟩, which does not split into two B×B Grams. But the per-example
//! gradient of a conv layer is only C_out × k²C_in (no factor of the number of
//! positions), so for models with conv layers the kernel is the Gram matrix of the
//! rate-scaled per-example gradients, J₁J₂ᵀ, computed a bounded block of rows at a
//! time ([`GRADIENT_BLOCK_VALUES`] values per block), never the whole B×P Jacobian.
//! The second set's blocks are kept while they fit in [`GRADIENT_CACHE_VALUES`]
//! (for x2 = x1 they are the first set's), so each gradient is computed once per
//! unit; only those beyond it are recomputed for every block of the first set. The
//! examples of a block run in parallel, each its own batch-1 backward pass, and the
//! Gram products in fixed tiles, so the kernel is bitwise the same for any block
//! size and thread count.
//!
//! Which kernel for vector outputs ([`Outputs`]): one output unit, each unit (the
//! diagonal blocks K_uu of the full kB×kB kernel), or their mean (1/k)Σ_u K_uu
//! (neural-tangents' "trace over the output axis", normalised so that it equals the
//! per-output kernel at infinite width, where the blocks are identical and the
//! off-diagonal ones vanish).
//!
//! ```
//! use richness::kernel::empirical::{empirical_ntk, NtkOptions};
//! use richness::linalg::Compute;
//! use richness::nn::{Activation, Arch, Model};
//! use richness::param::{OptimizerKind, Preset, ScaleChoice};
//! use richness::tensor::Mat;
//! let arch = Arch::mlp(vec![3, 32, 32, 1], Activation::Relu);
//! let model = Model::<f64>::init(&arch, &ScaleChoice::preset(Preset::Ntp), OptimizerKind::Sgd, 0).unwrap();
//! let x = Mat::from_fn(5, 3, |i, j| (i as f64 - j as f64).sin());
//! let k = &empirical_ntk(&model, &Compute::new(1), &x, None, &NtkOptions::default()).unwrap()[0];
//! assert_eq!(k.shape(), (5, 5));
//! assert!((k[(1, 3)] - k[(3, 1)]).abs() < 1e-12 && k[(2, 2)] > 0.0);
//! ```

use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::nn::WeightKind;
use crate::nn::{Grads, Model, Trace};
use crate::tensor::{Mat, MatMut, MatRef, Scalar};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which kernel(s) of a vector-output network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Outputs {
    /// (1/k) Σ_u K_uu: one kernel; for a scalar output, *the* kernel.
    #[default]
    Mean,
    /// K_uu of output unit u (0-based).
    Index(usize),
    /// K_uu for every unit u = 0..k−1 (k kernels).
    Each,
    /// Σ_u K_uu: k × the mean (neural-tangents' convention for a traced output axis).
    Sum,
}

impl std::str::FromStr for Outputs {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mean" | "trace" => Ok(Outputs::Mean),
            "each" => Ok(Outputs::Each),
            "sum" => Ok(Outputs::Sum),
            _ => s.parse::<usize>().map(Outputs::Index).map_err(|_| {
                format!(
                    "unknown output selection `{s}` (expected mean, sum, each or an output index)"
                )
            }),
        }
    }
}

/// Options of [`empirical_ntk`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NtkOptions {
    pub outputs: Outputs,
    /// Rows per block of each input set (default 256).
    pub block: usize,
}

impl Default for NtkOptions {
    fn default() -> Self {
        NtkOptions {
            outputs: Outputs::Mean,
            block: 256,
        }
    }
}

impl NtkOptions {
    pub fn outputs(outputs: Outputs) -> Self {
        NtkOptions {
            outputs,
            ..Default::default()
        }
    }
}

/// Per-layer (λ_ℓ, λ_bℓ) = β²(g²η, g_b²η_b) of a model: the rate weights of the
/// kernel (β the residual branch scale of a block, 1 elsewhere).
pub fn layer_rates<T: Scalar>(model: &Model<T>) -> Vec<(f64, f64)> {
    model
        .param
        .layers
        .iter()
        .zip(&model.biases)
        .enumerate()
        .map(|(l, (lp, b))| {
            let beta2 = model.arch.branch_scale(l).powi(2);
            let lb = match (b, lp.bias) {
                (Some(_), Some(s)) => s.multiplier * s.multiplier * s.lr,
                _ => 0.0,
            };
            (beta2 * lp.multiplier * lp.multiplier * lp.lr, beta2 * lb)
        })
        .collect()
}

/// The per-example factors of one block of inputs.
struct Factors<T> {
    rows: usize,
    /// Input of every layer: x, a₁, …, a_{L−1}, [rows, fan_in].
    a: Vec<Mat<T>>,
    /// δ_ℓᵘ = ∂f_u/∂z_ℓ for each requested unit (outer) and hidden layer ℓ < L
    /// (inner), [rows, n_ℓ]. The read-out's signal is e_u and is not stored.
    d: Vec<Vec<Mat<T>>>,
}

/// Forward pass, then one backward-signal pass per unit in `units`, block by block.
/// The backward pass computes only signals (no weight gradients: no n×n buffers).
fn factors<T: Scalar>(
    model: &Model<T>,
    cx: &Compute,
    x: &Mat<T>,
    units: &[usize],
    block: usize,
) -> Vec<Factors<T>> {
    let depth = model.depth();
    let k = model.output_dim();
    let mut trace = Trace::new(model, block.min(x.rows()).max(1));
    let mut out = Vec::new();
    let mut start = 0;
    while start < x.rows() {
        let b = block.min(x.rows() - start);
        let d0 = x.cols();
        model.forward(
            cx,
            &x.as_slice()[start * d0..(start + b) * d0],
            b,
            &mut trace,
        );
        let a: Vec<Mat<T>> = (0..depth).map(|l| trace.input_of(l).clone()).collect();
        let mut d = Vec::with_capacity(units.len());
        for &u in units {
            let og = trace.output_grad_mut();
            og.as_mut_slice()
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = if i % k == u { T::one() } else { T::zero() });
            // The model's own backward signals (activation, normalization, skips),
            // without weight gradients.
            for l in (0..depth).rev() {
                model.backward_signal(cx, &mut trace, l);
            }
            d.push((0..depth - 1).map(|l| trace.dz[l].clone()).collect());
        }
        out.push(Factors { rows: b, a, d });
        start += b;
    }
    out
}

/// One kernel to assemble: which stored units it sums, and its weight.
struct Head {
    slots: Vec<usize>,
    weight: f64,
}

/// Rows below which a symmetric Gram product is computed whole (see [`gram`]).
const SYM_LEAF: usize = 64;

/// `out ← x·yᵀ + beta·out` for row blocks x, y [b, k] of the same set. With `same`
/// (x and y are the same block), only the upper triangle is multiplied: the rows
/// are halved recursively, each half's Gram again symmetric and the off-diagonal
/// rectangle one product, mirrored; blocks of at most [`SYM_LEAF`] rows are one
/// product. That is b²k/2 + O(b·SYM_LEAF·k) multiply-adds instead of b²k.
fn gram<T: Scalar>(
    cx: &Compute,
    out: &mut Mat<T>,
    x: &Mat<T>,
    y: &Mat<T>,
    same: bool,
    beta: T,
    scratch: &mut Vec<T>,
) {
    if !same || x.rows() <= SYM_LEAF {
        cx.matmul(out.view_mut(), x.view(), y.view().t(), T::one(), beta);
        return;
    }
    let (b, k) = (x.rows(), x.cols());
    let rows = |lo: usize, hi: usize| MatRef::new(&x.as_slice()[lo * k..hi * k], hi - lo, k);
    // Stack of row ranges whose symmetric Gram is still to compute.
    let mut todo = vec![(0, b)];
    while let Some((lo, hi)) = todo.pop() {
        let (r0, c0, rn, cn, mirror) = if hi - lo <= SYM_LEAF {
            (lo, lo, hi - lo, hi - lo, false)
        } else {
            let mid = lo + (hi - lo) / 2;
            todo.push((lo, mid));
            todo.push((mid, hi));
            (lo, mid, mid - lo, hi - mid, true)
        };
        scratch.clear();
        scratch.resize(rn * cn, T::zero());
        cx.matmul(
            MatMut::new(scratch, rn, cn),
            rows(r0, r0 + rn),
            rows(c0, c0 + cn).t(),
            T::one(),
            T::zero(),
        );
        let o = out.as_mut_slice();
        // As in `matmul`, beta = 0 does not read the destination.
        let acc = |o: &mut T, v: T| *o = if beta == T::zero() { v } else { v + beta * *o };
        for r in 0..rn {
            for c in 0..cn {
                let v = scratch[r * cn + c];
                let (i, j) = (r0 + r, c0 + c);
                acc(&mut o[i * b + j], v);
                if mirror {
                    acc(&mut o[j * b + i], v);
                }
            }
        }
    }
}

/// K-blocks of every head for one pair of input blocks (`same`: the pair is a
/// diagonal block of a symmetric kernel, fi = fj, and only its upper triangle of
/// Gram entries is multiplied).
fn pair_block<T: Scalar>(
    cx: &Compute,
    fi: &Factors<T>,
    fj: &Factors<T>,
    same: bool,
    rates: &[(f64, f64)],
    heads: &[Head],
) -> Vec<Vec<f64>> {
    let (bi, bj) = (fi.rows, fj.rows);
    let depth = rates.len();
    let mut out = vec![vec![0.0f64; bi * bj]; heads.len()];
    let mut ga = Mat::<T>::zeros(bi, bj);
    let mut gd = Mat::<T>::zeros(bi, bj);
    let mut scratch = Vec::new();
    for (l, &(lw, lb)) in rates.iter().enumerate() {
        if lw == 0.0 && lb == 0.0 {
            continue; // a frozen layer contributes nothing
        }
        if lw != 0.0 {
            gram(
                cx,
                &mut ga,
                &fi.a[l],
                &fj.a[l],
                same,
                T::zero(),
                &mut scratch,
            );
        }
        let ga_s = ga.as_slice();
        let layer_term = |i: usize| {
            if lw != 0.0 {
                lw * ga_s[i].f64() + lb
            } else {
                lb
            }
        };
        for (h, head) in heads.iter().enumerate() {
            let o = &mut out[h];
            if l + 1 == depth {
                // Read-out: δ = e_u, so ⟨δ(x), δ(x')⟩ = 1 for each unit.
                let w = head.weight * head.slots.len() as f64;
                o.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v += w * layer_term(i));
            } else {
                for (s, &slot) in head.slots.iter().enumerate() {
                    let beta = if s == 0 { T::zero() } else { T::one() };
                    gram(
                        cx,
                        &mut gd,
                        &fi.d[slot][l],
                        &fj.d[slot][l],
                        same,
                        beta,
                        &mut scratch,
                    );
                }
                let gd_s = gd.as_slice();
                o.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v += head.weight * gd_s[i].f64() * layer_term(i));
            }
        }
    }
    out
}

/// Empirical NTK(s) between the rows of `x1` [N₁, d] and `x2` [N₂, d] (`None`:
/// x2 = x1, and each symmetric block pair is computed once). Returns one [N₁, N₂]
/// kernel, or k of them for [`Outputs::Each`].
pub fn empirical_ntk<T: Scalar>(
    model: &Model<T>,
    cx: &Compute,
    x1: &Mat<T>,
    x2: Option<&Mat<T>>,
    opts: &NtkOptions,
) -> Result<Vec<Mat<f64>>> {
    let d = model.input_dim();
    let k = model.output_dim();
    for (name, x) in [("x", Some(x1)), ("x2", x2)] {
        if let Some(x) = x {
            if x.cols() != d {
                return Err(Error::Shape(format!(
                    "{name} has {} columns, the model takes {d} inputs",
                    x.cols()
                )));
            }
        }
    }
    if opts.block == 0 {
        return Err(Error::config("block size must be positive"));
    }
    let (units, heads): (Vec<usize>, Vec<Head>) = match opts.outputs {
        Outputs::Mean => (
            (0..k).collect(),
            vec![Head {
                slots: (0..k).collect(),
                weight: 1.0 / k as f64,
            }],
        ),
        Outputs::Sum => (
            (0..k).collect(),
            vec![Head {
                slots: (0..k).collect(),
                weight: 1.0,
            }],
        ),
        Outputs::Index(u) if u >= k => {
            return Err(Error::config(format!(
                "output index {u} out of range: the model has {k} outputs"
            )))
        }
        Outputs::Index(u) => (
            vec![u],
            vec![Head {
                slots: vec![0],
                weight: 1.0,
            }],
        ),
        Outputs::Each => (
            (0..k).collect(),
            (0..k)
                .map(|u| Head {
                    slots: vec![u],
                    weight: 1.0,
                })
                .collect(),
        ),
    };
    {
        // The kernels (one per head, N₁ × N₂, f64) and one trace per block and
        // thread of each input set, before anything is allocated (crate::budget).
        let (n1, n2) = (x1.rows(), x2.map(|x| x.rows()).unwrap_or(x1.rows()));
        let elem = std::mem::size_of::<T>();
        let traces = model
            .arch
            .trace_values(opts.block.min(n1.max(n2)))
            .saturating_mul(2 * cx.threads.max(1) as u128)
            .saturating_mul(elem as u128);
        let need = crate::budget::product(&[heads.len(), n1, n2], 8)
            .saturating_add(traces)
            .saturating_add(
                model
                    .arch
                    .param_values()
                    .min(GRADIENT_CACHE_VALUES as u128)
                    .saturating_mul(elem as u128),
            );
        crate::budget::ensure(
            || {
                format!(
                    "an empirical NTK of {n1} x {n2} inputs ({} kernel(s), block {})",
                    heads.len(),
                    opts.block
                )
            },
            need,
        )?;
    }
    if !(0..model.depth()).all(|l| model.kind(l).outer_product_gradient()) {
        return Ok(ntk_by_gradients(
            model,
            cx,
            x1,
            x2,
            &units,
            &heads,
            opts.block,
            GRADIENT_CACHE_VALUES,
        ));
    }
    let rates = layer_rates(model);
    let f1 = factors(model, cx, x1, &units, opts.block);
    let f2 = x2.map(|x2| factors(model, cx, x2, &units, opts.block));
    let sym = f2.is_none();
    let f2r = f2.as_ref().unwrap_or(&f1);
    let (n1, n2) = (x1.rows(), x2.map(|x| x.rows()).unwrap_or(x1.rows()));
    let pairs: Vec<(usize, usize)> = (0..f1.len())
        .flat_map(|i| (if sym { i } else { 0 }..f2r.len()).map(move |j| (i, j)))
        .collect();
    let single = Compute::with_backend(1, cx.backend);
    let compute = |&(i, j): &(usize, usize)| {
        pair_block(&single, &f1[i], &f2r[j], sym && i == j, &rates, &heads)
    };
    let blocks: Vec<Vec<Vec<f64>>> = if cx.threads > 1 {
        pairs.par_iter().map(compute).collect()
    } else {
        pairs.iter().map(compute).collect()
    };
    let offsets = |f: &[Factors<T>]| {
        let mut o = vec![0];
        for b in f {
            o.push(o.last().unwrap() + b.rows);
        }
        o
    };
    let (o1, o2) = (offsets(&f1), offsets(f2r));
    let mut ks: Vec<Mat<f64>> = heads.iter().map(|_| Mat::zeros(n1, n2)).collect();
    for (&(i, j), blk) in pairs.iter().zip(&blocks) {
        let (bi, bj) = (f1[i].rows, f2r[j].rows);
        for (km, b) in ks.iter_mut().zip(blk) {
            for r in 0..bi {
                for c in 0..bj {
                    let v = b[r * bj + c];
                    km[(o1[i] + r, o2[j] + c)] = v;
                    if sym && i != j {
                        km[(o2[j] + c, o1[i] + r)] = v;
                    }
                }
            }
            if sym && i == j {
                // Symmetrise the diagonal block (the Gram products are symmetric only up to rounding).
                for r in 0..bi {
                    for c in 0..r {
                        let v = 0.5 * (km[(o1[i] + r, o1[i] + c)] + km[(o1[i] + c, o1[i] + r)]);
                        km[(o1[i] + r, o1[i] + c)] = v;
                        km[(o1[i] + c, o1[i] + r)] = v;
                    }
                }
            }
        }
    }
    Ok(ks)
}

/// Most values (rows × parameters) one block of per-example gradients may hold.
pub const GRADIENT_BLOCK_VALUES: usize = 1 << 24;

/// Most gradient values the conv kernel holds at once, over all blocks of a unit.
/// Within it, the second set's blocks are kept after their first use, so that each
/// is computed once; beyond it, the blocks that do not fit are recomputed for every
/// block of the first set (time traded for memory). Four blocks: twice the two
/// blocks (one per input set) that the streaming scheme needs anyway.
pub const GRADIENT_CACHE_VALUES: usize = 4 * GRADIENT_BLOCK_VALUES;

/// Rate-scaled per-example gradients of output unit `unit`: row i is
/// (√η_p · ∂f_unit(x_i)/∂θ_p)_p over all raw parameters in [`Model::params`] order,
/// from one forward and one full backward pass per row ([`Model::backward`], the
/// training code's own gradients). `x` holds `rows` examples; returns [rows, P].
pub fn gradient_rows<T: Scalar>(model: &Model<T>, x: &[T], rows: usize, unit: usize) -> Mat<T> {
    gradient_rows_with(model, &Compute::new(1), x, rows, unit)
}

/// [`gradient_rows`], with the rows spread over the rayon pool when
/// `cx.threads > 1`. Every row is still its own single-threaded batch-1 pass, so
/// the result is bitwise the same for any `cx`.
pub fn gradient_rows_with<T: Scalar>(
    model: &Model<T>,
    cx: &Compute,
    x: &[T],
    rows: usize,
    unit: usize,
) -> Mat<T> {
    let single = Compute::new(1);
    let d = model.input_dim();
    let p = model.num_params();
    let scales: Vec<T> = model
        .param
        .layers
        .iter()
        .zip(&model.biases)
        .flat_map(|(lp, b)| {
            let mut v = vec![T::of(lp.lr.sqrt())];
            if b.is_some() {
                v.push(T::of(lp.bias.map(|s| s.lr).unwrap_or(0.0).sqrt()));
            }
            v
        })
        .collect();
    let fill = |(trace, grads): &mut (Trace<T>, Grads<T>), i: usize, row: &mut [T]| {
        model.forward(&single, &x[i * d..(i + 1) * d], 1, trace);
        trace
            .output_grad_mut()
            .as_mut_slice()
            .iter_mut()
            .enumerate()
            .for_each(|(c, v)| *v = if c == unit { T::one() } else { T::zero() });
        model.backward(&single, trace, grads, false);
        let mut off = 0;
        for (t, &s) in grads.tensors().into_iter().zip(&scales) {
            for (dst, &g) in row[off..off + t.len()].iter_mut().zip(t) {
                *dst = s * g;
            }
            off += t.len();
        }
    };
    let state = || (Trace::new(model, 1), Grads::new(model));
    let mut j = Mat::<T>::zeros(rows, p);
    // `max(1)`: chunks of zero length panic; with no parameters there is nothing to fill.
    let rows_of_j = j.as_mut_slice();
    if cx.threads > 1 && rows > 1 {
        rows_of_j
            .par_chunks_mut(p.max(1))
            .enumerate()
            .for_each_init(state, |st, (i, row)| fill(st, i, row));
    } else {
        let mut st = state();
        for (i, row) in rows_of_j.chunks_mut(p.max(1)).enumerate() {
            fill(&mut st, i, row);
        }
    }
    j
}

/// Most rows of the fixed tiles in which the conv kernel's Gram products are
/// computed (fewer when a block of [`GRADIENT_BLOCK_VALUES`] holds fewer rows, so
/// that tiles never straddle blocks; the tile then depends on the model only).
///
/// A BLAS product's summation order depends on the matrix shapes and on where an
/// entry sits in them, so Gram products of whatever blocks the memory allows would
/// round differently for different block sizes. Every product is instead one
/// `tile × tile` product aligned to multiples of `tile` in the global
/// row numbering (rows past a block or the set are zero), on one thread: each entry
/// is then always computed by the same arithmetic, whatever the blocks and threads.
const GRAM_TILE: usize = 64;

/// The tiles that block `j` (starting at global row `s0`) touches, each with a
/// zero-padded copy of its rows if the block holds only part of it (the product
/// must see exactly `tile` rows); whole tiles are read in place.
fn tile_operands<T: Scalar>(j: &Mat<T>, s0: usize, tile: usize) -> Vec<(usize, Option<Mat<T>>)> {
    let p = j.cols();
    (s0 / tile..(s0 + j.rows()).div_ceil(tile))
        .map(|t| {
            let (t0, t1) = (t * tile, (t + 1) * tile);
            let (lo, hi) = (t0.max(s0), t1.min(s0 + j.rows()));
            let copy = (lo != t0 || hi != t1).then(|| {
                let mut m = Mat::<T>::zeros(tile, p);
                m.as_mut_slice()[(lo - t0) * p..(hi - t0) * p]
                    .copy_from_slice(&j.as_slice()[(lo - s0) * p..(hi - s0) * p]);
                m
            });
            (t, copy)
        })
        .collect()
}

/// Tile `t` of block `j` as a product operand (see [`tile_operands`]).
fn tile_view<'a, T: Scalar>(
    j: &'a Mat<T>,
    s0: usize,
    (t, copy): &'a (usize, Option<Mat<T>>),
    tile: usize,
) -> MatRef<'a, T> {
    let p = j.cols();
    match copy {
        Some(m) => m.view(),
        None => MatRef::new(
            &j.as_slice()[(t * tile - s0) * p..((t + 1) * tile - s0) * p],
            tile,
            p,
        ),
    }
}

/// Gram entries `⟨j1_r, j2_c⟩` of a block pair (blocks starting at global rows `s1`,
/// `s2`), tile by tile as [`GRAM_TILE`] prescribes; `upper` (symmetric kernel): only
/// global c ≥ r. Calls `put(r, c, value)` with global indices.
fn gram_tiles<T: Scalar>(
    cx: &Compute,
    (j1, s1): (&Mat<T>, usize),
    (j2, s2): (&Mat<T>, usize),
    upper: bool,
    tile: usize,
    mut put: impl FnMut(usize, usize, T),
) {
    let (o1, o2) = (tile_operands(j1, s1, tile), tile_operands(j2, s2, tile));
    let pairs: Vec<(usize, usize)> = (0..o1.len())
        .flat_map(|a| (0..o2.len()).map(move |b| (a, b)))
        .filter(|&(a, b)| !upper || o2[b].0 >= o1[a].0)
        .collect();
    let single = Compute::with_backend(1, cx.backend);
    let product = |&(a, b): &(usize, usize)| {
        let mut g = Mat::<T>::zeros(tile, tile);
        let (t1, t2) = (
            tile_view(j1, s1, &o1[a], tile),
            tile_view(j2, s2, &o2[b], tile),
        );
        single.matmul(g.view_mut(), t1, t2.t(), T::one(), T::zero());
        g
    };
    let products: Vec<Mat<T>> = if cx.threads > 1 && pairs.len() > 1 {
        pairs.par_iter().map(product).collect()
    } else {
        pairs.iter().map(product).collect()
    };
    for (&(a, b), g) in pairs.iter().zip(&products) {
        let (a, b) = (o1[a].0, o2[b].0);
        let rows = (a * tile).max(s1)..((a + 1) * tile).min(s1 + j1.rows());
        for r in rows {
            let cols = (b * tile).max(s2)..((b + 1) * tile).min(s2 + j2.rows());
            for c in cols {
                if !upper || c >= r {
                    put(r, c, g[(r - a * tile, c - b * tile)]);
                }
            }
        }
    }
}

/// The kernel of a model with conv layers: Gram matrices of per-example gradient
/// blocks (see the module docs), accumulated in f64. `cache_values` is
/// [`GRADIENT_CACHE_VALUES`] but for the tests of the recompute path.
#[allow(clippy::too_many_arguments)]
fn ntk_by_gradients<T: Scalar>(
    model: &Model<T>,
    cx: &Compute,
    x1: &Mat<T>,
    x2: Option<&Mat<T>>,
    units: &[usize],
    heads: &[Head],
    block: usize,
    cache_values: usize,
) -> Vec<Mat<f64>> {
    let sym = x2.is_none();
    let x2r = x2.unwrap_or(x1);
    let (n1, n2) = (x1.rows(), x2r.rows());
    let p = model.num_params().max(1);
    let tile = (GRADIENT_BLOCK_VALUES / p).clamp(1, GRAM_TILE);
    let block = block.min(GRADIENT_BLOCK_VALUES / p).max(1);
    // Whole tiles per block, else the tiles that straddle two blocks are multiplied
    // once per block they touch (still the case for blocks asked smaller than a tile).
    let block = if block >= tile {
        block / tile * tile
    } else {
        block
    };
    let d = model.input_dim();
    let blocks = |n: usize| {
        (0..n)
            .step_by(block)
            .map(|s| (s, block.min(n - s)))
            .collect::<Vec<_>>()
    };
    let (bl1, bl2) = (blocks(n1), blocks(n2));
    // How many x2 blocks are kept. Symmetric: the x1 blocks are the x2 blocks, so if
    // all fit, all are kept and each is computed exactly once; otherwise two slots
    // stay free for the streamed x1 and x2 blocks. Cross: one slot for the current
    // x1 block (computed once anyway), one more for a streamed x2 block if not all
    // x2 blocks fit.
    let slots = (cache_values / (block * p)).max(2);
    let room = if sym { slots } else { slots - 1 };
    let kept = if bl2.len() <= room {
        bl2.len()
    } else {
        slots - 2
    };
    let grads = |x: &Mat<T>, (s, b): (usize, usize), u: usize| {
        gradient_rows_with(model, cx, &x.as_slice()[s * d..(s + b) * d], b, u)
    };
    let mut ks: Vec<Mat<f64>> = heads.iter().map(|_| Mat::zeros(n1, n2)).collect();
    for (slot, &u) in units.iter().enumerate() {
        let weights: Vec<(usize, f64)> = heads
            .iter()
            .enumerate()
            .filter(|(_, h)| h.slots.contains(&slot))
            .map(|(i, h)| (i, h.weight))
            .collect();
        let mut cache: Vec<Option<Mat<T>>> = (0..kept).map(|_| None).collect();
        for (i, &(s1, b1)) in bl1.iter().enumerate() {
            let own = if sym && i < kept {
                None
            } else {
                Some(grads(x1, (s1, b1), u))
            };
            for (j, c) in cache.iter_mut().enumerate().skip(if sym { i } else { 0 }) {
                if c.is_none() {
                    *c = Some(grads(x2r, bl2[j], u));
                }
            }
            let j1 = own.as_ref().unwrap_or_else(|| cache[i].as_ref().unwrap());
            for (j, &(s2, b2)) in bl2.iter().enumerate() {
                if sym && j < i {
                    continue;
                }
                let streamed;
                let j2: &Mat<T> = if sym && j == i {
                    j1
                } else if j < kept {
                    cache[j].as_ref().unwrap()
                } else {
                    streamed = grads(x2r, (s2, b2), u);
                    &streamed
                };
                gram_tiles(cx, (j1, s1), (j2, s2), sym, tile, |r, c, g| {
                    for &(h, w) in &weights {
                        let v = w * g.f64();
                        ks[h][(r, c)] += v;
                        if sym && r != c {
                            ks[h][(c, r)] += v;
                        }
                    }
                });
            }
        }
    }
    ks
}

/// The kernel of a scalar-output model (or the output mean of a vector one) with
/// default blocks: shorthand for [`empirical_ntk`] with [`Outputs::Mean`].
pub fn ntk<T: Scalar>(
    model: &Model<T>,
    cx: &Compute,
    x1: &Mat<T>,
    x2: Option<&Mat<T>>,
) -> Result<Mat<f64>> {
    Ok(empirical_ntk(model, cx, x1, x2, &NtkOptions::default())?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Arch, BiasInit};
    use crate::param::{OptimizerKind, Preset, ScaleChoice};

    #[test]
    fn symmetric_diagonal_blocks_equal_the_full_products() {
        // Diagonal blocks of 150 rows (halved to 75, then 37/38-row leaves) and of
        // 64 (one leaf), through the symmetric path, against the same kernel asked
        // as a cross kernel (x2 given: every product whole), for a vector output
        // (the Δ Grams accumulate over units) in mean and each modes.
        let mut arch = Arch::mlp(vec![3, 24, 20, 2], crate::nn::Activation::Tanh);
        arch.bias = true;
        arch.bias_init = BiasInit::Normal;
        let model = Model::<f64>::init(
            &arch,
            &ScaleChoice::preset(Preset::Mup),
            OptimizerKind::Sgd,
            5,
        )
        .unwrap();
        let x = Mat::from_fn(150, 3, |i, j| ((i * 3 + j) as f64 * 0.37).sin());
        for outputs in [Outputs::Mean, Outputs::Each] {
            for block in [256, 64] {
                let opts = NtkOptions { outputs, block };
                let sym = empirical_ntk(&model, &Compute::new(2), &x, None, &opts).unwrap();
                let cross = empirical_ntk(&model, &Compute::new(1), &x, Some(&x), &opts).unwrap();
                for (a, b) in sym.iter().zip(&cross) {
                    let scale = b.as_slice().iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    let err = a
                        .as_slice()
                        .iter()
                        .zip(b.as_slice())
                        .fold(0.0f64, |m, (u, v)| m.max((u - v).abs()));
                    assert!(
                        err <= 1e-13 * scale,
                        "{outputs:?} block {block}: {err:e} of {scale:e}"
                    );
                    for i in 0..150 {
                        for j in 0..i {
                            assert_eq!(a[(i, j)], a[(j, i)]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn conv_kernel_is_the_same_whichever_gradient_blocks_are_kept() {
        // Budgets from "every block streamed" through "some kept" to "all kept",
        // symmetric and cross, against one block holding every row.
        let mut arch = Arch::myrtle5([2, 4, 4], 3, 2);
        arch.bias = true;
        arch.bias_init = BiasInit::Normal;
        let model = Model::<f64>::init(
            &arch,
            &ScaleChoice::preset(Preset::Mup),
            OptimizerKind::Sgd,
            3,
        )
        .unwrap();
        let x = |seed: u64, rows: usize| {
            Mat::from_fn(rows, 32, |i, j| {
                ((seed * 97 + i as u64 * 31 + j as u64) as f64).sin()
            })
        };
        let (x1, x2) = (x(1, 8), x(2, 7));
        let p = model.num_params();
        let heads: Vec<Head> = (0..2)
            .map(|u| Head {
                slots: vec![u],
                weight: 1.0,
            })
            .collect();
        for x2 in [None, Some(&x2)] {
            let whole = ntk_by_gradients(
                &model,
                &Compute::new(1),
                &x1,
                x2,
                &[0, 1],
                &heads,
                64,
                usize::MAX,
            );
            for budget in [0, 3 * 2 * p, 4 * 2 * p, usize::MAX] {
                for threads in [1, 2] {
                    let k = ntk_by_gradients(
                        &model,
                        &Compute::new(threads),
                        &x1,
                        x2,
                        &[0, 1],
                        &heads,
                        2,
                        budget,
                    );
                    for (a, b) in k.iter().zip(&whole) {
                        assert!(
                            a.as_slice() == b.as_slice(),
                            "budget {budget}, threads {threads}, cross {}",
                            x2.is_some()
                        );
                    }
                }
            }
        }
    }
}
