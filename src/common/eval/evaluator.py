"""Full-ranking evaluation over all items, with item *views* for cold-start reporting.

For the valid split the user's train items are masked; for the test split train + valid items are
masked (``test_mask="train+valid"``, the default) or only train items (``test_mask="train"``, MMRec's
protocol: a user's valid items stay ranked candidates at test time, non-relevant ones). Users are scored in batches; masking is sparse index assignment, top-k is ``torch.topk``
and hits are gathered from a dense relevance block of the batch — no Python loop over users.

Views restrict the relevant items (not the ranking) to a subset of items: ``cold`` = test
interactions whose item had fewer than ``cold_threshold`` train interactions, ``zero`` = items with
none (present only when such test items exist); extra views (e.g. degree buckets) can be passed in.
A user counts in a view's average only if they have a relevant item in it.

The evaluator never knows which model it scores: it takes a function ``users -> scores``.
Returned metrics are a flat dict: ``recall@20``, ``ndcg@10``, ``cold/recall@20``, ...
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import scipy.sparse as sp
import torch

from src.common.eval.metrics import METRICS

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def degree_buckets(item_degree: np.ndarray, edges: tuple[int, ...] = (1, 5, 10, 20)) -> dict[str, np.ndarray]:
    """Item masks by train degree: with the default edges ``deg=0``, ``deg1-4``, ``deg5-9``,
    ``deg10-19``, ``deg20+``."""
    bounds = [0, *edges]
    views = {}
    for lo, hi in zip(bounds, [*edges, None]):
        if hi is None:
            name = f"deg{lo}+"
            views[name] = item_degree >= lo
        else:
            name = "deg0" if (lo, hi) == (0, 1) else f"deg{lo}-{hi - 1}"
            views[name] = (item_degree >= lo) & (item_degree < hi)
    return views


def default_views(dataset) -> dict[str, np.ndarray]:
    """``cold`` items, and ``zero`` (no train interaction) when the valid or test split has any."""
    views = {"cold": dataset.cold_items}
    if dataset.zero_items[dataset.test.items].any() or dataset.zero_items[dataset.valid.items].any():
        views["zero"] = dataset.zero_items
    return views


class Evaluator:
    """Scores a split of a dataset: ``evaluate(score_fn, 'valid' | 'test') -> {metric: value}``."""

    def __init__(self, dataset, metrics: list[str], topk: list[int], batch_size: int = 4096,
                 device: torch.device | str = "cpu", views: Mapping[str, np.ndarray] | None = None,
                 test_mask: str = "train+valid"):
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
        self.metrics, self.topk = list(metrics), sorted(set(topk))
        self.batch_size, self.device = batch_size, torch.device(device)
        self.n_items = dataset.n_items
        if views is None:
            views = default_views(dataset)
        self.views = {name: torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device)
                      for name, mask in views.items()}
        n_u, n_i = dataset.n_users, dataset.n_items
        train = dataset.train.matrix(n_u, n_i)
        valid = dataset.valid.matrix(n_u, n_i)
        test = dataset.test.matrix(n_u, n_i)
        self.targets = {"valid": valid, "test": test}
        if test_mask not in ("train+valid", "train"):
            raise ValueError(f"test_mask must be train+valid or train, got {test_mask!r}")
        self.masks = {"valid": train, "test": (train + valid).tocsr() if test_mask == "train+valid" else train}
        # relevant items per user and view, once: (n_users,) counts from a sparse mat-vec
        self.n_relevant = {split: {"": np.diff(t.indptr).astype(np.float32),
                                   **{v: t @ np.asarray(m, dtype=np.float32) for v, m in views.items()}}
                           for split, t in self.targets.items()}

    def split_users(self, split: str) -> np.ndarray:
        """The users scored on ``split`` (those with at least one interaction in it), ascending."""
        return np.flatnonzero(np.diff(self.targets[split].indptr) > 0)

    def evaluate(self, score_fn: ScoreFn, split: str = "test", return_per_user: bool = False):
        """Average every metric over the split's users (and over each view's users).

        ``score_fn(users)`` must return (len(users), n_items) scores for a LongTensor of users; the
        evaluator masks a fresh result in place (a view, e.g. of a cached tensor, is copied first).
        With ``return_per_user`` also returns the per-user values behind every average, one flat dict:
        ``users`` (the split's users, ascending) and ``recall@20``, ... aligned with it, and per view
        ``cold/users`` (the users counted in that view) with ``cold/recall@20``, ... aligned with those;
        the mean of ``key`` over its users is the returned ``key``.
        """
        target, mask = self.targets[split], self.masks[split]
        users = self.split_users(split)
        max_k = min(max(self.topk), self.n_items)
        views: list[tuple[str, torch.Tensor | None]] = [("", None), *self.views.items()]
        n_relevant = {v: torch.from_numpy(c[users]).to(self.device) for v, c in self.n_relevant[split].items()}
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        per_user: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(users), self.batch_size):
            batch = users[start:start + self.batch_size]
            scores = score_fn(torch.from_numpy(batch).to(self.device))
            if scores.shape != (len(batch), self.n_items):
                raise ValueError(f"score function returned shape {tuple(scores.shape)}, "
                                 f"expected ({len(batch)}, {self.n_items})")
            scores = masked_scores(scores, mask, batch, self.device)
            top = torch.topk(scores, max_k, dim=1).indices                      # (B, K)
            relevant = torch.zeros(len(batch), self.n_items, dtype=torch.bool, device=self.device)
            rows, cols = _block_indices(target, batch, self.device)
            relevant[rows, cols] = True
            hits_all = relevant.gather(1, top)                                  # (B, K)
            for view, item_mask in views:
                hits = hits_all if item_mask is None else hits_all & item_mask[top]
                n_rel = n_relevant[view][start:start + len(batch)]
                keep = n_rel > 0
                if not keep.any():
                    continue
                hits, n_rel = hits[keep].float(), n_rel[keep]
                prefix = f"{view}/" if view else ""
                counts[prefix] = counts.get(prefix, 0) + int(keep.sum())
                if return_per_user:
                    per_user.setdefault(f"{prefix}users", []).append(batch[keep.cpu().numpy()])
                for name in self.metrics:
                    for k in self.topk:
                        values = METRICS[name](hits, n_rel, min(k, max_k))
                        key = f"{prefix}{name}@{k}"
                        sums[key] = sums.get(key, 0.0) + float(values.sum())
                        if return_per_user:
                            per_user.setdefault(key, []).append(values.cpu().numpy())
        result = {}
        for key, total in sums.items():
            prefix = key.split("/")[0] + "/" if "/" in key else ""
            result[key] = total / counts[prefix]
        for prefix, n in counts.items():
            result[f"{prefix}n_users"] = n
        if return_per_user:
            return result, {k: np.concatenate(v) for k, v in per_user.items()}
        return result


def masked_scores(scores: torch.Tensor, mask: sp.csr_matrix, rows: np.ndarray, device) -> torch.Tensor:
    """``scores`` (len(rows), n_items) as float32 on ``device`` with the nonzeros of ``mask[rows]``
    (items the user must not be ranked on: train, or train + valid) set to -inf. The evaluator and
    ``recommend`` both rank through this, so their top-K lists are identical. A fresh contiguous
    score matrix is masked in place; a view (e.g. of a cached matrix) is copied first."""
    scores = scores.detach().to(device, torch.float32)
    if scores._base is not None or not scores.is_contiguous():
        scores = scores.clone()
    r, c = _block_indices(mask, rows, device)
    scores[r, c] = -torch.inf
    return scores


def _block_indices(m: sp.csr_matrix, rows: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row-in-batch, column) indices of the nonzeros of ``m[rows]``, as tensors."""
    block = m[rows]
    r = np.repeat(np.arange(len(rows)), np.diff(block.indptr))
    return torch.from_numpy(r).to(device), torch.from_numpy(block.indices.astype(np.int64)).to(device)


def popularity_scores(dataset) -> ScoreFn:
    """Most-popular baseline: every user gets the items ranked by train interaction count."""
    pop = torch.as_tensor(dataset.item_degree, dtype=torch.float32)
    return lambda users: pop.to(users.device).expand(len(users), -1)
