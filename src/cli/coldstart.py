"""``python main.py coldstart -d <dataset> --features image=new_img.npy text=new_txt.npy``: score
brand-new items from their features alone with a trained MoToRec, without retraining."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from src.cli._common import overrides_of
from src.cli._saved_run import load_saved_run
from src.common import tokens
from src.common.config import ConfigError
from src.common.dataset import DataError
from src.common.storage import atomic_write_text

HELP = "codes and top users of new items, from their feature files alone (no retraining)"


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="the dataset the model was trained on")
    parser.add_argument("-m", "--model", default="MoToRec")
    parser.add_argument("--run", dest="run_id", help="run id or folder (default: the best run by valid metric)")
    parser.add_argument("--features", nargs="+", required=True, metavar="MODALITY=FILE.npy",
                        help="one .npy per modality the model uses, rows = new items, same columns as training")
    parser.add_argument("--top", type=int, default=10, help="users listed per new item (default 10)")
    parser.add_argument("--out", help="also write a TSV (new item, codes, top users)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")


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
        if arr.ndim != 2 or arr.shape[1] != dims[m]:
            raise DataError(f"{path}: {m} features must be (n_new, {dims[m]}), got {arr.shape}")
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
