#!/usr/bin/env python3
"""Tangent kernels, richness against neural-tangents, side by side (issue 14).

Configurations (ReLU MLPs in the NTK parameterization, no biases, 1,000
standard-normal inputs in 64 dimensions):

  emp-1024-f64, emp-1024-f32   empirical NTK of 64 → 1024 → 1024 → 1024 → 1
  emp-4096-f64, emp-4096-f32   empirical NTK of 64 → 4096 → 4096 → 4096 → 1
  inf-d4                       infinite-width ReLU NTK, depth 4 (4 weight layers),
                               1,797 standard-normal inputs in 64 dimensions, f64

Both sides compute the *same* kernel from the *same* weights:

  f(x) = W₄ φ(W₃ φ(W₂ φ(W₁ x / √64) / √n) / √n) / √n,  φ(z) = √2·max(z, 0),

W_ℓ raw N(0, 1) entries stored as `layers.{ℓ}.weight` [fan_out, fan_in] in one
safetensors file per (width, dtype); K(x, x') = Σ_ℓ ⟨∂f(x)/∂W_ℓ, ∂f(x')/∂W_ℓ⟩.
In richness this is `--preset ntp` (multiplier 1/√fan_in, init std 1, every layer's
rate factor 1: see `richness table --preset ntp`), and the infinite kernel is
neural-tangents' stax.serial(Dense(W_std=1), Relu, Dense(W_std=√2), Relu, …) in its
default "ntk" parameterization. The script checks that the kernels agree (relative
max-abs difference against the larger kernel entry) before it reports any time.

What is timed, for both, whole processes started from the shell as a user runs them
(`/usr/bin/time -v`, which also gives the peak resident memory):
  richness:  richness --threads T ntk empirical --dims … --preset ntp
               --init-weights W.safetensors --x X.npy --out K.npy [--dtype f32]
             richness --threads T ntk infinite --depth 4 --activation relu --x X.npy --out K.npy
  neural-tangents: `python ntk_vs_nt.py --worker …`: import jax and neural_tangents,
             read the weights (numpy memmap of the same file) and X, jit-compile
             nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0,
             implementation=NtkImplementation.STRUCTURED_DERIVATIVES) (for the
             infinite kernel the stax kernel_fn), run it once, save K.npy.
Also reported, from inside each process, the kernel computation alone: richness's own
"in X s" figure (model set-up and weight reading excluded, see docs/ntk.md) and
neural-tangents' first call after an explicit ahead-of-time compile (compile time
reported separately).

Threads: both processes run under `taskset -c 0..T-1` (on a 2-core machine with T = 2
this is every core); richness gets --threads T; XLA's CPU backend gets
XLA_FLAGS=--xla_cpu_multi_thread_eigen=true and sizes its Eigen pool from the
affinity mask. Passes alternate richness, neural-tangents, richness, … for each
configuration; medians over passes; ratio = neural-tangents' median / richness's.

Set-up (first run only): a venv bench/.venv-nt (git-ignored) with the versions that
import together: jax==0.4.23 jaxlib==0.4.23 "numpy<2" scipy frozendict, and
neural-tangents==0.6.5 with --no-deps (its TensorFlow bridge,
neural_tangents.experimental.empirical_tf, imports tensorflow, tf2jax and
jax.experimental.jax2tf; those three are stubbed in sys.modules before the import,
since nothing here uses that module).

Usage: python3 bench/ntk_vs_nt.py [--passes 3] [--threads 2] [--only emp-1024-f32,inf-d4]
       [--work out/ntk_vs_nt] [--richness target/release/richness] [--no-build]
"""
import argparse, json, os, re, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-nt")
VPY = os.path.join(VENV, "bin", "python")
PINS = [["jax==0.4.23", "jaxlib==0.4.23", "numpy<2", "scipy", "frozendict"],
        ["--no-deps", "neural-tangents==0.6.5"]]

N_EMP, N_INF, D_IN, DEPTH = 1000, 1797, 64, 4
CONFIGS = {
    "emp-1024-f64": ("emp", 1024, "f64"),
    "emp-1024-f32": ("emp", 1024, "f32"),
    "emp-4096-f64": ("emp", 4096, "f64"),
    "emp-4096-f32": ("emp", 4096, "f32"),
    "inf-d4": ("inf", None, "f64"),
}


def ensure_venv():
    if os.path.exists(VPY):
        # neural_tangents itself imports only with the stubs below: check that it is there.
        ok = subprocess.run([VPY, "-c", "import importlib.util as u; assert all(u.find_spec(m) for m in "
                             "('neural_tangents', 'jax', 'jaxlib', 'frozendict', 'numpy'))"],
                            capture_output=True).returncode == 0
        if ok:
            return
    print(f"creating {VENV} …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    for pins in PINS:
        subprocess.run([VPY, "-m", "pip", "install", "-q"] + pins, check=True)


def stub_tensorflow():
    """neural_tangents/__init__ imports neural_tangents.experimental, whose TF bridge
    imports tensorflow, tf2jax and jax.experimental.jax2tf at module level and uses
    tf.Module and tf.types.experimental.PolymorphicFunction in annotations."""
    import types
    for name in ["jax.experimental.jax2tf", "tensorflow", "tf2jax"]:
        sys.modules[name] = types.ModuleType(name)
    tf = sys.modules["tensorflow"]
    tf.Module = type("Module", (), {})
    tf.types = types.SimpleNamespace(experimental=types.SimpleNamespace(
        PolymorphicFunction=type("PolymorphicFunction", (), {})))


# ---------------------------------------------------------------- files

def write_safetensors(path, tensors, dtype):
    """A minimal safetensors writer (the format: u64 LE header length, JSON header
    padded with spaces to 8 bytes, raw little-endian data)."""
    import numpy as np
    header, blobs, off = {}, [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype=np.float64 if dtype == "f64" else np.float32)
        b = a.tobytes()
        header[name] = {"dtype": dtype.upper(), "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header, separators=(",", ":"))
    js += " " * (-len(js) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(js).to_bytes(8, "little"))
        f.write(js.encode())
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """The tensors of a safetensors file as numpy memmaps (no copy until used)."""
    import numpy as np
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "F64": np.float64}[h["dtype"]]
        s, e = h["data_offsets"]
        count = (e - s) // np.dtype(dt).itemsize
        out[name] = np.memmap(path, dtype=dt, mode="r", offset=8 + n + s, shape=(count,)).reshape(h["shape"])
    return out


def dims_of(width):
    return [D_IN, width, width, width, 1]


def prepare(work):
    """X for the empirical (1000×64) and infinite (1797×64) kernels, and one weights
    file per (width, dtype): the same N(0,1) draws, f32 files rounded from f64."""
    import numpy as np
    os.makedirs(work, exist_ok=True)
    paths = {}
    rng = np.random.default_rng(14)
    x = rng.standard_normal((N_EMP, D_IN))
    xi = rng.standard_normal((N_INF, D_IN))
    for name, arr in [("x_f64.npy", x), ("x_f32.npy", x.astype(np.float32)), ("x_inf.npy", xi)]:
        p = os.path.join(work, name)
        if not os.path.exists(p):
            np.save(p, arr)
        paths[name] = p
    for width in (1024, 4096):
        p64, p32 = (os.path.join(work, f"w{width}_{d}.safetensors") for d in ("f64", "f32"))
        if not (os.path.exists(p64) and os.path.exists(p32)):
            wrng = np.random.default_rng(1000 + width)
            dims = dims_of(width)
            ws = [(f"layers.{l}.weight", wrng.standard_normal((dims[l + 1], dims[l]))) for l in range(len(dims) - 1)]
            write_safetensors(p64, ws, "f64")
            write_safetensors(p32, ws, "f32")
        paths[f"w{width}_f64"], paths[f"w{width}_f32"] = p64, p32
    return paths


# ---------------------------------------------------------------- neural-tangents side

def nt_worker(a):
    """One neural-tangents process: import, load, compile, compute once, save."""
    t0 = time.perf_counter()
    if a.dtype == "f64":
        os.environ["JAX_ENABLE_X64"] = "1"
    stub_tensorflow()
    import numpy as np
    import jax, jax.numpy as jnp
    if a.dtype == "f64":
        jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    from neural_tangents import stax
    t_import = time.perf_counter() - t0
    dt = jnp.float64 if a.dtype == "f64" else jnp.float32
    s = time.perf_counter()
    x = jnp.asarray(np.load(a.x), dtype=dt)
    if a.kind == "emp":
        st = read_safetensors(a.weights)
        params = [jnp.asarray(st[f"layers.{l}.weight"], dtype=dt) for l in range(len(st))]
        gains = [float(1.0 / np.sqrt(w.shape[1])) for w in params]
        jax.block_until_ready(params)
    t_load = time.perf_counter() - s

    if a.kind == "emp":
        sqrt2 = float(np.sqrt(2.0))

        def f(params, x):
            h = x
            for l, (w, g) in enumerate(zip(params, gains)):
                # h·wᵀ as one dot_general contracting both fan_in axes: a plain `h @ w.T`
                # puts a transpose primitive between the parameter and the product,
                # which structured derivatives do not see through (measured: per-example
                # Jacobians, 16 GiB and 570 s at width 1024).
                z = jax.lax.dot_general(h, w, (((1,), (1,)), ((), ()))) * g
                h = sqrt2 * jax.nn.relu(z) if l + 1 < len(params) else z
            return h

        fn = jax.jit(nt.empirical_ntk_fn(
            f, trace_axes=(-1,), vmap_axes=0,
            implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES))
        args = (x, None, params)
    else:
        layers = [stax.Dense(1, W_std=1.0)]
        for _ in range(DEPTH - 1):
            layers += [stax.Relu(), stax.Dense(1, W_std=float(np.sqrt(2.0)))]
        _, _, kernel_fn = stax.serial(*layers)
        kfn = jax.jit(lambda x: kernel_fn(x, None, "ntk"))
        fn, args = kfn, (x,)
    s = time.perf_counter()
    compiled = fn.lower(*args).compile()
    t_compile = time.perf_counter() - s
    s = time.perf_counter()
    k = jax.block_until_ready(compiled(*args))
    t_kernel = time.perf_counter() - s
    s = time.perf_counter()
    np.save(a.out, np.asarray(k, dtype=np.float64))
    t_save = time.perf_counter() - s
    print(json.dumps({"import": t_import, "load": t_load, "compile": t_compile, "kernel": t_kernel,
                      "save": t_save, "jax": jax.__version__, "devices": str(jax.devices())}))


# ---------------------------------------------------------------- driver

def timed(cmd, env=None):
    """Run a whole process under /usr/bin/time -v: (wall seconds, peak RSS MiB, stdout)."""
    s = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - s
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return wall, int(m.group(1)) / 1024.0, out.stdout


def agreement(k_a, k_b):
    import numpy as np
    a, b = np.load(k_a), np.load(k_b)
    a = a.reshape(b.shape) if a.size == b.size else a
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def flops(kind, width, n):
    """Multiply-adds × 2 of the Gram factorisation with each symmetric Gram product
    computed once (N(N+1)/2 entries): forward through every layer, one backward-signal
    pass through the hidden-to-hidden and read-out layers, and the Gram products
    A_{ℓ−1}A_{ℓ−1}ᵀ (every layer) and Δ_ℓΔ_ℓᵀ (hidden layers)."""
    if kind != "emp":
        return None
    d = dims_of(width)
    fwd = sum(2 * n * d[l] * d[l + 1] for l in range(len(d) - 1))
    bwd = sum(2 * n * d[l] * d[l + 1] for l in range(1, len(d) - 1))
    gram_inner = sum(d[:-1]) + sum(d[1:-1])
    gram = 2 * (n * (n + 1) // 2) * gram_inner
    return fwd + bwd + gram


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=",".join(CONFIGS))
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "ntk_vs_nt"))
    ap.add_argument("--richness", default=os.path.join(ROOT, "target", "release", "richness"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--peak-gflops", type=float, default=None,
                    help="the machine's f64 peak in GFLOP/s for the flop-bound column (f32: twice)")
    ap.add_argument("--worker", choices=["emp", "inf"])
    ap.add_argument("--dtype", default="f64")
    ap.add_argument("--weights"), ap.add_argument("--x"), ap.add_argument("--out")
    a = ap.parse_args()
    if a.worker:
        a.kind = a.worker
        return nt_worker(a)

    if not sys.prefix.startswith(VENV):
        ensure_venv()
        os.execv(VPY, [VPY] + sys.argv)

    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "richness-cli"], cwd=ROOT, check=True)
    paths = prepare(a.work)
    cpus = ",".join(str(i) for i in range(a.threads))
    pin = ["taskset", "-c", cpus]
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=true")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cpus, threads {a.threads} (taskset -c {cpus}), "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for name in a.only.split(","):
        kind, width, dtype = CONFIGS[name]
        kr, kn = (os.path.join(a.work, f"K_{name}_{who}.npy") for who in ("richness", "nt"))
        if kind == "emp":
            w = paths[f"w{width}_{dtype}"]
            x = paths[f"x_{dtype}.npy"]
            rich = [a.richness, "--threads", str(a.threads), "ntk", "empirical",
                    "--dims", ",".join(map(str, dims_of(width))), "--activation", "relu",
                    "--preset", "ntp", "--init-weights", w, "--x", x, "--out", kr, "--dtype", dtype]
            ntc = [VPY, os.path.abspath(__file__), "--worker", "emp", "--dtype", dtype,
                   "--weights", w, "--x", x, "--out", kn]
        else:
            x = paths["x_inf.npy"]
            rich = [a.richness, "--threads", str(a.threads), "ntk", "infinite", "--depth", str(DEPTH),
                    "--activation", "relu", "--x", x, "--out", kr]
            ntc = [VPY, os.path.abspath(__file__), "--worker", "inf", "--dtype", "f64", "--x", x, "--out", kn]
        rows = {"richness": [], "nt": []}
        for p in range(a.passes):
            for who, cmd in (("richness", rich), ("nt", ntc)):
                wall, rss, out = timed(pin + cmd, env)
                if who == "richness":
                    m = re.search(r" in ([0-9.]+)s", out)
                    su = re.search(r"model set up in ([0-9.]+)s", out)
                    inner = {"kernel": float(m.group(1)) if m else float("nan"),
                             "setup": float(su.group(1)) if su else 0.0}
                else:
                    inner = json.loads(out.strip().splitlines()[-1])
                rows[who].append({"wall": wall, "rss": rss, **inner})
                print(f"{name} pass {p + 1} {who:9s} wall {wall:6.2f} s  kernel {inner['kernel']:6.2f} s  "
                      f"peak RSS {rss:7.0f} MiB"
                      + (f"  (import {inner['import']:.2f} load {inner['load']:.2f} compile {inner['compile']:.2f} save {inner['save']:.2f})"
                         if who == "nt" else f"  (model set-up {inner['setup']:.2f})"),
                      flush=True)
        agree = agreement(kr, kn)
        med = {who: {q: statistics.median(r[q] for r in rs) for q in ("wall", "kernel", "rss")}
               for who, rs in rows.items()}
        fl = flops(kind, width, N_EMP)
        line = (f"{name}: richness wall {med['richness']['wall']:.2f} s (kernel {med['richness']['kernel']:.2f} s, "
                f"{med['richness']['rss']:.0f} MiB), neural-tangents wall {med['nt']['wall']:.2f} s (kernel "
                f"{med['nt']['kernel']:.2f} s, {med['nt']['rss']:.0f} MiB); ratio whole process "
                f"{med['nt']['wall'] / med['richness']['wall']:.2f}×, kernel {med['nt']['kernel'] / med['richness']['kernel']:.2f}×; "
                f"agreement {agree:.1e}")
        if fl and a.peak_gflops:
            peak = a.peak_gflops * (2 if dtype == "f32" else 1)
            bound = fl / (peak * 1e9)
            line += (f"; {fl / 1e9:.1f} GFLOP, bound {bound:.2f} s at {peak:.0f} GFLOP/s: richness kernel at "
                     f"{bound / med['richness']['kernel']:.0%}, wall {bound / med['richness']['wall']:.0%}; "
                     f"neural-tangents kernel {bound / med['nt']['kernel']:.0%}")
        print(line, flush=True)
        results[name] = {"passes": rows, "median": med, "agreement": agree, "flops": fl}
    print(f"# load average at end {os.getloadavg()[0]:.2f}")
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
