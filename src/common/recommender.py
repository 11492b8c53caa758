"""The recommender base class and the model registry.

A model is one file in ``src/models/`` with a class decorated by :func:`register`; it declares its
config keys in a nested ``Params`` dataclass and gets its values from ``src/configs/model/<Name>.yaml``.
It receives ``(config, dataset)``, reads tensors from the dataset (never paths), and implements:

- ``calculate_loss(batch) -> dict[str, Tensor]``  named loss terms, summed by the trainer;
- ``full_sort_predict(users) -> (len(users), n_items)`` scores — by default from ``forward()``,
  which returns the (n_users, d) user and (n_items, d) item representations, cached in eval mode.

Every model also gets ``recommend(users, k)``: the top-k items per user with their train items
excluded, from ``full_sort_predict`` (see :meth:`GeneralRecommender.recommend`).
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import pkgutil
from typing import Any, Mapping, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from src.common.nn import graph
from src.common.cache import cache_path, content_key, disk_cached
from src.common.config import ConfigError, ConfigSpace, resolve_layers
from src.common.eval.evaluator import masked_scores
from src.common.eval.metrics import parse_metric_name
from src.common.nn.item_repr import build_item_representation, representation_losses

logger = logging.getLogger(__name__)

MODELS: dict[str, type["GeneralRecommender"]] = {}


class UnknownModel(ConfigError, KeyError):
    def __str__(self):
        return str(self.args[0])


class RecommendError(ValueError):
    """A bad request to :meth:`GeneralRecommender.recommend` (unknown user, k out of range)."""


class Recommendations(NamedTuple):
    """Top-k lists, best first: ``items`` (n_users, k) int64 and ``scores`` (n_users, k) float32
    on the CPU. When a user has fewer than k items left after exclusion, the tail holds item -1
    with score -inf."""

    items: torch.Tensor
    scores: torch.Tensor


def register(cls: type["GeneralRecommender"]) -> type["GeneralRecommender"]:
    """Class decorator: make a model available by name (``-m <Name>``)."""
    if not dataclasses.is_dataclass(cls.Params):
        raise TypeError(f"{cls.__name__}.Params must be a dataclass")
    MODELS[cls.__name__] = cls
    return cls


def _discover() -> None:
    import src.models as pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"src.models.{info.name}")


def model_names() -> list[str]:
    _discover()
    return sorted(MODELS)


def resolve(model: str | None, dataset: str, overrides: Mapping[str, Any] | None = None,
            extra_layers: list[tuple[str, Mapping[str, Any]]] | None = None) -> ConfigSpace:
    """The config space of ``model`` (a registry name, or ``None`` for run + dataset keys only) on
    ``dataset``: the registry finds the model's ``Params``, :func:`config.resolve_layers` layers and
    validates the YAMLs, and metric names are checked against the evaluator's metrics up front."""
    space = resolve_layers(get_model_class(model) if model else None, dataset, overrides, extra_layers)
    for name in [*space.base["metrics"], space.base["valid_metric"]]:
        try:
            parse_metric_name(name if "@" in name else f"{name}@1")
        except ValueError as e:
            raise ConfigError(f"{space.sources.get('metrics', 'metrics')}: {e}") from None
    return space


def get_model_class(name: str) -> type["GeneralRecommender"]:
    """The registered model called ``name`` (case-insensitive)."""
    _discover()
    by_lower = {n.lower(): cls for n, cls in MODELS.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, MODELS, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModel(f"unknown model {name!r}.{hint} Registered models: {', '.join(sorted(MODELS))}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    return torch.device(name)


class GeneralRecommender(nn.Module):
    """Base of every model: sizes, device, shared graph/feature access, cached full ranking."""

    @dataclasses.dataclass
    class Params:
        """The model's own config keys (override in the model)."""

    #: modalities the model needs all of; None = any one is enough; () = an ID-only model
    required_modalities: tuple[str, ...] | None = ()

    def __init__(self, config, dataset):
        super().__init__()
        self.config = config
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        self.device = resolve_device(config.device)
        self.embedding_size = config.embedding_size
        self.modalities: list[str] = []
        if self.required_modalities != ():
            needed = None if self.required_modalities is None else list(self.required_modalities)
            self.modalities = dataset.require_features(type(self).__name__, needed)
        self._cached_output: Any = None
        self._item_reps: list[nn.Module] = []     # what item_representation() built (also registered by the host)
        self.train_interactions: sp.csr_matrix = dataset.train_matrix  # what recommend() excludes

    # ------------------------------------------------------------------ shared inputs
    def user_item_adjacency(self, dataset) -> torch.Tensor:
        """The train graph's D^-1/2 A D^-1/2, (U+I) x (U+I) sparse CSR on the model's device.
        Built once per dataset and shared by every model trained on it."""
        adj = dataset.cached("adj_sym", lambda: graph.to_torch_csr(graph.sym_norm_bipartite(
            dataset.train.users, dataset.train.items, dataset.n_users, dataset.n_items)))
        return adj.to(self.device)

    def user_item_blocks(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """The blocks R (U x I) and R^T (I x U) of :meth:`user_item_adjacency` (for
        ``graph.lightgcn_blocks``), on the model's device; built once per dataset, as the adjacency."""
        blocks = dataset.cached("adj_blocks", lambda: graph.bipartite_blocks(
            self.user_item_adjacency(dataset).cpu(), dataset.n_users))
        return tuple(b.to(self.device) for b in blocks)

    def modality_knn_graph(self, dataset, modality: str, k: int, weighted: bool = False) -> sp.csr_matrix:
        """D^-1/2 S D^-1/2 of the top-k cosine kNN graph of one modality's raw features (scipy CSR,
        n_items x n_items, each item's k most similar items incl. itself with weight 1, or the
        cosine when ``weighted``; D the row sums). Built once per dataset, modality, k and weighting,
        and cached on disk in ``cache_dir`` under a key of the feature bytes and those settings."""
        weighting = "cosine" if weighted else "binary"

        def build() -> sp.csr_matrix:
            features = dataset.features[modality]
            settings = {"graph": "cosine_knn", "k": k, "weighting": weighting, "normalisation": "sym"}
            path = cache_path(self.config.cache_dir, "knn_graph", modality,
                              content_key({"features": features}, settings))
            entry, was_cached = disk_cached(path, lambda: _csr_entry(graph.sym_norm(graph.knn_graph(
                features.to(self.device), k, weighted=weighted))))
            if was_cached:
                logger.info("%s kNN graph (k=%d, %s) loaded from %s", modality, k, weighting, path)
            return sp.csr_matrix((entry["data"].numpy(), entry["indices"].numpy(), entry["indptr"].numpy()),
                                 shape=tuple(entry["shape"].tolist()))

        return dataset.cached(f"knn_graph/{modality}/k={k}/{weighting}/sym_norm", build)

    def item_features(self, dataset) -> dict[str, torch.Tensor]:
        """The features of the modalities this model uses, (n_items, d_m) each, on its device
        (from an LMDB store they are read batch by batch straight onto the device)."""
        batch_rows = self.config.feature_batch_rows
        return {m: dataset.feature_stores[m].tensor(self.device, batch_rows) for m in self.modalities}

    def item_feature_stores(self, dataset) -> dict:
        """The feature stores of the modalities this model uses, for models that read rows in
        batches (``store.rows(items)`` -> (len(items), d_m) on the CPU) instead of all at once."""
        return {m: dataset.feature_stores[m] for m in self.modalities}

    def item_representation(self, dataset, dim: int) -> nn.Module:
        """The module giving item vectors (ID table, or MOTOR tokens by config): call it as
        ``rep()`` for all items (n_items, dim) or ``rep(items)`` for some."""
        rep = build_item_representation(self.config, dataset, dim)
        self._item_reps.append(rep)
        return rep

    @property
    def uses_item_representation(self) -> bool:
        """Whether the model asked for ``item_representation`` (checked by ``check_item_representation``)."""
        return bool(self._item_reps)

    def representation_losses(self, batch) -> dict[str, torch.Tensor]:
        """Loss terms of the item representation itself, added by the trainer to
        ``calculate_loss``'s (MOTOR's optional ``motor_reg_weight``; none for ID tables)."""
        return representation_losses(self._item_reps, self.config, batch)

    # ------------------------------------------------------------------ model API
    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All user (n_users, d) and item (n_items, d) representations."""
        raise NotImplementedError

    def calculate_loss(self, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def pre_epoch(self, epoch: int) -> None:
        """Hook run before each training epoch (e.g. to resample a pruned graph)."""

    def learning_rate_scale(self, epoch: int) -> float:
        """Factor on the configured learning rate for ``epoch`` (a model's own schedule); 1 by default."""
        return 1.0

    def epoch_report(self) -> str:
        """Extra text for the epoch's log line (e.g. codebook usage); empty by default."""
        return ""

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        """Scores (len(users), n_items): dot products of the cached ``forward()`` output."""
        user_all, item_all = self.cached_forward()
        return user_all[users] @ item_all.T

    def recommend(self, users, k: int = 10, exclude: str | sp.spmatrix | None = "train",
                  batch_size: int | None = None) -> Recommendations:
        """The top-``k`` items of each of ``users`` (ids: int, list, array or tensor), best first.

        ``exclude``: ``"train"`` masks each user's train items, ``None`` nothing, a sparse
        (n_users, n_items) matrix its nonzeros (e.g. train + valid, as the test evaluation does).
        Users are scored ``batch_size`` (default ``eval_batch_size``) at a time, in eval mode, with
        the same scoring, masking and ``torch.topk`` as the evaluator.
        """
        users = self.check_users(users)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise RecommendError(f"k must be a positive integer, got {k!r}")
        if k > self.n_items:
            raise RecommendError(f"k={k} is larger than the catalogue ({self.n_items} items)")
        if isinstance(exclude, str):
            if exclude != "train":
                raise RecommendError(f"exclude must be 'train', None or a sparse matrix, got {exclude!r}")
            exclude = self.train_interactions
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            if exclude.shape != (self.n_users, self.n_items):
                raise RecommendError(f"exclude has shape {exclude.shape}, expected "
                                     f"({self.n_users}, {self.n_items})")
        batch_size = batch_size or self.config.eval_batch_size
        was_training = self.training
        self.eval()
        items, scores = [torch.empty(0, k, dtype=torch.long)], [torch.empty(0, k)]
        try:
            with torch.no_grad():
                for start in range(0, len(users), batch_size):
                    batch = users[start:start + batch_size]
                    s = self.full_sort_predict(torch.from_numpy(batch).to(self.device))
                    if exclude is not None:
                        s = masked_scores(s, exclude, batch, self.device)
                    top = torch.topk(s.detach().float(), k, dim=1)
                    items.append(top.indices.masked_fill(torch.isneginf(top.values), -1).cpu())
                    scores.append(top.values.cpu())
        finally:
            if was_training:  # (train(False) would drop the cached forward output)
                self.train()
        return Recommendations(torch.cat(items), torch.cat(scores))

    def check_users(self, users) -> np.ndarray:
        """``users`` as a 1-D int64 array of known user ids, or a one-line RecommendError."""
        if isinstance(users, torch.Tensor):
            users = users.detach().cpu().numpy()
        arr = np.atleast_1d(np.asarray(users))
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise RecommendError(f"user ids must be integers, got {arr.ravel()[:5].tolist()}")
        arr = arr.astype(np.int64).ravel()
        unknown = arr[(arr < 0) | (arr >= self.n_users)]
        if unknown.size:
            shown = ", ".join(map(str, unknown[:5])) + (f" (+{unknown.size - 5} more)" if unknown.size > 5 else "")
            raise RecommendError(f"unknown user id(s) {shown}: user ids run from 0 to {self.n_users - 1}")
        return arr

    def cached_forward(self) -> Any:
        """``forward()`` computed once per evaluation (and recomputed whenever training resumes)."""
        if self.training:
            return self.forward()
        if self._cached_output is None:
            with torch.no_grad():
                self._cached_output = self.forward()
        return self._cached_output

    def train(self, mode: bool = True):
        self._cached_output = None
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._cached_output = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def parameters_changed(self) -> None:
        """Called by the trainer after every optimizer step: submodules that remember outputs
        computed from the parameters (MOTOR's item representation) drop them. A fused optimizer
        updates parameters without bumping their version counters, so this is the signal."""
        self._cached_output = None
        for module in self.modules():
            if module is not self and hasattr(module, "parameters_changed"):
                module.parameters_changed()

    def check_item_representation(self) -> None:
        """Refuse a non-default ``item_representation`` on a model that never asked for one (it
        would silently train with its own item vectors)."""
        kind = self.config.item_representation
        if kind != "id" and not self.uses_item_representation:
            raise ConfigError(f"item_representation: {kind} does not apply to {type(self).__name__}: it "
                              f"does not take its item vectors from item_representation (use id)")

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _csr_entry(m: sp.csr_matrix) -> dict[str, torch.Tensor]:
    """A scipy CSR matrix as plain tensors (what the disk cache stores)."""
    return {"indptr": torch.from_numpy(m.indptr.astype(np.int64)),
            "indices": torch.from_numpy(m.indices.astype(np.int64)),
            "data": torch.from_numpy(m.data.astype(np.float32)), "shape": torch.tensor(m.shape)}
