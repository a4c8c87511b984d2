//! Infinite-width kernels of the pre-activation residual MLP (theory.md §8.1)
//! against Monte-Carlo over wide random networks.
//!
//! The networks here are written from scratch in plain loops, independent of the
//! library's model: forward pass, LayerNorm with its exact Jacobian, and the
//! per-example gradient of every weight and bias (checked against finite
//! differences below). Only the activation functions and the random normals come
//! from the library. For each configuration we draw S networks of width n with the
//! constants of `Parameterization::resolve` and compare
//!
//! ```text
//! NNGP: mean over seeds of (1/K) Σ_k f_k(x) f_k(x')        (K read-out rows)
//! NTK:  mean over seeds of Σ_ℓ η_ℓ ⟨∂f₀(x)/∂W_ℓ, ∂f₀(x')/∂W_ℓ⟩ (+ biases)
//! ```
//!
//! with `InfiniteMlp::from_parameterization`. An entry passes when
//! |mean − K∞| ≤ Z·SE + ρ·max_i K∞(xᵢ, xᵢ), with SE the standard error from the
//! spread over seeds and ρ a relative floor for the O(1/n) finite-width bias
//! (LayerNorm's mean subtraction and projection, the NTK's own 1/n corrections).

use richness::kernel::infinite::InfiniteMlp;
use richness::nn::layernorm::LAYER_NORM_EPS;
use richness::nn::{Activation, Arch, BiasInit, Branch, Norm, ResidualSpec};
use richness::param::{OptimizerKind, Parameterization, Preset, ScaleChoice};
use richness::rng::normal_vec;
use richness::tensor::Mat;

/// ε of our own LayerNorm (PyTorch's default, as the library's).
const EPS: f64 = 1e-5;

/// Z: allowed deviation in standard errors.
const Z: f64 = 5.0;

// ---------------------------------------------------------------------------
// An independent resmlp.

/// One weight layer: raw weights [rows × cols] row-major, multiplier, rate; an
/// optional bias with its own multiplier and rate.
#[derive(Clone)]
struct Layer {
    w: Vec<f64>,
    rows: usize,
    cols: usize,
    g: f64,
    eta: f64,
    bias: Option<(Vec<f64>, f64, f64)>,
}

#[derive(Clone)]
struct Net {
    /// Stem, B blocks, read-out.
    layers: Vec<Layer>,
    act: Activation,
    c: f64,
    beta: f64,
    layer_norm: bool,
}

/// Everything one forward pass keeps for the backward pass.
struct Pass {
    x: Vec<f64>,
    /// Stream h₁ … h_{B+1}.
    h: Vec<Vec<f64>>,
    /// N(h_b) and its scale 1/√(var + ε) (1 without a norm).
    u: Vec<Vec<f64>>,
    scale: Vec<f64>,
    /// c φ(N(h_b)).
    a: Vec<Vec<f64>>,
    /// All K outputs.
    f: Vec<f64>,
}

/// The gradient of f₀ with respect to one layer: ∂f₀/∂W = coef · δ aᵀ and
/// ∂f₀/∂b = coef_b · δ.
struct LayerGrad {
    delta: Vec<f64>,
    input: Vec<f64>,
    coef: f64,
    coef_b: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators, so that the loop vectorises.
    let mut s = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            s[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

impl Layer {
    /// g W v (+ g_b b).
    fn apply(&self, v: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .map(|i| {
                let z = self.g * dot(&self.w[i * self.cols..(i + 1) * self.cols], v);
                match &self.bias {
                    Some((b, gb, _)) => z + gb * b[i],
                    None => z,
                }
            })
            .collect()
    }

    /// g Wᵀ d.
    fn apply_t(&self, d: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.cols];
        for (i, &di) in d.iter().enumerate() {
            let row = &self.w[i * self.cols..(i + 1) * self.cols];
            for (o, &w) in out.iter_mut().zip(row) {
                *o += w * di;
            }
        }
        out.iter_mut().for_each(|o| *o *= self.g);
        out
    }
}

/// (N(h), 1/√(var h + ε)): mean and biased variance over the width.
fn layer_norm(h: &[f64]) -> (Vec<f64>, f64) {
    let n = h.len() as f64;
    let mean = h.iter().sum::<f64>() / n;
    let var = h.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let s = 1.0 / (var + EPS).sqrt();
    (h.iter().map(|v| (v - mean) * s).collect(), s)
}

/// ∂f/∂h from ∂f/∂u for u = N(h): with ∂u_j/∂h_k = s(δ_jk − 1/n − u_j u_k/n),
/// ∂f/∂h = s(g − mean g − u·mean(g ⊙ u)).
fn layer_norm_t(u: &[f64], s: f64, g: &[f64]) -> Vec<f64> {
    let n = u.len() as f64;
    let mg = g.iter().sum::<f64>() / n;
    let mgu = dot(g, u) / n;
    g.iter()
        .zip(u)
        .map(|(gv, uv)| s * (gv - mg - uv * mgu))
        .collect()
}

impl Net {
    fn blocks(&self) -> usize {
        self.layers.len() - 2
    }

    fn norm(&self, h: &[f64]) -> (Vec<f64>, f64) {
        if self.layer_norm {
            layer_norm(h)
        } else {
            (h.to_vec(), 1.0)
        }
    }

    fn forward(&self, x: &[f64]) -> Pass {
        let nb = self.blocks();
        let mut p = Pass {
            x: x.to_vec(),
            h: vec![self.layers[0].apply(x)],
            u: vec![],
            scale: vec![],
            a: vec![],
            f: vec![],
        };
        for b in 0..=nb {
            let (u, s) = self.norm(&p.h[b]);
            let a: Vec<f64> = u.iter().map(|&v| self.c * self.act.phi(v)).collect();
            if b < nb {
                let z = self.layers[b + 1].apply(&a);
                let next = p.h[b]
                    .iter()
                    .zip(&z)
                    .map(|(h, z)| h + self.beta * z)
                    .collect();
                p.h.push(next);
            } else {
                p.f = self.layers[nb + 1].apply(&a);
            }
            p.u.push(u);
            p.scale.push(s);
            p.a.push(a);
        }
        p
    }

    /// ∂f₀/∂(every layer), stem first.
    fn backward(&self, p: &Pass) -> Vec<LayerGrad> {
        let nb = self.blocks();
        let out = &self.layers[nb + 1];
        let bias_g = |l: &Layer| l.bias.as_ref().map(|b| b.1).unwrap_or(0.0);
        let mut grads = vec![LayerGrad {
            delta: vec![1.0],
            input: p.a[nb].clone(),
            coef: out.g,
            coef_b: bias_g(out),
        }];
        // ∂f₀/∂h_{B+1} through the read-out's row 0, φ and N.
        let back = |b: usize, da: &[f64]| -> Vec<f64> {
            let du: Vec<f64> = da
                .iter()
                .zip(&p.u[b])
                .map(|(d, &u)| d * self.c * self.act.dphi(u))
                .collect();
            if self.layer_norm {
                layer_norm_t(&p.u[b], p.scale[b], &du)
            } else {
                du
            }
        };
        let da: Vec<f64> = out.w[..out.cols].iter().map(|w| out.g * w).collect();
        let mut d = back(nb, &da);
        for b in (0..nb).rev() {
            let l = &self.layers[b + 1];
            // h_{b+1} = h_b + β(gW a_b + g_b bias): the branch's gradients carry β.
            grads.push(LayerGrad {
                delta: d.clone(),
                input: p.a[b].clone(),
                coef: self.beta * l.g,
                coef_b: self.beta * bias_g(l),
            });
            let mut da = l.apply_t(&d);
            da.iter_mut().for_each(|v| *v *= self.beta);
            // The skip passes d on unchanged; the branch adds its part.
            let branch = back(b, &da);
            d.iter_mut().zip(&branch).for_each(|(d, g)| *d += g);
        }
        grads.push(LayerGrad {
            delta: d,
            input: p.x.clone(),
            coef: self.layers[0].g,
            coef_b: bias_g(&self.layers[0]),
        });
        grads.reverse();
        grads
    }

    /// Σ_ℓ η_ℓ ⟨∂f₀(x)/∂W_ℓ, ∂f₀(x')/∂W_ℓ⟩ + the same for biases.
    fn ntk(&self, g1: &[LayerGrad], g2: &[LayerGrad]) -> f64 {
        self.layers
            .iter()
            .zip(g1.iter().zip(g2))
            .map(|(l, (a, b))| {
                let dd = dot(&a.delta, &b.delta);
                let w = l.eta * a.coef * b.coef * dd * dot(&a.input, &b.input);
                let bias = l.bias.as_ref().map(|bb| bb.2 * a.coef_b * b.coef_b * dd);
                w + bias.unwrap_or(0.0)
            })
            .sum()
    }
}

// ---------------------------------------------------------------------------
// Configurations, drawing, Monte-Carlo.

#[derive(Clone, Copy, Debug)]
struct Cfg {
    act: Activation,
    norm: Norm,
    branch: Branch,
    preset: Preset,
    bias: bool,
}

fn arch(cfg: Cfg, n0: usize, n: usize, k: usize, blocks: usize) -> Arch {
    let spec = ResidualSpec {
        blocks,
        norm: cfg.norm,
        branch: cfg.branch,
    };
    let mut a = Arch::resmlp(n0, n, k, cfg.act, spec);
    a.bias = cfg.bias;
    a.bias_init = BiasInit::Normal;
    a.validate().unwrap();
    a
}

fn resolve(a: &Arch, preset: Preset) -> Parameterization {
    Parameterization::resolve(
        &a.layer_shapes(),
        &ScaleChoice::preset(preset),
        OptimizerKind::Sgd,
    )
    .unwrap()
}

/// A network with raw weights σ_ℓ·Z_ℓ from standard normals `z` (weights, biases
/// per layer), so that every configuration can reuse one seed's draws.
fn build(a: &Arch, p: &Parameterization, z: &[(Vec<f64>, Vec<f64>)]) -> Net {
    let shapes = a.layer_shapes();
    let layers = p
        .layers
        .iter()
        .zip(&shapes)
        .zip(z)
        .map(|((lp, sh), (zw, zb))| Layer {
            w: zw[..sh.fan_in * sh.fan_out]
                .iter()
                .map(|v| lp.init_std * v)
                .collect(),
            rows: sh.fan_out,
            cols: sh.fan_in,
            g: lp.multiplier,
            eta: lp.lr,
            bias: match (a.bias, lp.bias) {
                (true, Some(b)) => Some((
                    zb[..sh.fan_out].iter().map(|v| b.init_std * v).collect(),
                    b.multiplier,
                    b.lr,
                )),
                _ => None,
            },
        })
        .collect();
    let r = a.residual.unwrap();
    Net {
        layers,
        act: a.activation,
        c: a.gain,
        beta: r.beta(),
        layer_norm: r.norm == Norm::Layer,
    }
}

/// Standard normals for every layer of `a` (largest shapes over the configurations
/// are the same: every configuration shares n₀, n, K and B).
fn draw(a: &Arch, seed: u64) -> Vec<(Vec<f64>, Vec<f64>)> {
    a.layer_shapes()
        .iter()
        .enumerate()
        .map(|(l, s)| {
            (
                normal_vec(seed, "resmlp-mc-w", l as u64, s.fan_in * s.fan_out, 1.0),
                normal_vec(seed, "resmlp-mc-b", l as u64, s.fan_out, 1.0),
            )
        })
        .collect()
}

/// Per-network (NNGP, NTK) over the rows of `x`, P × P each (row-major).
fn empirical(net: &Net, x: &Mat<f64>) -> (Vec<f64>, Vec<f64>) {
    let np = x.rows();
    let passes: Vec<Pass> = (0..np).map(|i| net.forward(x.row(i))).collect();
    let grads: Vec<Vec<LayerGrad>> = passes.iter().map(|p| net.backward(p)).collect();
    let k = passes[0].f.len() as f64;
    let mut nngp = vec![0.0; np * np];
    let mut ntk = vec![0.0; np * np];
    for i in 0..np {
        for j in 0..np {
            nngp[i * np + j] = dot(&passes[i].f, &passes[j].f) / k;
            ntk[i * np + j] = net.ntk(&grads[i], &grads[j]);
        }
    }
    (nngp, ntk)
}

/// Mean and standard error over seeds, entry by entry.
struct Stats {
    mean: Vec<f64>,
    se: Vec<f64>,
}

fn stats(samples: &[Vec<f64>]) -> Stats {
    let s = samples.len() as f64;
    let m = samples[0].len();
    let mean: Vec<f64> = (0..m)
        .map(|e| samples.iter().map(|v| v[e]).sum::<f64>() / s)
        .collect();
    let se = (0..m)
        .map(|e| {
            let var = samples
                .iter()
                .map(|v| (v[e] - mean[e]).powi(2))
                .sum::<f64>()
                / (s - 1.0);
            (var / s).sqrt()
        })
        .collect();
    Stats { mean, se }
}

/// Monte-Carlo NNGP and NTK statistics for every configuration.
fn monte_carlo(
    cfgs: &[Cfg],
    x: &Mat<f64>,
    n: usize,
    k: usize,
    blocks: usize,
    seeds: u64,
) -> Vec<(Stats, Stats)> {
    let n0 = x.cols();
    let mut samples: Vec<(Vec<Vec<f64>>, Vec<Vec<f64>>)> = vec![(vec![], vec![]); cfgs.len()];
    for seed in 0..seeds {
        let z = draw(&arch(cfgs[0], n0, n, k, blocks), 1000 + seed);
        for (c, cfg) in cfgs.iter().enumerate() {
            let a = arch(*cfg, n0, n, k, blocks);
            let net = build(&a, &resolve(&a, cfg.preset), &z);
            let (s, t) = empirical(&net, x);
            samples[c].0.push(s);
            samples[c].1.push(t);
        }
    }
    samples.iter().map(|(s, t)| (stats(s), stats(t))).collect()
}

/// The infinite-width kernels of a configuration (row-major P × P each).
fn infinite(cfg: Cfg, x: &Mat<f64>, n: usize, k: usize, blocks: usize) -> (Vec<f64>, Vec<f64>) {
    let a = arch(cfg, x.cols(), n, k, blocks);
    let kk = InfiniteMlp::from_parameterization(&a, &resolve(&a, cfg.preset))
        .unwrap()
        .kernels(x, None)
        .unwrap();
    (kk.nngp.as_slice().to_vec(), kk.ntk.as_slice().to_vec())
}

/// How one kernel compares: max |dev|/SE, max |dev|/max diag K∞, and the largest
/// ratio |dev|/(Z·SE + floor·max diag K∞) (≤ 1 passes).
#[derive(Debug, Clone, Copy)]
struct Verdict {
    z: f64,
    rel: f64,
    ratio: f64,
}

fn judge(st: &Stats, inf: &[f64], np: usize, floor: f64) -> Verdict {
    let scale = (0..np).map(|i| inf[i * np + i].abs()).fold(0.0, f64::max);
    let mut v = Verdict {
        z: 0.0,
        rel: 0.0,
        ratio: 0.0,
    };
    for (e, &kinf) in inf.iter().enumerate() {
        let dev = (st.mean[e] - kinf).abs();
        v.z = v.z.max(dev / st.se[e]);
        v.rel = v.rel.max(dev / scale);
        v.ratio = v.ratio.max(dev / (Z * st.se[e] + floor * scale));
    }
    v
}

/// Inputs with different norms, so that LayerNorm's λ differs between x and x'.
fn inputs(np: usize, n0: usize) -> Mat<f64> {
    let raw = normal_vec(7, "resmlp-mc-x", 0, np * n0, 1.0);
    let scales = [1.0, 0.5, 1.6, 1.0, 0.8];
    Mat::from_vec(
        np,
        n0,
        raw.iter()
            .enumerate()
            .map(|(i, v)| v * scales[(i / n0) % scales.len()])
            .collect(),
    )
}

/// Every norm × branch × preset for one activation; bias on the ntp ones.
fn grid(act: Activation) -> Vec<Cfg> {
    let mut out = vec![];
    for norm in [Norm::None, Norm::Layer] {
        for branch in [Branch::One, Branch::SqrtDepth] {
            for preset in [Preset::Mup, Preset::Ntp] {
                out.push(Cfg {
                    act,
                    norm,
                    branch,
                    preset,
                    bias: preset == Preset::Ntp,
                });
            }
        }
    }
    out
}

const N: usize = 1024;
const K: usize = 256;

/// Seeds per configuration (`MC_SEEDS` overrides, for a sharper run). At 12 seeds
/// the standard error is itself too noisy: one draw put all four tanh NNGPs at
/// 3.3–4.4 SE, which fell to ≤ 1.8 at 48 seeds.
fn seeds() -> u64 {
    std::env::var("MC_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

/// Relative floor for the O(1/n) bias: 2 × (weight layers) / n, 1 % at B = 3.
fn floor(blocks: usize) -> f64 {
    2.0 * (blocks + 2) as f64 / N as f64
}

fn check_grid(cfgs: &[Cfg], blocks: usize, np: usize) {
    let x = inputs(np, 8);
    let mc = monte_carlo(cfgs, &x, N, K, blocks, seeds());
    let mut worst = 0.0f64;
    for (cfg, (s, t)) in cfgs.iter().zip(&mc) {
        let (nngp, ntk) = infinite(*cfg, &x, N, K, blocks);
        let vs = judge(s, &nngp, np, floor(blocks));
        let vt = judge(t, &ntk, np, floor(blocks));
        eprintln!(
            "{:?} B={blocks}: NNGP max|dev|/SE {:.2} rel {:.4}; NTK max|dev|/SE {:.2} rel {:.4}",
            cfg, vs.z, vs.rel, vt.z, vt.rel
        );
        worst = worst.max(vs.ratio).max(vt.ratio);
        assert!(
            vs.ratio <= 1.0 && vt.ratio <= 1.0,
            "{cfg:?}: NNGP {vs:?}, NTK {vt:?} (allowed {Z}·SE + {}·max K∞)",
            floor(blocks)
        );
    }
    eprintln!("worst |dev|/(Z·SE + floor) = {worst:.3}");
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn our_epsilon_is_the_librarys() {
    assert_eq!(EPS, LAYER_NORM_EPS);
}

/// The hand-written backward pass (LayerNorm's Jacobian included) against central
/// differences of f₀ in every weight and bias of a tiny network.
#[test]
fn hand_written_gradients_match_finite_differences() {
    let (n0, n, k, blocks) = (3, 6, 2, 2);
    for norm in [Norm::None, Norm::Layer] {
        let cfg = Cfg {
            act: Activation::Tanh,
            norm,
            branch: Branch::SqrtDepth,
            preset: Preset::Ntp,
            bias: true,
        };
        let a = arch(cfg, n0, n, k, blocks);
        let net = build(&a, &resolve(&a, cfg.preset), &draw(&a, 3));
        let x = [0.7, -1.2, 0.4];
        let grads = net.backward(&net.forward(&x));
        let f0 = |m: &Net| m.forward(&x).f[0];
        let h = 1e-6;
        let mut checked = 0;
        for l in 0..net.layers.len() {
            let (rows, cols) = (net.layers[l].rows, net.layers[l].cols);
            let gr = &grads[l];
            for i in 0..rows {
                // The read-out's gradient is zero outside row 0 (delta has one entry).
                let di = gr.delta.get(i).copied().unwrap_or(0.0);
                for j in 0..cols {
                    let (mut p, mut m) = (net.clone(), net.clone());
                    p.layers[l].w[i * cols + j] += h;
                    m.layers[l].w[i * cols + j] -= h;
                    let fd = (f0(&p) - f0(&m)) / (2.0 * h);
                    let an = gr.coef * di * gr.input[j];
                    assert!(
                        (fd - an).abs() < 1e-7,
                        "{norm:?} W{l}[{i},{j}]: {fd} vs {an}"
                    );
                    checked += 1;
                }
                let (mut p, mut m) = (net.clone(), net.clone());
                p.layers[l].bias.as_mut().unwrap().0[i] += h;
                m.layers[l].bias.as_mut().unwrap().0[i] -= h;
                let fd = (f0(&p) - f0(&m)) / (2.0 * h);
                let an = gr.coef_b * di;
                assert!((fd - an).abs() < 1e-7, "{norm:?} b{l}[{i}]: {fd} vs {an}");
            }
        }
        assert_eq!(checked, n0 * n + blocks * n * n + n * k);
    }
}

#[test]
fn relu_resmlp_kernels_match_monte_carlo() {
    check_grid(&grid(Activation::Relu), 3, 4);
}

#[test]
fn erf_resmlp_kernels_match_monte_carlo() {
    check_grid(&grid(Activation::Erf), 3, 4);
}

/// tanh goes through the quadrature path; two blocks.
#[test]
fn tanh_resmlp_kernels_match_monte_carlo() {
    let cfgs: Vec<Cfg> = grid(Activation::Tanh)
        .into_iter()
        .filter(|c| c.preset == Preset::Ntp)
        .collect();
    check_grid(&cfgs, 2, 3);
}

/// The same Monte-Carlo statistics reject kernels computed for the wrong trunk:
/// the other branch scale, or the other norm.
#[test]
fn the_monte_carlo_check_rejects_a_wrong_trunk() {
    let blocks = 3;
    let x = inputs(4, 8);
    let cfgs = [
        Cfg {
            act: Activation::Relu,
            norm: Norm::Layer,
            branch: Branch::SqrtDepth,
            preset: Preset::Ntp,
            bias: false,
        },
        Cfg {
            act: Activation::Erf,
            norm: Norm::None,
            branch: Branch::SqrtDepth,
            preset: Preset::Mup,
            bias: false,
        },
    ];
    let mc = monte_carlo(&cfgs, &x, N, K, blocks, seeds());
    for (cfg, (s, t)) in cfgs.iter().zip(&mc) {
        let (nngp, ntk) = infinite(*cfg, &x, N, K, blocks);
        let fl = floor(blocks);
        assert!(judge(s, &nngp, 4, fl).ratio <= 1.0 && judge(t, &ntk, 4, fl).ratio <= 1.0);
        let wrong_beta = Cfg {
            branch: Branch::One,
            ..*cfg
        };
        let wrong_norm = Cfg {
            norm: match cfg.norm {
                Norm::None => Norm::Layer,
                Norm::Layer => Norm::None,
            },
            ..*cfg
        };
        for wrong in [wrong_beta, wrong_norm] {
            let (wn, wt) = infinite(wrong, &x, N, K, blocks);
            let (vs, vt) = (judge(s, &wn, 4, fl), judge(t, &wt, 4, fl));
            eprintln!("{cfg:?} judged as {wrong:?}: NNGP {vs:?}, NTK {vt:?}");
            assert!(
                vt.ratio > 1.0,
                "the NTK of {wrong:?} passes for {cfg:?}: {vt:?}"
            );
        }
    }
}

/// Linear activation, no norm, β = 1, no biases, NTP constants (s = ρ = 1): each
/// block doubles the stream, Σ_{B+1} = 2^B Σ₁, and T_{b+1} = 2T_b + Σ_b gives the
/// output NTK (B + 4)·2^{B−1}·⟨x, x'⟩/n₀ (stem and read-out 2^B each, every block
/// 2^{B−1}). ReLU with gain √2 keeps the diagonal: Σ_{B+1}(x, x) = 2^B Σ₁(x, x).
/// With β: (1 + β²)^B, which tends to e for β = 1/√B.
#[test]
fn linear_trunk_has_the_closed_form_growth() {
    let x = inputs(3, 5);
    let g = |i: usize, j: usize| dot(x.row(i), x.row(j)) / 5.0;
    for blocks in 1..=5 {
        let spec = |branch, norm| ResidualSpec {
            blocks,
            norm,
            branch,
        };
        let k = InfiniteMlp::resmlp_on_scale(
            spec(Branch::One, Norm::None),
            Activation::Linear,
            1.0,
            false,
        )
        .kernels(&x, None)
        .unwrap();
        let two = 2f64.powi(blocks as i32);
        for i in 0..3 {
            for j in 0..3 {
                let want_s = two * g(i, j);
                let want_t = (blocks as f64 + 4.0) * two / 2.0 * g(i, j);
                assert!((k.nngp[(i, j)] - want_s).abs() < 1e-12 * two);
                assert!((k.ntk[(i, j)] - want_t).abs() < 1e-12 * two * blocks as f64);
            }
        }
        let relu = InfiniteMlp::resmlp_on_scale(
            spec(Branch::One, Norm::None),
            Activation::Relu,
            1.0,
            false,
        )
        .kernels(&x, None)
        .unwrap();
        let lin_sqrt = InfiniteMlp::resmlp_on_scale(
            spec(Branch::SqrtDepth, Norm::None),
            Activation::Linear,
            1.0,
            false,
        )
        .kernels(&x, None)
        .unwrap();
        let growth = (1.0 + 1.0 / blocks as f64).powi(blocks as i32);
        for i in 0..3 {
            assert!((relu.nngp[(i, i)] - two * g(i, i)).abs() < 1e-12 * two);
            assert!((lin_sqrt.nngp[(i, i)] - growth * g(i, i)).abs() < 1e-12 * growth);
        }
    }
    // With LayerNorm a block sees the normalised stream: a linear trunk adds
    // Σ/(q + ε) ≈ 1 on the diagonal per block, whatever the input's norm.
    let spec = ResidualSpec {
        blocks: 3,
        norm: Norm::Layer,
        branch: Branch::One,
    };
    let k = InfiniteMlp::resmlp_on_scale(spec, Activation::Linear, 1.0, false)
        .kernels(&x, None)
        .unwrap();
    for i in 0..3 {
        let mut q = g(i, i);
        for _ in 0..3 {
            q += q / (q + LAYER_NORM_EPS);
        }
        let out = q / (q + LAYER_NORM_EPS);
        assert!(
            (k.nngp[(i, i)] - out).abs() < 1e-12,
            "{} vs {out}",
            k.nngp[(i, i)]
        );
    }
}

/// A plain MLP is untouched, and a resmlp needs B + 2 layers.
#[test]
fn residual_field_is_checked_and_optional() {
    let x = inputs(3, 5);
    let mlp = InfiniteMlp::on_scale(4, Activation::Relu, 1.0, false);
    assert!(mlp.residual.is_none());
    let spec = ResidualSpec {
        blocks: 3,
        norm: Norm::None,
        branch: Branch::One,
    };
    assert!(mlp.clone().with_residual(spec).kernels(&x, None).is_err());
    let spec2 = ResidualSpec { blocks: 2, ..spec };
    assert!(mlp.with_residual(spec2).kernels(&x, None).is_ok());
}
