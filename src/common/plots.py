"""Figures written as PNG files (matplotlib without a display)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.common.storage import atomic_write


def plot_buckets(table: pd.DataFrame, labels: list[str], metrics: list[str], path: str | Path,
                 title: str = "") -> Path:
    """Grouped bars: one panel per metric, buckets on the x axis, one bar per label (the MOTOR
    paper's Figure 3). ``table`` is :func:`src.common.experiment.results.bucket_table`'s frame."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table[table["bucket"] != "all"]
    x = np.arange(len(table))
    width = 0.8 / max(len(labels), 1)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for j, label in enumerate(labels):
            values = table[f"{label} {metric}"].to_numpy(dtype=float)
            bars = ax.bar(x + (j - (len(labels) - 1) / 2) * width, values, width, label=label)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        ax.set_xticks(x, [f"{b.removeprefix('deg')}\n({u} users)" for b, u in zip(table["bucket"], table["test users"])])
        ax.set_xlabel("item's train interactions (test users with such an item)")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), mode="wb")
    plt.close(fig)
    return out
