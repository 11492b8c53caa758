"""Per-user test metrics of a run, stored beside its record as ``per_user.npz``.

The trainer's single test evaluation averages a metric over users; this file keeps the values
being averaged, so that two runs (or two configurations' seeds) can be compared *user by user*
(a paired test, see :mod:`src.common.experiment.stats`) instead of by their means alone.

Contents (a compressed ``.npz``, written atomically): ``users`` (int32, the test users ascending)
and, per metric key the evaluator returns (``recall@20``, ``ndcg@10``, ...), a float32 array aligned
with them; per view (``cold``, ``zero``, ``deg0``, ``deg1-4``, ...) ``<view>/users`` (the users
with a relevant test item in that view) and ``<view>/<metric>@<k>`` aligned with those. The mean of
a key's values is the test metric of the same key in ``result.json``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from src.common.storage import atomic_write

FILENAME = "per_user.npz"

PerUser = dict[str, tuple[np.ndarray, np.ndarray]]   # metric key -> (user ids, values)


def write_per_user(run_dir: str | Path, flat: dict[str, np.ndarray]) -> Path:
    """Store the evaluator's ``return_per_user`` dict compactly (ids int32, values float32)."""
    arrays = {k: np.asarray(v, dtype=np.int32 if _is_users(k) else np.float32) for k, v in flat.items()}
    return atomic_write(Path(run_dir) / FILENAME, lambda f: np.savez_compressed(f, **arrays), mode="wb")


def load_per_user(run_dir: str | Path) -> PerUser | None:
    """``{metric key: (users, values)}`` of the run in ``run_dir``, or None when it has no
    per-user file (trained before they were stored, or not finished)."""
    path = Path(run_dir) / FILENAME
    if not path.exists():
        return None
    with np.load(path) as npz:
        flat = {k: npz[k] for k in npz.files}
    out: PerUser = {}
    for key, values in flat.items():
        if _is_users(key):
            continue
        view = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        out[key] = (flat[f"{view}users"], values)
    return out


def _is_users(key: str) -> bool:
    return key == "users" or key.endswith("/users")
