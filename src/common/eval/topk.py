"""Top-K lists as files anyone can read: ``userID  rank  itemID  score``, tab-separated, with a
header, rank 1 = best.

Two uses: the test-time top-K written beside a run's record (``save_topk: K`` →
``<run dir>/test_top<K>.tsv``), from which the published test metrics can be recomputed with
``<dataset>.inter`` and that file alone; and ``recommend --users all --out`` (any users, any
exclusion). Both rank with ``model.recommend``, a batch of users at a time (no loop over users).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from src.common.storage import atomic_write

logger = logging.getLogger(__name__)

TOPK_COLUMNS = ["userID", "rank", "itemID", "score"]


def run_topk_path(run_dir: str | Path, k: int) -> Path:
    """Where a run keeps its test-time top-``k``."""
    return Path(run_dir) / f"test_top{k}.tsv"


def write_topk(path: str | Path, model, users: np.ndarray, k: int, exclude="train",
               batch_size: int | None = None, progress: bool = False) -> int:
    """Rank ``users`` with ``model.recommend(batch, k, exclude)`` batch by batch and write their
    top-``k`` lists to ``path`` (atomically). Empty slots (a user with fewer than ``k`` items
    left) are left out. Returns the number of rows written."""
    users = np.asarray(users, dtype=np.int64)
    batch_size = batch_size or model.config.eval_batch_size
    model.check_users(users)  # fail before opening the file, not halfway through it
    rows = 0

    def write(f):
        nonlocal rows
        f.write("\t".join(TOPK_COLUMNS) + "\n")
        bar = tqdm(total=len(users), desc=f"top-{k}", unit="user", disable=not progress,
                   dynamic_ncols=True, leave=False)
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            top = model.recommend(batch, k, exclude=exclude, batch_size=batch_size)
            items = top.items.numpy()
            keep = items >= 0
            frame = pd.DataFrame({
                "userID": np.broadcast_to(batch[:, None], items.shape)[keep],
                "rank": np.broadcast_to(np.arange(1, items.shape[1] + 1), items.shape)[keep],
                "itemID": items[keep],
                "score": top.scores.numpy()[keep],
            })
            frame.to_csv(f, sep="\t", header=False, index=False, float_format="%.6g")
            rows += len(frame)
            bar.update(len(batch))
        bar.close()

    atomic_write(path, write)
    return rows


def write_test_topk(model, evaluator, run_dir: str | Path, k: int, progress: bool = False) -> Path:
    """The top-``k`` of every test user, ranked exactly as ``evaluator`` ranks the test split
    (same users, batches and masking: train + valid items excluded, or train items only under
    ``test_mask: train``), into ``run_dir``."""
    k = min(k, model.n_items)
    path = run_topk_path(run_dir, k)
    rows = write_topk(path, model, evaluator.split_users("test"), k, exclude=evaluator.masks["test"],
                      batch_size=evaluator.batch_size, progress=progress)
    logger.info("test top-%d of %d users (%d rows) written to %s", k, len(evaluator.split_users("test")),
                rows, path)
    return path

