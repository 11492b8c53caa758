"""Saved runs: find them, list them, load them back. The single place that turns a run folder
into a working model again (the ``recommend`` command, notebooks and other tools all use it)::

    model, dataset, config, record = load_run("LightGCN-3f2a")   # a unique prefix of the id is enough
    top = model.recommend([3, 17, 42], k=10)                     # top.items, top.scores (k columns)

A run folder is ``<results_dir>/<dataset>/<Model>/<run_id>/`` (see :mod:`src.common.experiment.results`):
``config.yaml`` (resolved config), ``model.pt`` (best weights), ``result.json`` (the record).
Loading re-reads the dataset the config names, checks that it is the data the run was trained on
(user/item/split counts and a content hash per file — an error says what changed), rebuilds the
model from the config and loads the checkpoint: it then scores exactly as at the end of training.
"""
from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from src.common.config import LATER_KEYS, Config, load_yaml, test_mask_of
from src.common.data.dataset import DataError, Dataset, content_changes, load_dataset
from src.common.eval.evaluator import Evaluator
from src.common.paths import from_root
from src.common.recommender import GeneralRecommender, resolve
from src.common.experiment.results import ResultsStore
from src.common.eval.topk import run_topk_path, write_test_topk
from src.common.trainer import build_model, set_threads

logger = logging.getLogger(__name__)

#: keys that may differ from the saved config when a run is loaded (they do not change the model)
RUNTIME_KEYS = ("device", "threads", "eval_batch_size", "show_progress")
#: runtime keys that come from the current config files, not the saved run (a run trained on a GPU
#: loads on a CPU-only machine; progress bars follow today's setting)
FRESH_KEYS = ("device", "show_progress")


class RunError(ValueError):
    """A run that cannot be found or loaded (unknown or ambiguous id, unfinished, no checkpoint)."""


class LoadedRun(NamedTuple):
    model: GeneralRecommender   # in eval mode, best checkpoint loaded
    dataset: Dataset
    config: Config
    record: dict[str, Any]      # result.json


@dataclass(frozen=True)
class SavedRun:
    """One run folder and its record (as listed by :func:`saved_runs`)."""

    run_dir: Path
    record: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def has_checkpoint(self) -> bool:
        return (self.run_dir / "model.pt").exists()


def saved_runs(results_dir: str | Path = "saved", dataset: str | None = None,
               status: str | None = "finished") -> list[SavedRun]:
    """The recorded runs of ``dataset`` (default: every dataset in ``results_dir``), oldest first;
    ``status=None`` includes failed runs."""
    root = from_root(results_dir)
    if dataset:
        names = [dataset]
    else:
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    runs = [SavedRun(run_dir, record) for name in names
            for run_dir, record in ResultsStore(root, name).entries(status=status)]
    return sorted(runs, key=lambda r: (r.record.get("dataset", ""), r.record.get("finished_at", "")))


def find_run(run: str | Path, results_dir: str | Path = "saved") -> Path:
    """The folder of ``run``: a run id, a unique prefix of one (``LightGCN-3f2a``, or just the hex
    part ``3f2a``; case-insensitive), or a path to a run folder."""
    as_path = Path(run).expanduser()
    if (as_path / "config.yaml").exists():
        return as_path
    root = from_root(results_dir)
    folders = [p for p in root.glob("*/*/*") if (p / "config.yaml").exists()] if root.exists() else []
    by_name = {p.name: p for p in folders}
    query = str(run).strip()
    if query in by_name:
        return by_name[query]
    q = query.lower()
    hits = sorted(p for p in folders
                  if p.name.lower().startswith(q) or p.name.lower().rsplit("-", 1)[-1].startswith(q))
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        shown = ", ".join(p.name for p in hits[:5]) + (f" (+{len(hits) - 5} more)" if len(hits) > 5 else "")
        raise RunError(f"run id {query!r} is ambiguous in {root}: it matches {shown}; give more characters")
    close = difflib.get_close_matches(query, by_name, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise RunError(f"unknown run id {query!r}: no run in {root} has that id or prefix.{hint} "
                   f"List the runs with: python main.py runs -d <dataset>")


def run_config(run_dir: Path, **runtime) -> Config:
    """The run's resolved config (``config.yaml``), with :data:`FRESH_KEYS` from the current
    config files and any ``runtime`` keys (device, threads, ...) replaced. Keys declared since the
    run was made take their current defaults, except :data:`LATER_KEYS`, which take the value that
    computes what the run computed (e.g. MoToRec's ``degree_form: bias`` for a run from before it)."""
    bad = sorted(set(runtime) - set(RUNTIME_KEYS))
    if bad:
        raise RunError(f"only {', '.join(RUNTIME_KEYS)} can be changed when loading a run, not "
                       f"{', '.join(bad)} (the checkpoint was trained with the saved values)")
    path = run_dir / "config.yaml"
    saved = load_yaml(path)
    if not saved.get("model") or not saved.get("dataset"):
        raise RunError(f"{path}: no model or dataset key; not a run config")
    saved = {k: v for k, v in saved.items() if k not in FRESH_KEYS}
    config = resolve(saved["model"], saved["dataset"], runtime, extra_layers=[(str(path), saved)]).first()
    before = {k: old for k, old in LATER_KEYS.items() if k not in saved and k in config.to_dict()}
    return config.replace(**before) if before else config


def finished_record(run_dir: Path) -> dict[str, Any]:
    """The record of a finished run with a checkpoint, or a one-line RunError saying why not."""
    path = run_dir / "result.json"
    if not path.exists():
        raise RunError(f"run {run_dir.name} has not finished (no {path}); resume it by running the "
                       f"same train command again")
    record = json.loads(path.read_text())
    if record.get("status") != "finished":
        raise RunError(f"run {run_dir.name} failed ({record.get('error', 'no error recorded')}); "
                       f"see {run_dir / 'run.log'}")
    if not (run_dir / "model.pt").exists():
        raise RunError(f"run {run_dir.name} has no checkpoint ({run_dir / 'model.pt'}): it was trained with "
                       f"save_checkpoint: false; retrain it with --force --set save_checkpoint=true")
    return record


def data_changes(record: dict[str, Any], dataset: Dataset) -> list[str]:
    """What changed between the data the run was trained on and ``dataset`` (empty: the same).
    Records written before ``data`` existed are checked by their fingerprint alone."""
    saved = record.get("data") or {"fingerprint": record.get("fingerprint")}
    if saved.get("fingerprint") == dataset.fingerprint:
        return []  # same bytes in the same files: same counts (per-file hashes not needed)
    return content_changes(saved, dataset.content_summary())


def load_run(run: str | Path, results_dir: str | Path = "saved", dataset: Dataset | None = None,
             check_data: bool = True, **runtime) -> LoadedRun:
    """Load a finished run: ``(model, dataset, config, record)``, the model in eval mode with its
    best checkpoint, scoring exactly as at the end of training.

    ``run``: id, unique id prefix or folder (see :func:`find_run`). ``dataset``: an already loaded
    dataset (default: read the one the config names). ``check_data=False`` loads even when the data
    changed (only possible when the user and item counts still match). ``runtime``: any of
    :data:`RUNTIME_KEYS`, e.g. ``device="cpu"``, ``threads=1`` (torch's thread count is set to the
    run's ``threads``, as in training).
    """
    run_dir = find_run(run, results_dir)
    record = finished_record(run_dir)
    config = run_config(run_dir, **runtime)
    set_threads(config.threads)  # as the trainer does: the saved value unless overridden
    if dataset is None:
        dataset = load_dataset(config)
    changes = data_changes(record, dataset)
    if changes:
        where = f"{config.data_path}/{config.dataset}/" if dataset.source_files else f"dataset {dataset.name!r}"
        msg = f"run {run_dir.name} was trained on other data than {where} holds now: {'; '.join(changes)}"
        if check_data:
            raise DataError(f"{msg}. Retrain it (python main.py -m {config.model} -d {config.dataset} ...) "
                            f"or load it anyway with check_data=False (recommend --allow-changed-data)")
        logger.warning("%s; loading anyway", msg)
    model = build_model(config, dataset)
    checkpoint = run_dir / "model.pt"
    state = torch.load(checkpoint, map_location=model.device, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
        raise DataError(f"{checkpoint} does not fit {config.model} built on the current data: {first}") from None
    model.eval()
    logger.info("loaded run %s (%s on %s) from %s", run_dir.name, config.model, config.dataset, run_dir)
    return LoadedRun(model, dataset, config, record)


def ensure_test_topk(run: str | Path, k: int, results_dir: str | Path = "saved",
                     dataset: Dataset | None = None, **runtime) -> Path:
    """``<run dir>/test_top<k>.tsv`` of a finished run, written from its checkpoint if missing
    (e.g. ``--save-topk`` on a run that finished before without it)."""
    run_dir = find_run(run, results_dir)
    path = run_topk_path(run_dir, k)
    if path.exists():
        return path
    loaded = load_run(run_dir, dataset=dataset, **runtime)
    cfg = loaded.config
    evaluator = Evaluator(loaded.dataset, cfg.metrics, cfg.topk, cfg.eval_batch_size, loaded.model.device,
                          test_mask=test_mask_of(cfg))
    return write_test_topk(loaded.model, evaluator, run_dir, k, progress=cfg.show_progress)
