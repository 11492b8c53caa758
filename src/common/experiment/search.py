"""Running a search space: each chosen point (config x seed) once, resumable, recorded by the driver.

The driver expands the space, asks its strategy (``search: grid | random | tpe``, see
:mod:`src.common.experiment.strategies`) for batches of points, skips the runs whose record says *finished*
(resume after a kill), hands the rest to an executor, writes each record atomically as soon as its
outcome arrives, and picks the best config by the mean *valid* metric over seeds.

An executor is a callable ``(trials, dataset) -> iterator of (trial, TrainResult | exception)``
with two attributes: ``parallelism`` (runs it does at once) and ``shared(obj)`` (a handle to
``obj`` that trials can call from wherever they run, e.g. the ASHA scheduler). :data:`in_process`
runs trials one by one here; :class:`src.common.experiment.executors.RayExecutor` runs them on Ray and writes
the files a worker sends back (checkpoint, log) into the run folder from this process. Records are
written here only: the driver process is the only writer of the results store.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from tqdm.auto import tqdm

from src.common.config import EXECUTION_KEYS, Config, ConfigError, ConfigSpace, DatasetConfig
from src.common.data.dataset import DataError, Dataset, load_dataset
from src.common.extras import require
from src.common.recommender import get_model_class
from src.common.storage import STORAGE_ERRNOS
from src.common.experiment.results import ResultsStore, best_per_label, make_record, run_id_for
from src.common.experiment.strategies import Asha, make_strategy
from src.common.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)

#: keys that change the data itself: one search loads its dataset once, so they cannot be swept
DATA_KEYS = {f for f in DatasetConfig.__dataclass_fields__} | {"dataset", "cold_threshold"}


@dataclass
class Trial:
    config: Config
    run_id: str
    run_dir: Path
    scheduler: Any = None   # the search's Asha (or a handle to it) when bad runs stop early
    lost: list[str] = field(default_factory=list)  # causes of earlier attempts that never returned
                                                   # ("node lost", "worker died"); the executor re-ran it


@dataclass
class SearchSummary:
    records: list[dict[str, Any]]
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    pruned: int = 0          # stopped early by the scheduler (not counted in finished)
    best: list[dict[str, Any]] = field(default_factory=list)  # the best config's records (one per seed)
    seconds: float = 0.0
    retried: int = 0         # runs re-run because an attempt was lost (its worker or node died)
    lost_attempts: dict[str, int] = field(default_factory=dict)  # cause -> attempts lost
    lost: int = 0            # failed because the attempt was lost every time (counted in failed)

    def faults(self) -> str:
        """What lost workers and nodes did to this search, in words ("" if nothing was lost)."""
        if not self.retried and not self.lost:
            return ""
        causes = ", ".join(f"{n}x {cause}" for cause, n in sorted(self.lost_attempts.items()))
        text = f"{self.retried} run(s) re-run after a lost attempt (lost attempts: {causes})"
        if self.lost:
            text += f"; {self.lost} failed, lost on every attempt"
        return text


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


def train_one(config: Config, dataset: Dataset, run_dir: Path | None,
              should_stop: Callable[[int, float], bool] | None = None) -> TrainResult:
    """Train and evaluate one configuration, logging into ``run_dir/run.log``."""
    ctx = run_logging(run_dir / "run.log") if run_dir is not None else contextlib.nullcontext()
    with ctx:
        logger.info("run %s: %s on %s, seed %d", run_dir.name if run_dir else "-", config.model,
                    config.dataset, config.seed)
        logger.debug("resolved config:\n%s", config.as_yaml())
        result = Trainer(config, dataset, run_dir=run_dir, should_stop=should_stop).fit()
        logger.info("best epoch %d; valid %s; test %s", result.best_epoch,
                    _short(result.valid), _short(result.test))
    return result


def _short(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                    if k.endswith("@20") and ("recall" in k or "ndcg" in k) and not k.startswith("deg"))


class WorkerLost(RuntimeError):
    """The trial's attempts never returned: its worker process or its node died every time (an
    executor's outcome; the causes are in ``trial.lost``)."""


Outcome = TrainResult | BaseException
Train = Callable[..., TrainResult]


def run_trial(trial: Trial, dataset: Dataset, train: Train | None = None) -> TrainResult:
    """Train one trial with ``train`` (default :func:`train_one`, looked up at call time), asking
    the trial's scheduler, if any, whether to stop early."""
    train = train or train_one
    stop = None
    if trial.scheduler is not None:
        stop = functools.partial(trial.scheduler.should_stop, trial.run_id)
    return train(trial.config, dataset, trial.run_dir, should_stop=stop)


class InProcess:
    """Run the trials one after another in this process. Config and data errors propagate (they
    would fail every trial); any other exception becomes a failed outcome."""

    parallelism = 1

    def __call__(self, trials: list[Trial], dataset: Dataset) -> Iterator[tuple[Trial, Outcome]]:
        for trial in trials:
            try:
                yield trial, run_trial(trial, dataset)
            except (ConfigError, DataError, KeyboardInterrupt):
                raise
            except OSError as e:
                if e.errno in STORAGE_ERRNOS:  # a full disk or a read-only folder fails every trial
                    raise
                logger.error("trial %s failed:\n%s", trial.run_id, traceback.format_exc())
                yield trial, e
            except Exception as e:  # noqa: BLE001 - a failing trial must not stop the search
                logger.error("trial %s failed:\n%s", trial.run_id, traceback.format_exc())
                yield trial, e

    def shared(self, obj: Any) -> Any:
        return obj


class Executor(Protocol):
    """Runs trials somewhere and yields each one's outcome as soon as it is known."""

    parallelism: int   # trials it runs at once

    def __call__(self, trials: list[Trial], dataset: Dataset) -> Iterator[tuple[Trial, Outcome]]: ...

    def shared(self, obj: Any) -> Any:
        """A handle to ``obj`` whose methods trials can call from wherever they run."""


in_process = InProcess()


def check_space(space: ConfigSpace) -> None:
    """Stop before any training if the space cannot be searched as asked."""
    swept = DATA_KEYS & set(space.grid)
    if swept:
        raise ConfigError(f"hyper_parameters: {sorted(swept)} change the dataset itself and cannot be "
                          f"swept in one search; run one search per value instead")
    swept = EXECUTION_KEYS & set(space.grid)
    if swept:
        raise ConfigError(f"hyper_parameters: {sorted(swept)} decide how runs execute, not what they "
                          f"compute (they are not part of the run id), and cannot be swept")
    if space.base["search"] == "tpe":
        require("optuna", "search: tpe")


def run_search(space: ConfigSpace, dataset: Dataset | None = None, executor: Executor = in_process,
               force: bool = False, on_record: Callable[[dict], None] | None = None) -> SearchSummary:
    """Run every pending point the space's strategy picks and return the summary (records of all
    the points it visited, finished earlier or now)."""
    check_space(space)
    first = space.first()
    dataset = dataset if dataset is not None else load_dataset(first)
    needs = get_model_class(first.model).required_modalities
    if needs != ():  # fail before any run folder is written, not inside every trial
        dataset.require_features(first.model, None if needs is None else list(needs))
    store = ResultsStore(first.results_dir, first.dataset)
    strategy = make_strategy(space, executor.parallelism)
    scheduler = None
    if first.scheduler == "asha":
        scheduler = executor.shared(Asha(first.asha_grace, first.asha_reduction))
    also_done = ("pruned",) if scheduler is not None else ()  # a stopped run is decided, not lost
    t0 = time.perf_counter()
    summary = SearchSummary(records=[])
    records: dict[str, dict[str, Any]] = {}   # run id -> record, for this search
    total = strategy.total * len(space.seeds)
    show = first.show_progress and total > 1
    bar = tqdm(total=total, desc=f"{first.search} search {first.model}", unit="run", disable=not show,
               dynamic_ncols=True)
    try:
        while (points := strategy.ask()) is not None:
            run_ids, pending, skipped = _plan(space, points, dataset.fingerprint, store, records, force,
                                              also_done, scheduler)
            summary.skipped += skipped
            bar.update(skipped)
            with contextlib.closing(iter(executor(list(pending.values()), dataset))) as outcomes:
                for trial, outcome in outcomes:
                    record = _record(trial, outcome, dataset, summary)
                    store.write_config(trial.run_dir, trial.config)
                    store.write(trial.run_dir, record)  # at once, atomically: a kill loses only runs in flight
                    records[trial.run_id] = record
                    if on_record:
                        on_record(record)
                    bar.update(1)
                    best = _best(records.values())
                    if best:
                        key = first.valid_metric
                        bar.set_postfix({f"best {key}": f"{best[0]['valid'].get(key, 0):.4f}"})
            for point, ids in zip(points, run_ids):  # in ask order, whatever order runs finished in
                strategy.tell(point, [records[i] for i in ids if i in records])
    finally:
        bar.close()
    summary.records = list(records.values())
    summary.best = _best(summary.records)
    summary.seconds = time.perf_counter() - t0
    logger.info("search done: %d finished, %d failed, %d skipped (already finished)%s%s in %.1fs",
                summary.finished, summary.failed, summary.skipped,
                f", {summary.pruned} stopped early by {first.scheduler}" if scheduler is not None else "",
                f"; {summary.faults()}" if summary.faults() else "", summary.seconds)
    return summary


def _plan(space, points, fingerprint, store, records, force, also_done, scheduler):
    """The run ids of each point's seeds, the trials still to run, and how many runs were skipped
    because the store holds their finished record (which joins ``records``)."""
    run_ids: list[list[str]] = []
    pending: dict[str, Trial] = {}
    skipped = 0
    for point in points:
        ids = []
        for seed in space.seeds:
            config = space.config_at(point, seed)
            run_id = run_id_for(config, fingerprint)
            ids.append(run_id)
            if run_id in records or run_id in pending:
                continue
            trial = Trial(config, run_id, store.root / config.model / run_id, scheduler)
            done = None if force else store.finished(trial.run_dir, also=also_done)
            if done is not None:
                records[run_id] = done
                skipped += 1
            else:
                pending[run_id] = trial
        run_ids.append(ids)
    if skipped:
        logger.info("resuming: %d of %d runs already finished, %d to go", skipped, skipped + len(pending),
                    len(pending))
    return run_ids, pending, skipped


def _record(trial: Trial, outcome: Outcome, dataset: Dataset, summary: SearchSummary) -> dict[str, Any]:
    for cause in trial.lost:
        summary.lost_attempts[cause] = summary.lost_attempts.get(cause, 0) + 1
    all_lost = isinstance(outcome, WorkerLost)   # its last attempt is in trial.lost too
    summary.retried += len(trial.lost) + (0 if all_lost else 1) > 1
    if isinstance(outcome, BaseException):
        summary.failed += 1
        summary.lost += all_lost
        return _noting_lost(trial, make_record(trial.config, dataset.fingerprint, trial.run_id, status="failed",
                                               error=f"{type(outcome).__name__}: {outcome}"))
    record = _noting_lost(trial, make_record(trial.config, dataset.fingerprint, trial.run_id, outcome,
                                             dataset=dataset))
    if record["status"] == "pruned":
        summary.pruned += 1
    else:
        summary.finished += 1
    return record


def _noting_lost(trial: Trial, record: dict[str, Any]) -> dict[str, Any]:
    """The record, with the causes of the attempts that were lost before it (if any)."""
    if trial.lost:
        record["lost_attempts"] = list(trial.lost)
    return record


def _best(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    finished = [r for r in records if r.get("status") == "finished"]
    if not finished:
        return []
    by_label = best_per_label(finished)
    return next(iter(by_label.values()))
