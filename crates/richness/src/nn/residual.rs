//! The pre-activation residual block and its branch scale β.
//!
//! ```text
//! h₁      = g₁ W₁ x
//! h_{b+1} = h_b + β · g_{b+1} W_{b+1} · c_φ φ(N(h_b)),     b = 1..B
//! f       = g_out W_out · c_φ φ(N(h_{B+1}))
//! ```
//!
//! with N the block's [`Norm`](super::layernorm::Norm) and β = 1 or 1/√B. A block is
//! a dense layer whose output is added to its input stream: the forward pass writes
//! `z_ℓ = z_{ℓ−1} + β·(g W a_{ℓ−1})`, the backward pass passes ∂L/∂z_ℓ on to z_{ℓ−1}
//! unchanged (the skip) and scales the branch's gradients by β.
//!
//! ```
//! use richness::nn::residual::Branch;
//! assert_eq!(Branch::One.scale(4), 1.0);
//! assert_eq!(Branch::SqrtDepth.scale(4), 0.5);
//! ```

use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The branch multiplier β of every residual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Branch {
    /// β = 1.
    #[default]
    One,
    /// β = 1/√B (depth-μP: Bordelon et al. 2023, Yang et al. 2023).
    SqrtDepth,
}

impl Branch {
    /// β for a trunk of `blocks` blocks.
    pub fn scale(self, blocks: usize) -> f64 {
        match self {
            Branch::One => 1.0,
            Branch::SqrtDepth => 1.0 / (blocks.max(1) as f64).sqrt(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Branch::One => "one",
            Branch::SqrtDepth => "sqrt-depth",
        }
    }
}

impl FromStr for Branch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "one" => Ok(Branch::One),
            "sqrt-depth" => Ok(Branch::SqrtDepth),
            _ => Err(format!("unknown branch `{s}` (expected one or sqrt-depth)")),
        }
    }
}

/// The residual trunk of an architecture (`model.arch = "resmlp"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidualSpec {
    /// Number of residual blocks B (weight layers 2..B+1).
    pub blocks: usize,
    /// N before every activation (blocks and read-out).
    #[serde(default)]
    pub norm: super::layernorm::Norm,
    /// β of every block.
    #[serde(default)]
    pub branch: Branch,
}

impl ResidualSpec {
    /// β.
    pub fn beta(&self) -> f64 {
        self.branch.scale(self.blocks)
    }
}
