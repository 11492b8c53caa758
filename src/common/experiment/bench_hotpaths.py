"""Hot paths timed before and after their optimisation, on the Baby graph.

"Before" is the straightforward implementation, written here for comparison only (MMRec's
approach where the reference names it); "after" calls the code the framework uses.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from src.common.nn import graph
from src.common.recommender import resolve
from src.common.data.dataset import load_dataset
from src.common.eval.evaluator import Evaluator
from src.common.data.sampler import BPRSampler


def _time(fn: Callable[[], object], repeat: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def negative_sampling(ds) -> dict:
    """One epoch of negatives: Python rejection loop over per-user sets (MMRec) vs vectorised
    binary search over sorted (user, item) keys."""
    users, items = ds.train.users, ds.train.items
    history = [set() for _ in range(ds.n_users)]
    for u, i in zip(users.tolist(), items.tolist()):
        history[u].add(i)
    rng = np.random.default_rng(0)

    def loop():
        out = np.empty(len(users), dtype=np.int64)
        for b, u in enumerate(users.tolist()):
            j = int(rng.integers(ds.n_items))
            while j in history[u]:
                j = int(rng.integers(ds.n_items))
            out[b] = j
        return out

    def isin():
        neg = rng.integers(0, ds.n_items, len(users))
        keys = users * ds.n_items + items
        bad = np.isin(users * ds.n_items + neg, keys)
        while bad.any():
            neg[bad] = rng.integers(0, ds.n_items, int(bad.sum()))
            bad = np.isin(users * ds.n_items + neg, keys)
        return neg

    sampler = BPRSampler(users, items, ds.n_items, 2048, seed=0)
    return {"hot path": "negative sampling, one epoch", "before": "Python loop over per-user sets",
            "before s": _time(loop, 1), "after": "vectorised np.searchsorted (np.isin shown as middle)",
            "middle s": _time(isin), "after s": _time(lambda: sampler.sample_negatives(users))}


def propagation(ds, n_layers: int = 3, dim: int = 64) -> dict:
    """LightGCN forward+backward on the whole graph: autograd through torch.sparse.mm (which
    transposes the CSR matrix in every backward) vs the symmetric backward reusing the matrix."""
    adj = graph.to_torch_csr(graph.sym_norm_bipartite(ds.train.users, ds.train.items, ds.n_users, ds.n_items))
    u = torch.randn(ds.n_users, dim, requires_grad=True)
    i = torch.randn(ds.n_items, dim, requires_grad=True)
    steps = -(-len(ds.train) // 2048)

    def autograd_csr():
        x = torch.cat([u, i])
        total = x
        for _ in range(n_layers):
            x = torch.sparse.mm(adj, x)
            total = total + x
        total.sum().backward()

    def ours():
        uo, io = graph.lightgcn(adj, u, i, n_layers)
        (uo.sum() + io.sum()).backward()

    before, after = _time(autograd_csr), _time(ours)
    return {"hot path": f"LightGCN {n_layers}-layer propagation fwd+bwd, x{steps} steps = one epoch",
            "before": "autograd through torch.sparse.mm (CSR)", "before s": before * steps,
            "after": "graph.spmm_sym: backward reuses the symmetric matrix", "after s": after * steps}


def sparse_format(ds, dim: int = 64) -> dict:
    """One sparse-dense product on the normalised adjacency: COO vs CSR."""
    csr = graph.to_torch_csr(graph.sym_norm_bipartite(ds.train.users, ds.train.items, ds.n_users, ds.n_items))
    coo = csr.to_sparse_coo().coalesce()
    x = torch.randn(ds.n_users + ds.n_items, dim)
    return {"hot path": "adjacency @ embeddings (one layer)", "before": "COO", "before s": _time(lambda: torch.sparse.mm(coo, x), 10),
            "middle": "CSR, torch.sparse.mm", "middle s": _time(lambda: torch.sparse.mm(csr, x), 10),
            "after": "CSR, addmm into an uninitialised output (graph.sparse_mm)",
            "after s": _time(lambda: graph.sparse_mm(csr, x), 10)}


def evaluation(ds, dim: int = 64) -> dict:
    """Full ranking of the test split: per-user Python masking and hit counting vs the batched
    evaluator (sparse index masking, torch.topk, gathered hits)."""
    g = torch.Generator().manual_seed(0)
    U, I = torch.randn(ds.n_users, dim, generator=g), torch.randn(ds.n_items, dim, generator=g)
    score = lambda users: U[users] @ I.T
    evaluator = Evaluator(ds, ["recall", "ndcg"], [20], batch_size=4096)
    mask = evaluator.masks["test"]
    target = evaluator.targets["test"]
    users = np.flatnonzero(np.diff(target.indptr) > 0)

    def loop():
        recalls = []
        for start in range(0, len(users), 4096):
            batch = users[start:start + 4096]
            s = score(torch.from_numpy(batch))
            for r, u in enumerate(batch):
                s[r, mask.indices[mask.indptr[u]:mask.indptr[u + 1]]] = -np.inf
            top = torch.topk(s, 20).indices.numpy()
            for r, u in enumerate(batch):
                rel = set(target.indices[target.indptr[u]:target.indptr[u + 1]].tolist())
                hits = sum(1 for j in top[r] if j in rel)
                recalls.append(hits / len(rel))
        return float(np.mean(recalls))

    before, after = _time(loop, 2), _time(lambda: evaluator.evaluate(score, "test"), 2)
    return {"hot path": "full-ranking evaluation of the test split (+ cold/zero views after)",
            "before": "Python loops over users (masking, hit counting)", "before s": before,
            "after": "batched sparse masking + gathered hits", "after s": after}


def knn(ds, k: int = 10, dim: int = 4096) -> dict:
    """kNN item graph from 4096-d features: the dense items x items similarity then top-k vs row
    batches of 1024 (peak temporary memory in MiB in the labels)."""
    f = torch.randn(ds.n_items, dim, generator=torch.Generator().manual_seed(0))

    def dense():
        x = torch.nn.functional.normalize(f, dim=1)
        return torch.topk(x @ x.T, k, dim=1)

    n = ds.n_items
    return {"hot path": f"kNN graph, {n} items, {dim}-d, k={k}",
            "before": f"dense {n}x{n} similarity ({n * n * 4 / 2**20:.0f} MiB)", "before s": _time(dense, 2),
            "after": f"row batches of 1024 ({1024 * n * 4 / 2**20:.0f} MiB)", "after s": _time(lambda: graph.knn_graph(f, k), 2)}


def token_crossing(ds, n_tokens: int = 17, dim: int = 64) -> dict:
    """MOTOR's token-crossing block on every item, forward+backward (T = 2 modalities x 8 tokens
    + the collision token): the token-axis MLP on batch-major (B, T, d) tokens through two
    transposes vs the token-major (T, B, d) layout, where it is two wide (T x T) @ (T x B*d) products."""
    from src.common.nn.item_repr import TokenCrossBlock
    torch.manual_seed(0)
    block = TokenCrossBlock(n_tokens, dim)
    x = torch.randn(ds.n_items, n_tokens, dim, requires_grad=True)
    x_t = x.detach().transpose(0, 1).contiguous().requires_grad_()
    steps = -(-len(ds.train) // 2048)

    def batch_major():
        (x + block.token_mlp(block.norm(x).transpose(1, 2)).transpose(1, 2)).sum().backward()

    before, after = _time(batch_major), _time(lambda: block(x_t).sum().backward())
    return {"hot path": f"MOTOR token crossing, {ds.n_items} items x {n_tokens} tokens fwd+bwd, x{steps} steps",
            "before": "batch-major (B, T, d), token MLP through transposes", "before s": before * steps,
            "after": "token-major (T, B, d): wide (T x T) @ (T x B*d) products", "after s": after * steps}


def run_all(dataset: str = "baby") -> list[dict]:
    ds = load_dataset(resolve(None, dataset).first())
    rows = [negative_sampling(ds), propagation(ds), sparse_format(ds), evaluation(ds), knn(ds), token_crossing(ds)]
    for r in rows:
        r["speed-up"] = r["before s"] / r["after s"]
    return rows
