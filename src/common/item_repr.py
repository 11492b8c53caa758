"""Where a host model gets its item vectors: an ID embedding table (default) or, with
``item_representation: motor``, MOTOR's multimodal tokens (added with the MOTOR issue).

Every host asks ``self.item_representation(dataset, dim)`` for a module and calls it, so switching
the representation needs no per-model code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from src.common.config import register_section


@register_section("item representation")
@dataclass
class ItemReprConfig:
    item_representation: Literal["id"] = "id"   # id: a learnable table per item


class IDEmbedding(nn.Module):
    """A learnable (n_items, dim) table; ``forward(items=None)`` returns all rows or the given ones."""

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.weight if items is None else self.weight[items]


def build_item_representation(config, dataset, dim: int) -> nn.Module:
    kind = config.item_representation
    if kind == "id":
        return IDEmbedding(dataset.n_items, dim)
    raise ValueError(f"unknown item_representation {kind!r}")
