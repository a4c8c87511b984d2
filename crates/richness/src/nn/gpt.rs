//! A GPT-style transformer (`model.arch = "gpt"`): token and position embeddings,
//! pre-LN blocks of causal self-attention and a GELU MLP, a read-out to the
//! vocabulary and next-token cross-entropy (docs/theory.md §9.1).
//!
//! With width n, B blocks, head dimension d_h (H = n/d_h heads), context T and
//! vocabulary V, on a batch of S sequences (rows = S·T, row s·T + t is position t):
//!
//! ```text
//! h_0      = g_E E[x_t] + g_P P[t]                         [rows, n]
//! u        = N(h_l)                                        ln1
//! qkv      = g_A u W_Aᵀ;  s, p, o = attention (c_att)       see nn::attention
//! attn_out = β g_O o W_Oᵀ;        mid = h_l + attn_out
//! m1       = g_1 N(mid) W_1ᵀ       [rows, 4n];  act = c φ(m1)   (φ = GELU, c its gain)
//! mlp_out  = β g_2 act W_2ᵀ;       h_{l+1} = mid + mlp_out
//! f        = g_L N(h_B) W_Lᵀ       [rows, V]   (W_L = E when tied)
//! L        = −(1/rows) Σ log softmax(f_r)[y_r]
//! ```
//!
//! N is the parameter-free LayerNorm of [`super::layernorm`], β = 1 or 1/√(2B) (one
//! factor per residual branch, two branches per block). Every multiplier g, init
//! scale and rate comes from the [`Parameterization`] of [`GptSpec::resolve`]: the
//! embeddings are read-in tensors with fan-in 1, the four projections of a block are
//! hidden (fan-in n, 4n for W_2), the read-out is W_L (theory.md §9.2).
//!
//! A GPT is its own model, not a stack on the `WeightKind` door ([`super::layer`]):
//! its layers are not a chain of weight layers joined by parameter-free maps (the
//! attention core multiplies two activations, the blocks add into a stream, a tied
//! embedding is used twice), so its passes are written out here, by hand, like the
//! dense layer's, because the probes read every internal (see [`GptTrace`]).
//!
//! Tensors, in order, with nanoGPT's names and PyTorch's layouts:
//! `transformer.wte.weight` [V, n], `transformer.wpe.weight` [T, n], per block l
//! `transformer.h.{l}.attn.c_attn.weight` [3n, n], `.attn.c_proj.weight` [n, n],
//! `.mlp.c_fc.weight` [4n, n], `.mlp.c_proj.weight` [n, 4n], and `lm_head.weight`
//! [V, n] (absent when tied).
//!
//! ```
//! use richness::nn::gpt::{Gpt, GptSpec, GptTrace, GptGrads};
//! use richness::param::{OptimizerKind, ScaleChoice, Preset};
//! use richness::linalg::Compute;
//! let spec = GptSpec::new(32, 1, 8, 4, 5);
//! let gpt = Gpt::<f64>::init(&spec, &ScaleChoice::preset(Preset::Mup), OptimizerKind::Sgd, 0).unwrap();
//! let (x, y) = ([0u32, 1, 2, 3], [1u32, 2, 3, 4]);
//! let mut trace = GptTrace::new(&spec, 1);
//! let mut grads = GptGrads::new(&gpt);
//! let loss = gpt.gradient(&Compute::new(1), &x, &y, 1, &mut trace, &mut grads);
//! assert!((loss - 5f64.ln()).abs() < 0.5); // near uniform over 5 tokens at init
//! assert_eq!(trace.logits.shape(), (4, 5));
//! ```

use super::activation::Activation;
use super::attention::{
    attention_backward, attention_forward, linear, linear_backward, AttentionBuffers,
    AttentionShape,
};
use super::layernorm::{layer_norm_backward, layer_norm_forward};
use super::residual::Branch;
use crate::error::{Error, Result};
use crate::linalg::Compute;
use crate::param::{
    attention_scale, Gauge, LayerShape, OptimizerKind, Parameterization, Role, ScaleChoice,
};
use crate::rng::fill_normal_rows;
use crate::tensor::{Mat, Scalar};
use serde::{Deserialize, Serialize};

/// Tensors per block: c_attn, attn.c_proj, c_fc, mlp.c_proj.
pub const PER_BLOCK: usize = 4;
/// Index of the token embedding E.
pub const WTE: usize = 0;
/// Index of the position embedding P.
pub const WPE: usize = 1;

/// The shape of a GPT and its options (the `[model]` keys of `arch = "gpt"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptSpec {
    /// Width n of the residual stream.
    pub width: usize,
    /// Blocks B.
    pub blocks: usize,
    /// Head dimension d_h (fixed while the width grows: H = n/d_h heads).
    pub head_dim: usize,
    /// Context length T.
    pub context: usize,
    /// Vocabulary V.
    pub vocab: usize,
    /// The read-out is the token embedding (theory.md §9.4: `mup` gauge only).
    #[serde(default)]
    pub tie: bool,
    /// The query rows of every c_attn start at 0 (uniform attention at init).
    #[serde(default)]
    pub zero_query: bool,
    /// The read-out starts at 0 (f₀ = 0).
    #[serde(default)]
    pub zero_readout: bool,
    /// β of every residual branch: `one` or `sqrt-depth` (1/√(2B)).
    #[serde(default)]
    pub branch: Branch,
    /// The gain c of the MLP's GELU (default: its variance-preserving gain).
    #[serde(default = "gelu_gain")]
    pub gain: f64,
}

fn gelu_gain() -> f64 {
    Activation::Gelu.default_gain()
}

impl GptSpec {
    /// A spec with the default options (untied, β = 1, GELU's default gain).
    pub fn new(width: usize, blocks: usize, head_dim: usize, context: usize, vocab: usize) -> Self {
        GptSpec {
            width,
            blocks,
            head_dim,
            context,
            vocab,
            tie: false,
            zero_query: false,
            zero_readout: false,
            branch: Branch::One,
            gain: gelu_gain(),
        }
    }

    /// Refuse shapes that cannot be built, in one line naming the key.
    pub fn validate(&self) -> Result<()> {
        for (k, v) in [
            ("width", self.width),
            ("blocks", self.blocks),
            ("head_dim", self.head_dim),
            ("context", self.context),
            ("vocab", self.vocab),
        ] {
            if v == 0 {
                return Err(Error::config(format!("model.{k} must be positive")));
            }
        }
        if self.width % self.head_dim != 0 {
            return Err(Error::config(format!(
                "model.head_dim = {} does not divide model.width = {} (heads = width / head_dim)",
                self.head_dim, self.width
            )));
        }
        crate::counts::BLOCKS.check_named("model.blocks", self.blocks)?;
        if self.tie && self.zero_readout {
            return Err(Error::config(
                "model.zero_readout with model.tie would zero the token embedding: use one of them",
            ));
        }
        if !(self.gain.is_finite() && self.gain > 0.0) {
            return Err(Error::config(format!(
                "model.gain must be a positive number, got {}",
                self.gain
            )));
        }
        // The [rows, V] logits and the weights must be countable before anything is sized.
        let n = self.width as u128;
        let values =
            n * (self.vocab as u128 * 2 + self.context as u128) + self.blocks as u128 * 12 * n * n;
        crate::budget::ensure(
            || self.describe(),
            values.saturating_mul(std::mem::size_of::<f32>() as u128),
        )?;
        Ok(())
    }

    /// Heads H = n / d_h.
    pub fn heads(&self) -> usize {
        self.width / self.head_dim
    }

    /// β = 1 or 1/√(2B).
    pub fn beta(&self) -> f64 {
        self.branch.scale(2 * self.blocks)
    }

    /// Rows of the parameterization: every tensor, and the read-out even when tied
    /// (it then gives the multiplier g_L of E's second use).
    pub fn rows(&self) -> usize {
        2 + PER_BLOCK * self.blocks + 1
    }

    /// Index of the read-out's row.
    pub fn lm_head(&self) -> usize {
        2 + PER_BLOCK * self.blocks
    }

    /// Index of tensor `j` (0 c_attn, 1 attn.c_proj, 2 c_fc, 3 mlp.c_proj) of block `l`.
    pub fn block_tensor(l: usize, j: usize) -> usize {
        2 + PER_BLOCK * l + j
    }

    /// Tensors the model holds (the read-out only when untied).
    pub fn tensors(&self) -> usize {
        if self.tie {
            self.rows() - 1
        } else {
            self.rows()
        }
    }

    /// nanoGPT's name of row `i`.
    pub fn name(&self, i: usize) -> String {
        match i {
            WTE => "transformer.wte.weight".into(),
            WPE => "transformer.wpe.weight".into(),
            i if i == self.lm_head() => "lm_head.weight".into(),
            i => {
                let (l, j) = ((i - 2) / PER_BLOCK, (i - 2) % PER_BLOCK);
                let what = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"][j];
                format!("transformer.h.{l}.{what}.weight")
            }
        }
    }

    /// PyTorch shape [rows, cols] of row `i`'s tensor.
    pub fn shape(&self, i: usize) -> (usize, usize) {
        let n = self.width;
        match i {
            WTE => (self.vocab, n),
            WPE => (self.context, n),
            i if i == self.lm_head() => (self.vocab, n),
            i => match (i - 2) % PER_BLOCK {
                0 => (3 * n, n),
                1 => (n, n),
                2 => (4 * n, n),
                _ => (n, 4 * n),
            },
        }
    }

    /// Role, fan-in and fan-out of row `i` as the scale sees them (theory.md §9.2).
    pub fn layer_shape(&self, i: usize) -> (Role, LayerShape) {
        let (rows, cols) = self.shape(i);
        let (role, fan_in, fan_out, scales) = match i {
            // An embedding reads a one-hot input: fan-in 1, its rows are vectors of n.
            WTE | WPE => (Role::ReadIn, 1, cols, false),
            i if i == self.lm_head() => (Role::ReadOut, cols, rows, true),
            _ => (Role::Hidden, cols, rows, true),
        };
        (
            role,
            LayerShape {
                fan_in,
                fan_out,
                fan_in_scales: scales,
                bias: false,
            },
        )
    }

    /// The scale for every tensor at width n. Tying needs the `mup` gauge (theory.md
    /// §9.4): there both uses of E have the same raw init and rate.
    pub fn resolve(
        &self,
        choice: &ScaleChoice,
        optimizer: OptimizerKind,
    ) -> Result<Parameterization> {
        self.validate()?;
        if choice.center == Some(true) {
            return Err(Error::config(
                "param.center is not supported for gpt (f − f₀ of logits under cross-entropy is not defined here)",
            ));
        }
        if choice.roles.is_some() {
            return Err(Error::config(
                "param.roles does not apply to gpt: every tensor's role is fixed by what it is (embeddings read-in, projections hidden, lm_head read-out)",
            ));
        }
        if let Some(c) = choice.attention_scale {
            if !(c.is_finite() && c >= 0.0) {
                return Err(Error::config(format!(
                    "param.attention_scale must be a non-negative number, got {c}"
                )));
            }
        }
        let (roles, shapes): (Vec<Role>, Vec<LayerShape>) =
            (0..self.rows()).map(|i| self.layer_shape(i)).unzip();
        let mut c = choice.clone();
        c.roles = Some(roles);
        let mut p = Parameterization::resolve_at_width(&shapes, &c, optimizer, self.width)?;
        if self.tie && p.gauge != Gauge::Mup.name() {
            return Err(Error::config(format!(
                "model.tie needs the mup gauge (got `{}`): the token embedding (read-in, fan-in 1) and the read-out (fan-in n) share one raw tensor only when each use carries its own multiplier, g_E = α and g_L = 1/√n, with σ = 1/α and one rate (theory.md §9.4)",
                p.gauge
            )));
        }
        for (i, l) in p.layers.iter_mut().enumerate() {
            l.name = self.name(i);
            if self.tie && i == self.lm_head() {
                l.name = "lm_head.weight (tied: transformer.wte.weight)".into();
            }
        }
        Ok(p)
    }

    /// `richness table --arch gpt`: the per-tensor table of `p` and the model's
    /// other factors (c_att, β, the GELU gain, heads).
    pub fn scale_text(&self, p: &Parameterization, c_att: f64) -> String {
        use crate::param::fmt_num;
        let mut s = p.to_text();
        s.push_str(&format!(
            "# attention: c_att = {} ({}), H = {} heads of d_h = {}\n",
            fmt_num(c_att),
            if p.on_scale && p.richness.is_some() {
                "d_h^-(1/2+r), r clipped to [0, 1/2]"
            } else {
                "d_h^-1/2, or as given by param.attention_scale"
            },
            self.heads(),
            self.head_dim
        ));
        s.push_str(&format!(
            "# blocks: {} pre-LN blocks, branch scale β = {} ({}) on both branch outputs (attn.c_proj, mlp.c_proj); GELU gain c = {}\n",
            self.blocks,
            fmt_num(self.beta()),
            self.branch.name(),
            fmt_num(self.gain)
        ));
        if self.tie {
            s.push_str("# tied: lm_head uses transformer.wte.weight with its own multiplier g_L (same init and rate in the mup gauge)\n");
        }
        if self.zero_query || self.zero_readout {
            s.push_str(&format!(
                "# zero init: {}\n",
                [
                    (self.zero_query, "query rows of every c_attn"),
                    (self.zero_readout, "lm_head")
                ]
                .iter()
                .filter_map(|(on, w)| on.then_some(*w))
                .collect::<Vec<_>>()
                .join(", ")
            ));
        }
        s
    }

    /// E.g. `gpt n=256 B=2 d_h=32 T=64 V=65`.
    pub fn describe(&self) -> String {
        format!(
            "gpt n={} B={} d_h={} T={} V={}{}",
            self.width,
            self.blocks,
            self.head_dim,
            self.context,
            self.vocab,
            if self.tie { " tied" } else { "" }
        )
    }

    /// Trainable scalars.
    pub fn num_params(&self) -> usize {
        (0..self.tensors())
            .map(|i| {
                let (r, c) = self.shape(i);
                r * c
            })
            .sum()
    }
}

/// A GPT: its spec, its parameterization (one row per tensor, see [`GptSpec::rows`]),
/// the attention multiplier and the raw tensors.
#[derive(Clone, Debug)]
pub struct Gpt<T> {
    pub spec: GptSpec,
    pub param: Parameterization,
    /// c_att (theory.md §9.3).
    pub c_att: f64,
    /// Raw tensors in the order of [`GptSpec::name`] ([`GptSpec::tensors`] of them).
    pub tensors: Vec<Mat<T>>,
}

impl<T: Scalar> Gpt<T> {
    /// Resolve the scale and draw the initial tensors from `seed`.
    pub fn init(
        spec: &GptSpec,
        choice: &ScaleChoice,
        optimizer: OptimizerKind,
        seed: u64,
    ) -> Result<Self> {
        let param = spec.resolve(choice, optimizer)?;
        let c_att = attention_scale(&param, spec.head_dim, choice.attention_scale);
        let mut g = Self::zeros(spec, param, c_att)?;
        g.reinit(seed);
        Ok(g)
    }

    /// All tensors zero, for a resolved parameterization.
    pub fn zeros(spec: &GptSpec, param: Parameterization, c_att: f64) -> Result<Self> {
        spec.validate()?;
        if param.layers.len() != spec.rows() {
            return Err(Error::Shape(
                "parameterization does not match the gpt's tensors".into(),
            ));
        }
        let tensors = (0..spec.tensors())
            .map(|i| {
                let (r, c) = spec.shape(i);
                Mat::zeros(r, c)
            })
            .collect();
        Ok(Gpt {
            spec: spec.clone(),
            param,
            c_att,
            tensors,
        })
    }

    /// Redraw every tensor: row-major N(0, σ²) from the streams `(seed, "init/gpt", i)`,
    /// then the zero options.
    pub fn reinit(&mut self, seed: u64) {
        let n = self.spec.width;
        for (i, t) in self.tensors.iter_mut().enumerate() {
            let cols = t.cols();
            let std = self.param.layers[i].init_std;
            fill_normal_rows(t.as_mut_slice(), seed, "init/gpt", i as u64, cols, std);
        }
        if self.spec.zero_query {
            for l in 0..self.spec.blocks {
                let w = &mut self.tensors[GptSpec::block_tensor(l, 0)];
                w.as_mut_slice()[..n * n]
                    .iter_mut()
                    .for_each(|x| *x = T::zero());
            }
        }
        if self.spec.zero_readout && !self.spec.tie {
            let lm = self.spec.lm_head();
            self.tensors[lm]
                .as_mut_slice()
                .iter_mut()
                .for_each(|x| *x = T::zero());
        }
    }

    /// The factor the passes apply to row `i`'s tensor: g, times β for the two
    /// branch output projections.
    pub fn multiplier(&self, i: usize) -> f64 {
        let g = self.param.layers[i].multiplier;
        let is_branch_out = i >= 2 && i < self.spec.lm_head() && (i - 2) % PER_BLOCK % 2 == 1;
        if is_branch_out {
            g * self.spec.beta()
        } else {
            g
        }
    }

    /// The raw read-out tensor W_L (E when tied).
    pub fn readout(&self) -> &Mat<T> {
        if self.spec.tie {
            &self.tensors[WTE]
        } else {
            &self.tensors[self.spec.lm_head()]
        }
    }

    /// Effective tensors g·W (β·g·W for branch outputs), one per row of the
    /// parameterization: a tied model lists E twice, as g_E E and as g_L E. These are
    /// what a gauge change leaves unchanged.
    pub fn effective(&self) -> Vec<Mat<T>> {
        (0..self.spec.rows())
            .map(|i| {
                let w = if i == self.spec.lm_head() {
                    self.readout()
                } else {
                    &self.tensors[i]
                };
                let g = T::of(self.multiplier(i));
                Mat::from_vec(
                    w.rows(),
                    w.cols(),
                    w.as_slice().iter().map(|&x| g * x).collect(),
                )
            })
            .collect()
    }

    /// Trainable scalars.
    pub fn num_params(&self) -> usize {
        self.tensors.iter().map(|t| t.as_slice().len()).sum()
    }

    /// Forward pass on `batch` sequences of `tokens` (row-major [batch, T] ids, each
    /// below V), filling `trace` (resized when its batch differs).
    pub fn forward(&self, cx: &Compute, tokens: &[u32], batch: usize, trace: &mut GptTrace<T>) {
        let s = &self.spec;
        let (n, tt, v) = (s.width, s.context, s.vocab);
        let rows = batch * tt;
        assert!(
            tokens.len() >= rows,
            "gpt forward: {} tokens, need {rows}",
            tokens.len()
        );
        trace.ensure(s, batch);
        trace.tokens.clear();
        trace.tokens.extend_from_slice(&tokens[..rows]);
        let (ge, gp) = (T::of(self.multiplier(WTE)), T::of(self.multiplier(WPE)));
        {
            let (wte, wpe) = (&self.tensors[WTE], &self.tensors[WPE]);
            let h0 = trace.h[0].as_mut_slice();
            for r in 0..rows {
                let (x, t) = (tokens[r] as usize, r % tt);
                assert!(
                    x < v,
                    "gpt forward: token {x} outside the vocabulary of {v}"
                );
                let (e, p) = (wte.row(x), wpe.row(t));
                for ((h, &e), &p) in h0[r * n..(r + 1) * n].iter_mut().zip(e).zip(p) {
                    *h = ge * e + gp * p;
                }
            }
        }
        let shape = AttentionShape {
            batch,
            context: tt,
            width: n,
            head_dim: s.head_dim,
        };
        let gain = T::of(s.gain);
        for l in 0..s.blocks {
            let w = |j| &self.tensors[GptSpec::block_tensor(l, j)];
            let g = |j| T::of(self.multiplier(GptSpec::block_tensor(l, j)));
            let (done, rest) = trace.h.split_at_mut(l + 1);
            let (hin, hout) = (done[l].as_slice(), rest[0].as_mut_slice());
            let b = &mut trace.blocks[l];
            layer_norm_forward(hin, rows, n, b.ln1.as_mut_slice(), &mut b.inv1);
            attention_forward(
                cx,
                &shape,
                self.c_att,
                b.ln1.as_slice(),
                w(0).as_slice(),
                g(0),
                w(1).as_slice(),
                g(1),
                AttentionBuffers {
                    qkv: b.qkv.as_mut_slice(),
                    logits: &mut b.logits,
                    probs: &mut b.probs,
                    heads: b.heads.as_mut_slice(),
                },
                b.attn_out.as_mut_slice(),
            );
            for ((m, &h), &a) in b
                .mid
                .as_mut_slice()
                .iter_mut()
                .zip(hin)
                .zip(b.attn_out.as_slice())
            {
                *m = h + a;
            }
            layer_norm_forward(b.mid.as_slice(), rows, n, b.ln2.as_mut_slice(), &mut b.inv2);
            linear(
                cx,
                b.m1.as_mut_slice(),
                b.ln2.as_slice(),
                w(2).as_slice(),
                g(2),
                rows,
                n,
                4 * n,
            );
            gelu_with_derivative(
                gain,
                b.m1.as_slice(),
                b.act.as_mut_slice(),
                b.dphi.as_mut_slice(),
            );
            linear(
                cx,
                b.mlp_out.as_mut_slice(),
                b.act.as_slice(),
                w(3).as_slice(),
                g(3),
                rows,
                4 * n,
                n,
            );
            for ((h, &m), &o) in hout
                .iter_mut()
                .zip(b.mid.as_slice())
                .zip(b.mlp_out.as_slice())
            {
                *h = m + o;
            }
        }
        let last = trace.h[s.blocks].as_slice();
        layer_norm_forward(last, rows, n, trace.ln_f.as_mut_slice(), &mut trace.inv_f);
        let gl = T::of(self.multiplier(s.lm_head()));
        linear(
            cx,
            trace.logits.as_mut_slice(),
            trace.ln_f.as_slice(),
            self.readout().as_slice(),
            gl,
            rows,
            n,
            v,
        );
    }

    /// Mean next-token cross-entropy of the last forward pass against `targets`
    /// ([batch, T] ids); writes ∂L/∂f into the trace's `dlogits` when `grad`.
    pub fn loss(&self, trace: &mut GptTrace<T>, targets: &[u32], grad: bool) -> f64 {
        let rows = trace.rows();
        let v = self.spec.vocab;
        let d = grad.then(|| trace.dlogits.as_mut_slice());
        super::loss::token_cross_entropy(trace.logits.as_slice(), &targets[..rows], v, d)
    }

    /// Backward pass after [`forward`](Self::forward) and [`loss`](Self::loss) (with
    /// `grad`): every tensor's gradient into `grads` and ∂L/∂h_l into `trace.dh`.
    pub fn backward(&self, cx: &Compute, trace: &mut GptTrace<T>, grads: &mut GptGrads<T>) {
        let s = &self.spec;
        let (n, tt) = (s.width, s.context);
        let batch = trace.batch;
        let rows = batch * tt;
        let lm = s.lm_head();
        let gl = T::of(self.multiplier(lm));
        // Read-out: into lm_head's gradient, or E's (added to below) when tied.
        let t = &mut *trace;
        {
            let dw = if s.tie {
                grads.tensors[WTE].as_mut_slice()
            } else {
                grads.tensors[lm].as_mut_slice()
            };
            linear_backward(
                cx,
                t.dlogits.as_slice(),
                t.ln_f.as_slice(),
                self.readout().as_slice(),
                gl,
                rows,
                n,
                s.vocab,
                dw,
                Some(t.dln.as_mut_slice()),
            );
        }
        layer_norm_backward(
            t.ln_f.as_slice(),
            &t.inv_f,
            t.dln.as_slice(),
            rows,
            n,
            t.dh[s.blocks].as_mut_slice(),
        );
        let shape = AttentionShape {
            batch,
            context: tt,
            width: n,
            head_dim: s.head_dim,
        };
        for l in (0..s.blocks).rev() {
            let idx = |j| GptSpec::block_tensor(l, j);
            let w = |j| self.tensors[idx(j)].as_slice();
            let g = |j| T::of(self.multiplier(idx(j)));
            let b = &t.blocks[l];
            let (lower, upper) = t.dh.split_at_mut(l + 1);
            let (dh_in, dh_out) = (lower[l].as_mut_slice(), upper[0].as_slice());
            // MLP branch: mlp_out = β g_2 act W_2ᵀ.
            let [_, _, dw_fc, dw_mproj] = pick4(&mut grads.tensors, idx(0));
            linear_backward(
                cx,
                dh_out,
                b.act.as_slice(),
                w(3),
                g(3),
                rows,
                4 * n,
                n,
                dw_mproj,
                Some(t.dact.as_mut_slice()),
            );
            for ((d, &a), &f) in t
                .dm1
                .as_mut_slice()
                .iter_mut()
                .zip(t.dact.as_slice())
                .zip(b.dphi.as_slice())
            {
                *d = a * f;
            }
            linear_backward(
                cx,
                t.dm1.as_slice(),
                b.ln2.as_slice(),
                w(2),
                g(2),
                rows,
                n,
                4 * n,
                dw_fc,
                Some(t.dln.as_mut_slice()),
            );
            layer_norm_backward(
                b.ln2.as_slice(),
                &b.inv2,
                t.dln.as_slice(),
                rows,
                n,
                t.dtmp.as_mut_slice(),
            );
            for ((d, &a), &c) in t
                .dmid
                .as_mut_slice()
                .iter_mut()
                .zip(dh_out)
                .zip(t.dtmp.as_slice())
            {
                *d = a + c;
            }
            // Attention branch: attn_out = β g_O o W_Oᵀ on qkv = g_A ln1 W_Aᵀ.
            let [dw_attn, dw_aproj, _, _] = pick4(&mut grads.tensors, idx(0));
            attention_backward(
                cx,
                &shape,
                self.c_att,
                b.ln1.as_slice(),
                w(0),
                g(0),
                w(1),
                g(1),
                b.qkv.as_slice(),
                &b.probs,
                b.heads.as_slice(),
                t.dmid.as_slice(),
                dw_attn,
                dw_aproj,
                t.dheads.as_mut_slice(),
                t.dqkv.as_mut_slice(),
                t.dln.as_mut_slice(),
            );
            layer_norm_backward(
                b.ln1.as_slice(),
                &b.inv1,
                t.dln.as_slice(),
                rows,
                n,
                t.dtmp.as_mut_slice(),
            );
            for ((d, &a), &c) in dh_in
                .iter_mut()
                .zip(t.dmid.as_slice())
                .zip(t.dtmp.as_slice())
            {
                *d = a + c;
            }
        }
        // Embeddings: the gradient of row x is the sum over the positions holding x.
        let (ge, gp) = (T::of(self.multiplier(WTE)), T::of(self.multiplier(WPE)));
        if !s.tie {
            grads.tensors[WTE]
                .as_mut_slice()
                .iter_mut()
                .for_each(|x| *x = T::zero());
        }
        grads.tensors[WPE]
            .as_mut_slice()
            .iter_mut()
            .for_each(|x| *x = T::zero());
        let dh0 = t.dh[0].as_slice();
        for r in 0..rows {
            let (x, p) = (t.tokens[r] as usize, r % tt);
            let d = &dh0[r * n..(r + 1) * n];
            let de = grads.tensors[WTE].row_mut(x);
            de.iter_mut().zip(d).for_each(|(a, &b)| *a += ge * b);
            let dp = grads.tensors[WPE].row_mut(p);
            dp.iter_mut().zip(d).for_each(|(a, &b)| *a += gp * b);
        }
    }

    /// Forward, loss and backward on one batch; returns the loss.
    pub fn gradient(
        &self,
        cx: &Compute,
        tokens: &[u32],
        targets: &[u32],
        batch: usize,
        trace: &mut GptTrace<T>,
        grads: &mut GptGrads<T>,
    ) -> f64 {
        self.forward(cx, tokens, batch, trace);
        let loss = self.loss(trace, targets, true);
        self.backward(cx, trace, grads);
        loss
    }

    /// Mean loss on `batch` sequences without gradients.
    pub fn evaluate(
        &self,
        cx: &Compute,
        tokens: &[u32],
        targets: &[u32],
        batch: usize,
        trace: &mut GptTrace<T>,
    ) -> f64 {
        self.forward(cx, tokens, batch, trace);
        self.loss(trace, targets, false)
    }

    /// The same model in another precision.
    pub fn cast<U: Scalar>(&self) -> Gpt<U> {
        Gpt {
            spec: self.spec.clone(),
            param: self.param.clone(),
            c_att: self.c_att,
            tensors: self.tensors.iter().map(|t| t.cast()).collect(),
        }
    }
}

/// `a = c φ(z)` and `d = c φ'(z)` for the exact GELU (the formulas of
/// [`Activation::Gelu`]), sharing one erf per value: the erf was a fifth of a
/// training step's time when the backward pass computed it again.
fn gelu_with_derivative<T: Scalar>(gain: T, z: &[T], a: &mut [T], d: &mut [T]) {
    let (half, r2, c) = (
        T::of(0.5),
        T::of(std::f64::consts::FRAC_1_SQRT_2),
        T::of(0.398_942_280_401_432_7),
    );
    for ((a, d), &z) in a.iter_mut().zip(d.iter_mut()).zip(z) {
        let cdf = half * (T::one() + (z * r2).erf());
        *a = gain * (z * cdf);
        *d = gain * (cdf + z * ((-(z * z) * half).exp() * c));
    }
}

/// Mutable references to the four tensors of the block starting at `first`.
fn pick4<T>(tensors: &mut [Mat<T>], first: usize) -> [&mut [T]; 4] {
    let [a, b, c, d] = &mut tensors[first..first + 4] else {
        unreachable!("a block has four tensors")
    };
    [
        a.as_mut_slice(),
        b.as_mut_slice(),
        c.as_mut_slice(),
        d.as_mut_slice(),
    ]
}

/// What one block's forward pass leaves behind ([rows, ·] with rows = S·T, scores
/// [S, H, T, T]; see the module docs for each quantity).
#[derive(Clone, Debug)]
pub struct BlockTrace<T> {
    /// N(h_l).
    pub ln1: Mat<T>,
    pub inv1: Vec<T>,
    /// g_A N(h_l) W_Aᵀ, [rows, 3n].
    pub qkv: Mat<T>,
    /// s = c_att q·k (0 above the diagonal).
    pub logits: Vec<T>,
    /// p = softmax(s) (0 above the diagonal).
    pub probs: Vec<T>,
    /// o = Σ p v, the heads' output before c_proj.
    pub heads: Mat<T>,
    /// β g_O o W_Oᵀ, the attention branch's output added to the stream.
    pub attn_out: Mat<T>,
    /// h_l + attn_out.
    pub mid: Mat<T>,
    /// N(mid).
    pub ln2: Mat<T>,
    pub inv2: Vec<T>,
    /// g_1 N(mid) W_1ᵀ, [rows, 4n].
    pub m1: Mat<T>,
    /// c φ(m1).
    pub act: Mat<T>,
    /// c φ'(m1), kept for the backward pass (computed with φ: one erf per value).
    pub dphi: Mat<T>,
    /// β g_2 act W_2ᵀ, the MLP branch's output.
    pub mlp_out: Mat<T>,
}

/// The buffers of one pass: the residual stream `h[0..=B]`, every block's internals,
/// the logits, and after [`Gpt::backward`] the stream's gradients `dh[0..=B]`.
#[derive(Clone, Debug)]
pub struct GptTrace<T> {
    pub batch: usize,
    /// The tokens of the last forward pass.
    pub tokens: Vec<u32>,
    /// h_0 (embeddings) and h_{l+1} (after block l), [rows, n] each.
    pub h: Vec<Mat<T>>,
    pub blocks: Vec<BlockTrace<T>>,
    /// N(h_B).
    pub ln_f: Mat<T>,
    pub inv_f: Vec<T>,
    /// f, [rows, V].
    pub logits: Mat<T>,
    /// ∂L/∂f.
    pub dlogits: Mat<T>,
    /// ∂L/∂h_l, [rows, n] each.
    pub dh: Vec<Mat<T>>,
    dln: Mat<T>,
    dtmp: Mat<T>,
    dmid: Mat<T>,
    dheads: Mat<T>,
    dqkv: Mat<T>,
    dact: Mat<T>,
    dm1: Mat<T>,
    /// The spec the buffers are sized for.
    sized: Option<(usize, usize, usize, usize, usize, usize)>,
}

impl<T: Scalar> GptTrace<T> {
    /// Buffers for `batch` sequences of a model of this spec.
    pub fn new(spec: &GptSpec, batch: usize) -> Self {
        let mut t = GptTrace {
            batch: 0,
            tokens: Vec::new(),
            h: Vec::new(),
            blocks: Vec::new(),
            ln_f: Mat::zeros(0, 0),
            inv_f: Vec::new(),
            logits: Mat::zeros(0, 0),
            dlogits: Mat::zeros(0, 0),
            dh: Vec::new(),
            dln: Mat::zeros(0, 0),
            dtmp: Mat::zeros(0, 0),
            dmid: Mat::zeros(0, 0),
            dheads: Mat::zeros(0, 0),
            dqkv: Mat::zeros(0, 0),
            dact: Mat::zeros(0, 0),
            dm1: Mat::zeros(0, 0),
            sized: None,
        };
        t.ensure(spec, batch);
        t
    }

    /// Rows S·T of the last pass.
    pub fn rows(&self) -> usize {
        self.tokens.len()
    }

    /// (Re)allocate for `batch` sequences when the sizes changed.
    fn ensure(&mut self, s: &GptSpec, batch: usize) {
        let key = (batch, s.width, s.blocks, s.head_dim, s.context, s.vocab);
        if self.sized == Some(key) {
            return;
        }
        let (n, tt) = (s.width, s.context);
        let rows = batch * tt;
        let scores = batch * s.heads() * tt * tt;
        let m = |c: usize| Mat::zeros(rows, c);
        self.batch = batch;
        self.h = (0..=s.blocks).map(|_| m(n)).collect();
        self.dh = (0..=s.blocks).map(|_| m(n)).collect();
        self.blocks = (0..s.blocks)
            .map(|_| BlockTrace {
                ln1: m(n),
                inv1: vec![T::zero(); rows],
                qkv: m(3 * n),
                logits: vec![T::zero(); scores],
                probs: vec![T::zero(); scores],
                heads: m(n),
                attn_out: m(n),
                mid: m(n),
                ln2: m(n),
                inv2: vec![T::zero(); rows],
                m1: m(4 * n),
                act: m(4 * n),
                dphi: m(4 * n),
                mlp_out: m(n),
            })
            .collect();
        self.ln_f = m(n);
        self.inv_f = vec![T::zero(); rows];
        self.logits = m(s.vocab);
        self.dlogits = m(s.vocab);
        self.dln = m(n);
        self.dtmp = m(n);
        self.dmid = m(n);
        self.dheads = m(n);
        self.dqkv = m(3 * n);
        self.dact = m(4 * n);
        self.dm1 = m(4 * n);
        self.sized = Some(key);
    }
}

/// The gradient of every tensor of a [`Gpt`] (same shapes, same order).
#[derive(Clone, Debug)]
pub struct GptGrads<T> {
    pub tensors: Vec<Mat<T>>,
}

impl<T: Scalar> GptGrads<T> {
    pub fn new(gpt: &Gpt<T>) -> Self {
        GptGrads {
            tensors: gpt
                .tensors
                .iter()
                .map(|t| Mat::zeros(t.rows(), t.cols()))
                .collect(),
        }
    }
}

/// Bytes of the trace of `batch` sequences (for the memory budget).
pub fn trace_bytes(spec: &GptSpec, batch: usize, elem: usize) -> u128 {
    let (n, tt, b) = (
        spec.width as u128,
        spec.context as u128,
        spec.blocks as u128,
    );
    let rows = batch as u128 * tt;
    let scores = batch as u128 * spec.heads() as u128 * tt * tt;
    let per_block = rows * (n * 9 + 3 * n + 12 * n) + 2 * scores;
    let rest = rows * (n * 2 * (b + 1) + n * 8 + 2 * spec.vocab as u128 + 8 * n);
    (per_block * b + rest).saturating_mul(elem as u128)
}
