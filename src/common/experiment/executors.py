"""Where a search's trials run: in this process (default) or on Ray.

``workers: N`` (``--workers N``) starts a local Ray instance for the command with
``N * cpus_per_trial`` CPUs, so N trials run at once; ``ray_address: auto | ray://host:10001 |
host:6379`` (``--ray-address``) submits them to a running Ray cluster instead (``workers`` then
caps the trials in flight; 0 = as many as the cluster's CPUs allow).

What travels where:
- the dataset goes once into Ray's object store (``ray.put``); workers never read the data files,
  so the data folder need only exist where the command is typed;
- on a cluster the code travels with the job (``runtime_env.working_dir`` = this repository
  without ``data/``, ``saved/``, ``cache/`` and ``.git``); each node needs only the Python packages;
- a worker trains in a private temporary folder and returns the TrainResult plus the bytes of the
  files the trainer wrote there (``model.pt``, ``per_user.npz``, ``run.log``); the driver writes them into the run
  folder of the results store. No folder is shared between nodes and the driver stays the only
  writer of the store.

Determinism: each trial's torch threads are pinned to ``cpus_per_trial`` (``threads`` in the
recorded config), the same seed then gives the same metrics as an in-process run with
``threads: cpus_per_trial`` on the same kind of hardware.

Faults: an exception raised by a trial is a failed outcome at once (re-running would raise
again); a config or data error stops the search as it does in-process. A trial whose worker process
dies (killed, out of memory) or whose node is lost (the machine leaves the cluster, its raylet
dies; or its result was still on that node) is re-submitted by this executor, wherever Ray finds a
free CPU, up to ``max_retries`` times, then it is a failed outcome (:class:`WorkerLost`). The
re-runs are done here, not by Ray's own task retries, so that each lost attempt and its cause
("node lost" or "worker died") is listed in ``trial.lost``: the run's record and the search's
summary say what happened. Runs that finished are in the store already (the driver writes each
one as it arrives), so losing a node loses only the attempts that were running on it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import Any, Iterator

from src.common.config import ConfigError
from src.common.data.dataset import DataError, Dataset
from src.common.extras import require
from src.common.paths import ROOT
from src.common.experiment.search import Outcome, Train, Trial, WorkerLost, in_process, run_trial
from src.common.storage import atomic_write

logger = logging.getLogger(__name__)

#: not uploaded with the code to a cluster: data goes through the object store, results stay here.
#: gitignore syntax: a leading "/" anchors at the repository root ("data/" alone would also drop
#: the package src/common/data/)
CODE_EXCLUDES = ["/data/", "/saved/", "/cache/", "/.git/", "*.pt", "*.ckpt", "*.log", "__pycache__/",
                 ".pytest_cache/"]


@dataclasses.dataclass
class _Lost:
    """One attempt of a trial that never returned: ``cause`` is "node lost" or "worker died"."""

    cause: str
    detail: str


def uses_ray(config) -> bool:
    return config.workers > 0 or bool(config.ray_address)


def make_executor(config):
    """The executor ``config`` asks for: :data:`in_process`, or a :class:`RayExecutor` (close it, or
    use it as a context manager, to stop the Ray instance it started)."""
    if not uses_ray(config):
        return in_process
    return RayExecutor(workers=config.workers, address=config.ray_address,
                       cpus_per_trial=config.cpus_per_trial, gpus_per_trial=config.gpus_per_trial,
                       max_retries=config.max_retries)


def _train_on_worker(trial: Trial, dataset: Dataset, train: Train | None) -> tuple[Any, dict[str, bytes]]:
    """Runs on a Ray worker: train in a private folder, return the result and that folder's files."""
    logging.getLogger().setLevel(logging.DEBUG)  # a worker starts at WARNING; run.log keeps it all
    logging.captureWarnings(True)  # into run.log, not onto the worker's stderr
    with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
        local = dataclasses.replace(trial, run_dir=Path(tmp) / trial.run_id)
        result = run_trial(local, dataset, train)
        files = {p.name: p.read_bytes() for p in local.run_dir.iterdir() if p.is_file()}
    return result, files


class _Shared:
    """A Ray actor holding one object; trials call its methods through :class:`SharedHandle`."""

    def __init__(self, obj: Any):
        self.obj = obj

    def call(self, method: str, *args):
        return getattr(self.obj, method)(*args)


class SharedHandle:
    """Calls ``handle.method(*args)`` on the object inside a :class:`_Shared` actor (blocking)."""

    def __init__(self, actor):
        self._actor = actor

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        import ray

        return lambda *args: ray.get(self._actor.call.remote(method, *args))


class RayExecutor:
    """Runs trials as Ray tasks, at most ``parallelism`` in flight, yielding outcomes as they finish.

    Uses the Ray instance this process is already connected to, if any (and leaves it running);
    otherwise starts a local one (``address=""``) or connects to ``address``, and :meth:`close`
    shuts it down. ``train`` replaces :func:`src.common.experiment.search.train_one` on the workers (tests
    inject faults with it; it must be picklable by value or importable there).
    """

    def __init__(self, workers: int = 0, address: str = "", cpus_per_trial: int = 1,
                 gpus_per_trial: float = 0.0, max_retries: int = 1, train: Train | None = None):
        feature = "--ray-address" if address else "--workers"
        ray = require("ray", feature)
        self.ray, self.cpus_per_trial, self.max_retries, self.train = ray, cpus_per_trial, max_retries, train
        self._started = not ray.is_initialized()
        if self._started:
            common = dict(log_to_driver=False, logging_level=logging.WARNING)
            if address:
                logger.info("connecting to the Ray cluster at %s (uploading the code from %s)", address, ROOT)
                ray.init(address=address, runtime_env={"working_dir": str(ROOT), "excludes": CODE_EXCLUDES},
                         **common)
            else:
                path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
                ray.init(address="local", num_cpus=max(1, workers) * cpus_per_trial, include_dashboard=False,
                         runtime_env={"env_vars": {"PYTHONPATH": path}}, **common)
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        if cpus < cpus_per_trial or gpus < gpus_per_trial:  # such a task would wait forever
            self.close()
            raise ConfigError(f"cpus_per_trial={cpus_per_trial}, gpus_per_trial={gpus_per_trial:g}: the Ray "
                              f"cluster has only {cpus} CPU(s) and {gpus:g} GPU(s)")
        self.parallelism = workers or max(1, cpus // cpus_per_trial)
        logger.info("Ray: %d CPU(s)%s, %d trial(s) at once, %d CPU(s) per trial", cpus,
                    f", {gpus:g} GPU(s)" if gpus_per_trial else "", self.parallelism, cpus_per_trial)
        # max_retries=0: a lost attempt comes back here, which re-submits it and notes the cause
        self._task = ray.remote(_train_on_worker).options(
            num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0, retry_exceptions=False)
        self._dataset_refs: dict[int, Any] = {}

    # ------------------------------------------------------------------ the executor protocol
    def shared(self, obj: Any) -> SharedHandle:
        """A handle to ``obj`` living in a Ray actor (no CPU reserved), callable from any trial."""
        actor = self.ray.remote(_Shared).options(num_cpus=0).remote(obj)
        return SharedHandle(actor)

    def __call__(self, trials: list[Trial], dataset: Dataset) -> Iterator[tuple[Trial, Outcome]]:
        ray = self.ray
        data_ref = self._put(dataset)
        queue = deque(self._pinned(t) for t in trials)
        in_flight: dict[Any, Trial] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < self.parallelism:
                    trial = queue.popleft()
                    in_flight[self._task.remote(trial, data_ref, self.train)] = trial
                done, _ = ray.wait(list(in_flight), num_returns=1)
                trial = in_flight.pop(done[0])
                outcome = self._outcome(done[0], trial)
                if isinstance(outcome, _Lost):
                    trial.lost.append(outcome.cause)
                    if len(trial.lost) <= self.max_retries:
                        logger.warning("trial %s: %s (%s); running it again (attempt %d of %d)", trial.run_id,
                                       outcome.cause, outcome.detail, len(trial.lost) + 1, self.max_retries + 1)
                        in_flight[self._task.remote(trial, data_ref, self.train)] = trial
                        continue
                    logger.error("trial %s: worker lost %d time(s) (%s): %s", trial.run_id, len(trial.lost),
                                 ", ".join(trial.lost), outcome.detail)
                    outcome = WorkerLost(f"the worker running this trial died {len(trial.lost)} time(s) "
                                         f"({', '.join(trial.lost)}; last: {outcome.detail})")
                yield trial, outcome
        finally:
            for ref in in_flight:  # interrupted (Ctrl-C, an error): the runs in flight are not recorded
                ray.cancel(ref)

    # ------------------------------------------------------------------ helpers
    def _pinned(self, trial: Trial) -> Trial:
        """The trial as it runs on a worker: torch threads = its CPUs, no per-epoch progress bar."""
        config = trial.config.replace(threads=self.cpus_per_trial, show_progress=False)
        return dataclasses.replace(trial, config=config, lost=list(trial.lost))

    def _put(self, dataset: Dataset):
        key = id(dataset)
        if key not in self._dataset_refs:
            self._dataset_refs = {key: (self.ray.put(dataset), dataset)}  # keep it alive while cached
        return self._dataset_refs[key][0]

    def _outcome(self, ref, trial: Trial) -> Outcome | _Lost:
        ray = self.ray
        try:
            result, files = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the trial itself raised
            cause = e.cause if isinstance(e.cause, BaseException) else e
            if isinstance(cause, (ConfigError, DataError)):
                raise cause from None
            logger.error("trial %s failed:\n%s", trial.run_id, e)
            return cause
        except ray.exceptions.RayError as e:  # its worker or its node died (or the node holding its result)
            lines = str(e).strip().splitlines()
            node = isinstance(e, (ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError))
            return _Lost("node lost" if node else "worker died",
                         f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__)
        for name, data in files.items():
            atomic_write(trial.run_dir / name, lambda f, data=data: f.write(data), mode="wb")
        return result

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def executor_for(config):
    """``with executor_for(config) as executor:`` — the executor, closed afterwards."""
    executor = make_executor(config)
    try:
        yield executor
    finally:
        if isinstance(executor, RayExecutor):
            executor.close()
