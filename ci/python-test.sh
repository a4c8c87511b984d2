#!/usr/bin/env bash
# The Python package (crates/richness-py) and its pytest suite, as .ci/run runs them.
#
# torch (CPU is enough): Debian's CPU build (python3-torch, ~180 MB of packages) when
# apt can install it, with a venv on the system Python that sees it; otherwise torch
# from PyPI (whose Linux wheels pull ~5 GB of CUDA libraries: minutes more). The
# package itself is built from source by `pip install ./crates/richness-py` (maturin,
# reusing target/ from `cargo test --workspace --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo -n"; fi
apt_install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
    $SUDO apt-get update -qq >/dev/null 2>&1 &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
  }
}
start=$(date +%s)
VENV="${RICHNESS_PY_VENV:-$PWD/target/py-ci-venv}"
rm -rf "$VENV"
# pandas, yaml and matplotlib: what microsoft/mup's coordinate check imports (the
# acceptance test compares richness.torch.coord_check with it) and rt.plot_coord.
if [ -x /usr/bin/python3 ] && apt_install python3-torch python3-venv python3-pandas python3-yaml python3-matplotlib &&
   /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  echo "python-test: torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') from Debian (CPU)"
else
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch numpy pandas pyyaml matplotlib
  echo "python-test: torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') from PyPI"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check pytest
# mup without its declared dependencies: they include torch and torchvision, which pip
# would fetch from PyPI (gigabytes of CUDA) over Debian's torch; its coordinate-check
# code needs only numpy, pandas, yaml and torch, installed above.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps mup
echo "python-test: torch ready after $(( $(date +%s) - start ))s"
"$VENV/bin/pip" install -q --disable-pip-version-check ./crates/richness-py
echo "python-test: richness installed after $(( $(date +%s) - start ))s"
# Run from outside the source tree so that the installed package is imported.
export RICHNESS_BIN="$PWD/target/release/richness" RICHNESS_REQUIRE_TORCH=1 CI=${CI:-true}
ROOT="$PWD"
(cd "$VENV" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/crates/richness-py/tests")
echo "python-test: done after $(( $(date +%s) - start ))s"
