"""Variants of a prepared dataset, written as datasets of their own.

``cold_variant`` re-splits a dataset for **strict item cold start**: a share of the items never
appears in training — all their interactions go to valid or test, as ``prepare``'s ``cold`` split
does — and every other interaction keeps its user-wise chronological split. Item ids and feature
rows are unchanged (the feature files are copied), so a model trained on the variant scores the
held-out items from their features alone; the evaluator's ``zero/`` view reports them.

The variant's dataset layer sets ``negatives: trained``: the held-out items are new at test time, so
they are not drawn as BPR negatives either (with every item as a candidate negative, training shows
them only as never-positive items, and every model learns to push them down: MoToRec's test
zero-shot N@20 on sports' variant 0.0002 with ``all``, 0.0013 with ``trained``, one seed).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from src.common.errors import DataError
from src.common.storage import atomic_write_text
from src.prepare.interactions import split_labels

logger = logging.getLogger(__name__)


def cold_variant(config, share: float = 0.2, seed: int = 0, suffix: str = "_cold") -> str:
    """Write ``<data_path>/<name><suffix>/`` from the dataset ``config`` describes (a resolved
    config of that dataset) and return the variant's name. Nothing is rewritten when the variant
    exists with the same settings."""
    name = config.dataset
    src = Path(config.data_path) / name
    if not src.is_absolute():
        from src.common.paths import from_root
        src = from_root(config.data_path) / name
    out_name = f"{name}{suffix}"
    out = src.parent / out_name
    settings = {"source": name, "cold_item_share": share, "seed": seed, "negatives": "trained"}
    marker = out / "variant.yaml"
    if marker.exists() and yaml.safe_load(marker.read_text()) == settings:
        return out_name
    inter_path = src / (config.inter_file or f"{name}.inter")
    df = pd.read_csv(inter_path, sep="\t")
    for column in (config.user_field, config.item_field):
        if column not in df:
            raise DataError(f"{inter_path}: no column {column!r}")
    # each user's interactions in time order when the file has a timestamp, else in file order
    order = df["timestamp"].to_numpy() if "timestamp" in df else np.arange(len(df))
    users = df[config.user_field].to_numpy(np.int64)
    items = df[config.item_field].to_numpy(np.int64)
    labels, held = split_labels(users, order, "cold", items=items, cold_item_share=share, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    df[config.split_field] = labels
    atomic_write_text(out / f"{out_name}.inter", df.to_csv(sep="\t", index=False))
    files = {}
    for modality, file in dict(config.feature_files).items():
        if (src / file).exists():
            shutil.copyfile(src / file, out / file)
            files[modality] = file
    layer = {"negatives": "trained", "feature_files": files}
    if config.item_text_file and (src / config.item_text_file).exists():
        shutil.copyfile(src / config.item_text_file, out / config.item_text_file)
        layer["item_text_file"] = config.item_text_file
    atomic_write_text(out / f"{out_name}.yaml",
                      f"# {name} with {share:.0%} of its items held out of training (strict item cold start)\n"
                      + yaml.safe_dump(layer, sort_keys=False))
    atomic_write_text(marker, yaml.safe_dump(settings, sort_keys=False))
    logger.info("%s: %d of %d items held out of training; %d valid and %d test interactions on them",
                out_name, len(held), int(items.max()) + 1, int(((labels == 1) & np.isin(items, held)).sum()),
                int(((labels == 2) & np.isin(items, held)).sum()))
    return out_name
