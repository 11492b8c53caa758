"""``python main.py convert -d <dataset> [--out FOLDER] [--set key=value ...]``

Builds the dataset's LMDB feature store from its ``.npy`` feature files (read in batches, so
they need not fit in memory), reads it back to check every row, and says how to use it
(``feature_store: lmdb`` in the dataset YAML, or ``--set feature_store=lmdb``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.cli._common import overrides_of
from src.common.recommender import resolve
from src.common.data.dataset import DataError, dataset_files, mapped_npy
from src.common.data.feature_store import open_lmdb, write_lmdb

HELP = "build a dataset's LMDB feature store from its .npy feature files (for feature_store: lmdb)"


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("--out", help="store folder (default: <dataset folder>/<lmdb_path>, i.e. features.lmdb)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="dataset keys, e.g. data_path=... feature_batch_rows=10000")


def run(args) -> int:
    config = resolve(None, args.dataset, {**overrides_of(args), "feature_store": "npy"}).first()
    files = dataset_files(config)
    if not files.features:
        looked = ", ".join(map(str, files.missing.values())) or "image_feat.npy, text_feat.npy"
        raise DataError(f"dataset {args.dataset!r} has no .npy feature files to convert (looked for {looked})")
    arrays = {modality: mapped_npy(path) for modality, path in files.features.items()}
    n_items = config.n_items or _max_item(files.inter, config.item_field) + 1
    for modality, arr in arrays.items():
        if arr.ndim != 2 or arr.shape[0] != n_items:
            raise DataError(f"{files.features[modality]}: shape {arr.shape}, but the dataset has {n_items} "
                            f"items (row i must hold the features of itemID i)")
    out = Path(args.out).expanduser().resolve() if args.out else files.folder / config.lmdb_path
    write_lmdb(out, arrays, batch_rows=config.feature_batch_rows)
    stores = open_lmdb(out, role="feature")
    for modality, arr in arrays.items():  # the round trip, batch by batch
        for start, block in stores[modality].batches(config.feature_batch_rows):
            if not np.array_equal(block.numpy(), np.asarray(arr[start:start + len(block)], dtype=block.numpy().dtype)):
                raise DataError(f"{out}: {modality} rows from item {start} differ from {files.features[modality]}")
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"wrote {out} ({size:.1f} MiB): " + ", ".join(f"{m} {tuple(a.shape)}" for m, a in arrays.items())
          + "; every row read back equal to the .npy")
    elsewhere = out != files.folder / config.lmdb_path
    print(f"use it: feature_store: lmdb{f' and lmdb_path: {out}' if elsewhere else ''} in the dataset YAML, "
          f"or python main.py -m VBPR -d {args.dataset} --set feature_store=lmdb"
          + (f" lmdb_path={out}" if elsewhere else ""))
    return 0


def _max_item(inter: Path, item_field: str) -> int:
    try:
        items = pd.read_csv(inter, sep="\t", usecols=[item_field])[item_field]
    except ValueError as e:
        raise DataError(f"{inter}: {e}") from None
    return int(pd.to_numeric(items, errors="raise").max())
