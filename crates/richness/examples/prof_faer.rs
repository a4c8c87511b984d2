//! faer's matrix product (its own x86 kernels) against `Compute::matmul` (the `gemm`
//! crate) at the step benchmark's shapes, alternating in one run: the measurement
//! behind keeping faer for decompositions only.
//!
//! `cargo run --release --example prof_faer -p richness [-- --threads N]`
use faer::{Accum, MatRef, Par};
use richness::linalg::Compute;
use richness::tensor::{Mat, MatMut};
use std::time::Instant;
mod common;

/// `m` as a faer view (row-major: row stride = columns).
fn faer_view(m: &Mat<f32>) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(m.as_slice(), m.rows(), m.cols())
}

fn main() {
    let threads: usize = common::flag("--threads").unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let cx = Compute::new(threads);
    let par = if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    let (b, n) = (256, 4096);
    let a = Mat::<f32>::from_fn(b, n, |i, j| ((i * 7 + j) % 13) as f32 * 0.01);
    let w = Mat::<f32>::from_fn(n, n, |i, j| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut z = Mat::<f32>::zeros(b, n);
    let mut wu = w.clone();
    let gf = 2.0 * (b * n * n) as f64 / 1e9;
    let names = [
        "faer z=A·Wᵀ",
        "faer dA=D·W",
        "faer W+=-η·Dᵀ·A",
        "gemm z=A·Wᵀ",
        "gemm dA=D·W",
        "gemm W+=-η·Dᵀ·A",
    ];
    let mut times = vec![Vec::new(); names.len()];
    for _ in 0..7 {
        for (i, t) in times.iter_mut().enumerate() {
            let s = Instant::now();
            let (av, wv) = (faer_view(&a), faer_view(&w));
            match i {
                0 | 1 => {
                    let rhs = if i == 0 { wv.transpose() } else { wv };
                    let dst = faer::MatMut::from_row_major_slice_mut(z.as_mut_slice(), b, n);
                    faer::linalg::matmul::matmul(dst, Accum::Replace, av, rhs, 1.0f32, par);
                }
                2 => {
                    let dst = faer::MatMut::from_row_major_slice_mut(wu.as_mut_slice(), n, n);
                    faer::linalg::matmul::matmul(
                        dst,
                        Accum::Add,
                        av.transpose(),
                        av,
                        -1e-6f32,
                        par,
                    );
                }
                3 => cx.matmul(z.view_mut(), a.view(), w.view().t(), 1.0, 0.0),
                4 => cx.matmul(z.view_mut(), a.view(), w.view(), 1.0, 0.0),
                _ => cx.matmul(
                    MatMut::new(wu.as_mut_slice(), n, n),
                    a.view().t(),
                    a.view(),
                    -1e-6,
                    1.0,
                ),
            }
            t.push(s.elapsed().as_secs_f64() * 1e3);
        }
    }
    for (name, t) in names.iter().zip(times.iter_mut()) {
        t.sort_by(|x, y| x.partial_cmp(y).unwrap());
        println!(
            "{name:<18} median {:6.1} ms  {:4.0} GFLOP/s",
            t[3],
            gf / t[3] * 1e3
        );
    }
}
