"""Item feature stores: rows of a per-item array, read all at once or in batches on demand.

Two backends behind one interface (:class:`FeatureStore`):

- :class:`ArrayStore` — the array in memory (the default ``feature_store: npy`` path);
- :class:`LmdbStore` — one named LMDB database per array, one entry per item, for catalogues whose
  features do not fit in memory (``feature_store: lmdb``). Built from ``.npy`` files by
  :func:`write_lmdb` (``python main.py convert``).

LMDB layout (a folder, by default ``data/<dataset>/features.lmdb/``):

- ``data.mdb`` / ``lock.mdb`` — the environment; database ``<name>`` (e.g. ``text``) maps the key
  ``itemID`` as 8-byte big-endian unsigned (so LMDB's key order is itemID order) to the item's row,
  raw little-endian bytes of ``dtype`` and length ``dim``;
- ``manifest.json`` — per array: ``role`` (``feature``, or ``codes`` for item token codes),
  ``dtype``, ``n_rows``, ``dim`` and the SHA-1 of the row bytes (the dataset fingerprint uses it, so
  the store is never re-hashed on load).

Models never see a store's path: the dataset hands them tensors (``store.tensor(device)``, filled
batch by batch) or rows (``store.rows(index)``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import torch

from src.common.errors import DataError
from src.common.storage import atomic_write_json

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "item-rows-lmdb/1"
DEFAULT_BATCH_ROWS = 65536


class StoreError(DataError):
    """A store that cannot be read or written as asked."""


def item_key(item: int) -> bytes:
    """The LMDB key of an item id: 8-byte big-endian, so byte order equals numeric order."""
    return int(item).to_bytes(8, "big")


class FeatureStore:
    """Rows of one per-item array: ``n_rows`` x ``dim`` of ``dtype``.

    ``rows(index)`` gives the rows of some items, ``batches(n)`` walks all rows in order and
    ``tensor(device)`` materialises them (batch by batch, straight onto ``device``).
    """

    name: str
    n_rows: int
    dim: int
    dtype: np.dtype

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, self.dim

    def rows(self, index) -> torch.Tensor:
        """The rows of the items in ``index`` (any order, repeats allowed): (len(index), dim)."""
        raise NotImplementedError

    def batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, rows[start:start + batch_rows])`` over all rows, in item order."""
        raise NotImplementedError

    def tensor(self, device: torch.device | str | None = None,
               batch_rows: int = DEFAULT_BATCH_ROWS) -> torch.Tensor:
        """All rows as one (n_rows, dim) tensor on ``device``, filled one batch at a time."""
        out = torch.empty(self.shape, dtype=getattr(torch, self.dtype.name), device=device)
        for start, block in self.batches(batch_rows):
            out[start:start + len(block)] = block.to(device)
        return out

    def _checked_index(self, index) -> np.ndarray:
        idx = torch.as_tensor(index).cpu().numpy() if not isinstance(index, np.ndarray) else index
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_rows):
            bad = idx[(idx < 0) | (idx >= self.n_rows)][0]
            raise IndexError(f"{self.name} features: item id {bad} out of range [0, {self.n_rows})")
        return idx


class ArrayStore(FeatureStore):
    """An in-memory (n_rows, dim) tensor; ``tensor()`` returns it without a copy on its device."""

    def __init__(self, name: str, values: torch.Tensor):
        self.name, self.values = name, values
        self.n_rows, self.dim = values.shape
        self.dtype = np.dtype(str(values.dtype).removeprefix("torch."))

    def rows(self, index) -> torch.Tensor:
        return self.values[torch.as_tensor(self._checked_index(index))]

    def batches(self, batch_rows: int = DEFAULT_BATCH_ROWS):
        for start in range(0, self.n_rows, batch_rows):
            yield start, self.values[start:start + batch_rows]

    def tensor(self, device=None, batch_rows: int = DEFAULT_BATCH_ROWS) -> torch.Tensor:
        return self.values if device is None else self.values.to(device)


class LmdbStore(FeatureStore):
    """One array of an LMDB feature store (see the module docstring for the layout).

    The store holds no open handle: the read-only environment is shared per (folder, process) and
    opened on first use, so a dataset holding stores can be pickled or forked to worker processes.
    Rows read are checked to be finite.
    """

    def __init__(self, path: str | Path, name: str, entry: Mapping):
        self.path, self.name = Path(path), name
        self.n_rows, self.dim = int(entry["n_rows"]), int(entry["dim"])
        self.dtype = np.dtype(entry["dtype"])
        self._row_bytes = self.dim * self.dtype.itemsize

    def _open(self):
        return _reader(self.path, self.name)

    def _decode(self, values: list[bytes], first_item: int | np.ndarray) -> torch.Tensor:
        bad = next((k for k, v in enumerate(values) if len(v) != self._row_bytes), None)
        if bad is not None:
            item = first_item + bad if isinstance(first_item, int) else first_item[bad]
            raise StoreError(f"{self.path}: {self.name} row of item {item} has {len(values[bad])} bytes, "
                             f"expected {self._row_bytes} ({self.dim} x {self.dtype})")
        arr = np.frombuffer(b"".join(values), dtype=self.dtype).reshape(len(values), self.dim)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            k = int(np.flatnonzero(~np.isfinite(arr).all(1))[0])
            item = first_item + k if isinstance(first_item, int) else first_item[k]
            raise StoreError(f"{self.path}: {self.name} row of item {item} holds NaN or inf")
        return torch.from_numpy(arr.astype(self.dtype.newbyteorder("="), copy=True))

    def rows(self, index) -> torch.Tensor:
        idx = self._checked_index(index)
        env, db = self._open()
        with env.begin(db=db, buffers=False) as txn:
            found = txn.cursor().getmulti([item_key(i) for i in idx.tolist()])
        if len(found) != len(idx):
            got = {k for k, _ in found}
            missing = next(i for i in idx.tolist() if item_key(i) not in got)
            raise StoreError(f"{self.path}: no {self.name} row for item {missing}")
        return self._decode([v for _, v in found], idx)

    def batches(self, batch_rows: int = DEFAULT_BATCH_ROWS):
        env, db = self._open()
        start, block = 0, []
        with env.begin(db=db, buffers=False) as txn:
            for key, value in txn.cursor().iternext():
                if int.from_bytes(key, "big") != start + len(block):
                    raise StoreError(f"{self.path}: {self.name} has no row for item {start + len(block)} "
                                     f"(next key is item {int.from_bytes(key, 'big')})")
                block.append(value)
                if len(block) == batch_rows:
                    yield start, self._decode(block, start)
                    start, block = start + len(block), []
        if block:
            yield start, self._decode(block, start)
            start += len(block)
        if start != self.n_rows:
            raise StoreError(f"{self.path}: {self.name} holds {start} rows, the manifest says {self.n_rows}")


# ----------------------------------------------------------------------------- opening
def read_manifest(path: str | Path) -> dict:
    """The manifest of the LMDB store at ``path`` (a folder); StoreError if absent or malformed."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: not an LMDB feature store (no {MANIFEST}); build one with "
                         f"python main.py convert -d <dataset>") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{file}: malformed JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{file}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("arrays"), dict):
        raise StoreError(f"{file}: unknown store format {manifest.get('format')!r} (expected {FORMAT!r})")
    for name, entry in manifest["arrays"].items():
        try:
            ok = int(entry["n_rows"]) >= 0 and int(entry["dim"]) >= 1 and np.dtype(entry["dtype"]).kind in "fiu"
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise StoreError(f"{file}: array {name!r} needs n_rows >= 0, dim >= 1 and a numeric dtype, got {entry!r}")
    return manifest


def open_lmdb(path: str | Path, role: str | None = None) -> dict[str, LmdbStore]:
    """The arrays of the LMDB store at ``path`` by name (only those of ``role`` if given)."""
    manifest = read_manifest(path)
    stores = {name: LmdbStore(path, name, entry) for name, entry in manifest["arrays"].items()
              if role is None or entry.get("role", "feature") == role}
    for name, store in stores.items():  # check once that the environment holds what the manifest says
        env, db = _reader(Path(path), name)
        with env.begin(db=db) as txn:
            entries = txn.stat(db)["entries"]
        if entries != store.n_rows:
            raise StoreError(f"{path}: {name} holds {entries} rows, the manifest says {store.n_rows}")
    return stores


#: read-only environments by (folder, process id) -> (env, {name: db handle}); LMDB allows one
#: environment per folder and process, and handles must not cross a fork
_READERS: dict[tuple[Path, int], tuple[object, dict]] = {}


def _reader(path: Path, name: str):
    """The shared read-only environment of ``path`` and the handle of its database ``name``."""
    import lmdb

    key = (Path(path).resolve(), os.getpid())
    if key not in _READERS:
        _READERS[key] = (_open_env(key[0], readonly=True), {})
    env, dbs = _READERS[key]
    if name not in dbs:
        try:
            dbs[name] = env.open_db(name.encode(), create=False)
        except lmdb.Error as e:
            raise StoreError(f"{path}: no array {name!r} in the LMDB environment ({e})") from None
    return env, dbs[name]


def _close_reader(path: Path) -> None:
    """Close this process's reader of ``path`` (before writing to it or replacing it)."""
    entry = _READERS.pop((Path(path).resolve(), os.getpid()), None)
    if entry is not None:
        entry[0].close()


def _open_env(path: Path, readonly: bool, map_size: int = 1 << 30):
    import lmdb  # a hard requirement, imported here so the in-memory path never needs it

    try:
        return lmdb.open(str(path), readonly=readonly, lock=not readonly, readahead=False,
                         max_dbs=64, map_size=map_size, subdir=True, create=not readonly)
    except lmdb.Error as e:
        raise StoreError(f"{path}: cannot open the LMDB environment ({e})") from None


# ----------------------------------------------------------------------------- writing
def write_lmdb(path: str | Path, arrays: Mapping[str, np.ndarray], role: str = "feature",
               add: bool = False, batch_rows: int = DEFAULT_BATCH_ROWS) -> dict:
    """Write 2-D arrays (row i = item i) into the LMDB store at ``path``; return its manifest.

    A new store is built in a temporary folder beside ``path`` and moved into place when complete,
    so a crash never leaves a half-written store. ``add=True`` adds arrays (e.g. item token codes,
    ``role='codes'``) to an existing store instead; existing names are then refused. Arrays may be
    memory-mapped: they are read ``batch_rows`` rows at a time. Float arrays must be finite.
    """
    path = Path(path)
    for name, arr in arrays.items():
        if arr.ndim != 2:
            raise StoreError(f"{name}: expected a 2-D array (items x dims), got shape {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise StoreError(f"{name}: rows must be numeric, got dtype {arr.dtype}")
    if add:
        manifest = read_manifest(path)
        clash = sorted(set(arrays) & set(manifest["arrays"]))
        if clash:
            raise StoreError(f"{path}: already holds {', '.join(clash)}")
        _close_reader(path)
        _write_arrays(path, arrays, role, batch_rows, manifest)
        _log_written(path, arrays)
        return manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        manifest = {"format": FORMAT, "key": "itemID as 8-byte big-endian unsigned", "arrays": {}}
        _write_arrays(tmp, arrays, role, batch_rows, manifest)
        old = path.with_name(f".{path.name}.old")
        _close_reader(path)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _log_written(path, arrays)
    return manifest


def _log_written(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    logger.info("wrote %s to %s", ", ".join(f"{n} {tuple(a.shape)}" for n, a in arrays.items()), path)


def _write_arrays(folder: Path, arrays: Mapping[str, np.ndarray], role: str, batch_rows: int,
                  manifest: dict) -> None:
    existing = sum(_stored_bytes(e["n_rows"], e["dim"] * np.dtype(e["dtype"]).itemsize)
                   for e in manifest["arrays"].values())
    new = sum(_stored_bytes(a.shape[0], a.shape[1] * a.dtype.itemsize) for a in arrays.values())
    env = _open_env(folder, readonly=False, map_size=int((existing + new) * 1.25) + (64 << 20))
    try:
        for name, arr in arrays.items():
            dtype = arr.dtype.newbyteorder("<")
            db = env.open_db(name.encode())
            sha1 = hashlib.sha1()
            for start in range(0, arr.shape[0], batch_rows):
                block = np.ascontiguousarray(arr[start:start + batch_rows], dtype=dtype)
                if block.dtype.kind == "f" and not np.isfinite(block).all():
                    row = start + int(np.flatnonzero(~np.isfinite(block).all(1))[0])
                    raise StoreError(f"{name}: row {row} (itemID {row}) holds NaN or inf")
                sha1.update(block.tobytes())
                with env.begin(write=True, db=db) as txn:
                    txn.cursor().putmulti(((item_key(start + k), row.tobytes()) for k, row in enumerate(block)),
                                          append=True)
            manifest["arrays"][name] = {"role": role, "dtype": dtype.str, "n_rows": int(arr.shape[0]),
                                        "dim": int(arr.shape[1]), "sha1": sha1.hexdigest()}
        env.sync(True)
    finally:
        env.close()
    atomic_write_json(folder / MANIFEST, manifest)


def _stored_bytes(n_rows: int, row_bytes: int, page: int = 4096) -> int:
    """An upper bound of LMDB's space for ``n_rows`` values of ``row_bytes`` (large values take
    whole overflow pages; small ones share leaf pages with their keys and node headers)."""
    if row_bytes + 24 > page // 2:
        return n_rows * (-(-(row_bytes + 16) // page)) * page
    return n_rows * 2 * (row_bytes + 24)
