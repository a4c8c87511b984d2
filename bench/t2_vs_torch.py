"""The tutorial companion's T2 protocol, side by side: plain PyTorch against `richness check`.

The work (issue 14): a 64 → n → n → 10 ReLU MLP, widths 128 … 4096, 20 seeds, batch
512, one SGD step at η₀ = 1 (momentum 0.9, which a first step does not use), then
‖Δa₂‖/‖a₂‖ (the second hidden layer's post-activation change) for NTP and μP, so 240
probes. PyTorch runs it the companion library's way: the parameterization's
multipliers, init scales and per-layer rates set by hand on a plain model (taken
from `richness table --format json`, so both sides use the same numbers), one
`optimizer.step()`, one more forward. richness runs

    richness check --arch mlp3 --preset P --data npy:… --widths … --seeds 20 --batch 512
        --momentum 0.9 --lr 1 --no-center --no-spectral --quantities da_rel

and, for the default quantities, the same without `--quantities` and `--no-spectral`.
Both sides get the same inputs and one-hot targets (random, from numpy; the work does
not depend on the values) and 2 threads. PyTorch is timed inside its process after
`import torch` (which favours it); richness as a whole process (start-up, data,
parameterization, fits, report). The passes alternate PyTorch and richness; the
ratio is PyTorch time / richness time (above 1: richness is faster). Also printed:
both sides' fitted slopes of ‖Δa₂‖/‖a₂‖ (they must agree within seed noise), and
the fraction of the two cores' f32 peak each side reaches on the matrix products
the protocol needs.

Needs PyTorch: `--python` names a Python that has it; without it the script makes a
venv in bench/.venv-torch and installs torch from PyPI (large).

    python3 bench/t2_vs_torch.py --passes 3
"""
import argparse, json, math, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT  # noqa: E402

WIDTHS = [128, 256, 512, 1024, 2048, 4096]
PRESETS = ["ntp", "mup"]

TORCH_SIDE = r'''
import json, sys, time, math
import numpy as np, torch
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
x = torch.from_numpy(np.load(cfg["x"])).float()
labels = torch.from_numpy(np.load(cfg["y"])).long()
y = torch.nn.functional.one_hot(labels, 10).float()
gain = math.sqrt(2.0)
out = {}
t0 = time.perf_counter()
for preset in cfg["presets"]:
    ratios = {}
    for n in cfg["widths"]:
        table = cfg["tables"][preset][str(n)]
        vals = []
        for seed in range(cfg["seeds"]):
            torch.manual_seed(seed)
            ws, gs, groups = [], [], []
            for layer in table["layers"]:
                w = torch.nn.Parameter(torch.randn(layer["fan_out"], layer["fan_in"]) * layer["init_std"])
                ws.append(w)
                gs.append(layer["multiplier"])
                groups.append({"params": [w], "lr": table["base_lr"] * layer["lr"]})
            opt = torch.optim.SGD(groups, lr=1.0, momentum=cfg["momentum"])
            def forward():
                a = x
                acts = []
                for i, (w, g) in enumerate(zip(ws, gs)):
                    h = g * (a @ w.t())
                    if i + 1 < len(ws):
                        a = gain * torch.relu(h)
                        acts.append(a)
                    else:
                        return h, acts
            f, acts = forward()
            loss = torch.nn.functional.mse_loss(f, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                _, acts1 = forward()
                a2, a2n = acts[1].detach(), acts1[1]
                vals.append(((a2n - a2).norm() / a2.norm()).item())
        ratios[n] = sum(vals) / len(vals)
    out[preset] = ratios
print(json.dumps({"seconds": time.perf_counter() - t0, "torch": torch.__version__, "da_rel": out}))
'''


def slope(widths, values):
    lx = [math.log(w) for w in widths]
    ly = [math.log(v) for v in values]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def torch_python(given):
    if given:
        return given
    venv = os.path.join(ROOT, "bench", ".venv-torch")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "torch", "numpy"], check=True)
    return py


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    ap.add_argument("--python", help="a Python with torch and numpy installed")
    ap.add_argument("--richness", default=os.path.join(ROOT, "target", "release", "richness"))
    ap.add_argument("--default-quantities", action="store_true",
                    help="also time `richness check` with the default quantities (spectral norms on)")
    a = ap.parse_args()
    widths = [int(w) for w in a.widths.split(",")]
    if not os.path.exists(a.richness):
        subprocess.run(["cargo", "build", "--release", "-p", "richness-cli"], cwd=ROOT, check=True)
    py = torch_python(a.python)
    work = tempfile.mkdtemp(prefix="t2bench-")
    xp, yp = os.path.join(work, "x.npy"), os.path.join(work, "y.npy")
    subprocess.run([py, "-c", f"""
import numpy as np
r = np.random.default_rng(0)
np.save({xp!r}, r.standard_normal(({a.batch}, 64)).astype(np.float32))
np.save({yp!r}, r.integers(0, 10, {a.batch}).astype(np.int64))
"""], check=True)
    data = f"npy:x={xp},y={yp}"
    tables = {p: {} for p in PRESETS}
    for p in PRESETS:
        for n in widths:
            out = subprocess.run([a.richness, "table", "--dims", f"64,{n},{n},10", "--preset", p,
                                  "--lr", "1", "--format", "json"], capture_output=True, text=True, check=True)
            tables[p][str(n)] = json.loads(out.stdout)
    torch_cfg = json.dumps({"x": xp, "y": yp, "threads": a.threads, "presets": PRESETS, "widths": widths,
                            "seeds": a.seeds, "momentum": 0.9, "tables": tables})

    def richness_run(preset, quick):
        out_dir = os.path.join(work, f"{preset}-{'q' if quick else 'd'}")
        cmd = [a.richness, "--threads", str(a.threads), "check", "--arch", "mlp3", "--preset", preset,
               "--data", data, "--widths", ",".join(map(str, widths)), "--seeds", str(a.seeds),
               "--batch", str(a.batch), "--momentum", "0.9", "--lr", "1", "--no-center", "-q",
               "--json", "--out", out_dir]
        if quick:
            cmd += ["--no-spectral", "--quantities", "da_rel"]
        if os.path.exists(out_dir):
            import shutil
            shutil.rmtree(out_dir)
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t
        if res.returncode not in (0, 1):
            raise RuntimeError(f"richness failed: {res.stderr.strip()[-400:]}")
        report = json.load(open(os.path.join(out_dir, "check.json")))
        s = next(c["fit"]["slope"] for c in report["claims"] if c["quantity"] == "da_rel" and c["layer"] == 2)
        return dt, s

    rows = {"pytorch": [], "richness --quantities da_rel --no-spectral": []}
    if a.default_quantities:
        rows["richness (default quantities)"] = []
    slopes = {}
    torch_version = None
    for _ in range(a.passes):
        out = subprocess.run([py, "-c", TORCH_SIDE, torch_cfg], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-800:])
        t = json.loads(out.stdout.strip().splitlines()[-1])
        torch_version = t["torch"]
        rows["pytorch"].append(t["seconds"])
        for p in PRESETS:
            slopes.setdefault(f"pytorch {p}", []).append(slope(widths, [t["da_rel"][p][str(n)] for n in widths]))
        for key, quick in [("richness --quantities da_rel --no-spectral", True), ("richness (default quantities)", False)]:
            if key not in rows:
                continue
            total = 0.0
            for p in PRESETS:
                dt, s = richness_run(p, quick)
                total += dt
                slopes.setdefault(f"{key} {p}", []).append(s)
            rows[key].append(total)
    # Flops of the products the protocol needs (4 width² × batch products per probe in
    # the hidden layer, the read-in and read-out ones too), against the f32 peak.
    probes_flops = sum(2 * a.batch * 4 * (64 * n + n * n + n * 10) for n in widths) * a.seeds * len(PRESETS)
    med = lambda v: sorted(v)[len(v) // 2]
    print(f"# T2 protocol: widths {widths}, {a.seeds} seeds, batch {a.batch}, {len(PRESETS)} presets "
          f"({len(widths) * a.seeds * len(PRESETS)} probes), {a.threads} threads, {torch_version}")
    print(f"# useful work: {probes_flops / 1e12:.2f} TFLOP (4 products per probe, as PyTorch does them)")
    base = rows["pytorch"]
    for k, v in rows.items():
        ratios = [b / x for b, x in zip(base, v)]
        print(f"{k:45s} " + " ".join(f"{x:7.2f}" for x in v) + f"   median {med(v):7.2f} s"
              f"   PyTorch/this {med(ratios):.2f}   {probes_flops / med(v) / 1e9:6.1f} GFLOP/s")
    for k, v in slopes.items():
        print(f"slope of ‖Δa₂‖/‖a₂‖  {k:55s} {med(v):+.3f}")


if __name__ == "__main__":
    main()
