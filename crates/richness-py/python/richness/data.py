"""Datasets as ``richness train`` loads them (the same split and order)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import numpy as np

from . import _native


def load(
    dataset: str = "digits",
    *,
    train_size: Optional[int] = None,
    test_size: Optional[int] = None,
    subset_seed: Optional[int] = None,
    standardize: bool = False,
) -> Dict[str, np.ndarray]:
    """The arrays of a data spec (``digits``, ``mnist``, ``synthetic:...``,
    ``npy:...``; the keys of a config's ``[data]`` table): ``x_train`` [N, d],
    ``y_train`` [N, k] (one-hot ±... targets as richness trains on them),
    ``labels_train`` (classification data), and the same for ``test``."""
    cfg: Dict[str, Any] = {"dataset": dataset, "standardize": bool(standardize)}
    if train_size is not None:
        cfg["train_size"] = int(train_size)
    if test_size is not None:
        cfg["test_size"] = int(test_size)
    if subset_seed is not None:
        cfg["subset_seed"] = int(subset_seed)
    return _native.data_load(json.dumps(cfg))


def export(dataset: str, out: "os.PathLike[str] | str", **kwargs: Any) -> Dict[str, str]:
    """Write the arrays of :func:`load` as ``.npy`` files in ``out`` (as ``richness
    data export``); returns {name: path}."""
    os.makedirs(os.fspath(out), exist_ok=True)
    paths = {}
    for k, v in load(dataset, **kwargs).items():
        if isinstance(v, np.ndarray):
            p = os.path.join(os.fspath(out), f"{k}.npy")
            np.save(p, v)
            paths[k] = p
    return paths
