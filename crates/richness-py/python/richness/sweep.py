"""Sweeps: ``richness sweep run``."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from . import _native


def run(
    spec: Union[str, "os.PathLike[str]"],
    db: Union[str, "os.PathLike[str]"],
    *,
    resume: bool = False,
    progress: bool = False,
    threads: Optional[int] = None,
) -> Dict[str, Any]:
    """Run a sweep spec (TOML file, see docs/sweep.md) into the SQLite store ``db``,
    as ``richness sweep run SPEC --db DB``. Returns ``report`` (planned, completed,
    diverged, failed, ...), ``runs`` and ``metrics``: columns as numpy arrays (or
    lists of str), ready for ``pandas.DataFrame``."""
    spec = os.fspath(spec)
    if not os.path.exists(spec):
        raise FileNotFoundError(f"{spec}: no such sweep spec")
    report, runs, metrics = _native.sweep_run(spec, os.fspath(db), bool(resume), bool(progress), threads)
    for cols in (runs, metrics):
        for k, v in list(cols.items()):
            if isinstance(v, list):
                cols[k] = np.asarray(v, dtype=str)
    return {"report": report, "runs": runs, "metrics": metrics}
