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
   Fitted once per dataset and cached on disk, keyed by the feature bytes and the settings.
2. Token embeddings: one learnable table of M*K rows per modality (sub-space j owns rows
   [jK, (j+1)K)); item i's tokens are looked up: E_i in R^{T x d}, T = M x #modalities.
3. Token Cross Network (Sec. 3.3): L blocks that cross the tokens (a residual token-axis MLP
   mixing the T tokens per embedding channel), mean pooling over the tokens, then a residual
   channel MLP crossing the embedding dimensions: e_i in R^d. The modal-agnostic variant crosses
   all T tokens together; the modal-specific one runs one network per modality and averages.

e_i replaces the host's ID embedding; no loss is added. Parameters: #modalities*M*K*d for the
tables plus the network — independent of the number of items.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from src.common.cache import cache_path, content_key, disk_cached
from src.common.config import ConfigError, register_section
from src.common.nn.quantize import ProductQuantizer

logger = logging.getLogger(__name__)


@register_section("item representation")
@dataclass
class ItemReprConfig:
    item_representation: Literal["id", "motor"] = "id"   # id: a learnable table per item; motor: tokens
    pq_subspaces: int = 8            # MOTOR: M sub-vectors (tokens) per modality; must divide each feature dim
    pq_codebook_size: int = 64       # MOTOR: K centroids per sub-space (token vocabulary per sub-space)
    pq_iterations: int = 25          # MOTOR: k-means iterations of the PQ fit
    pq_seed: int = 0                 # MOTOR: k-means seed of the PQ fit (fixed: tokens are data, not a run)
    motor_fusion: Literal["agnostic", "specific"] = "agnostic"  # cross all modalities' tokens together, or per modality
    motor_layers: int = 1            # MOTOR: Token Cross Network blocks (0 = mean of token embeddings)
    motor_dropout: float = 0.0       # MOTOR: dropout inside the Token Cross Network

    @staticmethod
    def inactive_keys(values) -> set[str]:
        """MOTOR's settings do not change a run with ID embeddings: keep them out of its run id."""
        if values.get("item_representation", "id") == "id":
            return {f for f in ItemReprConfig.__dataclass_fields__ if f != "item_representation"}
        return set()

    def __post_init__(self):
        for name in ("pq_subspaces", "pq_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pq_codebook_size < 2:
            raise ValueError(f"pq_codebook_size must be >= 2, got {self.pq_codebook_size}")
        if self.motor_layers < 0:
            raise ValueError(f"motor_layers must be >= 0, got {self.motor_layers}")
        if not 0.0 <= self.motor_dropout < 1.0:
            raise ValueError(f"motor_dropout must be in [0, 1), got {self.motor_dropout}")


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

    Returns ``{"codes": (n, M) int64 in [0, K), "centroids": (M, K, d/M) float32}``; the cache
    file is ``<cache_dir>/motor_pq/<name>-<key>.pt``, the key a hash of the feature bytes and
    every setting, so changed features or settings never reuse an old tokenisation.
    """
    settings = {"method": "product_quantisation", "subspaces": subspaces, "codebook_size": codebook_size,
                "n_iter": n_iter, "seed": seed}
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
                "centroids": torch.stack([book.embeddings.detach().clone() for book in pq.books])}

    entry, was_cached = disk_cached(path, fit)
    if was_cached:
        logger.info("MOTOR: %s tokens loaded from %s", name, path)
    return entry


def item_tokens(config, dataset) -> dict[str, torch.Tensor]:
    """MOTOR's tokens of every item, per modality the dataset has: {modality: (n_items, M)}."""
    modalities = dataset.require_features("MOTOR (item_representation: motor)")
    m_sub, k = config.pq_subspaces, config.pq_codebook_size
    tokens = {}
    for modality in modalities:
        features = dataset.features[modality]
        dim = features.shape[1]
        if dim % m_sub:
            raise ConfigError(f"pq_subspaces={m_sub} must divide the {modality} feature dimension {dim} "
                              f"of dataset {dataset.name!r} (divisors up to 64: "
                              f"{[d for d in range(1, min(dim, 64) + 1) if dim % d == 0]})")
        if k > dataset.n_items:
            logger.warning("pq_codebook_size=%d exceeds the %d items: some tokens stay unused", k, dataset.n_items)
        key = f"motor_tokens:{modality}:{m_sub}:{k}:{config.pq_iterations}:{config.pq_seed}:{config.cache_dir}"
        entry = dataset.cached(key, lambda f=features, m=modality: pq_tokens(
            f, m_sub, k, config.pq_iterations, config.pq_seed, config.cache_dir, f"{dataset.name}-{m}"))
        tokens[modality] = entry["codes"]
    return tokens


# ----------------------------------------------------------------------------- step 3: crossing
class TokenCrossBlock(nn.Module):
    """One token-crossing block on X (B, T, d): a pre-norm residual MLP along the token axis,
    X <- X + W2 gelu(W1 LN(X)^T)^T  (T -> T -> T), the same weights for every embedding channel,
    so each output token is a learned non-linear combination of all T tokens of the item."""

    def __init__(self, n_tokens: int, dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.token_mlp = _mlp(n_tokens, n_tokens, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.token_mlp(self.norm(x).transpose(1, 2)).transpose(1, 2)


def _mlp(width: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))


class TokenCrossNetwork(nn.Module):
    """(B, T, d) -> (B, d): L token-crossing blocks, the mean over the tokens, then channel crossing
    e <- e + V2 gelu(V1 LN(e)) (d -> d -> d) on the pooled vector. With L = 0: the plain mean of
    the token embeddings (no network). Channels are crossed after pooling, not per token: the
    same expressiveness per item at 1/T of the cost."""

    def __init__(self, n_tokens: int, dim: int, layers: int, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.Sequential(*(TokenCrossBlock(n_tokens, dim, dropout) for _ in range(layers)))
        self.channel = nn.Sequential(nn.LayerNorm(dim), _mlp(dim, dim, dropout)) if layers else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.blocks(x).mean(1)
        return pooled if self.channel is None else pooled + self.channel(pooled)


# ----------------------------------------------------------------------------- the representation
class MotorRepresentation(nn.Module):
    """Items as shared multimodal tokens (step 2) crossed by a Token Cross Network (step 3).

    ``tokens``: {modality: (n_items, M) token indices in [0, K)}; ``forward(items=None)`` returns
    (n_items, dim) or (len(items), dim). The item -> row indices are buffers, so a checkpoint
    carries the tokenisation its tables were trained with.

    Speed: hosts ask for all items (``rep()``) and/or for the batch's rows (``rep(pos)``,
    ``rep(neg)``) in one training step. The last all-items output is remembered until a parameter
    changes, the grad mode or train/eval mode changes, or a backward pass goes through it, and
    rows are taken from it (same values, same graph). A request for many rows without a valid
    memo encodes all items once (the next request reuses it); a small one encodes its distinct
    items only.
    """

    def __init__(self, tokens: dict[str, torch.Tensor], codebook_size: int, dim: int,
                 fusion: str = "agnostic", layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.modalities, self.fusion = list(tokens), fusion
        self.n_items = next(iter(tokens.values())).shape[0]
        self.token_emb = nn.ModuleDict()
        for m, codes in tokens.items():
            n_sub = codes.shape[1]
            # sub-space j owns rows [jK, (j+1)K) of its modality's table
            rows = codes.long() + codebook_size * torch.arange(n_sub, device=codes.device)
            self.register_buffer(f"rows_{m}", rows)                        # (n_items, M)
            table = nn.Embedding(n_sub * codebook_size, dim)
            nn.init.xavier_uniform_(table.weight)
            self.token_emb[m] = table
        if fusion == "agnostic":
            n_tokens = sum(c.shape[1] for c in tokens.values())
            self.cross = nn.ModuleDict({"all": TokenCrossNetwork(n_tokens, dim, layers, dropout)})
        else:
            self.cross = nn.ModuleDict({m: TokenCrossNetwork(c.shape[1], dim, layers, dropout)
                                        for m, c in tokens.items()})
        self._memo: tuple[tuple, torch.Tensor] | None = None

    def token_embeddings(self, items: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Step 2: {modality: (B, M, d)} embeddings of the items' tokens."""
        out = {}
        for m in self.modalities:
            rows = getattr(self, f"rows_{m}")
            out[m] = self.token_emb[m](rows if items is None else rows[items])
        return out

    def encode(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Steps 2-3 for the given items (all when None): (B, dim)."""
        per_modality = self.token_embeddings(items)
        if self.fusion == "agnostic":                                     # cross across modalities
            return self.cross["all"](torch.cat([per_modality[m] for m in self.modalities], 1))
        return torch.stack([self.cross[m](per_modality[m]) for m in self.modalities]).mean(0)

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

    def _state(self) -> tuple:
        return torch.is_grad_enabled(), self.training, tuple(p._version for p in self.parameters())

    def _forget(self, grad: torch.Tensor) -> None:
        self._memo = None

    def __getstate__(self):           # deepcopy / pickling never carries a live graph
        state = self.__dict__.copy()
        state["_memo"] = None
        return state


def build_item_representation(config, dataset, dim: int) -> nn.Module:
    kind = config.item_representation
    if kind == "id":
        return IDEmbedding(dataset.n_items, dim)
    if kind == "motor":
        tokens = item_tokens(config, dataset)
        rep = MotorRepresentation(tokens, config.pq_codebook_size, dim, config.motor_fusion,
                                  config.motor_layers, config.motor_dropout)
        signatures = torch.cat(list(tokens.values()), 1)
        n_params = sum(p.numel() for p in rep.parameters())
        logger.info("MOTOR item representation: %s x %d tokens of %d codes, %s fusion, %d cross layer(s); "
                    "%d distinct token sets for %d items; %d parameters (an ID table: %d)",
                    "+".join(tokens), config.pq_subspaces, config.pq_codebook_size, config.motor_fusion,
                    config.motor_layers, len(torch.unique(signatures, dim=0)), dataset.n_items,
                    n_params, dataset.n_items * dim)
        return rep
    raise ValueError(f"unknown item_representation {kind!r}")
