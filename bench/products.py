#!/usr/bin/env python3
"""The step benchmark's matrix products, one at a time: PyTorch (MKL) against
richness's backends, measured in the same run, alternating, several passes.

Why this exists: the step benchmark (bench/step.py) compares whole SGD steps, and
both steps are almost entirely these products, so the per-product ratio bounds the
step ratio any implementation over a given matrix-product library can reach.

Shapes (batch 256, width 4096, f32, 2 threads): forward z = a·Wᵀ, input gradient
dA = d·W, and the SGD update fused into the weight-gradient product
W ← W − η·dᵀ·a (PyTorch: W.addmm_(d.T, a, alpha=-η)).

Needs PyTorch (`pip install torch numpy`); the OpenBLAS rows need Debian's
`libopenblas-dev`. Usage: python3 bench/products.py [--passes 5] [--threads 2]
"""
import argparse, os, statistics, sys, time

from benchlib import ROOT, build, openblas_env, run_json

TORCH_MM = r"""
import json, sys, time, torch
threads = int(sys.argv[1])
torch.set_num_threads(threads)
B, n = 256, 4096
a, d, w = torch.randn(B, n), torch.randn(B, n), torch.randn(n, n) * 0.01
z = torch.empty(B, n)
def med(f, reps=7):
    f(); ts = []
    for _ in range(reps):
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    return sorted(ts)[reps // 2] * 1e3
print(json.dumps({
    "forward": med(lambda: torch.mm(a, w.T, out=z)),
    "input_grad": med(lambda: torch.mm(d, w, out=z)),
    "fused_update": med(lambda: w.addmm_(d.T, a, alpha=-1e-6)),
    "version": torch.__version__,
}))
"""

# prof_mm's product names for the orientations the training step uses.
RICHNESS_NAMES = {
    "forward": "fwd via zᵀ=W·Aᵀ + transpose",
    "input_grad": "dA   =D·W  (W out×in)",
    "fused_update": "dW += Dᵀ·A (fused)",
}



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", default=sys.executable, help="Python with torch installed")
    a = ap.parse_args()

    impls = {}
    gemm_bin = build("example", "prof_mm", "", os.path.join(ROOT, "target"))
    if gemm_bin is None:
        sys.exit("cargo build of examples/prof_mm failed")
    impls["richness-gemm"] = ([gemm_bin, "--backend", "gemm"], None)
    blas_bin = build("example", "prof_mm", "openblas", os.path.join(ROOT, "target", "openblas"))
    if blas_bin:
        impls["richness-openblas"] = ([blas_bin, "--backend", "openblas"], openblas_env())
    common = ["--threads", str(a.threads), "--json"]
    ms = {name: {p: [] for p in RICHNESS_NAMES} for name in ["pytorch", *impls]}
    version = None
    for p in range(a.passes):
        t = run_json([a.python, "-c", TORCH_MM, str(a.threads)])
        version = t["version"]
        for prod in RICHNESS_NAMES:
            ms["pytorch"][prod].append(t[prod])
        for name, (cmd, env) in impls.items():
            r = run_json(cmd + common, env=env)
            for prod, key in RICHNESS_NAMES.items():
                ms[name][prod].append(r[key])
        print(f"pass {p + 1} done", flush=True)
    gflop = 2 * 256 * 4096 * 4096 / 1e9
    print(f"\n{time.strftime('%Y-%m-%d')}  {os.cpu_count()} cores  threads={a.threads}  torch {version}")
    print(f"{'impl':<18} {'product':<13} {'median ms (per pass)':<40} {'GFLOP/s':>8} {'PyTorch/this':>13}")
    for name, prods in ms.items():
        for prod, v in prods.items():
            ratio = statistics.median(tp / x for tp, x in zip(ms["pytorch"][prod], v))
            print(f"{name:<18} {prod:<13} {' '.join(f'{x:6.1f}' for x in v):<40} "
                  f"{gflop / statistics.median(v) * 1e3:8.0f} {ratio:13.2f}")


if __name__ == "__main__":
    main()
