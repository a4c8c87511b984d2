//! Memory estimates of an architecture, checked by [`crate::budget`] before anything
//! is allocated: parameters, one forward/backward trace, a training run.
//!
//! ```
//! use richness::nn::{Activation, Arch};
//! let arch = Arch::mlp(vec![2, 3, 1], Activation::Relu);
//! assert_eq!(arch.param_values(), 2 * 3 + 3 * 1);
//! ```

use super::layer::WeightKind;
use super::layernorm::Norm;
use super::{Arch, LayerKind};

impl Arch {
    /// Values (not bytes) of the weights and biases of `arch`.
    pub fn param_values(&self) -> u128 {
        self.kinds()
            .iter()
            .map(|k| {
                let (fan_in, fan_out) = k.fans();
                let w = (fan_in as u128).saturating_mul(fan_out as u128);
                w.saturating_add(if self.bias { fan_out as u128 } else { 0 })
            })
            .fold(0u128, u128::saturating_add)
    }

    /// Values of one forward/backward trace of `batch` rows (activations, their
    /// gradients, pooled maps, scratch; conv patch buffers are bounded separately).
    pub fn trace_values(&self, batch: usize) -> u128 {
        let kinds = self.kinds();
        let depth = kinds.len();
        let mut per_row: u128 = self.dims.first().copied().unwrap_or(0) as u128;
        let mut dense_max = 0u128;
        for (l, k) in kinds.iter().enumerate() {
            let out = k.out_len() as u128;
            per_row = per_row.saturating_add(out.saturating_mul(2));
            if l + 1 < depth {
                per_row = per_row.saturating_add(out.saturating_mul(2));
                per_row =
                    per_row.saturating_add((k.pooled_len().unwrap_or(0) as u128).saturating_mul(2));
                if self.norm() == Norm::Layer {
                    // N(z), its gradient and the row scales.
                    per_row = per_row
                        .saturating_add(out.saturating_mul(2))
                        .saturating_add(1);
                }
            }
            if let LayerKind::Dense(super::dense::Dense { fan_out, .. }) = k {
                dense_max = dense_max.max(*fan_out as u128);
            }
        }
        per_row
            .saturating_add(dense_max)
            .saturating_mul(batch.max(1) as u128)
            .saturating_add(1 << 23) // conv patch chunks (bounded)
    }

    /// Bytes to train `arch` in `elem`-byte precision on batches of `batch` rows:
    /// weights, a copy of the initial weights, gradients, `optimizer_slots` state
    /// tensors per parameter (momentum 1, Adam 2), a centring reference (weights and
    /// trace) when `centred`, and one trace.
    pub fn training_bytes(
        &self,
        elem: usize,
        batch: usize,
        optimizer_slots: usize,
        centred: bool,
    ) -> u128 {
        let p = self.param_values();
        let copies = 3 + optimizer_slots as u128 + centred as u128;
        let t = self.trace_values(batch).saturating_mul(1 + centred as u128);
        p.saturating_mul(copies)
            .saturating_add(t)
            .saturating_mul(elem as u128)
    }

    /// How an architecture is described in a refusal: `width 100000 (dims [..])`.
    pub fn describe(&self) -> String {
        let dims = if self.dims.len() <= 8 {
            format!("{:?}", self.dims)
        } else {
            format!(
                "[{}, …, {}] ({} layers)",
                self.dims[0],
                self.dims[self.dims.len() - 1],
                self.depth()
            )
        };
        format!(
            "a network of {} parameters (dims {dims})",
            self.param_values()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Activation;

    #[test]
    fn a_width_typo_is_refused_with_size_estimate_and_limit() {
        let arch = Arch::mlp(vec![64, 100_000, 100_000, 10], Activation::Relu);
        let need = arch.training_bytes(4, 64, 0, false);
        // Three copies of a 10¹⁰-weight hidden layer in f32: at least 120 GB.
        assert!(need >= 3 * 40_000_000_000u128, "{need}");
        let limit = Some(crate::budget::Limit {
            bytes: 8 << 30,
            source: "--max-memory",
        });
        let e = crate::budget::ensure_within(|| arch.describe(), need, limit.clone()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("100000")
                && msg.contains("GiB")
                && msg.contains("8.0 GiB of --max-memory"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        let small = Arch::mlp(vec![64, 128, 128, 10], Activation::Relu);
        crate::budget::ensure_within(
            || small.describe(),
            small.training_bytes(4, 64, 2, true),
            limit,
        )
        .unwrap();
    }

    #[test]
    fn sizes_that_overflow_saturate_instead_of_wrapping() {
        let arch = Arch::mlp(vec![usize::MAX, usize::MAX, 1], Activation::Relu);
        assert_eq!(arch.training_bytes(8, usize::MAX, 2, true), u128::MAX);
        assert_eq!(
            crate::budget::product(&[usize::MAX, usize::MAX, usize::MAX], 8),
            u128::MAX
        );
    }
}
