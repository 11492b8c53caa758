"""Shared fixtures: tiny worlds built in the test, and the real `scientific` data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from src.common.recommender import resolve
from src.common.data.dataset import Dataset, load_dataset

torch.set_num_threads(1)  # tests stay fast when other processes share the cores


def checkerboard(n_users: int = 40, n_items: int = 30, per_user: int = 8, dims: int = 16,
                 seed: int = 0, modalities=("image", "text"), noise: float = 0.3) -> Dataset:
    """Even users like even items, odd users odd items; features encode the item's parity plus noise.

    Per user: the last interaction is test, the one before valid, the rest train.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        same = np.arange(u % 2, n_items, 2)
        items = rng.choice(same, size=min(per_user, len(same)), replace=False)
        for j, i in enumerate(items):
            label = 2 if j == len(items) - 1 else 1 if j == len(items) - 2 else 0
            rows.append((u, int(i), label))
    inter = pd.DataFrame(rows, columns=["userID", "itemID", "x_label"])
    parity = (np.arange(n_items) % 2).astype(np.float32)
    features = {}
    for k, m in enumerate(modalities):
        f = rng.normal(0, noise, size=(n_items, dims)).astype(np.float32)
        f[:, k] += 2 * parity - 1
        features[m] = f
    return Dataset.from_frame("checkerboard", inter, features, cold_threshold=3)


@pytest.fixture
def tiny():
    return checkerboard()


@pytest.fixture(scope="session")
def scientific():
    """The real shipped dataset (2,928 users, 1,585 items, CLIP image + text features)."""
    return load_dataset(resolve(None, "scientific").first())


def config_for(model: str, dataset: str = "scientific", **overrides):
    """The first grid point of a model's YAML, with overrides (no progress bars in tests)."""
    overrides.setdefault("show_progress", False)
    overrides.setdefault("threads", 1)  # robust when other processes share the cores
    return resolve(model, dataset, overrides).first()
