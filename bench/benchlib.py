"""Helpers shared by the benchmark scripts in bench/: build a cargo target and find
its executable, run a command that prints one JSON line, and the environment the
OpenBLAS backend needs on these machines."""
import json, os, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(kind, name, features, target_dir):
    """Build `--bench NAME` (kind "bench") or `--example NAME` (kind "example") of the
    richness crate in release mode; return its executable, or None if the build
    failed (e.g. the openblas feature without libopenblas-dev)."""
    if kind == "bench":
        cmd = ["cargo", "bench", "-p", "richness", "--bench", name, "--no-run"]
    else:
        cmd = ["cargo", "build", "--release", "-p", "richness", "--example", name]
    cmd.append("--message-format=json")
    if features:
        cmd += ["--features", features]
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, CARGO_TARGET_DIR=target_dir),
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == name and msg.get("executable"):
            return msg["executable"]
    return None


def run_json(cmd, env=None):
    """Run `cmd` and parse the last line of its standard output as JSON."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def openblas_env():
    """The environment for the OpenBLAS backend: Debian's OpenBLAS 0.3.21 detects
    unknown (virtualised) Xeons as "Prescott" and runs its slowest kernels, so name
    the core when AVX-512 / AVX2 is there (unless the caller already did)."""
    env = dict(os.environ)
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = "SkylakeX" if "avx512f" in flags else ("Haswell" if "avx2" in flags else "")
    return env
