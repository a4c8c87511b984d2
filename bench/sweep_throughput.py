#!/usr/bin/env python3
"""Throughput of many small runs: `richness sweep run` against a PyTorch script that
loops over the same runs in one process.

The sweep (bench/sweep-throughput.toml): 200 runs = 10 base rates × 20 seeds of a
64 → 256 → 256 → 10 ReLU MLP in μP (mup gauge: multipliers 2, 1, 1/16 on the three
layers, init std 1/16, ReLU gain √2, SGD on the raw weights at the base rate),
200 SGD steps each (batch 64, momentum 0.9, MSE as PyTorch's mse_loss), shuffled
every epoch, on the 1,297 training digits; test loss and accuracy on the 500 test
digits at init and at the end. richness stores every run (config, per-step training
loss, evaluations) in its SQLite database; the PyTorch loop keeps the same numbers
in memory and writes them to a CSV at the end.

Timing: richness = wall time of the whole `richness sweep run` process (start-up,
data, 200 runs, database writes). PyTorch = the loop over the 200 runs only (after
`import torch` and loading the data), which favours PyTorch. Both use the same
thread count (richness: runs in parallel, one thread each; PyTorch:
torch.set_num_threads). Passes alternate PyTorch and richness.

Usage: python3 bench/sweep_throughput.py [--passes 3] [--threads 2 1]
PyTorch: set TORCH_PYTHON (default /opt/torchvenv/bin/python if present, else python3).
"""
import argparse, csv, gzip, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "bench", "sweep-throughput.toml")
DIGITS = os.path.join(ROOT, "crates", "richness", "data", "digits.csv.gz")

TORCH_LOOP = r"""
import csv, gzip, json, math, sys, time
import numpy as np, torch
threads, digits, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(threads)
rows = np.loadtxt(gzip.open(digits, "rt"), delimiter=",", dtype=np.float64)
x = torch.tensor(rows[:, :64] / 16.0, dtype=torch.float32)
labels = torch.tensor(rows[:, 64], dtype=torch.long)
y = torch.nn.functional.one_hot(labels, 10).to(torch.float32)
xtr, ytr, xte, yte = x[:1297], y[:1297], x[1297:], y[1297:]
rates = [0.25 * 16 ** (i / 9) for i in range(10)]
n, steps, batch, width = 1297, 200, 64, 256
mult, std, gain = [2.0, 1.0, 1.0 / 16], 1.0 / 16, math.sqrt(2.0)

def forward(ws, a):
    for i, w in enumerate(ws):
        a = (a @ w.t()) * mult[i]
        if i < len(ws) - 1:
            a = torch.relu(a) * gain
    return a

def evaluate(ws):
    with torch.no_grad():
        out = forward(ws, xte)
        return torch.nn.functional.mse_loss(out, yte).item(), (out.argmax(1) == labels[1297:]).float().mean().item()

results = []
t0 = time.perf_counter()
for lr in rates:
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        dims = [64, width, width, 10]
        ws = [(torch.randn(dims[i + 1], dims[i], generator=g) * std).requires_grad_() for i in range(3)]
        opt = torch.optim.SGD(ws, lr=lr, momentum=0.9)
        init = evaluate(ws)
        losses, step = [], 0
        while step < steps:
            order = torch.randperm(n, generator=g)
            for s in range(0, n, batch):
                if step >= steps:
                    break
                idx = order[s:s + batch]
                loss = torch.nn.functional.mse_loss(forward(ws, xtr[idx]), ytr[idx])
                opt.zero_grad(set_to_none=False)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
        results.append((lr, seed, init, losses, evaluate(ws)))
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["lr", "seed", "step", "train_loss"])
    for lr, seed, init, losses, final in results:
        for i, l in enumerate(losses):
            w.writerow([lr, seed, i + 1, l])
loop = time.perf_counter() - t0
finals = [r[4][0] for r in results if math.isfinite(r[4][0])]
print(json.dumps({"impl": "pytorch-" + torch.__version__, "seconds": loop, "runs": len(results),
                  "mean_final_test_loss": sum(finals) / max(len(finals), 1)}))
"""


def torch_python():
    env = os.environ.get("TORCH_PYTHON")
    if env:
        return env
    if os.path.exists("/opt/torchvenv/bin/python"):
        return "/opt/torchvenv/bin/python"
    return sys.executable


def richness_bin():
    b = os.path.join(ROOT, "target", "release", "richness")
    if not os.path.exists(b):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "richness-cli"], cwd=ROOT, check=True)
    return b


def run_richness(binary, threads, tmp):
    db = os.path.join(tmp, f"sweep-{threads}-{time.time_ns()}.sqlite")
    t0 = time.perf_counter()
    out = subprocess.run([binary, "--quiet", "--threads", str(threads), "sweep", "run", SPEC, "--db", db],
                         capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError("richness failed: " + out.stderr.strip()[-500:])
    csvdir = os.path.join(tmp, "csv")
    subprocess.run([binary, "--quiet", "sweep", "export", "--db", db, "--out", csvdir], check=True, capture_output=True)
    with open(os.path.join(csvdir, "runs.csv"), newline="") as f:
        runs = list(csv.DictReader(f))
    finals = [float(r["final_test_loss"]) for r in runs if r["status"] == "completed"]
    os.remove(db)
    return {"seconds": secs, "runs": len(runs), "completed": len(finals),
            "mean_final_test_loss": sum(finals) / max(len(finals), 1)}


def run_torch(py, threads, tmp):
    out = subprocess.run([py, "-c", TORCH_LOOP, str(threads), DIGITS, os.path.join(tmp, "torch.csv")],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("pytorch failed: " + out.stderr.strip()[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    a = ap.parse_args()
    binary = richness_bin()
    py = torch_python()
    tmp = tempfile.mkdtemp(prefix="richness-throughput-")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; {py}")
    try:
        for threads in a.threads:
            rs, ts, last = [], [], {}
            for p in range(a.passes):
                t = run_torch(py, threads, tmp)
                r = run_richness(binary, threads, tmp)
                ts.append(t["seconds"])
                rs.append(r["seconds"])
                last = {"torch": t, "richness": r}
                print(f"threads {threads} pass {p + 1}: pytorch {t['seconds']:.2f} s, richness {r['seconds']:.2f} s, "
                      f"ratio {t['seconds'] / r['seconds']:.2f}", flush=True)
            tm, rm = statistics.median(ts), statistics.median(rs)
            print(f"threads {threads}: median pytorch {tm:.2f} s ({200 / tm:.1f} runs/s), "
                  f"richness {rm:.2f} s ({200 / rm:.1f} runs/s), ratio {tm / rm:.2f}; "
                  f"mean final test loss pytorch {last['torch']['mean_final_test_loss']:.4f}, "
                  f"richness {last['richness']['mean_final_test_loss']:.4f} "
                  f"({last['richness']['completed']}/{last['richness']['runs']} completed)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
