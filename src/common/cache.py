"""Derived data computed once and kept on disk (tokenisations, kNN graphs, ...).

A cache entry lives in ``<cache_dir>/<namespace>/<name>-<key>.pt``; the key is a hash of
*everything* the entry depends on — the bytes of the input arrays and every setting — so a changed
feature file or setting never reuses a stale entry. Entries are written atomically.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from src.common.paths import from_root
from src.common.storage import atomic_torch_save

logger = logging.getLogger(__name__)


def content_key(arrays: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """SHA-1 (hex) over the named arrays' dtype, shape and bytes and the JSON of ``settings``."""
    h = hashlib.sha1()
    for name in sorted(arrays):
        a = arrays[name]
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        a = np.ascontiguousarray(a)
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    h.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    return h.hexdigest()


def cache_path(cache_dir: str | Path, namespace: str, name: str, key: str) -> Path:
    return from_root(cache_dir) / namespace / f"{name}-{key[:16]}.pt"


def disk_cached(path: Path, build: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The dict stored at ``path``, or ``build()`` saved there first. Returns (entry, was_cached).

    An unreadable entry (e.g. a truncated file from another tool) is rebuilt, with a warning.
    """
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True), True
        except Exception as e:  # noqa: BLE001 - a broken cache entry is rebuilt, never fatal
            logger.warning("cache entry %s is unreadable (%s); rebuilding it", path, e)
    entry = build()
    atomic_torch_save(entry, path)
    return entry, False
