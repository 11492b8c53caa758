"""Where a host model gets its item vectors: an ID embedding table (default) or, with
``item_representation: motor``, MOTOR's shared multimodal tokens.

Every host asks ``self.item_representation(dataset, dim)`` for a module and calls it — ``rep()``
for all items (n_items, dim), ``rep(items)`` for some rows — so switching the representation needs
no per-model code: ``python main.py -m LightGCN -d scientific --set item_representation=motor``
trains "MOTOR-LightGCN".

MOTOR (Zhang et al., "Learning ID-free Item Representation with Token Crossing for Multimodal
Recommendation", 2024), in three steps:

1. Feature discretisation (Sec. 3.2): per modality m, product quantisation splits each item's
   feature vector x_i^m into M sub-vectors and gives sub-vector j the index of its nearest of K
   k-means centroids of sub-space j: item i gets M tokens per modality, t_i^m in [0, K)^M.
   Defaults (ours; measured, see :data:`AUTO_TOKENS_PER_ITEM`): K = 256 and M = 32 / #modalities.
   Fitted once per dataset and cached on disk, keyed by the feature bytes and the settings.
   Items whose features differ but whose tokens all coincide would share one vector; with
   ``pq_collision_token`` (our addition, as generative retrieval's semantic IDs append an index)
   each item also gets one extra token: its rank among the distinct feature rows of its token
   group (0 for an item alone in its group). Items with identical features keep identical tokens.
2. Token embeddings: one learnable table of M*K rows per modality (sub-space j owns rows
   [jK, (j+1)K)); item i's tokens are looked up: E_i in R^{T x d}, T = M x #modalities.
3. Token Cross Network (Sec. 3.3): L blocks that cross the tokens (a residual token-axis MLP
   mixing the T tokens per embedding channel), a residual channel MLP crossing the embedding
   dimensions, and mean pooling over the tokens: e_i in R^d. ``motor_channel_cross: token`` crosses
   channels per token before pooling (Mixer-style); ``pooled`` (default, 1/T of the cost) crosses the
   pooled vector once. They are different functions: mean_t g(x_t) != g(mean_t x_t) for a
   non-linear g. The modal-agnostic variant crosses all T tokens together; the modal-specific one
   runs one network per modality and averages.
   Initialisation (ours; the paper does not say): the last layer of every residual MLP is zero, so
   at the start e_i is the plain mean of its token embeddings, and the token tables are scaled so
   that this mean has the per-entry spread of the ID table it replaces (xavier over n_items x d).

``motor_graph_tokens`` (ours, default 0 = the paper): G more tokens per item, the product
quantisation (G sub-spaces, same K) of the item's factors in a rank-64 truncated SVD of the
degree-normalised train interactions (:func:`graph_factors`, PureSVD's item side), as a further
"modality". Still no per-item parameter: the tokens are data, computed once per dataset; an item
without train interactions (a new one) gets the zero profile's tokens. Why: on `sports` (text
features only) MOTOR-BPR kept 69% of BPR's Recall@20 (3 seeds), and neither less capacity nor more
regularisation moved it: one seed, reg_weight 1e-3, 15 epochs, valid / test Recall@20, MOTOR-BPR
0.0340 / 0.0238; dropping each token with p = 0.5 in training (train BPR loss 0.23 instead of 0.05)
0.0339 / 0.0242; mean-pooled tokens (``motor_layers: 0``) 0.0268 / 0.0185 — ID-BPR at the same
point 0.0502 / 0.0332. Text alone does not tell apart items that different users buy; the
interaction profile does: with G = 16, 0.0460 / 0.0328 (the profile zeroed for items below the cold
threshold: 0.0325 / 0.0231, so the gain is mostly the low-degree items'). On `scientific` (CLIP image +
text) the features already carry it: MOTOR-BPR valid / test 0.2236 / 0.1633 without, 0.2171 /
0.1605 (G = 8) and 0.2192 / 0.1640 (G = 16) with, cold NDCG@20 0.0286 -> 0.0205 / 0.0226.
Token dropout was tried and left out (scientific, p = 0.3: valid 0.2216, test 0.1640).
Against the hosts on sports (``src/configs/benchmark_motor_graph.yaml``, G = 16, 3 seeds, the MOTOR
suite's budget), share of the host's Recall@20 without -> with graph tokens: BPR 69% -> 91%,
LightGCN 105% -> 111%, VBPR 106% -> 145%, BM3 78% -> 82%; cold NDCG@20 vs the host: BPR 173%,
LightGCN 66% -> 147%, VBPR 107%, BM3 31% -> 11%; zero-shot items (no train interaction: the empty
profile's tokens, met only as negatives) fall to 0. Not a default: on scientific (one seed, valid /
test Recall@20 / test cold NDCG@20, without -> with G = 16) valid rejects it for MOTOR-LightGCN
(2 layers, reg 1e-3: 0.2433 / 0.1846 / 0.0202 -> 0.2402 / 0.1826 / 0.0184) and MOTOR-BPR (above) and
prefers it for MOTOR-LATTICE (lr 1e-3, reg 1e-3, motor_reg_weight 1e-3: 0.2302 / 0.1757 / 0.0356 ->
0.2350 / 0.1774 / 0.0312): a per-host setting for valid to choose.

``motor_graph_factors`` (ours, default false = the paper): the same profile without quantisation,
e_i += A g_i, g_i the item's rank-64 SVD factors (:func:`graph_factors`, scaled to unit RMS by one
scalar for all items), A a (d x 64) matrix that starts at zero (so training starts from the paper's
output). r x d more parameters, one (B x r) @ (r x d) product per encoding: none of the T^2 cost of
more tokens. An item without train interactions has zero factors and keeps the paper's vector.
One seed, valid / test Recall@20 / test cold NDCG@20, without -> with: sports MOTOR-BPR (reg 1e-3, 15
epochs) 0.0340 / 0.0238 / - -> 0.0578 / 0.0397 / 0.0019 (ID-BPR 0.0502 / 0.0332; G = 16 graph
tokens 0.0460 / 0.0328); scientific MOTOR-BPR (reg 1e-3) 0.2236 / 0.1633 / 0.0286 -> 0.2295 /
0.1743 / 0.0221; MOTOR-FREEDOM (its MOTOR suite config) 0.2419 / 0.1819 / 0.0299 -> 0.2443 / 0.1850 /
0.0303. Valid rejects it on scientific for MOTOR-LightGCN (2 layers, reg 1e-3) 0.2433 -> 0.2295,
MOTOR-LGMRec (alpha 0.6, 4 hyperedges, keep 0.2, 1 hyper layer) 0.2354 -> 0.2288, MOTOR-VBPR
0.2329 -> 0.2254, MOTOR-LATTICE 0.2357 -> 0.2333 and MOTOR-BM3 (no network) 0.2457 -> 0.2043; the
first two peak by epoch 17 instead of 50-90: propagation already carries the profile, and the
factors let them fit the train interactions fast. A per-host setting, like the graph tokens:
``src/configs/benchmark_motor_factors.yaml`` runs it (3 seeds, the MOTOR suite's budget) for BPR
and FREEDOM on scientific and BPR, VBPR, BM3, FREEDOM and LATTICE on sports. Share of the host's
Recall@20 there, the paper's MOTOR -> with factors: sports BPR 69% -> 112%, VBPR 106% -> 171%, BM3
78% -> 97%, FREEDOM 96% -> 117%, LATTICE 87% -> 89%; scientific BPR 97% -> 102%, FREEDOM 98% -> 99%;
valid preferred the factors for each of them (README, "MOTOR with graph factors").
The factors fit the train interactions fast, and a graph host with them peaks early; MOTOR's own L2
(``motor_reg_weight``) holds them back: MOTOR-LGMRec on scientific (its MOTOR suite point, valid
Recall@20, seed 999) 0.2288 with the factors alone, 0.2347 / 0.2402 / 0.2395 with L2 1e-3 / 1e-2 / 1e-1
(seed 1: 1e-2 0.2409, 1e-1 0.2360), against 0.2354 without the factors;
``benchmark_motor_factors.yaml`` runs it at 1e-2, on sports too: there (3 seeds) MOTOR-LGMRec keeps
100.5% of LGMRec's Recall@20 (the paper's MOTOR: 59%) and 158% of its cold NDCG@20 (p < 1e-4).

``motor_graph_rank`` r (ours, default 64, the rank before the key): the truncated SVD's rank, i.e. how
much of each item's interaction profile the factors (and graph tokens) carry; the map grows by r x d.
MOTOR-BM3 on sports (mean-pooled tokens + factors, its suite point dropout 0.5 / 2 layers / reg 0.1,
seed 999, valid / test Recall@20 / test cold NDCG@20): r = 64 0.0559 / 0.0391 / 0.0018, 128 0.0610 /
0.0421 / 0.0020, 256 0.0634 / 0.0439 / 0.0016, 512 0.0668 / 0.0458 / 0.0013 (1024: the SVD alone ran
over 11 minutes, stopped). Over 3 seeds against BM3 (0.0403 / cold 0.0013): r = 256 0.0442 (109.8%) /
0.0018 (134.9%, p = 0.07); r = 512, valid's choice, 0.0460 (114.1%) / 0.0012 (92%, p = 0.6): valid
rises with r while the cold items fall back to the host's level, the factors making the item side
more ID-like. MOTOR-LATTICE on sports (its suite point, seed 999): r = 128 valid 0.0652 after 5
epochs, 0.0613 after 10 (stopped), against 0.0656 at 64.

``motor_factor_dropout`` p (ours, default 0): in training each item's factor term is dropped with
probability p (whole rows; the kept ones scaled by 1 / (1 - p)), so the tokens must carry every item
part of the time, as DropoutNet does for content; evaluation uses every item's full factors.
MOTOR-LGMRec on scientific at the factors suite's chosen point (alpha 0.6, 64 hyperedges, keep 0.2,
2 hyper layers, factors + L2 1e-2), seeds 999 / 1 / 2, valid Recall@20 p = 0 -> 0.5: 0.2488 / 0.2516
/ 0.2512 -> 0.2526 / 0.2567 / 0.2467; test, paired over users: Recall@20 0.1839 -> 0.1877 (p =
0.03), NDCG@20 0.0868 -> 0.0875 (p = 0.32), cold Recall@20 0.0590 -> 0.0627 (p = 0.02), cold NDCG@20
0.0221 -> 0.0228 (p = 0.25): more Recall@20, cold NDCG@20 still below ID LGMRec's 0.0265. p = 0.3
(seeds 999 / 1) 0.2471 / 0.2505 valid; p = 0.8 (seed 999) 0.2457, cold NDCG@20 0.0199; p = 0.5
without MOTOR's L2 (seeds 999 / 1) 0.2343 / 0.2326, cold 0.0206 / 0.0159: the L2 is still needed. On
sports it does not help (seed 999, each host's factors suite point, valid / test Recall@20):
MOTOR-BM3 0.0560 / 0.0379 (without: 0.0559 / 0.0391), MOTOR-LATTICE 0.0583 / 0.0382 (the suite's
3-seed mean without: 0.0670 / 0.0432); nor at the SVD rank valid later chose for MOTOR-BM3 (512,
seed 999, valid / test Recall@20 / test cold NDCG@20, p = 0.3 / 0.5: 0.0674 / 0.0454 / 0.0010,
0.0657 / 0.0457 / 0.0010; without: 0.0668 / 0.0458 / 0.0013): its cold items do not come back.
So a per-host setting, off by default.
``benchmark_motor_factor_dropout.yaml`` runs MOTOR-LGMRec with it under the suites' protocol (search
chose the same point): 103.8% of LGMRec's Recall@20 (p = 0.006), 85.8% of its cold NDCG@20 (p <
0.001 below); and MOTOR-VBPR with mean-pooled tokens, the factors and p = 0.3 (valid 0.2489 over 3
seeds, above the paper's network, 0.2368): 110.7% of VBPR's Recall@20, 90.0% of its cold NDCG@20 (p
= 0.09; 85% with the network, p = 0.03; at p = 0.5 109.6% / 93.6%). Tried and not kept (scientific
MOTOR-LGMRec, seed 999, valid Recall@20 / cold NDCG@20): shrinking each item's factors by d / (d +
10), d its train degree (cold items' factor rows are as long as warm ones': 6.6 at degree 1-9 vs 8.0
at 20+ after the unit-RMS scaling), 0.2484 / 0.0221 against 0.2488 / 0.0236 without; factors only
for items with at least 10 train interactions, with p = 0.5, 0.2464 / 0.0221 against 0.2526 /
0.0229; shrinking each item's factors towards the mean factors of its 10 most cosine-similar
trained items (per modality), g'_i = (d_i g_i + c n_i) / (d_i + c), so that a cold item leans on the
profile of the items it resembles (both hosts at their factor-dropout suite points; valid Recall@20 /
test Recall@20 / test cold NDCG@20): MOTOR-VBPR, 3 seeds, c = 0 / 2 / 10: 0.2489 / 0.1791 / 0.0262,
0.2442 / 0.1786 / 0.0254, 0.2418 / 0.1779 / 0.0272; MOTOR-LGMRec, c = 10, seeds 999 / 1: valid 0.2488 /
0.2512 (c = 0: 0.2526 / 0.2567), cold NDCG@20 0.0226 / 0.0209 (c = 0, 3 seeds: 0.0228).

Why the two hosts that already read the features (VBPR, LGMRec) do not get both on scientific: every
MOTOR form measured lies on one overall-vs-cold frontier, and valid Recall@20 picks its overall end.
MOTOR-VBPR, seeds 999 / 1, valid Recall@20 / test Recall@20 / test cold NDCG@20 (ID VBPR at its
chosen reg 1e-3: 0.2154 / 0.1607 / 0.0290): mean-pooled tokens + factors + dropout 0.3 at reg 1e-2 (the
suite's form) 0.2472 / 0.1800 / 0.0267; the same with dropout 0.7 0.2435 / 0.1812 / 0.0302; at reg
1e-3 0.2352 / 0.1736 / 0.0333; no factors, reg 1e-2 0.2374 / 0.1740 / 0.0315; every form at reg 0.1
0.2250-0.2347 / 0.1808-0.1864 / 0.0107-0.0146: the host's L2 is the dial, and the forms whose cold
NDCG@20 beats VBPR's have the lower valid. MOTOR-LGMRec (seed 999, the suite's point; ID LGMRec over
3 seeds 0.2494 / 0.1808 / 0.0265): the paper's MOTOR with MOTOR's L2 1e-3 0.2381 / 0.1791 / 0.0235,
1e-2 0.2471 / 0.1850 / 0.0197 (without the L2, 3 seeds: 0.2341 / 0.1710 / 0.0298; factors + L2 1e-2 +
dropout 0.5: 0.2520 / 0.1877 / 0.0228).

e_i replaces the host's ID embedding; the paper adds no loss. Parameters: #modalities*M*K*d for the
tables plus the network — independent of the number of items.

``motor_reg_weight`` (ours, default 0 = the paper): an L2 term on the batch's MOTOR item vectors
(the positives' and negatives'), added by the trainer to any host's loss. Why: a host's own L2 acts
on what it chose to regularise. LightGCN and BPR penalise their layer-0 item vectors, which under
MOTOR *are* the token network's outputs; LATTICE (as in its authors' code) penalises only its final,
graph-averaged embeddings, and there the shared token tables grow unchecked (layer-0 item norm 9.6
vs 2.9 with IDs after training on `scientific`). Measured on `scientific` (MOTOR-LATTICE, lr 1e-3,
reg_weight 1e-3, one seed, test R@20 / cold N@20): 0 -> 0.1244 / 0.0309, 1e-3 -> 0.1519 / 0.0307,
1e-2 -> 0.1640 / 0.0184, 1e-1 -> 0.1405 / 0.0090 (ID LATTICE: 0.1777 / 0.0238): it buys warm
accuracy with cold-item accuracy, so it is a per-host setting (benchmark_motor.yaml), not a default.
At the learning rate MOTOR-LATTICE's search then chose (5e-3, reg_weight 1e-5; seeds 999 / 1, valid
Recall@20): 1e-3 0.2357 / 0.2302, 3e-3 0.2450 / 0.2354, 1e-2 0.2374 / 0.2381, 3e-2 0.2347 / -; the
per-host settings suite (benchmark_motor_factors.yaml) uses 3e-3 there.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds
from torch import nn

from src.common.cache import cache_path, content_key, disk_cached
from src.common.config import ConfigError, register_section
from src.common.nn.losses import emb_reg
from src.common.nn.quantize import ProductQuantizer

logger = logging.getLogger(__name__)

#: default rank (``motor_graph_rank``) of the truncated SVD whose item factors ``motor_graph_tokens``
#: quantises and ``motor_graph_factors`` maps
GRAPH_RANK = 64


@register_section("item representation")
@dataclass
class ItemReprConfig:
    item_representation: Literal["id", "motor"] = "id"   # id: a learnable table per item; motor: tokens
    pq_subspaces: int = 0            # MOTOR: M sub-vectors (tokens) per modality, 1..feature dim; 0 = auto (below)
    pq_codebook_size: int = 256      # MOTOR: K centroids per sub-space (token vocabulary per sub-space)
    pq_iterations: int = 25          # MOTOR: k-means iterations of the PQ fit
    pq_seed: int = 0                 # MOTOR: k-means seed of the PQ fit (fixed: tokens are data, not a run)
    motor_fusion: Literal["agnostic", "specific"] = "agnostic"  # cross all modalities' tokens together, or per modality
    motor_layers: int = 1            # MOTOR: Token Cross Network blocks (0 = mean of token embeddings)
    motor_dropout: float = 0.0       # MOTOR: dropout inside the Token Cross Network
    motor_graph_tokens: int = 0      # MOTOR (ours): tokens of each item's train-interaction profile (PQ of SVD item factors); 0 = off
    motor_graph_factors: bool = False  # MOTOR (ours): add a learned linear map of the item's SVD factors themselves
    motor_graph_rank: int = GRAPH_RANK  # MOTOR (ours): rank of that SVD (factors per item), graph tokens and factors
    motor_factor_dropout: float = 0.0  # MOTOR (ours): in training, drop an item's factors with this probability
    motor_channel_cross: Literal["pooled", "token"] = "pooled"  # cross channels after pooling, or per token
    pq_collision_token: bool = True  # MOTOR: one extra token telling apart items whose PQ tokens coincide
    motor_reg_weight: float = 0.0    # MOTOR: L2 weight on the batch's MOTOR item vectors (ours; 0 = the paper: no loss)

    @staticmethod
    def inactive_keys(values) -> set[str]:
        """MOTOR's settings do not change a run with ID embeddings: keep them out of its run id."""
        if values.get("item_representation", "id") == "id":
            return {f for f in ItemReprConfig.__dataclass_fields__ if f != "item_representation"}
        if not values.get("motor_graph_factors") and not values.get("motor_graph_tokens"):
            return {"motor_graph_rank"}                 # no interaction profile is read
        return set()

    def __post_init__(self):
        if self.pq_subspaces < 0:
            raise ValueError(f"pq_subspaces must be >= 1, or 0 = auto, got {self.pq_subspaces}")
        if self.pq_iterations < 1:
            raise ValueError(f"pq_iterations must be >= 1, got {self.pq_iterations}")
        if self.pq_codebook_size < 2:
            raise ValueError(f"pq_codebook_size must be >= 2, got {self.pq_codebook_size}")
        if self.motor_layers < 0:
            raise ValueError(f"motor_layers must be >= 0, got {self.motor_layers}")
        if not 0.0 <= self.motor_dropout < 1.0:
            raise ValueError(f"motor_dropout must be in [0, 1), got {self.motor_dropout}")
        if self.motor_graph_rank < 1:
            raise ValueError(f"motor_graph_rank must be >= 1, got {self.motor_graph_rank}")
        if not 0 <= self.motor_graph_tokens <= self.motor_graph_rank:
            raise ValueError(f"motor_graph_tokens must be in [0, motor_graph_rank = {self.motor_graph_rank}], "
                             f"got {self.motor_graph_tokens}")
        if not 0.0 <= self.motor_factor_dropout < 1.0:
            raise ValueError(f"motor_factor_dropout must be in [0, 1), got {self.motor_factor_dropout}")
        if not self.motor_reg_weight >= 0.0:
            raise ValueError(f"motor_reg_weight must be >= 0, got {self.motor_reg_weight}")


class IDEmbedding(nn.Module):
    """A learnable (n_items, dim) table; ``forward(items=None)`` returns all rows or the given ones."""

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.weight if items is None else self.weight[items]


# ----------------------------------------------------------------------------- step 1: PQ tokens
def pq_tokens(features: torch.Tensor, subspaces: int, codebook_size: int, n_iter: int = 25,
              seed: int = 0, cache_dir: str = "cache", name: str = "features") -> dict[str, torch.Tensor]:
    """Product-quantise the rows of ``features`` (n, d) once and cache the result on disk.

    Returns ``{"codes": (n, M) int64 in [0, K), "centroids": (K, d) float32}`` (sub-space j's K
    centroids in sub-space j's columns, see :class:`ProductQuantizer`); the cache
    file is ``<cache_dir>/motor_pq/<name>-<key>.pt``, the key a hash of the feature bytes and
    every setting, so changed features or settings never reuse an old tokenisation.
    """
    settings = {"method": "product_quantisation", "centroids": "(K, d)", "subspaces": subspaces,
                "codebook_size": codebook_size, "n_iter": n_iter, "seed": seed}
    path = cache_path(cache_dir, "motor_pq", name, content_key({"features": features}, settings))

    def fit() -> dict[str, torch.Tensor]:
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):   # fitting or loading must leave the run's RNG alone
            pq = ProductQuantizer(subspaces, codebook_size, features.shape[1])
            pq.fit(features, seed=seed, n_iter=n_iter)
        codes = pq.encode(features)
        logger.info("MOTOR: product-quantised %s (%d x %d) into %d x %d tokens in %.1fs",
                    name, *features.shape, subspaces, codebook_size, time.perf_counter() - t0)
        return {"codes": codes.to(torch.int64),
                "centroids": torch.cat([book.embeddings.detach().clone() for book in pq.books], 1)}

    entry, was_cached = disk_cached(path, fit)
    if was_cached:
        logger.info("MOTOR: %s tokens loaded from %s", name, path)
    return entry


def collision_ranks(codes: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Each item's rank among the distinct rows of ``features`` within its group of identical
    ``codes`` rows: (n,) int64, 0 for the first distinct feature row of a group (and for every item
    alone in its group); items with identical features get the same rank."""
    _, group = torch.unique(codes, dim=0, return_inverse=True)
    _, content = torch.unique(features, dim=0, return_inverse=True)
    ranks = torch.zeros(len(codes), dtype=torch.int64)
    order = torch.argsort(group * (int(content.max()) + 1) + content)       # by group, then content
    g, c = group[order], content[order]
    new_group = torch.ones_like(g, dtype=torch.bool)
    new_group[1:] = g[1:] != g[:-1]
    new_content = new_group.clone()
    new_content[1:] |= c[1:] != c[:-1]
    counter = torch.cumsum(new_content.long(), 0)
    start = counter[new_group][torch.cumsum(new_group.long(), 0) - 1]     # counter at the group's first row
    ranks[order] = counter - start
    return ranks


def colliding_items(codes: torch.Tensor) -> int:
    """How many items share their full token row with at least one other item."""
    _, inverse, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    return int((counts[inverse] > 1).sum())


#: ``pq_subspaces: 0`` (auto): this many content tokens per item in all, split evenly over the
#: modalities (32 for text only, 16 + 16 for image + text). Measured (MOTOR-BPR, one seed, test
#: Recall@20, valid in brackets): scientific (image + text, 512-d each) 8 x 64 0.1461 (0.1950),
#: 16 x 64 0.1550 (0.2071), 16 x 256 0.1633 (0.2236), 32 x 256 0.1585 (0.2050); sports (text, 384-d)
#: 8 x 64 0.0205 (0.0267), 16 x 256 0.0213 (0.0321), 32 x 64 0.0223 (0.0306), 32 x 256 0.0242
#: (0.0334), 48 x 256 0.0201 (0.0280): best at ~32 tokens per item on both. A fixed token count also
#: fixes the Token Cross Network's cost, which grows with T^2 (T = tokens per item).
AUTO_TOKENS_PER_ITEM = 32


def auto_subspaces(n_modalities: int) -> int:
    """``pq_subspaces: 0``: the sub-spaces per modality, :data:`AUTO_TOKENS_PER_ITEM` split evenly."""
    return max(1, AUTO_TOKENS_PER_ITEM // n_modalities)


def graph_factors(train_matrix: sp.spmatrix, rank: int = GRAPH_RANK) -> torch.Tensor:
    """Item factors of the train interactions: the rank-r truncated SVD of the degree-normalised
    user-item matrix D_u^-1/2 R D_i^-1/2 = U S V^T gives V S^1/2, (n_items, r) (PureSVD's item side).
    An item without train interactions gets the zero row. Deterministic (a fixed ARPACK start)."""
    r = sp.csr_matrix(train_matrix, dtype=np.float64)
    du, di = np.asarray(r.sum(1)).ravel(), np.asarray(r.sum(0)).ravel()
    norm = sp.diags(1 / np.sqrt(np.maximum(du, 1))) @ r @ sp.diags(1 / np.sqrt(np.maximum(di, 1)))
    rank = max(1, min(rank, min(norm.shape) - 1))
    _, s, vt = svds(norm, k=rank, v0=np.ones(min(norm.shape)) / np.sqrt(min(norm.shape)))
    order = np.argsort(-s)                                    # largest first: sub-space 0 holds the top factors
    return torch.from_numpy((vt[order].T * np.sqrt(s[order])).astype(np.float32))


def item_tokens(config, dataset) -> dict[str, torch.Tensor]:
    """MOTOR's tokens of every item, per modality the dataset has: {modality: (n_items, M)}, plus
    ``{"collision": (n_items, 1)}`` with ``pq_collision_token`` (see :func:`collision_ranks`)."""
    modalities = dataset.require_features("MOTOR (item_representation: motor)")
    k = config.pq_codebook_size
    tokens = {}
    for modality in modalities:
        features = dataset.features[modality]
        dim = features.shape[1]
        m_sub = config.pq_subspaces or min(dim, auto_subspaces(len(modalities)))
        if m_sub > dim:
            raise ConfigError(f"pq_subspaces={m_sub} exceeds the {modality} feature dimension {dim} "
                              f"of dataset {dataset.name!r}")
        if k > dataset.n_items:
            logger.warning("pq_codebook_size=%d exceeds the %d items: some tokens stay unused", k, dataset.n_items)
        key = f"motor_tokens:{modality}:{m_sub}:{k}:{config.pq_iterations}:{config.pq_seed}:{config.cache_dir}"
        entry = dataset.cached(key, lambda f=features, m=modality: pq_tokens(
            f, m_sub, k, config.pq_iterations, config.pq_seed, config.cache_dir, f"{dataset.name}-{m}"))
        tokens[modality] = entry["codes"]
    if config.motor_graph_tokens:
        if "graph" in modalities:
            raise ConfigError(f"motor_graph_tokens: dataset {dataset.name!r} has a feature modality named 'graph', "
                              f"the name of the interaction-profile tokens; rename that modality's feature file")
        factors = item_graph_factors(dataset, config.motor_graph_rank, config.cache_dir)
        m_sub = min(config.motor_graph_tokens, factors.shape[1])
        entry = dataset.cached(
            f"motor_tokens:graph:{config.motor_graph_rank}:{m_sub}:{k}:{config.pq_iterations}:{config.pq_seed}:"
            f"{config.cache_dir}",
            lambda: pq_tokens(factors, m_sub, k, config.pq_iterations, config.pq_seed, config.cache_dir,
                              f"{dataset.name}-graph"))
        tokens["graph"] = entry["codes"]
    if config.pq_collision_token:
        raw = torch.cat([dataset.features[m].float() for m in modalities], 1)
        tokens["collision"] = dataset.cached(
            f"motor_collision:{[t.shape[1] for t in tokens.values()]}:{k}:{config.pq_iterations}:{config.pq_seed}:"
            f"{config.cache_dir}",
            lambda: collision_ranks(torch.cat(list(tokens.values()), 1), raw)[:, None])
    return tokens


# ----------------------------------------------------------------------------- step 3: crossing
class TokenCrossBlock(nn.Module):
    """One token-crossing block: a pre-norm residual MLP along the token axis,
    X <- X + W2 gelu(W1 LN(X)) (T -> T -> T, along tokens), the same weights for every embedding
    channel, so each output token is a learned non-linear combination of all T tokens of the item.

    Layout: X is token-major, (T, B, d). The token MLP is then two (T x T) @ (T x B*d) products,
    one wide matrix product each; batch-major (B, T, d) needs two transposes and (B*d x T) @ (T x T)
    products of inner size T ~ 9 (a MOTOR-LightGCN step on `sports`, 1 thread: ~280 ms batch-major,
    ~180 ms token-major; LightGCN's own step ~35 ms)."""

    def __init__(self, n_tokens: int, dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.token_mlp = _mlp(n_tokens, n_tokens, dropout)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """H = drop(gelu(W1 LN(X) + b1)): (T, B*d)."""
        first, act, drop, _ = self.token_mlp
        h = self.norm(x).reshape(x.shape[0], -1)                              # (T, B*d)
        return drop(act(torch.addmm(first.bias[:, None], first.weight, h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = self.token_mlp[-1]
        return x + torch.addmm(last.bias[:, None], last.weight, self.hidden(x)).reshape(x.shape)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """forward(x).mean(0), without forming forward(x): the mean over the output tokens is linear,
        mean_t(X + W2 H + b2) = mean_t X + (mean_t W2) H + mean_t b2, so the (T x T) product and the
        residual add over the whole (T, B, d) tensor become one row (T x) @ (T x B*d): exact, and
        ~1/3 less work when the block is the network's last and only its mean is used."""
        last = self.token_mlp[-1]
        mixed = last.bias.mean() + last.weight.mean(0, keepdim=True) @ self.hidden(x)   # (1, B*d)
        return x.mean(0) + mixed.reshape(x.shape[1:])


def _mlp(width: int, hidden: int, dropout: float) -> nn.Sequential:
    """width -> hidden -> width; the last layer starts at zero, so the residual branch starts neutral."""
    mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


class TokenCrossNetwork(nn.Module):
    """(T, B, d) (token-major) -> (B, d): L token-crossing blocks, channel crossing x <- x + V2 gelu(V1 LN(x))
    (d -> d -> d) and the mean over the tokens. ``channel_cross="pooled"`` applies the channel MLP
    once to the pooled vector, ``"token"`` to every token before pooling; these differ (the mean of
    a non-linear map is not the map of the mean), "pooled" costs 1/T. With L = 0: the plain mean
    of the token embeddings (no network). At initialisation every residual branch is zero."""

    def __init__(self, n_tokens: int, dim: int, layers: int, dropout: float = 0.0,
                 channel_cross: str = "pooled"):
        super().__init__()
        self.blocks = nn.Sequential(*(TokenCrossBlock(n_tokens, dim, dropout) for _ in range(layers)))
        self.channel = nn.Sequential(nn.LayerNorm(dim), _mlp(dim, dim, dropout)) if layers else None
        self.per_token = channel_cross == "token"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel is None:                                  # L = 0: the mean of the tokens
            return x.mean(0)
        if self.per_token:
            x = self.blocks(x)
            return (x + self.channel(x)).mean(0)
        *first, last = self.blocks
        for block in first:
            x = block(x)
        pooled = last.pooled(x)            # = last(x).mean(0): only the mean of its tokens is used
        return pooled + self.channel(pooled)


# ----------------------------------------------------------------------------- the representation
class MotorRepresentation(nn.Module):
    """Items as shared multimodal tokens (step 2) crossed by a Token Cross Network (step 3).

    ``tokens``: {modality: (n_items, M) token indices in [0, K)}, optionally with ``"collision"``:
    (n_items, 1) collision ranks (its own small table, crossed with every modality's tokens);
    ``forward(items=None)`` returns (n_items, dim) or (len(items), dim). The item -> row indices
    are buffers, so a checkpoint carries the tokenisation its tables were trained with.
    ``id_std``: the per-entry std of the ID table being replaced; the initial output (the mean of
    the item's token embeddings) gets that spread.

    Speed: hosts ask for all items (``rep()``) and/or for the batch's rows (``rep(pos)``,
    ``rep(neg)``) in one training step. The last all-items output is remembered and rows are
    taken from it (same values, same graph) until one of: :meth:`parameters_changed` (the trainer
    calls it after every optimizer step: a fused optimizer updates the tensors without bumping
    their version counters), ``load_state_dict``, an in-place edit that bumps a version counter,
    a change of grad mode or train/eval mode, or a backward pass through it (its graph is freed).
    A request for many rows without a valid memo encodes all items once (the next request reuses
    it); a small one encodes its distinct items only.
    """

    def __init__(self, tokens: dict[str, torch.Tensor], codebook_size: int, dim: int,
                 fusion: str = "agnostic", layers: int = 1, dropout: float = 0.0,
                 channel_cross: str = "pooled", id_std: float | None = None,
                 graph_factors: torch.Tensor | None = None, factor_dropout: float = 0.0):
        super().__init__()
        self.factor_dropout = factor_dropout
        tokens = dict(tokens)
        collision = tokens.pop("collision", None)
        self.modalities, self.fusion = list(tokens), fusion
        self.n_items = next(iter(tokens.values())).shape[0]
        n_extra = 0 if collision is None else 1
        per_net = ([sum(c.shape[1] for c in tokens.values())] if fusion == "agnostic"
                   else [c.shape[1] for c in tokens.values()])
        # the initial output is the mean over a network's T tokens of which T - n_extra are content
        # tokens of std s: its std is s * sqrt(T - n_extra) / T; choose s so that this is id_std
        id_std = math.sqrt(2.0 / (self.n_items + dim)) if id_std is None else id_std
        # (modal-specific: the mean of len(per_net) independent such means, hence the last factor)
        token_std = id_std * max((t + n_extra) / math.sqrt(t) for t in per_net) * math.sqrt(len(per_net))
        self.token_emb = nn.ModuleDict()
        for m, codes in tokens.items():
            n_sub = codes.shape[1]
            # sub-space j owns rows [jK, (j+1)K) of its modality's table
            rows = codes.long() + codebook_size * torch.arange(n_sub, device=codes.device)
            self.register_buffer(f"rows_{m}", rows)                        # (n_items, M)
            table = nn.Embedding(n_sub * codebook_size, dim)
            nn.init.normal_(table.weight, std=token_std)
            self.token_emb[m] = table
        self.collision_emb = None
        if collision is not None:
            self.register_buffer("rows_collision", collision.long().reshape(-1, 1))
            self.collision_emb = nn.Embedding(int(collision.max()) + 1, dim)
            nn.init.normal_(self.collision_emb.weight, std=token_std)
            with torch.no_grad():                          # rank 0 (nearly every item) starts neutral
                self.collision_emb.weight[0].zero_()
        if fusion == "agnostic":
            self.cross = nn.ModuleDict({"all": TokenCrossNetwork(per_net[0] + n_extra, dim, layers, dropout,
                                                                 channel_cross)})
        else:
            self.cross = nn.ModuleDict({m: TokenCrossNetwork(c.shape[1] + n_extra, dim, layers, dropout,
                                                             channel_cross)
                                        for m, c in tokens.items()})
        # ``motor_graph_factors``: + A g_i, g_i the item's SVD factors scaled to unit RMS (one scalar
        # for all items, so their relative sizes stay), A zero at the start (the paper's output)
        self.graph_map = None
        if graph_factors is not None:
            g = graph_factors.float()
            self.register_buffer("graph", g / g.pow(2).mean().sqrt().clamp_min(1e-12))
            self.graph_map = nn.Linear(g.shape[1], dim, bias=False)
            nn.init.zeros_(self.graph_map.weight)
        self._memo: tuple[tuple, torch.Tensor] | None = None
        self._generation = 0

    def token_embeddings(self, items: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Step 2: {modality: (M, B, d)} embeddings of the items' tokens, token-major (and
        ``"collision"``: (1, B, d))."""
        out = {}
        for m in self.modalities:
            rows = getattr(self, f"rows_{m}")
            out[m] = self.token_emb[m]((rows if items is None else rows[items]).t())
        if self.collision_emb is not None:
            rows = self.rows_collision
            out["collision"] = self.collision_emb((rows if items is None else rows[items]).t())
        return out

    def encode(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Steps 2-3 for the given items (all when None): (B, dim)."""
        per_modality = self.token_embeddings(items)
        extra = [per_modality["collision"]] if "collision" in per_modality else []
        if self.fusion == "agnostic":                                     # cross across modalities
            out = self.cross["all"](torch.cat([per_modality[m] for m in self.modalities] + extra, 0))
        else:
            out = torch.stack([self.cross[m](torch.cat([per_modality[m]] + extra, 0))
                               for m in self.modalities]).mean(0)
        if self.graph_map is not None:
            g = self.graph if items is None else self.graph[items]
            if self.training and self.factor_dropout > 0:     # whole rows: the item is seen by its tokens alone
                keep = torch.rand(g.shape[0], 1, device=g.device) >= self.factor_dropout
                g = g * keep / (1 - self.factor_dropout)
            out = out + self.graph_map(g)
        return out

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        if items is None:
            out = self.encode()
            self._memo = (self._state(), out)
            if out.requires_grad:
                out.register_hook(self._forget)   # backward frees this graph: never hand it out again
            return out
        if self._memo is None or self._memo[0] != self._state():
            unique, inverse = torch.unique(items, return_inverse=True)
            if 4 * len(unique) < self.n_items:      # few rows: encode only those
                return self.encode(unique)[inverse]
            self.forward()                          # many rows: encode all once, share it
        return self._memo[1][items]

    def parameters_changed(self) -> None:
        """The parameters were updated (an optimizer step): the remembered output is stale."""
        self._generation += 1
        self._memo = None

    def _state(self) -> tuple:
        return (self._generation, torch.is_grad_enabled(), self.training,
                tuple(p._version for p in self.parameters()))

    def _forget(self, grad: torch.Tensor) -> None:
        self._memo = None

    def _load_from_state_dict(self, *args, **kwargs):
        self.parameters_changed()
        return super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self):           # deepcopy / pickling never carries a live graph
        state = self.__dict__.copy()
        state["_memo"] = None
        return state


def representation_losses(reps: list[nn.Module], config, batch) -> dict[str, torch.Tensor]:
    """``{"motor_reg": motor_reg_weight * L2 of the batch's MOTOR item vectors}`` when the weight is
    set and a MOTOR representation is among ``reps``; else ``{}``."""
    weight = config.motor_reg_weight
    motor = [rep for rep in reps if isinstance(rep, MotorRepresentation)]
    if not weight or not motor:
        return {}
    return {"motor_reg": weight * sum(emb_reg(rep(batch.pos), rep(batch.neg)) for rep in motor)}


def item_graph_factors(dataset, rank: int = GRAPH_RANK, cache_dir: str | None = None) -> torch.Tensor:
    """:func:`graph_factors` of the dataset's train interactions, once per dataset and rank; with
    ``cache_dir`` also on disk (``<cache_dir>/motor_graph/<dataset>-<key>.pt``, the key a hash of the
    train matrix and the rank), since a large rank's SVD takes minutes (sports, rank 512: ~2.7 min)."""
    def compute() -> torch.Tensor:
        if cache_dir is None:
            return graph_factors(dataset.train_matrix, rank)
        r = sp.csr_matrix(dataset.train_matrix, copy=True)
        r.sum_duplicates()                             # canonical, for the key only
        key = content_key({"indptr": r.indptr, "indices": r.indices, "data": r.data, "shape": np.array(r.shape)},
                          {"method": "graph_factors", "normalisation": "D_u^-1/2 R D_i^-1/2", "rank": rank})
        path = cache_path(cache_dir, "motor_graph", dataset.name, key)

        def build() -> dict[str, torch.Tensor]:
            t0 = time.perf_counter()
            factors = graph_factors(dataset.train_matrix, rank)
            logger.info("MOTOR: rank-%d SVD item factors of %s's train interactions in %.1fs",
                        rank, dataset.name, time.perf_counter() - t0)
            return {"factors": factors}

        entry, was_cached = disk_cached(path, build)
        if was_cached:
            logger.info("MOTOR: rank-%d graph factors loaded from %s", rank, path)
        return entry["factors"]
    return dataset.cached(f"motor_graph_factors:{rank}:{cache_dir}", compute)


def build_item_representation(config, dataset, dim: int) -> nn.Module:
    kind = config.item_representation
    if kind == "id":
        return IDEmbedding(dataset.n_items, dim)
    if kind == "motor":
        tokens = item_tokens(config, dataset)
        factors = (item_graph_factors(dataset, config.motor_graph_rank, config.cache_dir)
                   if config.motor_graph_factors else None)
        rep = MotorRepresentation(tokens, config.pq_codebook_size, dim, config.motor_fusion,
                                  config.motor_layers, config.motor_dropout, config.motor_channel_cross,
                                  graph_factors=factors, factor_dropout=config.motor_factor_dropout)
        content = torch.cat([tokens[m] for m in tokens if m != "collision"], 1)
        raw = torch.cat([dataset.features[m].float() for m in tokens if m in dataset.features], 1)
        n_params = sum(p.numel() for p in rep.parameters())
        logger.info("MOTOR item representation: %s x %s tokens of %d codes%s%s, %s fusion, %d cross layer(s) "
                    "(channels crossed %s); colliding items: %d with PQ tokens, %d with all tokens, %d with "
                    "identical features (of %d); item-side parameters: %d (an ID table: %d)",
                    "+".join(m for m in tokens if m != "collision"),
                    "/".join(str(tokens[m].shape[1]) for m in tokens if m != "collision"),
                    config.pq_codebook_size, " + 1 collision token" if "collision" in tokens else "",
                    "" if factors is None else f" + a linear map of {factors.shape[1]} graph factors" + (
                        f" (dropped in training with p = {config.motor_factor_dropout:g})"
                        if config.motor_factor_dropout else ""),
                    config.motor_fusion, config.motor_layers, config.motor_channel_cross,
                    colliding_items(content), colliding_items(torch.cat(list(tokens.values()), 1)),
                    colliding_items(raw), dataset.n_items, n_params, dataset.n_items * dim)
        return rep
    raise ValueError(f"unknown item_representation {kind!r}")
