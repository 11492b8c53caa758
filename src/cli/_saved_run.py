"""Picking a finished run for the MoToRec commands (inspect, coldstart): a given run id, or the
best run of a label by valid metric; loading itself is :func:`src.common.experiment.runs.load_run`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from src.cli._common import split_results_dir
from src.common.config import Config, ConfigError
from src.common.recommender import resolve
from src.common.data.dataset import Dataset, load_dataset
from src.common.experiment.results import ResultsStore, best_per_label
from src.common.experiment.runs import find_run, load_run


@dataclass
class SavedRun:
    config: Config
    dataset: Dataset
    model: torch.nn.Module
    run_dir: Path


def load_saved_run(dataset: str, model: str, run: str | None = None, label: str | None = None,
                   overrides: dict | None = None) -> SavedRun:
    """The model of a finished run (eval mode, best weights) and the dataset it was trained on.

    ``run``: a run id, unique prefix or folder; default: the best run of ``label`` (default: the
    model name) by valid metric among the runs on the current data of ``dataset``.
    ``overrides``: ``results_dir`` (where the runs are) and load_run's runtime keys (threads, ...).
    """
    results_dir, runtime = split_results_dir(overrides or {})
    data = None
    if not run:
        data = load_dataset(resolve(model, dataset, {}).first())
        records = [r for r in ResultsStore(results_dir, dataset).records(data.fingerprint)
                   if r["model"] == model and r["label"] == (label or model)]
        if not records:
            raise ConfigError(f"no finished {label or model} run on {dataset} in {results_dir}; train one "
                              f"with python main.py -m {model} -d {dataset}")
        run = next(iter(best_per_label(records).values()))[0]["run_id"]
    loaded = load_run(run, results_dir, dataset=data, **runtime)
    return SavedRun(loaded.config, loaded.dataset, loaded.model, find_run(run, results_dir))
