//! The machine's f32 FMA peak: a register-only loop of fused multiply-adds on 12
//! independent accumulators (no memory traffic), on 1 and on N threads. The ceiling
//! that matrix-product throughput (`prof_mm`, `bench/products.py`) is compared to.
//!
//! `cargo run --release --example fma_peak -p richness [-- --threads N]`
//! (AVX-512 when the CPU has it, else AVX2 + FMA.)
use std::time::Instant;
mod common;

/// 12 chains of `iters` dependent FMAs on 16-lane (AVX-512) vectors. Written in
/// inline assembly because the AVX-512 intrinsics need a newer Rust than the
/// crate's minimum (1.80); the caller checks the CPU has AVX-512.
#[cfg(target_arch = "x86_64")]
unsafe fn chains_avx512(iters: u64) -> f32 {
    let (x, y) = (1.000_000_1f32, 0.999_999_9f32);
    let mut out = [0f32; 16];
    std::arch::asm!(
        "vbroadcastss zmm14, dword ptr [{x}]",
        "vbroadcastss zmm15, dword ptr [{y}]",
        "vxorps xmm0, xmm0, xmm0",
        "vmovaps zmm1, zmm0", "vmovaps zmm2, zmm0", "vmovaps zmm3, zmm0",
        "vmovaps zmm4, zmm0", "vmovaps zmm5, zmm0", "vmovaps zmm6, zmm0",
        "vmovaps zmm7, zmm0", "vmovaps zmm8, zmm0", "vmovaps zmm9, zmm0",
        "vmovaps zmm10, zmm0", "vmovaps zmm11, zmm0",
        "2:",
        "vfmadd213ps zmm0, zmm14, zmm15", "vfmadd213ps zmm1, zmm14, zmm15",
        "vfmadd213ps zmm2, zmm14, zmm15", "vfmadd213ps zmm3, zmm14, zmm15",
        "vfmadd213ps zmm4, zmm14, zmm15", "vfmadd213ps zmm5, zmm14, zmm15",
        "vfmadd213ps zmm6, zmm14, zmm15", "vfmadd213ps zmm7, zmm14, zmm15",
        "vfmadd213ps zmm8, zmm14, zmm15", "vfmadd213ps zmm9, zmm14, zmm15",
        "vfmadd213ps zmm10, zmm14, zmm15", "vfmadd213ps zmm11, zmm14, zmm15",
        "dec rax",
        "jnz 2b",
        "vaddps zmm0, zmm0, zmm1", "vaddps zmm2, zmm2, zmm3", "vaddps zmm4, zmm4, zmm5",
        "vaddps zmm6, zmm6, zmm7", "vaddps zmm8, zmm8, zmm9", "vaddps zmm10, zmm10, zmm11",
        "vaddps zmm0, zmm0, zmm2", "vaddps zmm4, zmm4, zmm6", "vaddps zmm8, zmm8, zmm10",
        "vaddps zmm0, zmm0, zmm4", "vaddps zmm0, zmm0, zmm8",
        "vmovups zmmword ptr [{out}], zmm0",
        "vzeroupper",
        x = in(reg) &x,
        y = in(reg) &y,
        out = in(reg) out.as_mut_ptr(),
        inout("rax") iters.max(1) => _,
        clobber_abi("C"),
    );
    out.iter().sum()
}

/// The same on 8-lane (AVX2) vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); 12];
    let (x, y) = (_mm256_set1_ps(1.000_000_1), _mm256_set1_ps(0.999_999_9));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let mut lanes = [0f32; 8];
    acc.iter()
        .map(|&a| {
            _mm256_storeu_ps(lanes.as_mut_ptr(), a);
            lanes.iter().sum::<f32>()
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let threads: usize = common::flag("--threads").unwrap_or(2);
    let avx512 = is_x86_feature_detected!("avx512f");
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    if !(avx512 || avx2) {
        eprintln!("fma_peak: needs AVX-512 or AVX2 + FMA");
        return;
    }
    let lanes = if avx512 { 16.0 } else { 8.0 };
    let iters = 200_000_000u64;
    for t in [1, threads] {
        let start = Instant::now();
        let sum: f32 = (0..t)
            .map(|_| {
                std::thread::spawn(move || {
                    // SAFETY: the CPU feature was checked above.
                    unsafe {
                        if avx512 {
                            chains_avx512(iters)
                        } else {
                            chains_avx2(iters)
                        }
                    }
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        let flops = t as f64 * iters as f64 * 12.0 * lanes * 2.0;
        println!(
            "{t} thread(s): {:.1} GFLOP/s f32 FMA peak ({}; checksum {sum:e})",
            flops / start.elapsed().as_secs_f64() / 1e9,
            if avx512 { "AVX-512" } else { "AVX2" }
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("fma_peak: x86-64 only");
}
