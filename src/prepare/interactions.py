"""Interactions: deduplication, iterated k-core, 0-based remapping and the train/valid/test split.

All steps are vectorised over the interaction arrays (no loop over users or items). The split
labels follow MMRec: ``x_label`` 0 train, 1 valid, 2 test.

Splits (``split``):

- ``chrono`` — per user, interactions in time order (ties: file order); the last
  ``round(n * test)`` are test, the ``round(n * valid)`` before them valid (at least one each),
  the rest train. MMRec's 8:1:1 protocol with ``ratios = (0.8, 0.1, 0.1)``.
- ``loo`` — leave one out: per user, the last interaction is test, the one before valid.
- ``random`` — as ``chrono`` but in a random order per user (seeded).
- ``cold`` — strict item cold start: a share of the items (``cold_item_share``, seeded) is held
  out of training entirely — their interactions go to valid or test (the held-out items are
  divided between the two in the valid:test ratio) — and the other interactions are split as
  ``chrono``. Test items of this split are zero-shot items: no model has seen them in training.

A user with fewer than 3 interactions to split keeps them all in train, so every valid/test
user has train interactions — except, in the ``cold`` split, a user whose interactions all hit
held-out items.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.common.errors import DataError

logger = logging.getLogger(__name__)

TRAIN, VALID, TEST = 0, 1, 2


def deduplicate(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep one interaction per (user, item): the earliest (ties: the first in the file)."""
    order = df.sort_values(["timestamp", "line"], kind="stable", na_position="last")
    kept = order.drop_duplicates(["user", "item"], keep="first").sort_values("line", kind="stable")
    return kept.reset_index(drop=True), len(df) - len(kept)


@dataclass(frozen=True)
class CoreRound:
    """One pass of the k-core filter: what it removed."""

    users: int
    items: int
    interactions: int


def k_core(users: np.ndarray, items: np.ndarray, user_k: int, item_k: int) -> tuple[np.ndarray, list[CoreRound]]:
    """Iterated k-core: drop users with fewer than ``user_k`` and items with fewer than ``item_k``
    interactions, and repeat until nothing changes (removing an item can push a user below k).

    ``users``/``items`` are integer codes (0..n-1). Returns the mask of kept interactions and one
    :class:`CoreRound` per pass that removed something.
    """
    keep = np.ones(len(users), dtype=bool)
    rounds = []
    n_users, n_items = int(users.max(initial=-1)) + 1, int(items.max(initial=-1)) + 1
    while True:
        user_deg = np.bincount(users[keep], minlength=n_users)
        item_deg = np.bincount(items[keep], minlength=n_items)
        bad_users = (user_deg > 0) & (user_deg < user_k)
        bad_items = (item_deg > 0) & (item_deg < item_k)
        drop = keep & (bad_users[users] | bad_items[items])
        if not drop.any():
            return keep, rounds
        keep &= ~drop
        rounds.append(CoreRound(int(bad_users.sum()), int(bad_items.sum()), int(drop.sum())))


def remap(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """0-based ids in sorted order of the raw ids: ``(ids per row, raw id of each new id)``."""
    codes, uniques = pd.factorize(raw, sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


# ----------------------------------------------------------------------------- splits
def split_labels(users: np.ndarray, order_key: np.ndarray, mode: str, ratios=(0.8, 0.1, 0.1),
                 items: np.ndarray | None = None, cold_item_share: float = 0.2,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x_label`` per interaction (see the module docstring) and the held-out items (``cold``).

    ``order_key`` orders each user's interactions (time, then file order: earlier first).
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(len(users), dtype=np.int64)
    held_out = np.zeros(0, dtype=np.int64)
    warm = np.ones(len(users), dtype=bool)
    if mode == "cold":
        if items is None:
            raise ValueError("the cold split needs the items")
        n_items = int(items.max()) + 1
        n_held = int(round(cold_item_share * n_items))
        if n_held < 2:
            raise DataError(f"cold_item_share {cold_item_share} holds out {n_held} of {n_items} items; "
                            f"the cold split needs at least 2 (one for valid, one for test)")
        held_out = np.sort(rng.choice(n_items, size=n_held, replace=False))
        to_valid = np.zeros(n_items, dtype=bool)
        n_valid = min(max(1, int(round(n_held * ratios[1] / (ratios[1] + ratios[2])))), n_held - 1)
        to_valid[rng.permutation(held_out)[:n_valid]] = True
        is_held = np.isin(items, held_out)
        labels[is_held] = np.where(to_valid[items[is_held]], VALID, TEST)
        warm = ~is_held
        mode = "chrono"
    if mode == "random":
        order_key = rng.random(len(users))
    idx = np.flatnonzero(warm)
    labels[idx] = _per_user_labels(users[idx], order_key[idx], mode, ratios)
    return labels, held_out


def _per_user_labels(users: np.ndarray, order_key: np.ndarray, mode: str, ratios) -> np.ndarray:
    """Labels from each interaction's rank within its user (0 = earliest) and the user's count."""
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((order_key, users))              # by user, then by order_key
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    n = np.repeat(counts, counts)                        # the user's count, per interaction
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    if mode == "loo":
        n_test = n_valid = np.ones_like(n)
    elif mode in ("chrono", "random"):
        n_test = np.maximum(1, np.floor(n * ratios[2] + 0.5)).astype(np.int64)
        n_valid = np.maximum(1, np.floor(n * ratios[1] + 0.5)).astype(np.int64)
    else:
        raise ValueError(f"unknown split {mode!r}")
    n_test = np.minimum(n_test, n - 2)                   # leave at least one train interaction
    n_valid = np.minimum(n_valid, n - 1 - n_test)
    from_end = n - 1 - rank                              # 0 = the user's last interaction
    sorted_labels = np.where(from_end < n_test, TEST, np.where(from_end < n_test + n_valid, VALID, TRAIN))
    sorted_labels[n < 3] = TRAIN                         # too few to split: keep them to train on
    labels = np.empty(len(users), dtype=np.int64)
    labels[order] = sorted_labels
    return labels


# ----------------------------------------------------------------------------- statistics
def split_stats(users: np.ndarray, items: np.ndarray, labels: np.ndarray, n_users: int, n_items: int,
                cold_threshold: int) -> dict[str, float | int]:
    """Sizes, density and the cold-start picture of a labelled interaction set."""
    train = labels == TRAIN
    degree = np.bincount(items[train], minlength=n_items)
    test = labels == TEST
    users_with_train = np.bincount(users[train], minlength=n_users) > 0
    evaluated = np.unique(users[~train])
    return {
        "users": n_users, "items": n_items, "interactions": len(users),
        "density": len(users) / (n_users * n_items),
        "train": int(train.sum()), "valid": int((labels == VALID).sum()), "test": int(test.sum()),
        "cold_item_share": float((degree < cold_threshold).mean()),
        "zero_shot_items": int((degree == 0).sum()),
        "test_on_cold_items": float((degree[items[test]] < cold_threshold).mean()) if test.any() else 0.0,
        "test_on_zero_shot_items": float((degree[items[test]] == 0).mean()) if test.any() else 0.0,
        "eval_users_without_train": int((~users_with_train[evaluated]).sum()),
    }
