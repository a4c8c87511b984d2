"""Log-log width fits and verdicts, as ``richness check`` computes them."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native


def slope(widths: Sequence[float], values: Any) -> Dict[str, Any]:
    """The slope of ln(value) against ln(width) with its 95 % interval.

    ``values``: one value per width (1-D: least squares, Student-t interval on the
    residuals) or one row of seed values per width ([widths, seeds], or a list of
    lists with more seeds at some widths: the fit of the seed means with the
    delete-one-seed jackknife interval that ``richness check`` uses).

    Returns ``{"slope", "intercept", "slope_se", "ci95": (lo, hi), "r2", "points"}``.

    >>> slope([256, 512, 1024], [1.0, 0.5, 0.25])["slope"]
    -1.0
    """
    w = [float(x) for x in widths]
    if isinstance(values, np.ndarray) and values.ndim == 1 or (
        not isinstance(values, np.ndarray) and all(np.ndim(v) == 0 for v in values)
    ):
        rows = [[float(v)] for v in np.asarray(values, dtype=np.float64)]
    else:
        rows = [[float(v) for v in np.ravel(r)] for r in values]
    if len(w) != len(rows):
        raise ValueError(f"{len(w)} widths but {len(rows)} values")
    out = _native.fit_slope(w, rows)
    if out is None:
        raise ValueError(
            "no fit: need at least two distinct positive widths and positive finite values"
        )
    f = json.loads(out)
    # JSON has no infinities: an interval without degrees of freedom comes back as null.
    lo, hi = f["ci95"]
    f["ci95"] = (-math.inf if lo is None else lo, math.inf if hi is None else hi)
    if f.get("slope_se") is None:
        f["slope_se"] = math.inf
    return f


def verdict(
    fit: Union[Dict[str, Any], Tuple[float, Tuple[float, float]]],
    predicted: Union[float, Tuple[float, float]],
    tolerance: float = 0.05,
    seeds: Optional[int] = None,
) -> Dict[str, Any]:
    """The verdict ``richness check`` gives a slope: ``pass`` when its 95 % interval
    lies inside [predicted - tolerance, predicted + tolerance] (or an interval
    prediction widened by the tolerance), ``fail`` when wholly outside, ``unclear``
    when it straddles an edge (then ``seeds_to_decide`` estimates the seeds that
    would decide, when ``seeds`` is given).

    ``fit``: a dict from :func:`slope` or ``(slope, (lo, hi))``. Returns
    ``{"verdict", "reason", "seeds_to_decide"?}``.
    """
    if isinstance(fit, dict):
        s, ci = fit["slope"], tuple(fit["ci95"])
    else:
        s, ci = fit
    ci = (-math.inf if ci[0] is None else ci[0], math.inf if ci[1] is None else ci[1])
    p = (float(predicted), float(predicted)) if np.ndim(predicted) == 0 else tuple(map(float, predicted))
    return json.loads(
        _native.judge(float(s), (float(ci[0]), float(ci[1])), p, float(tolerance), seeds)
    )
