//! Matrix-product orientations at the benchmark's shapes (for tuning the layout).
//!
//! `cargo run --release --example prof_mm -p richness [-- --threads N]
//! [--backend openblas] [--readout N] [--json]`
use richness::linalg::Compute;
use richness::tensor::{Mat, MatMut};
use std::time::Instant;
mod common;
fn main() {
    // `--backend openblas` (with `--features openblas`) to profile the other backend;
    // `--threads N` (default 2).
    let threads: usize = common::flag("--threads").unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let cx = Compute::with_backend(threads, common::flag("--backend").unwrap_or_default());
    // `--readout N`: the read-out layer's product (N outputs from width 4096, batch
    // 256) in both orientations, which `dense_forward` chooses between.
    if let Some(outs) = common::flag::<usize>("--readout") {
        readout(&cx, outs);
        return;
    }
    let (b, n) = (256, 4096);
    let a = Mat::<f32>::from_fn(b, n, |i, j| ((i * 7 + j) % 13) as f32 * 0.01);
    let w = Mat::<f32>::from_fn(n, n, |i, j| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut z = Mat::<f32>::zeros(b, n);
    let mut dw = Mat::<f32>::zeros(n, n);
    let gf = 2.0 * (b * n * n) as f64 / 1e9;
    let names = [
        "fwd  z=A·Wᵀ (W out×in)",
        "fwd  z=A·W  (W in×out)",
        "dA   =D·W  (W out×in)",
        "dA   =D·Wᵀ (W in×out)",
        "dW   =Dᵀ·A  (out×in)",
        "dW   =Aᵀ·D  (in×out)",
        "dW += Dᵀ·A (fused)",
        "fwd via zᵀ=W·Aᵀ + transpose",
        "dA via dAᵀ=Wᵀ·Dᵀ + transpose (in×out)",
    ];
    let mut zt = Mat::<f32>::zeros(n, b);
    let mut times = vec![Vec::new(); names.len()];
    for _rep in 0..7 {
        for (i, t) in times.iter_mut().enumerate() {
            let s = Instant::now();
            match i {
                0 => cx.matmul(z.view_mut(), a.view(), w.view().t(), 1.0, 0.0),
                1 => cx.matmul(z.view_mut(), a.view(), w.view(), 1.0, 0.0),
                2 => cx.matmul(z.view_mut(), a.view(), w.view(), 1.0, 0.0),
                3 => cx.matmul(z.view_mut(), a.view(), w.view().t(), 1.0, 0.0),
                4 => cx.matmul(
                    MatMut::new(dw.as_mut_slice(), n, n),
                    a.view().t(),
                    a.view(),
                    1.0,
                    0.0,
                ),
                5 => cx.matmul(
                    MatMut::new(dw.as_mut_slice(), n, n),
                    a.view().t(),
                    a.view(),
                    1.0,
                    0.0,
                ),
                6 => cx.matmul(
                    MatMut::new(dw.as_mut_slice(), n, n),
                    a.view().t(),
                    a.view(),
                    -0.01,
                    1.0,
                ),
                _ => {
                    cx.matmul(zt.view_mut(), w.view(), a.view().t(), 1.0, 0.0);
                    for i in 0..n {
                        for j in 0..b {
                            z[(j, i)] = zt[(i, j)];
                        }
                    }
                }
            }
            t.push(s.elapsed().as_secs_f64() * 1e3);
        }
    }
    let json = common::has("--json");
    let mut fields = Vec::new();
    for (n, t) in names.iter().zip(times.iter_mut()) {
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if json {
            fields.push(format!("\"{n}\":{}", t[3]));
        } else {
            println!(
                "{n:<26} median {:6.1} ms  {:4.0} GFLOP/s",
                t[3],
                gf / t[3] * 1e3
            );
        }
    }
    if json {
        // One object, product name → median milliseconds (read by bench/products.py).
        println!("{{{}}}", fields.join(","));
    }
}

fn readout(cx: &Compute, outs: usize) {
    let (b, n) = (256, 4096);
    let a = Mat::<f32>::from_fn(b, n, |i, j| ((i * 7 + j) % 13) as f32 * 0.01);
    let w = Mat::<f32>::from_fn(outs, n, |i, j| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut z = Mat::<f32>::zeros(b, outs);
    let mut zt = Mat::<f32>::zeros(outs, b);
    let (mut direct, mut transposed) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let s = Instant::now();
        cx.matmul(z.view_mut(), a.view(), w.view().t(), 1.0, 0.0);
        direct.push(s.elapsed().as_secs_f64() * 1e3);
        let s = Instant::now();
        cx.matmul(zt.view_mut(), w.view(), a.view().t(), 1.0, 0.0);
        transposed.push(s.elapsed().as_secs_f64() * 1e3);
    }
    direct.sort_by(|a, b| a.partial_cmp(b).unwrap());
    transposed.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "read-out {outs} outputs: z=A·Wᵀ median {:.2} ms, zᵀ=W·Aᵀ median {:.2} ms (without the transpose)",
        direct[4], transposed[4]
    );
}
