//! Tangent-kernel timings: the empirical NTK by Gram factorisation, the same by
//! explicit Jacobians (the reference), and the infinite-width ReLU NTK.
//!
//! `cargo bench -p richness --bench ntk -- [--which empirical|reference|ratio|infinite|all]
//!  [--threads 2] [--reps 3] [--dtype f64|f32] [--dims 64,1024,1024,1024,1] [--n 1000]
//!  [--ratio-dims 64,256,256,256,1] [--ratio-n 200]`
//!
//! Prints one JSON line per measurement (seconds per repetition and the median, the
//! process's peak resident memory, and the arithmetic of each method). Run each
//! `--which` in its own process to get its own peak memory.

use richness::kernel::empirical::{empirical_ntk, NtkOptions};
use richness::kernel::infinite::InfiniteMlp;
use richness::kernel::reference::ntk_reference;
use richness::kernel::Outputs;
use richness::linalg::Compute;
use richness::nn::{Activation, Arch, Model};
use richness::param::{OptimizerKind, Preset, ScaleChoice};
use richness::rng::normal_vec;
use richness::tensor::{Mat, Scalar};
use std::time::Instant;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .ok()
                .unwrap_or_else(|| panic!("bad value for {name}"))
        })
        .unwrap_or(default)
}

fn dims_arg(args: &[String], name: &str, default: &str) -> Vec<usize> {
    arg(args, name, default.to_string())
        .split(',')
        .map(|d| d.parse().unwrap())
        .collect()
}

/// Peak resident set size of this process so far, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn model<T: Scalar>(dims: &[usize]) -> Model<T> {
    Model::<T>::init(
        &Arch::mlp(dims.to_vec(), Activation::Relu),
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        0,
    )
    .unwrap()
}

fn inputs<T: Scalar>(n: usize, d: usize) -> Mat<T> {
    Mat::from_vec(
        n,
        d,
        normal_vec(1, "bench-x", 0, n * d, 1.0)
            .into_iter()
            .map(T::of)
            .collect(),
    )
}

/// Floating-point operations of the Gram method for a symmetric N×N kernel, scalar
/// output: forward + backward signals (2·N·Σ fan_in·fan_out each) and the Gram
/// products (2·N²·(fan_in + fan_out) per hidden layer, N²·fan_in for the read-out;
/// we compute full products, not halves).
fn gram_flops(dims: &[usize], n: f64) -> f64 {
    let l = dims.len() - 1;
    let mut f = 0.0;
    for i in 0..l {
        let (fi, fo) = (dims[i] as f64, dims[i + 1] as f64);
        f += 2.0 * 2.0 * n * fi * fo; // forward + backward signal
        f += 2.0 * n * n * fi;
        if i + 1 < l {
            f += 2.0 * n * n * fo;
        }
    }
    f
}

/// The explicit-Jacobian method: N forward/backward passes (≈ 3·2·P each) and J·Jᵀ (2·N²·P).
fn jacobian_flops(p: f64, n: f64) -> f64 {
    6.0 * n * p + 2.0 * n * n * p
}

fn time_empirical<T: Scalar>(
    dims: &[usize],
    n: usize,
    cx: Compute,
    reps: usize,
) -> (Vec<f64>, Mat<f64>) {
    let m = model::<T>(dims);
    let x = inputs::<T>(n, dims[0]);
    let mut k = empirical_ntk(&m, &cx, &x, None, &NtkOptions::default())
        .unwrap()
        .remove(0); // warm-up
    let times = (0..reps)
        .map(|_| {
            let s = Instant::now();
            k = empirical_ntk(&m, &cx, &x, None, &NtkOptions::default())
                .unwrap()
                .remove(0);
            s.elapsed().as_secs_f64()
        })
        .collect();
    (times, k)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let which = arg(&args, "--which", "all".to_string());
    let threads = arg(&args, "--threads", 2usize);
    let reps = arg(&args, "--reps", 3usize);
    let dtype = arg(&args, "--dtype", "f64".to_string());
    let dims = dims_arg(&args, "--dims", "64,1024,1024,1024,1");
    let n = arg(&args, "--n", 1000usize);
    let rdims = dims_arg(&args, "--ratio-dims", "64,256,256,256,1");
    let rn = arg(&args, "--ratio-n", 200usize);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let cx = Compute::new(threads);
    let all = which == "all";

    if all || which == "empirical" {
        let times = match dtype.as_str() {
            "f32" => time_empirical::<f32>(&dims, n, cx, reps).0,
            _ => time_empirical::<f64>(&dims, n, cx, reps).0,
        };
        let p = model::<f32>(&dims).num_params() as f64;
        println!(
            "{{\"bench\":\"empirical_ntk\",\"dims\":{:?},\"n\":{n},\"dtype\":\"{dtype}\",\"threads\":{threads},\"seconds\":{:?},\"median\":{:.4},\"gflop\":{:.2},\"explicit_jacobian_gflop\":{:.1},\"explicit_jacobian_f32_gib\":{:.2},\"peak_rss_mib\":{:.0}}}",
            dims,
            times,
            median(times.clone()),
            gram_flops(&dims, n as f64) / 1e9,
            jacobian_flops(p, n as f64) / 1e9,
            n as f64 * p * 4.0 / (1u64 << 30) as f64,
            peak_rss_mib()
        );
    }
    if all || which == "infinite" {
        let x = richness::data::digits::all().unwrap().x;
        let net = InfiniteMlp::on_scale(4, Activation::Relu, 1.0, false);
        let _ = net.kernels_with(&cx, &x, None).unwrap(); // warm-up
        let times: Vec<f64> = (0..reps)
            .map(|_| {
                let s = Instant::now();
                let k = net.kernels_with(&cx, &x, None).unwrap();
                assert!(k.ntk[(0, 0)] > 0.0);
                s.elapsed().as_secs_f64()
            })
            .collect();
        println!(
            "{{\"bench\":\"infinite_relu_ntk\",\"n\":{},\"depth\":4,\"threads\":{threads},\"seconds\":{:?},\"median\":{:.4},\"peak_rss_mib\":{:.0}}}",
            x.rows(),
            times,
            median(times.clone()),
            peak_rss_mib()
        );
    }
    if all || which == "ratio" || which == "reference" {
        // Same model and inputs through both methods, f64; the reference materialises J.
        let m = model::<f64>(&rdims);
        let x = inputs::<f64>(rn, rdims[0]);
        let p = m.num_params() as f64;
        let (fast_times, fast) = time_empirical::<f64>(&rdims, rn, cx, reps);
        let s = Instant::now();
        let slow = ntk_reference(&m, &x, None, Outputs::Mean).remove(0);
        let ref_secs = s.elapsed().as_secs_f64();
        let err = fast
            .as_slice()
            .iter()
            .zip(slow.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
            / slow.as_slice().iter().map(|v| v.abs()).fold(0.0, f64::max);
        let fast_med = median(fast_times.clone());
        println!(
            "{{\"bench\":\"gram_vs_explicit_jacobians\",\"dims\":{:?},\"n\":{rn},\"dtype\":\"f64\",\"threads\":{threads},\"params\":{p},\"gram_seconds\":{:?},\"gram_median\":{:.4},\"reference_seconds\":{:.3},\"time_ratio\":{:.1},\"gram_gflop\":{:.3},\"jacobian_gflop\":{:.2},\"flop_ratio\":{:.0},\"jacobian_mib\":{:.0},\"max_rel_diff\":{:.2e},\"peak_rss_mib\":{:.0}}}",
            rdims,
            fast_times,
            fast_med,
            ref_secs,
            ref_secs / fast_med,
            gram_flops(&rdims, rn as f64) / 1e9,
            jacobian_flops(p, rn as f64) / 1e9,
            jacobian_flops(p, rn as f64) / gram_flops(&rdims, rn as f64),
            rn as f64 * p * 8.0 / (1u64 << 20) as f64,
            err,
            peak_rss_mib()
        );
    }
}
