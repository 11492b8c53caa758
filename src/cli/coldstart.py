"""``python main.py coldstart -d <dataset> --features image=new_img.npy text=new_txt.npy``: score
brand-new items from their features alone with a trained MoToRec, without retraining.

``--holdout N`` checks the claim: N random items are removed from the catalogue and every split,
MoToRec is trained on the rest, then the removed items are scored from their features alone and
their real users (all their interactions) are looked for among the top users."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from src.cli._common import overrides_of
from src.cli._saved_run import load_saved_run
from src.common.nn import tokens
from src.common.config import ConfigError
from src.common.recommender import resolve
from src.common.data.dataset import DataError, Dataset, load_dataset
from src.common.storage import atomic_write_text
from src.common.trainer import Trainer

HELP = "codes and top users of new items, from their feature files alone (no retraining)"
logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="the dataset the model was trained on")
    parser.add_argument("-m", "--model", default="MoToRec")
    parser.add_argument("--run", dest="run_id", help="run id or folder (default: the best run by valid metric)")
    parser.add_argument("--features", nargs="+", metavar="MODALITY=FILE.npy",
                        help="one .npy per modality the model uses, rows = new items, same columns as training")
    parser.add_argument("--holdout", type=int, metavar="N", help="instead: hold N random items out of "
                        "training and report how well their users are found from their features alone")
    parser.add_argument("--top", type=int, default=10, help="users listed per new item (default 10)")
    parser.add_argument("--out", help="also write a TSV (new item, codes, top users)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="results_dir=... (where the run is), threads=1; with --holdout any config key")


def read_features(specs: list[str], dims: dict[str, int]) -> dict[str, torch.Tensor]:
    """{modality: (n_new, d_m)} from MODALITY=FILE specs, checked against the training dimensions."""
    out = {}
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"--features {spec!r}: expected MODALITY=FILE.npy")
        m, path = spec.split("=", 1)
        if m not in dims:
            raise ConfigError(f"--features {spec!r}: the model uses {sorted(dims)}, not {m!r}")
        try:
            arr = np.load(Path(path))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read as a .npy array ({e})") from None
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != dims[m] or arr.shape[0] < 1:
            raise DataError(f"{path}: {m} features must be (n_new, {dims[m]}) with n_new >= 1, got {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise DataError(f"{path}: {m} features must be numbers, got dtype {arr.dtype}")
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: holds NaN or inf")
        out[m] = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    missing = sorted(set(dims) - set(out))
    if missing:
        raise ConfigError(f"--features: the model also needs {missing}")
    if len({f.shape[0] for f in out.values()}) > 1:
        raise DataError(f"--features: the files have different numbers of rows {[f.shape[0] for f in out.values()]}")
    return out


def top_users(model, item_vectors: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, users), each (n_new, k): the users who would rank each new item highest."""
    users, _ = model.cached_forward()
    return torch.topk(item_vectors @ users.T, min(k, users.shape[0]), dim=1)


def run(args) -> int:
    if args.top < 1:
        raise ConfigError(f"--top {args.top}: must be >= 1")
    if args.holdout is not None:
        if args.holdout < 1:
            raise ConfigError(f"--holdout {args.holdout}: must be >= 1 (items to hold out)")
        return holdout_check(args)
    if not args.features:
        raise ConfigError("give --features MODALITY=FILE.npy ... (or --holdout N)")
    saved = load_saved_run(args.dataset, args.model, args.run_id, overrides=overrides_of(args))
    dims = {m: saved.dataset.features[m].shape[1] for m in saved.model.modalities}
    features = read_features(args.features, dims)
    codes, vectors = saved.model.new_item_vectors(features)
    scores, users = top_users(saved.model, vectors, args.top)
    codes = {m: c.cpu().numpy() for m, c in codes.items()}
    lines = []
    print(f"# {len(vectors)} new item(s) scored by {saved.config.model} run {saved.run_dir.name}\n")
    for j in range(len(vectors)):
        code = tokens.code_string(codes, j) if codes else "-"
        ranked = ", ".join(f"{int(u)} ({float(s):.2f})" for u, s in zip(users[j], scores[j]))
        print(f"new item {j}: codes {code}\n  top users (score): {ranked}")
        lines.append(f"{j}\t{code}\t{' '.join(str(int(u)) for u in users[j])}\n")
    if args.out:
        atomic_write_text(args.out, "new_item\tcodes\ttop_users\n" + "".join(lines))
        print(f"\nwritten to {args.out}")
    return 0


def without_items(dataset: Dataset, items: np.ndarray) -> tuple[Dataset, np.ndarray]:
    """``dataset`` with ``items`` removed from the catalogue and every split, item ids renumbered;
    also returns the kept original ids (new id j = kept[j]). User ids are unchanged."""
    keep = np.setdiff1d(np.arange(dataset.n_items), items)
    new_id = np.full(dataset.n_items, -1)
    new_id[keep] = np.arange(len(keep))
    frames = []
    for label, part in enumerate((dataset.train, dataset.valid, dataset.test)):
        kept = new_id[part.items] >= 0
        frames.append(pd.DataFrame({"userID": part.users[kept], "itemID": new_id[part.items[kept]], "x_label": label}))
    features = {m: f.numpy()[keep] for m, f in dataset.features.items()}
    reduced = Dataset.from_frame(f"{dataset.name}-holdout", pd.concat(frames), features,
                                 cold_threshold=dataset.cold_threshold, n_items=len(keep))
    return reduced, keep


def holdout_check(args) -> int:
    """Train on the catalogue minus N random items (config: the best grid point, as the ablation
    uses), then rank all users for each removed item from its features alone."""
    from src.cli.ablation import base_point
    overrides = overrides_of(args)
    full = load_dataset(resolve(args.model, args.dataset, overrides).first())
    config = resolve(args.model, args.dataset, {**base_point(full, overrides), **overrides}).first()
    rng = np.random.default_rng(config.seed)
    candidates = np.flatnonzero(full.item_degree > 0)
    if args.holdout >= len(candidates):
        raise ConfigError(f"--holdout {args.holdout}: {args.dataset} has {len(candidates)} items with train "
                          f"interactions; hold out fewer to leave some to train on")
    held = np.sort(rng.choice(candidates, args.holdout, replace=False))
    reduced, _ = without_items(full, held)
    if reduced.n_users != full.n_users:
        raise DataError("holding these items out removes every interaction of the last user; use another seed")
    logger.info("holdout: %d items removed, training on the other %d", len(held), reduced.n_items)
    trainer = Trainer(config, reduced)
    trainer.fit()
    model = trainer.model.eval()
    _, vectors = model.new_item_vectors({m: full.features[m][held] for m in model.modalities})
    every = sp.csr_matrix(sum(part.matrix(full.n_users, full.n_items) for part in (full.train, full.valid, full.test)).T)
    truth = [set(every[h].indices) for h in held]          # each held item's real users
    users, _ = model.cached_forward()
    order = torch.argsort(vectors @ users.T, dim=1, descending=True).cpu().numpy()
    active = np.argsort(-reduced.user_degree, kind="stable")
    print(f"# {len(held)} items held out of training on {args.dataset} ({sum(map(len, truth))} interactions); "
          f"their users ranked among all {full.n_users} from features alone\n")
    print("| ranking | users recall@10 | users recall@50 |\n|---|---|---|")
    for name, ranking in (("MoToRec from features", order), ("most active users", np.tile(active, (len(held), 1)))):
        cells = [np.mean([len(set(r[:k]) & t) / len(t) for r, t in zip(ranking, truth)]) for k in (10, 50)]
        print(f"| {name} | {cells[0]:.4f} | {cells[1]:.4f} |")
    print(f"| random | {10 / full.n_users:.4f} | {50 / full.n_users:.4f} |")
    return 0
