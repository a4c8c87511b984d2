"""Tangent kernels: ``richness ntk empirical`` and ``richness ntk infinite``."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from . import _native
from . import _float_array


def _weight_arrays(weights: Dict[str, Any]):
    if not isinstance(weights, dict):
        raise TypeError(
            f"weights must be a dict of arrays named layers.{{i}}.weight, got {type(weights).__name__}"
        )
    out = []
    for k, v in weights.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        out.append((str(k), _float_array(v, f"weights[{k!r}]")))
    return out


def _dims_from(weights) -> list:
    layers = sorted(
        (int(k.split(".")[1]), v) for k, v in weights if k.endswith(".weight") and k.startswith("layers.")
    )
    if not layers:
        raise ValueError("weights has no `layers.{i}.weight` array: give dims")
    for i, (l, v) in enumerate(layers):
        if l != i or v.ndim != 2:
            raise ValueError(
                "weights must be layers.0.weight ... layers.{L-1}.weight, each [fan_out, fan_in]: give dims"
            )
    return [layers[0][1].shape[1]] + [v.shape[0] for _, v in layers]


def empirical(
    weights: Dict[str, Any],
    x: Any,
    x2: Any = None,
    *,
    dims: Optional[Sequence[int]] = None,
    activation: str = "relu",
    gain: Optional[float] = None,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    alpha: Optional[float] = None,
    output: Union[str, int] = "mean",
    block: int = 256,
    threads: Optional[int] = None,
) -> np.ndarray:
    """The empirical NTK of an MLP with raw weights ``weights`` (arrays named
    ``layers.{i}.weight`` [fan_out, fan_in], and ``layers.{i}.bias`` for biases), on the
    richness scale given by ``preset`` or ``richness``/``gauge`` (default muP), as
    ``richness ntk empirical`` computes it (float64 arithmetic):

        K[i, j] = sum_l eta_l <df(x_i)/dW_l, df(x2_j)/dW_l>   (+ biases)

    over the raw weights, with the per-layer rate factors eta_l (base rate excluded).

    ``dims`` defaults to the weights' shapes. ``output``: ``"mean"`` (the mean of the
    per-output kernels), ``"sum"`` (the sum over outputs, k times the mean:
    neural-tangents' trace convention), ``"each"`` ([k, N1, N2]) or an output index. Returns float64
    [N1, N2] (N2 = N1 without ``x2``).
    """
    arrays = _weight_arrays(weights)
    if dims is None:
        dims = _dims_from(arrays)
    dims = [int(d) for d in dims]
    bias = any(k.endswith(".bias") for k, _ in arrays)
    x = _float_array(x, "x", 2)
    x2 = None if x2 is None else _float_array(x2, "x2", 2)
    sel = str(output)
    k = _native.ntk_empirical(
        arrays, x, x2, dims, activation, gain, bias, preset, richness, float(gamma0),
        gauge, alpha, sel, int(block), threads,
    )
    return k


def infinite(
    x: Any,
    x2: Any = None,
    *,
    depth: int,
    activation: str = "relu",
    get: str = "ntk",
    gain: Optional[float] = None,
    bias: bool = False,
    alpha: float = 1.0,
    threads: Optional[int] = None,
) -> np.ndarray:
    """The infinite-width NTK (``get="ntk"``) or NNGP (``get="nngp"``) of a
    ``depth``-layer MLP on the richness scale, as ``richness ntk infinite``: float64
    [N1, N2]. The NTK does not depend on alpha (hence not on r); the NNGP carries the
    read-out's 1/alpha^2."""
    if get not in ("ntk", "nngp"):
        raise ValueError(f"get must be `ntk` or `nngp`, got `{get}`")
    x = _float_array(x, "x", 2)
    x2 = None if x2 is None else _float_array(x2, "x2", 2)
    if int(depth) < 1:
        raise ValueError("depth must be at least 1 weight layer")
    ntk, nngp = _native.ntk_infinite(x, x2, int(depth), activation, gain, bool(bias), float(alpha), threads)
    return ntk if get == "ntk" else nngp
