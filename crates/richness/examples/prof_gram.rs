//! The empirical kernel's Gram products alone, f32 against f64: one block pair
//! G = A·Bᵀ (A, B: [b, k] row-major) on one thread, as `kernel/empirical.rs` runs
//! them, and the same with Bᵀ stored contiguous, for tuning the layout.
//!
//! `cargo run --release --example prof_gram -p richness [-- --b 256 --k 1024 --reps 5]`
use richness::linalg::Compute;
use richness::tensor::{Mat, Scalar};
use std::time::Instant;
mod common;

fn med<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn run<T: Scalar>(name: &str, b: usize, k: usize, reps: usize) {
    let cx = Compute::new(1);
    let a = Mat::<T>::from_fn(b, k, |i, j| T::of(((i * 7 + j) % 13) as f64 * 0.01));
    let bm = Mat::<T>::from_fn(b, k, |i, j| T::of(((i * 3 + j) % 11) as f64 * 0.01));
    let bt = Mat::<T>::from_fn(k, b, |i, j| bm[(j, i)]);
    let mut g = Mat::<T>::zeros(b, b);
    let gf = 2.0 * (b * b * k) as f64 / 1e9;
    let t1 = med(reps, || {
        cx.matmul(g.view_mut(), a.view(), bm.view().t(), T::one(), T::zero())
    });
    let t2 = med(reps, || {
        cx.matmul(g.view_mut(), a.view(), bt.view(), T::one(), T::zero())
    });
    println!(
        "{name} b={b} k={k}: A·Bᵀ (B row-major) {:.2} ms = {:.1} GFLOP/s; Bᵀ contiguous {:.2} ms = {:.1} GFLOP/s",
        t1 * 1e3,
        gf / t1,
        t2 * 1e3,
        gf / t2
    );
}

fn main() {
    let b: usize = common::flag("--b").unwrap_or(256);
    let k: usize = common::flag("--k").unwrap_or(1024);
    let reps: usize = common::flag("--reps").unwrap_or(5);
    run::<f32>("f32", b, k, reps);
    run::<f64>("f64", b, k, reps);
}
