"""Running a search space: every point (config x seed) once, resumable, recorded by the driver.

The driver expands the space, skips the points whose record says *finished* (resume after a
kill), hands the rest to an executor (in-process here; other executors yield the same
``(trial, outcome)`` pairs), writes each record atomically as soon as its outcome arrives, and
picks the best config by the mean *valid* metric over seeds.
"""
from __future__ import annotations

import contextlib
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm.auto import tqdm

from src.common.config import Config, ConfigError, ConfigSpace, DatasetConfig
from src.common.dataset import DataError, Dataset, load_dataset
from src.common.recommender import get_model_class
from src.common.results import ResultsStore, best_per_label, make_record, run_id_for
from src.common.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)

#: keys that change the data itself: one search loads its dataset once, so they cannot be swept
DATA_KEYS = {f for f in DatasetConfig.__dataclass_fields__} | {"dataset", "cold_threshold"}


@dataclass
class Trial:
    config: Config
    run_id: str
    run_dir: Path


@dataclass
class SearchSummary:
    records: list[dict[str, Any]]
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    best: list[dict[str, Any]] = field(default_factory=list)  # the best config's records (one per seed)
    seconds: float = 0.0


@contextlib.contextmanager
def run_logging(path: Path, level=logging.DEBUG):
    """Copy every log record of the enclosed block into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def train_one(config: Config, dataset: Dataset, run_dir: Path | None) -> TrainResult:
    """Train and evaluate one configuration, logging into ``run_dir/run.log``."""
    ctx = run_logging(run_dir / "run.log") if run_dir is not None else contextlib.nullcontext()
    with ctx:
        logger.info("run %s: %s on %s, seed %d", run_dir.name if run_dir else "-", config.model,
                    config.dataset, config.seed)
        logger.debug("resolved config:\n%s", config.as_yaml())
        result = Trainer(config, dataset, run_dir=run_dir).fit()
        logger.info("best epoch %d; valid %s; test %s", result.best_epoch,
                    _short(result.valid), _short(result.test))
    return result


def _short(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                    if k.endswith("@20") and ("recall" in k or "ndcg" in k))


Outcome = TrainResult | BaseException
Executor = Callable[[list[Trial], Dataset], Iterator[tuple[Trial, Outcome]]]


def in_process(trials: list[Trial], dataset: Dataset) -> Iterator[tuple[Trial, Outcome]]:
    """Run the trials one after another in this process. Config and data errors propagate (they
    would fail every trial); any other exception becomes a failed outcome."""
    for trial in trials:
        try:
            yield trial, train_one(trial.config, dataset, trial.run_dir)
        except (ConfigError, DataError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - a failing trial must not stop the search
            logger.error("trial %s failed:\n%s", trial.run_id, traceback.format_exc())
            yield trial, e


def check_space(space: ConfigSpace) -> None:
    swept = DATA_KEYS & set(space.grid)
    if swept:
        raise ConfigError(f"hyper_parameters: {sorted(swept)} change the dataset itself and cannot be "
                          f"swept in one search; run one search per value instead")


def run_search(space: ConfigSpace, dataset: Dataset | None = None, executor: Executor = in_process,
               force: bool = False, on_record: Callable[[dict], None] | None = None) -> SearchSummary:
    """Run every pending point of ``space`` and return the summary (records of all points)."""
    check_space(space)
    first = space.first()
    dataset = dataset if dataset is not None else load_dataset(first)
    needs = get_model_class(first.model).required_modalities
    if needs != ():  # fail before any run folder is written, not inside every trial
        dataset.require_features(first.model, None if needs is None else list(needs))
    store = ResultsStore(first.results_dir, first.dataset)
    t0 = time.perf_counter()
    summary = SearchSummary(records=[])
    pending = []
    for config in space:
        run_id = run_id_for(config, dataset.fingerprint)
        trial = Trial(config, run_id, store.root / config.model / run_id)
        done = None if force else store.finished(trial.run_dir)
        if done is not None:
            summary.records.append(done)
            summary.skipped += 1
        else:
            pending.append(trial)
    if summary.skipped:
        logger.info("resuming: %d of %d runs already finished, %d to go", summary.skipped, len(space),
                    len(pending))
    show = first.show_progress and len(space) > 1
    bar = tqdm(total=len(space), initial=summary.skipped, desc=f"search {first.model}", unit="run",
               disable=not show, dynamic_ncols=True)
    for trial in pending:
        store.write_config(trial.run_dir, trial.config)
    for trial, outcome in executor(pending, dataset):
        if isinstance(outcome, BaseException):
            record = make_record(trial.config, dataset.fingerprint, trial.run_id, status="failed",
                                 error=f"{type(outcome).__name__}: {outcome}")
            summary.failed += 1
        else:
            record = make_record(trial.config, dataset.fingerprint, trial.run_id, outcome, dataset=dataset)
            summary.finished += 1
        store.write(trial.run_dir, record)  # at once, atomically: a kill loses at most the run in flight
        summary.records.append(record)
        if on_record:
            on_record(record)
        bar.update(1)
        best = _best(summary.records)
        if best:
            key = first.valid_metric
            bar.set_postfix({f"best {key}": f"{best[0]['valid'].get(key, 0):.4f}"})
    bar.close()
    summary.best = _best(summary.records)
    summary.seconds = time.perf_counter() - t0
    logger.info("search done: %d finished, %d failed, %d skipped (already finished) in %.1fs",
                summary.finished, summary.failed, summary.skipped, summary.seconds)
    return summary


def _best(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    finished = [r for r in records if r.get("status") == "finished"]
    if not finished:
        return []
    by_label = best_per_label(finished)
    return next(iter(by_label.values()))
