"""Vectorised BPR triples: each train interaction once per epoch, with a uniform negative.

Negatives are drawn for the whole epoch at once and re-drawn, vectorised, where they hit a train
item of their user; membership is a binary search (``np.searchsorted``) over the sorted keys
``user * n_items + item``, which is much faster than ``np.isin`` or Python sets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch


@dataclass(frozen=True)
class Batch:
    """One training batch: (B,) int64 tensors of users, their positives and sampled negatives."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor

    def __len__(self) -> int:
        return len(self.users)


class BPRSampler:
    """Shuffled (user, pos, neg) batches over the train interactions, reproducible from ``seed``."""

    max_redraws = 100

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, batch_size: int,
                 seed: int, device: torch.device | str = "cpu", negatives: str = "all",
                 popularity: float = 0.0):
        """``negatives``: ``all`` draws them from every item, ``trained`` from the items in the train
        interactions only (uniformly over those). ``popularity``: the share of negatives drawn in
        proportion to the item's train degree instead (the item of a random train interaction)."""
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.n_items = n_items
        if negatives not in ("all", "trained"):
            raise ValueError(f"negatives must be all or trained, got {negatives!r}")
        if not 0.0 <= popularity <= 1.0:
            raise ValueError(f"negative popularity share must lie in [0, 1], got {popularity}")
        self.pool = np.unique(self.items) if negatives == "trained" else None
        self.popularity = popularity
        self.batch_size = batch_size
        self.device = device
        self.rng = np.random.default_rng(seed)
        self.keys = np.unique(self.users * n_items + self.items)  # sorted, for membership tests

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def is_train_pair(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Bool array: is (users[b], items[b]) a train interaction?"""
        q = users * self.n_items + items
        pos = np.searchsorted(self.keys, q)
        pos[pos == len(self.keys)] = 0
        return self.keys[pos] == q

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        """One uniform item (of the pool) per user that is not among that user's train items."""
        neg = self.draw(len(users))
        bad = np.flatnonzero(self.is_train_pair(users, neg))
        for _ in range(self.max_redraws):
            if bad.size == 0:
                break
            neg[bad] = self.draw(bad.size)
            bad = bad[self.is_train_pair(users[bad], neg[bad])]
        return neg

    def draw(self, n: int) -> np.ndarray:
        if self.pool is None:
            out = self.rng.integers(0, self.n_items, size=n)
        else:
            out = self.pool[self.rng.integers(0, len(self.pool), size=n)]
        if self.popularity > 0:     # these in proportion to the train degree: items of random interactions
            by_degree = self.rng.random(n) < self.popularity
            out[by_degree] = self.items[self.rng.integers(0, len(self.items), size=int(by_degree.sum()))]
        return out

    def __iter__(self) -> Iterator[Batch]:
        order = self.rng.permutation(len(self.users))
        users, pos = self.users[order], self.items[order]
        neg = self.sample_negatives(users)
        to = lambda a: torch.from_numpy(a).to(self.device)
        users_t, pos_t, neg_t = to(users), to(pos), to(neg)
        for start in range(0, len(users), self.batch_size):
            end = start + self.batch_size
            yield Batch(users_t[start:end], pos_t[start:end], neg_t[start:end])
