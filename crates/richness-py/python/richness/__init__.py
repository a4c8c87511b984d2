"""richness: train wide neural networks anywhere on the richness scale and measure
where they sit (lazy/NTK at r = 0 to rich/muP at r = 1/2).

Every function calls the same Rust library function as the ``richness`` command,
so the numbers are the command's: ``richness.table(...)`` is ``richness table
--format json``, ``richness.ntk.empirical(...)`` is ``richness ntk empirical``,
and so on. Arrays go in and come out as numpy arrays; results are dicts (of numpy
arrays where there are columns: ``pandas.DataFrame(result["metrics"])``).

``richness.torch`` puts any PyTorch model with Linear/Conv2d layers on the scale.
See docs/python.md.
"""

from __future__ import annotations

import json as _json
import os as _os
import tempfile as _tempfile
from typing import Any, Dict, Optional, Sequence, Union

import numpy as _np

from . import _native
from ._native import RichnessError

__version__ = _native.__version__

__all__ = [
    "RichnessError",
    "table",
    "train",
    "check",
    "init_weights",
    "load_weights",
    "save_weights",
    "ntk",
    "fit",
    "sweep",
    "data",
]


def _float_array(a: Any, name: str, ndim: Optional[int] = None) -> _np.ndarray:
    """A C-contiguous float64 copy/view of ``a``; a one-line error for anything that
    is not a real floating-point (or integer-free) array of the right rank."""
    arr = _np.asarray(a)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {arr.dtype}"
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return _np.ascontiguousarray(arr, dtype=_np.float64)


def table(
    dims: Sequence[int],
    activation: str = "relu",
    *,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    optimizer: str = "sgd",
    bias: bool = False,
    alpha: Optional[float] = None,
    base_lr: float = 1.0,
    adam_eps: float = 1e-8,
) -> Dict[str, Any]:
    """The per-layer scaling of an MLP with layer sizes ``dims`` = [input, hidden...,
    output]: the dict ``richness table --format json`` prints.

    ``layers`` is a list of dicts with ``multiplier`` (g), ``init_std`` (sigma),
    ``lr`` (the per-layer rate factor; the rate is base_lr * lr), ``eff_init_var``,
    ``eff_lr``, exponents ``a, b, c``, ``bias`` (its own g, sigma, lr when ``bias``)
    and, for Adam, ``adam_eps`` (and ``bias_adam_eps``). Without preset/richness the
    scale's default is muP (r = 1/2, gauge mup).

    >>> t = table([64, 256, 256, 10], preset="mup")
    >>> t["layers"][1]["multiplier"]
    1.0
    """
    dims = [int(d) for d in dims]
    return _json.loads(
        _native.table(
            dims, activation, preset, richness, float(gamma0), gauge, optimizer,
            bool(bias), alpha, float(base_lr), float(adam_eps),
        )
    )


def _resolve(
    shapes,
    roles=None,
    *,
    preset=None,
    richness=None,
    gamma0=1.0,
    gauge=None,
    optimizer="sgd",
    alpha=None,
    base_lr=1.0,
    adam_eps=1e-8,
) -> Dict[str, Any]:
    """The parameterization of arbitrary weight layers ``(fan_in, fan_out,
    fan_in_scales, bias)`` (what ``richness.torch`` uses)."""
    return _json.loads(
        _native.resolve(
            [tuple(s) for s in shapes], roles, preset, richness, float(gamma0), gauge,
            optimizer, alpha, float(base_lr), float(adam_eps),
        )
    )


def init_weights(
    dims: Sequence[int],
    activation: str = "relu",
    *,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    optimizer: str = "sgd",
    bias: bool = False,
    bias_init: str = "zero",
    seed: int = 0,
) -> Dict[str, _np.ndarray]:
    """The initial raw weights ``richness train`` draws for this MLP and seed (what
    ``richness train --steps 0`` writes): {``layers.{i}.weight``: [fan_out, fan_in]
    float64, ``layers.{i}.bias``}. Copy them into a PyTorch model to start both from
    the same point."""
    arrays, _ = _native.init_weights(
        [int(d) for d in dims], activation, bool(bias), bias_init, preset, richness,
        float(gamma0), gauge, optimizer, int(seed),
    )
    return dict(arrays)


def _config_arg(config: Union[dict, str, "_os.PathLike[str]"]):
    """(text, is_path) for a config given as a dict or a TOML file path."""
    if isinstance(config, dict):
        return _json.dumps(config), False
    if isinstance(config, (str, _os.PathLike)):
        path = _os.fspath(config)
        if not _os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such config file")
        return path, True
    raise TypeError(
        f"config must be a dict or a path to a TOML file, got {type(config).__name__}"
    )


def _weights_file(weights, tmpdir: str) -> Optional[str]:
    if weights is None:
        return None
    if isinstance(weights, dict):
        path = _os.path.join(tmpdir, "init.safetensors")
        save_weights(path, weights)
        return path
    return _os.fspath(weights)


def train(
    config: Union[dict, str, "_os.PathLike[str]"],
    *,
    init_weights: Union[None, str, "_os.PathLike[str]", Dict[str, Any]] = None,
    out: Union[None, str, "_os.PathLike[str]"] = None,
    overwrite: bool = False,
    progress: bool = False,
    threads: Optional[int] = None,
) -> Dict[str, Any]:
    """Train as ``richness train`` does, from a config dict (the TOML tables as nested
    dicts) or a TOML file.

    ``init_weights``: a weights file, or a dict of arrays named ``layers.{i}.weight``
    ([fan_out, fan_in]) and ``layers.{i}.bias`` (e.g. a PyTorch model's raw weights),
    to start from instead of a fresh init (``--init-weights``). ``out``: also write the
    run folder (metrics.csv, summary.json, weights.safetensors, ...); a folder that
    already holds files is refused unless ``overwrite=True``, which replaces it as a
    whole (``--overwrite``).

    Returns the summary (``status``, ``steps``, ``final_train_loss``, ...,
    ``parameterization``), ``metrics`` (columns step, epoch, train_loss, test_loss,
    test_acc as numpy arrays, NaN where empty), ``weight_change`` and ``config`` (the
    resolved config as TOML text).

    >>> r = train({"model": {"width": 64}, "train": {"steps": 5}, "param": {"preset": "mup"}})
    >>> import pandas as pd; pd.DataFrame(r["metrics"])  # doctest: +SKIP
    """
    text, is_path = _config_arg(config)
    with _tempfile.TemporaryDirectory(prefix="richness-") as tmp:
        init = _weights_file(init_weights, tmp)
        summary, metrics, change, resolved = _native.train(
            text, is_path, init, None if out is None else _os.fspath(out),
            bool(progress), threads, bool(overwrite),
        )
    result = _json.loads(summary)
    result["metrics"] = metrics
    result["weight_change"] = _np.asarray(change, dtype=_np.float64)
    result["config"] = resolved
    return result


def check(
    config: Union[dict, str, "_os.PathLike[str]", None] = None,
    *,
    out: Union[None, str, "_os.PathLike[str]"] = None,
    progress: bool = False,
    threads: Optional[int] = None,
    **overrides: Any,
) -> Dict[str, Any]:
    """A width scan as ``richness check --config F --json`` runs it.

    ``config``: a dict of the check config's keys (see docs/check.md: ``widths``,
    ``seeds``, ``steps``, ``batch``, ``data``, ``model``, ``param``, ``optim``, ...) or
    a TOML file; keyword ``overrides`` set top-level keys (``seeds=4``). Returns the
    report (``claims``, ``criteria``, ``verdict``, ``estimated_r``, ...; each claim's
    ``fit`` has ``slope`` and ``ci95``) plus ``rows``: the raw measurements as columns
    (width, seed, layer, quantity, value) and ``text``: what the command prints.
    """
    if config is None:
        config = {}
    if overrides:
        if not isinstance(config, dict):
            try:
                import tomllib  # Python >= 3.11
            except ImportError:
                raise TypeError("keyword overrides of a TOML file need Python >= 3.11: pass the config as a dict") from None

            with open(_os.fspath(config), "rb") as f:
                config = tomllib.load(f)
        config = {**config, **overrides}
    text, is_path = _config_arg(config)
    report, rows, _ = _native.check_run(
        text, is_path, None if out is None else _os.fspath(out), bool(progress), threads
    )
    result = _json.loads(report)
    rows["quantity"] = _np.asarray(rows["quantity"], dtype=str)
    result["rows"] = rows
    result["text"] = _native.check_text(report)
    return result


def load_weights(path: Union[str, "_os.PathLike[str]"]):
    """Read a safetensors weights file (as ``richness train`` writes them): returns
    ``(arrays, metadata)`` with arrays keyed ``layers.{i}.weight`` etc. and the
    metadata's ``richness.parameterization`` / ``richness.arch`` parsed from JSON."""
    arrays, meta = _native.load_weights(_os.fspath(path))
    meta = dict(meta)
    for k in ("richness.parameterization", "richness.arch"):
        if k in meta:
            meta[k] = _json.loads(meta[k])
    return arrays, meta


def save_weights(
    path: Union[str, "_os.PathLike[str]"],
    arrays: Dict[str, Any],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Write arrays (anything numpy can convert, e.g. detached torch tensors) as a
    float64 safetensors file that ``richness train --init-weights`` and ``richness
    ntk empirical --init-weights`` read."""
    items = []
    for k, v in arrays.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        items.append((str(k), _float_array(v, f"array `{k}`")))
    _native.save_weights(_os.fspath(path), items, metadata)


from . import ntk, fit, sweep, data  # noqa: E402  (submodules use the helpers above)
