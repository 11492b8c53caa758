"""Loading a finished run back from the results store (one function, easy to replace by a shared
``load_run``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from src.common.config import Config, ConfigError, resolve
from src.common.dataset import Dataset, load_dataset
from src.common.results import ResultsStore, best_per_label

logger = logging.getLogger(__name__)


@dataclass
class SavedRun:
    config: Config
    dataset: Dataset
    model: torch.nn.Module
    run_dir: Path


def load_saved_run(dataset: str, model: str, run: str | None = None, label: str | None = None,
                   overrides: dict | None = None) -> SavedRun:
    """The model of a finished run with its weights, in eval mode, and the dataset it was trained on.

    ``run``: a run id (``MoToRec-1a2b...``) or a run folder; default: the best run of ``label``
    (default: the model name) by valid metric among the runs on the current data.
    ``overrides``: run-level keys such as ``results_dir`` or ``threads``.
    """
    overrides = dict(overrides or {})
    base = resolve(None, dataset, overrides).first()
    store = ResultsStore(base.results_dir, dataset)
    if run and Path(run).is_dir():
        run_dir = Path(run)
    elif run:
        run_dir = store.root / model / run
    else:
        ds = load_dataset(base)
        records = [r for r in store.records(ds.fingerprint)
                   if r["model"] == model and r["label"] == (label or model)]
        if not records:
            raise ConfigError(f"no finished {label or model} run on {dataset} in {store.root}; train one with "
                              f"python main.py -m {model} -d {dataset}")
        best = next(iter(best_per_label(records).values()))[0]
        run_dir = store.root / model / best["run_id"]
    if not (run_dir / "model.pt").exists():
        raise FileNotFoundError(f"{run_dir}: no model.pt (not a finished run with a saved checkpoint)")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    keep = {k: v for k, v in saved.items() if k not in ("model", "dataset")}
    keep.update(overrides)
    config = resolve(saved["model"], saved["dataset"], keep).first()
    from src.common.trainer import build_model, set_threads
    set_threads(config.threads)
    ds = load_dataset(config)
    net = build_model(config, ds)
    net.load_state_dict(torch.load(run_dir / "model.pt", map_location=net.device))
    net.eval()
    logger.info("loaded %s from %s", config.model, run_dir)
    return SavedRun(config, ds, net, run_dir)
