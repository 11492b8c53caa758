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


def norm_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: sum_e ||e||_F / n, the *unsquared* Frobenius norms divided by n, the rows
    of the last tensor. BM3's and LGMRec's published ``reg_weight`` values are on this scale."""
    return sum(torch.linalg.vector_norm(e) for e in embeddings) / embeddings[-1].shape[0]


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with in-batch negatives:
    mean_b -log( exp(cos(a_b, b_b)/t) / sum_j exp(cos(a_b, b_j)/t) ).

    a, b: (B, d), row b of each is a positive pair; the other rows of ``b`` are negatives.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def info_nce_candidates(anchor: torch.Tensor, candidates: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
                        targets: torch.Tensor, temperature: float, reduction: str = "mean") -> torch.Tensor:
    """InfoNCE against a whole candidate set (e.g. every user) instead of the batch:
    l_b = -log( exp(cos(a_b, c_{t_b})/t) / sum_j exp(cos(a_b, c_j)/t) ), averaged or summed over b.

    anchor: (B, d); targets: (B,) row of each anchor's positive in the candidates; candidates:
    (N, d), or the factors (left (N, r), right (r, d)) of a rank-r candidate matrix left @ right,
    which makes the logits cost B*N*r instead of B*N*d (LGMRec's hypergraph embeddings have r = H).
    ``reduction``: "mean", "sum" or "none" (the (B,) losses). The (B, N) logits are never held at
    once (see :func:`logsumexp_scores`).
    """
    a = F.normalize(anchor, dim=-1) / temperature
    if isinstance(candidates, tuple):
        left, right = candidates
        # cos(a, left_j @ right) = <a @ right^T, left_j> / ||left_j @ right||, with
        # ||left_j @ right||^2 = left_j (right right^T) left_j^T (clamped like F.normalize's eps)
        norm_sq = ((left @ (right @ right.T)) * left).sum(-1)
        queries, keys = a @ right.T, left * norm_sq.clamp_min(1e-24).rsqrt()[:, None]
    else:
        queries, keys = a, F.normalize(candidates, dim=-1)
    loss = logsumexp_scores(queries, keys) - (queries * keys[targets]).sum(-1)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def logsumexp_scores(queries: torch.Tensor, keys: torch.Tensor, block: int = 1 << 16) -> torch.Tensor:
    """log sum_j exp(<q_b, k_j>) for every query: queries (B, r), keys (N, r) -> (B,).

    Computed for ``block * r / N`` queries at a time (``block * r`` scores: few enough to stay in
    cache when r is small, enough rows for efficient products when r is large), in the forward and
    again in the backward, so the (B, N) score matrix is never stored: on a 20k-user graph it is
    160 MB per batch, and its memory traffic, not the arithmetic, made the loss slow.
    """
    rows = max(1, block * keys.shape[1] // max(1, keys.shape[0]))
    return _LogSumExpScores.apply(queries, keys, rows)


class _LogSumExpScores(torch.autograd.Function):
    """lse_b = log sum_j exp(q_b . k_j); with p_bj = exp(q_b . k_j - lse_b) the backward is
    dL/dq_b = g_b sum_j p_bj k_j and dL/dk_j = sum_b g_b p_bj q_b.

    Scores are taken in base 2 (exp(s) = 2^(s log2 e)): torch's exp2 is ~3x faster than exp on
    the CPU, and the exponentials are most of this function's time."""

    @staticmethod
    def forward(ctx, queries, keys, rows):
        keys_t = keys.T.contiguous()          # (r, N): the fast layout for these skinny products
        queries_2 = queries * _LOG2_E          # base-2 scores: q_2 . k = s log2 e
        lse_2 = queries.new_empty(queries.shape[0])
        for start in range(0, queries.shape[0], rows):
            scores = queries_2[start:start + rows] @ keys_t
            top = scores.amax(dim=1, keepdim=True)
            lse_2[start:start + rows] = (scores.sub_(top).exp2_().sum(1).log2_() + top.squeeze(1))
        ctx.save_for_backward(queries, queries_2, keys_t, lse_2)
        ctx.rows = rows
        return lse_2 * _LN_2

    @staticmethod
    def backward(ctx, grad):
        queries, queries_2, keys_t, lse_2 = ctx.saved_tensors
        grad_q, grad_k_t = torch.empty_like(queries), torch.zeros_like(keys_t)
        for start in range(0, queries.shape[0], ctx.rows):
            end = start + ctx.rows
            weights = (queries_2[start:end] @ keys_t).sub_(lse_2[start:end, None]).exp2_()   # p_bj
            g = grad[start:end, None]
            grad_q[start:end] = (weights @ keys_t.T).mul_(g)
            grad_k_t.addmm_((queries[start:end] * g).T, weights)
        return grad_q, grad_k_t.T, None


_LOG2_E = 1.4426950408889634   # log2(e)
_LN_2 = 0.6931471805599453     # ln(2)


def align_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Negative-free alignment: mean_b (1 - cos(a_b, b_b)); ``b`` is usually a detached target."""
    return (1 - F.cosine_similarity(a, b, dim=-1)).mean()


def mean_cosine(x: torch.Tensor) -> torch.Tensor:
    """||mean_b x_b / ||x_b||| ^2 = mean over all ordered pairs (b, c), b = c included, of cos(x_b, x_c):
    1 when the rows point one way (collapse), about 1/B for rows spread in all directions. O(B d)."""
    return torch.nn.functional.normalize(x, dim=1).mean(0).pow(2).sum()
