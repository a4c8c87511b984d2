//! Our own element-wise loops compiled for the CPU's vector units, chosen at run time.
//!
//! The build targets plain x86-64 (SSE2), so a binary runs on any cluster node; the
//! `gemm` crate picks its AVX2 / AVX-512 kernels at run time, but our reductions,
//! activations and spectral-norm passes were left at SSE2's two f64 lanes.
//! [`vectorized`] runs a closure inside a function compiled with AVX2 + FMA when the
//! CPU has them (checked once), so the loops it inlines use four f64 / eight f32
//! lanes. Rust never fuses `a * b + c` into an FMA on its own, and the loops fix
//! their summation order themselves, so results are bitwise the same either way
//! (tested below) — except loops that ask [`fused_multiply_add`] and use
//! `mul_add` when it is available (the spectral norms' `AᵀA v`): those differ in the
//! last bits between CPUs with and without FMA.
//!
//! ```
//! use richness::simd::vectorized;
//! let x = vec![1.0f64; 1000];
//! let s: f64 = vectorized(#[inline(always)] || x.iter().sum());
//! assert_eq!(s, 1000.0);
//! ```
//!
//! Only code inlined into `run_avx2` is compiled for the wider units: mark the
//! closure and the helpers it calls `#[inline(always)]`.

/// Run `f`, compiled for AVX2 + FMA where the CPU has them.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features `run_avx2` is compiled for.
            return unsafe { run_avx2(f) };
        }
    }
    f()
}

/// Whether [`vectorized`] runs with AVX2 + FMA, i.e. whether `f64::mul_add` inside it
/// is one instruction (without FMA it is a slow software routine: loops that want
/// fused multiply-adds must check this and fall back to `a * b + c`).
pub fn fused_multiply_add() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma()
    }
    #[cfg(target_arch = "aarch64")]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dot product over eight interleaved partial sums, as the library's reductions do.
    #[inline(always)]
    fn dot8(x: &[f32], y: &[f32]) -> f64 {
        let mut acc = [0.0f64; 8];
        for (xc, yc) in x.chunks_exact(8).zip(y.chunks_exact(8)) {
            for k in 0..8 {
                acc[k] += xc[k] as f64 * yc[k] as f64;
            }
        }
        acc.iter().sum()
    }

    #[test]
    fn the_vectorized_path_gives_the_same_bits_as_the_plain_one() {
        let x: Vec<f32> = (0..10_000)
            .map(|i| ((i * 7919) % 1000) as f32 / 977.0 - 0.4)
            .collect();
        let y: Vec<f32> = (0..10_000)
            .map(|i| ((i * 104_729) % 1000) as f32 / 613.0 - 0.7)
            .collect();
        let plain = dot8(&x, &y);
        let wide = vectorized(
            #[inline(always)]
            || dot8(&x, &y),
        );
        assert_eq!(plain.to_bits(), wide.to_bits());
        let naive: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((plain - naive).abs() <= 1e-12 * naive.abs().max(1.0));
    }
}
