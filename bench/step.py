#!/usr/bin/env python3
"""One SGD step of a 784 -> 4096 -> 4096 -> 4096 -> 10 ReLU MLP, batch 256, f32,
2 threads: richness (gemm backend, and OpenBLAS when available) against PyTorch
eager, measured in the same run, alternating, several passes. Prints per-pass
medians and the ratio PyTorch / richness (higher is better for richness).

Needs: PyTorch (`pip install torch numpy`), and for the OpenBLAS row Debian's
`libopenblas-dev`. Usage: python3 bench/step.py [--passes 3] [--steps 5] [--threads 2]
"""
import argparse, os, platform, statistics, sys, time

from benchlib import ROOT, build, openblas_env, run_json

TORCH_STEP = r"""
import json, sys, time, torch
threads, steps, warmup = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
dims, B = [784, 4096, 4096, 4096, 10], 256
layers = []
for i in range(len(dims) - 1):
    layers.append(torch.nn.Linear(dims[i], dims[i + 1], bias=False))
    if i < len(dims) - 2:
        layers.append(torch.nn.ReLU())
m = torch.nn.Sequential(*layers)
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x, y = torch.randn(B, 784), torch.randn(B, 10)
def step():
    opt.zero_grad(set_to_none=False)
    torch.nn.functional.mse_loss(m(x), y).backward()
    opt.step()
for _ in range(warmup):
    step()
ts = []
for _ in range(steps):
    s = time.perf_counter(); step(); ts.append(time.perf_counter() - s)
print(json.dumps({"impl": "pytorch-" + torch.__version__, "step_seconds": ts, "median": sorted(ts)[len(ts) // 2]}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", default=sys.executable, help="Python with torch installed")
    a = ap.parse_args()

    gemm_bin = build("bench", "step", "", os.path.join(ROOT, "target"))
    blas_bin = build("bench", "step", "openblas", os.path.join(ROOT, "target", "openblas"))
    if gemm_bin is None:
        sys.exit("cargo bench build failed")
    impls = {"richness-gemm": [gemm_bin, "--backend", "gemm"]}
    blas_env = openblas_env()
    if blas_bin:
        impls["richness-openblas"] = [blas_bin, "--backend", "openblas"]
    common = ["--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup)]
    rows = {k: [] for k in ["pytorch", *impls]}
    torch_version = None
    for p in range(a.passes):
        t = run_json([a.python, "-c", TORCH_STEP, str(a.threads), str(a.steps), str(a.warmup)])
        torch_version = t["impl"]
        rows["pytorch"].append(t["median"])
        for name, cmd in impls.items():
            r = run_json(cmd + common, env=blas_env if "openblas" in name else None)
            rows[name].append(r["median"])
        print(f"pass {p + 1}: " + ", ".join(f"{k} {v[-1] * 1e3:.0f} ms" for k, v in rows.items()), flush=True)
    print(f"\n{time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}  {os.cpu_count()} cores  "
          f"threads={a.threads}  {torch_version}")
    print(f"{'impl':<20} {'median ms/step (per pass)':<34} {'PyTorch / this (per pass)':<28} median ratio")
    for name, v in rows.items():
        ratios = [tp / x for tp, x in zip(rows["pytorch"], v)]
        print(f"{name:<20} {' '.join(f'{x * 1e3:6.0f}' for x in v):<34} "
              f"{' '.join(f'{r:5.2f}' for r in ratios):<28} {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
