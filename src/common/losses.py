"""Loss functions as plain functions, the formula in each docstring."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: mean_b -log sigmoid(<u_b, i+_b> - <u_b, i-_b>).

    user, pos, neg: (B, d) embeddings of each triple.
    """
    return bpr_scores((user * pos).sum(-1), (user * neg).sum(-1))


def bpr_scores(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """BPR on precomputed scores: mean -log sigmoid(s+ - s-) (softplus form, numerically stable)."""
    return F.softplus(neg_scores - pos_scores).mean()


def emb_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """L2 regularisation of a batch: sum_e ||e||_F^2 / (2 B), B the batch size (rows of the last)."""
    batch = embeddings[-1].shape[0]
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with in-batch negatives:
    mean_b -log( exp(cos(a_b, b_b)/t) / sum_j exp(cos(a_b, b_j)/t) ).

    a, b: (B, d), row b of each is a positive pair; the other rows of ``b`` are negatives.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def align_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Negative-free alignment: mean_b (1 - cos(a_b, b_b)); ``b`` is usually a detached target."""
    return (1 - F.cosine_similarity(a, b, dim=-1)).mean()
