"""Reading and validating a dataset in MMRec's layout.

``data/<name>/<name>.inter`` is tab-separated with a header: ``userID``, ``itemID`` (0-based ints)
and ``x_label`` (0 train, 1 valid, 2 test); other columns are allowed and ignored. Each modality's
features are a ``.npy`` of float rows in itemID order, named in the dataset YAML
(``feature_files: {image: image_feat.npy, text: text_feat.npy}``); a dataset may have both, one
or none. Every problem is reported as a :class:`DataError` naming the file, line or key.

Features live in a :class:`~src.common.data.feature_store.FeatureStore` per modality: in memory from the
``.npy`` files (``feature_store: npy``, the default), or rows read on demand from an LMDB store
(``feature_store: lmdb``; ``python main.py convert`` builds it from the ``.npy`` files).
``dataset.features[m]`` is the full (n_items, d) float tensor either way (read batch by batch from
LMDB); ``dataset.feature_stores[m].rows(items)`` reads some rows only.

A :class:`Dataset` hands models tensors only (splits, the sparse train matrix, item degrees,
features); models never see paths.
"""
from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from src.common.errors import DataError, first_non_utf8_line
from src.common.data.feature_store import ArrayStore, FeatureStore, open_lmdb
from src.common.paths import from_root

logger = logging.getLogger(__name__)

SPLITS = {0: "train", 1: "valid", 2: "test"}


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays of (user, item) pairs of one split, int64."""

    users: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def matrix(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """Binary CSR user x item matrix of these pairs."""
        data = np.ones(len(self.users), dtype=np.float32)
        return sp.csr_matrix((data, (self.users, self.items)), shape=(n_users, n_items))


class FeatureTensors(Mapping):
    """``modality -> (n_items, d)`` tensor, read from the feature stores when asked for.

    In-memory stores return their tensor itself; an LMDB store is read batch by batch on every
    access (keep the result rather than asking twice).
    """

    def __init__(self, stores: Mapping[str, FeatureStore], batch_rows: int):
        self._stores, self._batch_rows = stores, batch_rows

    def __getitem__(self, modality: str) -> torch.Tensor:
        return self._stores[modality].tensor(batch_rows=self._batch_rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stores)

    def __len__(self) -> int:
        return len(self._stores)


class Dataset:
    """Validated interactions, splits and item features of one dataset.

    Build it with :func:`load_dataset` (files) or :meth:`from_frame` (in-memory, for tests).
    ``features`` maps a modality to a tensor or to a :class:`FeatureStore` (e.g. LMDB).
    """

    def __init__(self, name: str, n_users: int, n_items: int, splits: Mapping[str, Interactions],
                 features: Mapping[str, torch.Tensor | FeatureStore], cold_threshold: int = 10,
                 missing_features: Mapping[str, str] | None = None, item_text_path: Path | None = None,
                 source_files: list[Path] | None = None, feature_help: str = "",
                 feature_batch_rows: int = 65536, id_mapping_paths: Mapping[str, Path] | None = None):
        self.name = name
        self.n_users, self.n_items = n_users, n_items
        self.train, self.valid, self.test = splits["train"], splits["valid"], splits["test"]
        self.feature_batch_rows = feature_batch_rows
        self.features = features
        self.missing_features = dict(missing_features or {})
        self.cold_threshold = cold_threshold
        self.item_text_path = item_text_path
        self.source_files = list(source_files or [])
        self.feature_help = feature_help
        self.id_mapping_paths = dict(id_mapping_paths or {})  # "user"/"item" -> MMRec's *_id_mapping.csv
        self.train_matrix = self.train.matrix(n_users, n_items)
        self.item_degree = np.asarray(self.train_matrix.sum(0)).ravel().astype(np.int64)
        self.user_degree = np.asarray(self.train_matrix.sum(1)).ravel().astype(np.int64)
        self._cache: dict[str, Any] = {}
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(cls, name: str, inter: pd.DataFrame, features: Mapping[str, np.ndarray] | None = None,
                   cold_threshold: int = 10, n_items: int = 0, source: str = "<memory>",
                   user_field: str = "userID", item_field: str = "itemID", split_field: str = "x_label",
                   feature_sources: Mapping[str, str] | None = None, **kwargs) -> "Dataset":
        """Validate an interaction table (and optional feature arrays) and build the dataset."""
        users, items, labels = _validated_columns(inter, source, user_field, item_field, split_field)
        # sizes follow the largest id: check that it is bounded by the data before allocating by it
        _check_dense_ids(users, user_field, source)
        if n_items:
            beyond = np.flatnonzero(items >= n_items)
            if len(beyond):
                raise DataError(f"{source}, line {beyond[0] + 2}: item id {items[beyond[0]]} is out of range "
                                f"for n_items={n_items}")
        else:
            _check_dense_ids(items, item_field, source)
        n_users = int(users.max()) + 1
        n_items = n_items or int(items.max()) + 1
        users, items, labels = _drop_duplicates(users, items, labels, source)
        splits = {}
        for label, split in SPLITS.items():
            mask = labels == label
            if not mask.any():
                raise DataError(f"{source}: the {split} split ({split_field}={label}) has no interactions")
            splits[split] = Interactions(users[mask], items[mask])
        names = feature_sources or {}
        checked = {m: _validated_store(f, m, n_items, names.get(m, f"{m} features")) if isinstance(f, FeatureStore)
                   else _validated_features(f, m, n_items, names.get(m, f"{m} features"))
                   for m, f in (features or {}).items()}
        return cls(name, n_users, n_items, splits, checked, cold_threshold=cold_threshold, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (e.g. into Ray's object store) without the derived caches: they hold torch
        sparse tensors and are rebuilt, once, where the dataset is used."""
        return dict(self.__dict__, _cache={})

    # ------------------------------------------------------------------ views
    @property
    def features(self) -> FeatureTensors:
        """``modality -> (n_items, d)`` float tensor (read in batches when the store is LMDB)."""
        return FeatureTensors(self.feature_stores, self.feature_batch_rows)

    @features.setter
    def features(self, features: Mapping[str, torch.Tensor | FeatureStore]) -> None:
        self.feature_stores: dict[str, FeatureStore] = {
            m: f if isinstance(f, FeatureStore) else ArrayStore(m, f) for m, f in features.items()}

    @property
    def modalities(self) -> list[str]:
        """Modalities with features, in a fixed order (image before text)."""
        order = {"image": 0, "text": 1}
        return sorted(self.feature_stores, key=lambda m: (order.get(m, 2), m))

    def require_features(self, model: str, modalities: list[str] | None = None) -> list[str]:
        """The modalities a multimodal ``model`` can use; raise a clear error when there are none.

        ``modalities`` lists the ones the model needs all of (default: at least one of any).
        """
        if modalities is None:
            if self.features:
                return self.modalities
            wanted = list(self.missing_features) or ["image", "text"]
        else:
            wanted = [m for m in modalities if m not in self.features]
            if not wanted:
                return list(modalities)
        msg = [f"{model} needs item features ({' and/or '.join(wanted)}) but dataset {self.name!r} has "
               f"{'only ' + ', '.join(self.modalities) if self.features else 'none'}."]
        missing = [self.missing_features[m] for m in wanted if m in self.missing_features]
        if missing:
            msg.append(f"Missing file(s): {', '.join(str(p) for p in missing)}.")
        if self.feature_help:
            msg.append(self.feature_help.strip())
        raise DataError(" ".join(msg))

    @property
    def cold_items(self) -> np.ndarray:
        """Bool mask (n_items,): fewer than ``cold_threshold`` train interactions."""
        return self.item_degree < self.cold_threshold

    @property
    def zero_items(self) -> np.ndarray:
        """Bool mask (n_items,): no train interaction at all (zero-shot items)."""
        return self.item_degree == 0

    def split(self, name: str) -> Interactions:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Compute something derived from the data once per dataset (e.g. the normalised adjacency)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @property
    def fingerprint(self) -> str:
        """Content hash of the files the dataset was read from (or of the arrays, in memory)."""
        if self._fingerprint is None:
            if self.source_files:
                self._fingerprint = fingerprint_files(self.source_files)
            else:
                h = hashlib.sha1()
                for part in (self.train, self.valid, self.test):
                    h.update(part.users.tobytes())
                    h.update(part.items.tobytes())
                for m in self.modalities:
                    h.update(m.encode())
                    h.update(self.features[m].numpy().tobytes())
                self._fingerprint = h.hexdigest()
        return self._fingerprint

    def file_hashes(self) -> dict[str, str]:
        """SHA-1 of each source file, by file name (empty for an in-memory dataset)."""
        if "file_hashes" not in self._cache:
            self._cache["file_hashes"] = {Path(p).name: fingerprint_files([p]) for p in self.source_files}
        return self._cache["file_hashes"]

    def content_summary(self) -> dict[str, Any]:
        """What a saved run needs to recognise this data again: counts, the fingerprint and a hash
        per file (so that a mismatch can name the file that changed)."""
        return {"users": self.n_users, "items": self.n_items, "train": len(self.train),
                "valid": len(self.valid), "test": len(self.test), "fingerprint": self.fingerprint,
                "files": self.file_hashes()}

    def item_text(self) -> list[str]:
        """One text per item (itemID order) from the dataset's ``item_text_file``; ``''`` for items
        the file does not list. Empty list when the dataset declares no such file or it is absent."""
        if "item_text" not in self._cache:
            self._cache["item_text"] = _read_item_text(self.item_text_path, self.n_items)
        return self._cache["item_text"]

    def original_ids(self, kind: str) -> list[str]:
        """The ids the source data used (e.g. ASINs), one per user or item (``kind``) in id order, from
        MMRec's ``u_id_mapping.csv`` / ``i_id_mapping.csv`` in the dataset folder; ``''`` for ids the
        file does not list; an empty list without such a file."""
        key = f"original_ids/{kind}"
        if key not in self._cache:
            n = self.n_items if kind == "item" else self.n_users
            path = self.id_mapping_paths.get(kind)
            self._cache[key] = _read_id_mapping(path, n, kind) if path else []
        return self._cache[key]

    def stats(self) -> dict[str, Any]:
        n_inter = len(self.train) + len(self.valid) + len(self.test)
        cold_test = self.cold_items[self.test.items].mean()
        return {"users": self.n_users, "items": self.n_items, "interactions": n_inter,
                "train": len(self.train), "valid": len(self.valid), "test": len(self.test),
                "density": n_inter / (self.n_users * self.n_items),
                "modalities": ",".join(f"{m}:{self.feature_stores[m].dim}" for m in self.modalities) or "none",
                "cold_test_share": float(cold_test), "zero_items": int(self.zero_items.sum())}

    def __repr__(self) -> str:
        s = self.stats()
        return (f"Dataset({self.name}: {s['users']} users, {s['items']} items, {s['interactions']} "
                f"interactions, features {s['modalities']})")


# ------------------------------------------------------------------------- file loading
@dataclass(frozen=True)
class DatasetFiles:
    """Where a dataset's files are: the interactions, present and missing feature files.

    With ``feature_store: lmdb``, ``lmdb`` is the store's folder, ``features`` maps the modalities
    it holds to that folder, and the store's manifest (with the content hash of every array)
    stands for the features in ``sources``.
    """

    folder: Path
    inter: Path
    features: dict[str, Path]
    missing: dict[str, Path]
    lmdb: Path | None = None

    @property
    def sources(self) -> list[Path]:
        if self.lmdb is not None:
            return [self.inter, self.lmdb / "manifest.json"]
        return [self.inter, *self.features.values()]


def dataset_files(config) -> DatasetFiles:
    """Locate ``data_path/<dataset>/`` files as the config names them (without reading them)."""
    name = config.dataset
    folder = from_root(config.data_path) / name
    inter_path = folder / (config.inter_file or f"{name}.inter")
    if not inter_path.exists():
        raise DataError(f"interaction file not found: {inter_path} (dataset {name!r}; set inter_file "
                        f"in src/configs/dataset/{name}.yaml)")
    names = dict(config.feature_files)
    if config.feature_store == "lmdb":
        store = folder / config.lmdb_path
        if not (store / "manifest.json").exists():
            raise DataError(f"feature_store: lmdb but there is no LMDB feature store at {store}; build it "
                            f"from the .npy files with: python main.py convert -d {name}")
        held = open_lmdb(store, role="feature")
        wanted = list(names) or list(held)
        present = {m: store for m in wanted if m in held}
        missing = {m: store / m for m in wanted if m not in held}
        return DatasetFiles(folder, inter_path, present, missing, lmdb=store)
    if not names:  # no declaration: pick up MMRec's usual names when present
        names = {m: f"{m}_feat.npy" for m in ("image", "text") if (folder / f"{m}_feat.npy").exists()}
    present = {m: folder / f for m, f in names.items() if (folder / f).exists()}
    missing = {m: folder / f for m, f in names.items() if not (folder / f).exists()}
    return DatasetFiles(folder, inter_path, present, missing)


def fingerprint_files(paths: list[Path]) -> str:
    """SHA-1 over the names and contents of ``paths`` (read in 4 MiB chunks)."""
    h = hashlib.sha1()
    for path in paths:
        h.update(Path(path).name.encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def content_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two :meth:`Dataset.content_summary` results, in words (empty if the
    same). ``saved`` may hold only a ``fingerprint`` (records written before summaries existed)."""
    changes = [f"{key} {saved[key]} -> {current[key]}" for key in ("users", "items", "train", "valid", "test")
               if key in saved and saved[key] != current[key]]
    if "files" in saved:
        old, new = saved["files"], current["files"]
        changes += [f"{name} changed" for name in old if name in new and old[name] != new[name]]
        changes += [f"{name} is gone" for name in old if name not in new]
        changes += [f"{name} is new" for name in new if name not in old]
    if not changes and saved.get("fingerprint") != current["fingerprint"]:
        changes.append(f"content hash {str(saved.get('fingerprint'))[:12]} -> {current['fingerprint'][:12]}")
    return changes


def _read_item_text(path: Path | None, n_items: int) -> list[str]:
    if path is None:
        return []
    if not Path(path).exists():
        logger.warning("item text file not found: %s (item_text_file in the dataset YAML); no titles", path)
        return []
    df = read_tsv_table(path)
    missing = [c for c in ("itemID", "text") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the header has {list(df.columns)}")
    ids = pd.to_numeric(df["itemID"], errors="coerce")
    bad = ids.isna() | (ids < 0) | (ids >= n_items)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}, line {row + 2}: itemID {df['itemID'].iloc[row]!r} is not an item id "
                        f"in 0..{n_items - 1}")
    text = np.full(n_items, "", dtype=object)
    text[ids.to_numpy().astype(np.int64)] = df["text"].to_numpy()
    return text.tolist()


def read_tsv_table(path) -> pd.DataFrame:
    """A tab-separated table with a header, every cell a string; bad input is one DataError line."""
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    except UnicodeDecodeError:
        raise DataError(f"{path}, line {first_non_utf8_line(path)}: not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a tab-separated table with a header ({str(e).strip()})") from None


#: MMRec's id mapping files (its preprocessing writes them beside the .inter): source id, our id
ID_MAPPING_FILES = {"user": "u_id_mapping.csv", "item": "i_id_mapping.csv"}


def _read_id_mapping(path: Path, n: int, kind: str) -> list[str]:
    """``path``: tab-separated with a header; one column holds our 0-based id (``userID`` /
    ``itemID``), the other the source id."""
    df = read_tsv_table(path)
    ours = f"{kind}ID"
    if ours not in df.columns or len(df.columns) < 2:
        raise DataError(f"{path}: expected two tab-separated columns, the source id and {ours}; the header "
                        f"has {list(df.columns)}")
    source = next(c for c in df.columns if c != ours)
    ids = pd.to_numeric(df[ours], errors="coerce")
    bad = ids.isna() | (ids < 0) | (ids >= n) | (ids != ids.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}, line {row + 2}: {ours} {df[ours].iloc[row]!r} is not an id in 0..{n - 1} (the dataset has {n} {kind}s)")
    out = np.full(n, "", dtype=object)
    out[ids.to_numpy().astype(np.int64)] = df[source].to_numpy()
    return out.tolist()


def load_dataset(config) -> Dataset:
    """Read ``data_path/<dataset>/`` as the config describes and validate it."""
    files = dataset_files(config)
    inter = _read_inter(files.inter, [config.user_field, config.item_field, config.split_field])
    if files.lmdb is not None:  # dataset_files has opened it once already: it reads
        features = {m: s for m, s in open_lmdb(files.lmdb, role="feature").items() if m in files.features}
    else:
        features = {m: mapped_npy(path) for m, path in files.features.items()}
    if files.missing:
        logger.info("dataset %s: feature file(s) not found, ID-only models still run: %s",
                    config.dataset, ", ".join(str(p) for p in files.missing.values()))
    item_text = files.folder / config.item_text_file if config.item_text_file else None
    ds = Dataset.from_frame(config.dataset, inter, features, cold_threshold=config.cold_threshold,
                            n_items=config.n_items, source=str(files.inter), user_field=config.user_field,
                            item_field=config.item_field, split_field=config.split_field,
                            feature_sources={m: str(p) for m, p in files.features.items()},
                            missing_features={m: str(p) for m, p in files.missing.items()},
                            item_text_path=item_text, source_files=files.sources,
                            feature_help=config.feature_help, feature_batch_rows=config.feature_batch_rows,
                            id_mapping_paths={kind: files.folder / name for kind, name in ID_MAPPING_FILES.items()
                                              if (files.folder / name).exists()})
    logger.info("%r", ds)
    return ds


def mapped_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only (rows are read when used)."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read as a .npy array ({e})") from None


def _read_inter(path: Path, required: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise DataError(f"{path}, line {first_non_utf8_line(path)}: not UTF-8 text (a binary file, or another "
                        f"encoding); .inter files are UTF-8, tab-separated, with a header") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: not a tab-separated table with a header ({e})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the header has {list(df.columns)} "
                        f"(columns are tab-separated)")
    if df.empty:
        raise DataError(f"{path}: no interactions below the header")
    return df


def _validated_columns(df: pd.DataFrame, source: str, user_field: str, item_field: str,
                       split_field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three required columns as int64 arrays; bad values are reported with their line."""
    missing = [c for c in (user_field, item_field, split_field) if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; have {list(df.columns)}")
    if len(df) == 0:
        raise DataError(f"{source}: no interactions")
    out = []
    for col in (user_field, item_field, split_field):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}, line {row + 2}: column {col!r} must be a non-negative integer, "
                            f"got {df[col].iloc[row]!r}")
        too_big = values >= 2 ** 53  # beyond exact floats (and int64 soon after): never an array index
        if too_big.any():
            row = int(np.flatnonzero(too_big.to_numpy())[0])
            raise DataError(f"{source}, line {row + 2}: column {col!r} value {df[col].iloc[row]!r} is too large "
                            f"for an id")
        values = values.to_numpy().astype(np.int64)
        if (values < 0).any():
            row = int(np.flatnonzero(values < 0)[0])
            raise DataError(f"{source}, line {row + 2}: column {col!r} must be a non-negative integer, "
                            f"got {values[row]}")
        out.append(values)
    labels = out[2]
    bad = ~np.isin(labels, list(SPLITS))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}, line {row + 2}: {split_field} must be 0 (train), 1 (valid) or 2 (test), "
                        f"got {labels[row]}")
    return out[0], out[1], labels


#: ids may leave gaps (e.g. users filtered out after numbering), up to this many beyond their count
ID_GAP_ALLOWANCE = 100_000


def _check_dense_ids(ids: np.ndarray, column: str, source: str) -> None:
    """Ids are array indices here (embeddings, the sparse train matrix), so memory follows the largest
    id. Allow ``n`` distinct ids to spread up to ``2n`` or ``n + ID_GAP_ALLOWANCE``; a larger id is an
    error naming its line, so memory stays bounded by the data's size, never by an id's value."""
    n_distinct = len(np.unique(ids))
    limit = n_distinct + max(n_distinct, ID_GAP_ALLOWANCE)
    beyond = np.flatnonzero(ids >= limit)
    if len(beyond):
        row = int(beyond[0])
        raise DataError(f"{source}, line {row + 2}: {column} {ids[row]} is far beyond the {n_distinct} distinct "
                        f"{column} values (ids index arrays: they must be 0-based and dense, below {limit}); "
                        f"number them 0..n-1 as MMRec's preprocessing and python main.py prepare do")


def _drop_duplicates(users, items, labels, source):
    """Keep one copy of each (user, item) pair: the one in the earliest split (train first)."""
    order = np.lexsort((labels, items, users))
    u, i = users[order], items[order]
    dup = np.zeros(len(u), dtype=bool)
    dup[1:] = (u[1:] == u[:-1]) & (i[1:] == i[:-1])
    if dup.any():
        logger.warning("%s: dropped %d duplicate (user, item) pairs (kept the earliest split's copy), "
                       "e.g. user %d item %d", source, int(dup.sum()), u[dup][0], i[dup][0])
        keep = np.sort(order[~dup])
        return users[keep], items[keep], labels[keep]
    return users, items, labels


def _validated_store(store: FeatureStore, modality: str, n_items: int, source_name: str) -> FeatureStore:
    """Check a store's shape and type up front; its rows are checked to be finite as they are read."""
    if store.n_rows != n_items:
        raise DataError(f"{source_name}: {modality} has {store.n_rows} rows but the dataset has {n_items} "
                        f"items (row i must hold the features of itemID i)")
    if store.dim < 1:
        raise DataError(f"{source_name}: {modality} features have 0 columns (each item needs a vector)")
    if store.dtype.kind != "f":
        raise DataError(f"{source_name}: {modality} features must be floats, got dtype {store.dtype}")
    return store


def _validated_features(features, modality: str, n_items: int, source_name: str) -> torch.Tensor:
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise DataError(f"{source_name}: {modality} features must be a 2-D array (items x dims), "
                        f"got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise DataError(f"{source_name}: {modality} features have 0 columns, shape {arr.shape} (each item "
                        f"needs a vector)")
    if arr.shape[0] != n_items:
        raise DataError(f"{source_name}: has {arr.shape[0]} rows but the dataset has {n_items} items "
                        f"(row i must hold the features of itemID i)")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{source_name}: features must be numeric, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.float32, order="C")  # a writable in-memory copy (files are mmapped)
    finite = np.isfinite(arr)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(1))[0])
        raise DataError(f"{source_name}: row {row} (itemID {row}) holds NaN or inf; "
                        f"{int((~finite.all(1)).sum())} rows are affected")
    return torch.from_numpy(arr)
