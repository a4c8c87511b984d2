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
//! Its cost is one batch-1 backward pass per example, unit and block pair.
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
use crate::nn::dense::dense_backward_input;
use crate::nn::{Grads, Model, Trace};
use crate::tensor::{Mat, Scalar};
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
}

impl std::str::FromStr for Outputs {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mean" | "trace" => Ok(Outputs::Mean),
            "each" => Ok(Outputs::Each),
            _ => s.parse::<usize>().map(Outputs::Index).map_err(|_| {
                format!("unknown output selection `{s}` (expected mean, each or an output index)")
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

/// Per-layer (λ_ℓ, λ_bℓ) = (g²η, g_b²η_b) of a model: the rate weights of the kernel.
pub fn layer_rates<T: Scalar>(model: &Model<T>) -> Vec<(f64, f64)> {
    model
        .param
        .layers
        .iter()
        .zip(&model.biases)
        .map(|(lp, b)| {
            let lb = match (b, lp.bias) {
                (Some(_), Some(s)) => s.multiplier * s.multiplier * s.lr,
                _ => 0.0,
            };
            (lp.multiplier * lp.multiplier * lp.lr, lb)
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
    let gain = T::of(model.arch.gain);
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
            {
                let Trace { z, dz, da, .. } = &mut trace;
                for l in (1..depth).rev() {
                    if l + 1 < depth {
                        model.arch.activation.backward(
                            gain,
                            z[l].as_slice(),
                            da[l].as_slice(),
                            dz[l].as_mut_slice(),
                        );
                    }
                    let (fan_out, fan_in) = model.weights[l].shape();
                    let g = T::of(model.param.layers[l].multiplier);
                    dense_backward_input(
                        cx,
                        dz[l].as_slice(),
                        model.weights[l].as_slice(),
                        g,
                        b,
                        fan_in,
                        fan_out,
                        da[l - 1].as_mut_slice(),
                    );
                }
                if depth > 1 {
                    model.arch.activation.backward(
                        gain,
                        z[0].as_slice(),
                        da[0].as_slice(),
                        dz[0].as_mut_slice(),
                    );
                }
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

/// K-blocks of every head for one pair of input blocks.
fn pair_block<T: Scalar>(
    cx: &Compute,
    fi: &Factors<T>,
    fj: &Factors<T>,
    rates: &[(f64, f64)],
    heads: &[Head],
) -> Vec<Vec<f64>> {
    let (bi, bj) = (fi.rows, fj.rows);
    let depth = rates.len();
    let mut out = vec![vec![0.0f64; bi * bj]; heads.len()];
    let mut ga = Mat::<T>::zeros(bi, bj);
    let mut gd = Mat::<T>::zeros(bi, bj);
    for (l, &(lw, lb)) in rates.iter().enumerate() {
        if lw == 0.0 && lb == 0.0 {
            continue; // a frozen layer contributes nothing
        }
        if lw != 0.0 {
            cx.matmul(
                ga.view_mut(),
                fi.a[l].view(),
                fj.a[l].view().t(),
                T::one(),
                T::zero(),
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
                    cx.matmul(
                        gd.view_mut(),
                        fi.d[slot][l].view(),
                        fj.d[slot][l].view().t(),
                        T::one(),
                        beta,
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
    if !model.arch.is_mlp() {
        return Ok(ntk_by_gradients(
            model, cx, x1, x2, &units, &heads, opts.block,
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
    let compute = |&(i, j): &(usize, usize)| pair_block(&single, &f1[i], &f2r[j], &rates, &heads);
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

/// Rate-scaled per-example gradients of output unit `unit`: row i is
/// (√η_p · ∂f_unit(x_i)/∂θ_p)_p over all raw parameters in [`Model::params`] order,
/// from one forward and one full backward pass per row ([`Model::backward`], the
/// training code's own gradients). `x` holds `rows` examples; returns [rows, P].
pub fn gradient_rows<T: Scalar>(model: &Model<T>, x: &[T], rows: usize, unit: usize) -> Mat<T> {
    let cx = Compute::new(1);
    let d = model.input_dim();
    let mut trace = Trace::new(model, 1);
    let mut grads = Grads::new(model);
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
    let mut j = Mat::<T>::zeros(rows, model.num_params());
    for i in 0..rows {
        model.forward(&cx, &x[i * d..(i + 1) * d], 1, &mut trace);
        trace
            .output_grad_mut()
            .as_mut_slice()
            .iter_mut()
            .enumerate()
            .for_each(|(c, v)| *v = if c == unit { T::one() } else { T::zero() });
        model.backward(&cx, &mut trace, &mut grads, false);
        let row = j.row_mut(i);
        let mut off = 0;
        for (t, &s) in grads.tensors().into_iter().zip(&scales) {
            for (dst, &g) in row[off..off + t.len()].iter_mut().zip(t) {
                *dst = s * g;
            }
            off += t.len();
        }
    }
    j
}

/// The kernel of a model with conv layers: Gram matrices of per-example gradient
/// blocks (see the module docs), accumulated in f64.
fn ntk_by_gradients<T: Scalar>(
    model: &Model<T>,
    cx: &Compute,
    x1: &Mat<T>,
    x2: Option<&Mat<T>>,
    units: &[usize],
    heads: &[Head],
    block: usize,
) -> Vec<Mat<f64>> {
    let sym = x2.is_none();
    let x2r = x2.unwrap_or(x1);
    let (n1, n2) = (x1.rows(), x2r.rows());
    let block = block
        .min(GRADIENT_BLOCK_VALUES / model.num_params().max(1))
        .max(1);
    let d = model.input_dim();
    let rows_of = |x: &Mat<T>, start: usize| (start, block.min(x.rows() - start));
    let starts = |n: usize| (0..n).step_by(block).collect::<Vec<_>>();
    let mut ks: Vec<Mat<f64>> = heads.iter().map(|_| Mat::zeros(n1, n2)).collect();
    for (slot, &u) in units.iter().enumerate() {
        let weights: Vec<(usize, f64)> = heads
            .iter()
            .enumerate()
            .filter(|(_, h)| h.slots.contains(&slot))
            .map(|(i, h)| (i, h.weight))
            .collect();
        for s1 in starts(n1) {
            let (s1, b1) = rows_of(x1, s1);
            let j1 = gradient_rows(model, &x1.as_slice()[s1 * d..(s1 + b1) * d], b1, u);
            for s2 in starts(n2) {
                if sym && s2 < s1 {
                    continue;
                }
                let (s2, b2) = rows_of(x2r, s2);
                let j2 = if sym && s2 == s1 {
                    None
                } else {
                    Some(gradient_rows(
                        model,
                        &x2r.as_slice()[s2 * d..(s2 + b2) * d],
                        b2,
                        u,
                    ))
                };
                let mut g = Mat::<T>::zeros(b1, b2);
                cx.matmul(
                    g.view_mut(),
                    j1.view(),
                    j2.as_ref().unwrap_or(&j1).view().t(),
                    T::one(),
                    T::zero(),
                );
                for &(h, w) in &weights {
                    let km = &mut ks[h];
                    for r in 0..b1 {
                        for c in 0..b2 {
                            let v = w * g[(r, c)].f64();
                            km[(s1 + r, s2 + c)] += v;
                            if sym && s2 != s1 {
                                km[(s2 + c, s1 + r)] += v;
                            }
                        }
                    }
                }
            }
        }
    }
    if sym {
        for km in &mut ks {
            for r in 0..n1 {
                for c in 0..r {
                    let v = 0.5 * (km[(r, c)] + km[(c, r)]);
                    km[(r, c)] = v;
                    km[(c, r)] = v;
                }
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
