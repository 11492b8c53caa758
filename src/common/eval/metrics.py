"""Top-K ranking metrics: small pure functions registered by name.

Each takes ``hits`` (users, K) — 1.0 where the item ranked at that position is relevant — and
``n_rel`` (users,) — the number of relevant items of each user (> 0) — and returns the per-user
value at cut-off ``k`` (users,). Averaging over users is the evaluator's job.
"""
from __future__ import annotations

import re
from typing import Callable

import torch

METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {}


def metric(fn):
    METRICS[fn.__name__] = fn
    return fn


@metric
def recall(hits: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    """Recall@k = |relevant ∩ top-k| / |relevant|."""
    return hits[:, :k].sum(1) / n_rel


@metric
def precision(hits: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    """Precision@k = |relevant ∩ top-k| / k."""
    return hits[:, :k].sum(1) / k


@metric
def hit(hits: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    """Hit@k = 1 if any relevant item is in the top-k, else 0."""
    return (hits[:, :k].sum(1) > 0).to(hits.dtype)


@metric
def ndcg(hits: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k = sum_{r<=k} hit_r / log2(r+1)  /  sum_{r<=min(k,|rel|)} 1 / log2(r+1)."""
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=hits.dtype, device=hits.device))
    dcg = (hits[:, :k] * discount).sum(1)
    ideal_len = n_rel.clamp(max=k).long()
    idcg = torch.cumsum(discount, 0)[ideal_len - 1]
    return dcg / idcg


@metric
def map(hits: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:  # noqa: A001 (metric name)
    """MAP@k = sum_{r<=k} hit_r * Precision@r  /  min(k, |rel|)."""
    h = hits[:, :k]
    ranks = torch.arange(1, k + 1, dtype=hits.dtype, device=hits.device)
    precision_at_r = h.cumsum(1) / ranks
    return (precision_at_r * h).sum(1) / n_rel.clamp(max=k)


_NAME = re.compile(r"^(?:(?P<view>[a-z0-9_]+)/)?(?P<metric>[a-z]+)@(?P<k>\d+)$")


def parse_metric_name(name: str) -> tuple[str, int]:
    """``'Recall@20'`` → ``('recall', 20)``; a view prefix (``cold/recall@20``) is allowed and dropped."""
    m = _NAME.match(name.strip().lower())
    if not m or m["metric"] not in METRICS:
        raise ValueError(f"bad metric name {name!r}: expected <metric>@<k> with metric one of "
                         f"{sorted(METRICS)}")
    return m["metric"], int(m["k"])
