"""Which points of a search space run, and which runs stop early.

A *strategy* hands the search driver batches of grid points (``ask``; a point maps each swept key
to one of its ``hyper_parameters`` values) and learns from the records of each point's seeds
(``tell``, called in the order the points were asked, whatever order the runs finished in):

- :class:`GridSearch`: every point of the Cartesian product, once (MMRec's behaviour, the default);
- :class:`RandomSearch`: ``n_trials`` distinct points drawn without replacement, reproducible from
  the first seed;
- :class:`TPESearch`: Optuna's Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011)
  proposes ``n_trials`` distinct points over the same lists, maximising the mean valid metric
  over seeds.

:class:`Asha` is the optional early-stopping rule for bad runs (``scheduler: asha``).
"""
from __future__ import annotations

import json
import logging
import math
import random
from typing import Any

import numpy as np

from src.common.config import ConfigSpace
from src.common.extras import require

logger = logging.getLogger(__name__)

Point = dict[str, Any]


def point_key(point: Point) -> str:
    return json.dumps(point, sort_keys=True, default=str)


class GridSearch:
    """Every grid point, in one batch."""

    def __init__(self, space: ConfigSpace):
        self.space = space
        self.total = space.n_points
        self._asked = False

    def ask(self) -> list[Point] | None:
        if self._asked:
            return None
        self._asked = True
        return list(self.space.points())

    def tell(self, point: Point, records: list[dict[str, Any]]) -> None:
        pass


class RandomSearch(GridSearch):
    """``n_trials`` distinct grid points, drawn without replacement with ``random.Random(seed)``:
    the same seed draws the same points (so an interrupted random search resumes)."""

    def __init__(self, space: ConfigSpace, n_trials: int, seed: int):
        super().__init__(space)
        if n_trials > space.n_points:
            logger.warning("n_trials=%d exceeds the %d grid points: running all of them", n_trials,
                           space.n_points)
        self._points = random_points(space, n_trials, seed)
        self.total = len(self._points)

    def ask(self) -> list[Point] | None:
        if self._asked:
            return None
        self._asked = True
        return list(self._points)


def random_points(space: ConfigSpace, n_trials: int, seed: int) -> list[Point]:
    """The grid points a random search of ``n_trials`` with ``seed`` visits, in ask order (all of
    them when the grid is smaller): what a report needs to count only the runs the search would make."""
    n = min(n_trials, space.n_points)
    return [space.point_at(i) for i in random.Random(seed).sample(range(space.n_points), n)]


class TPESearch:
    """Optuna's TPE over the grid's lists, asked ``batch`` points at a time.

    Each swept key is one TPE dimension: a list of numbers is an ordered dimension (the sampler
    proposes a position in the sorted values, so it can learn "larger is better"); any other list
    is categorical. A point's objective is its mean valid metric over seeds; a point whose runs all
    failed is told as failed, one whose runs were all stopped by the scheduler as pruned.

    Reproducible: the sampler is seeded and learns only between batches, in ask order, so the same
    seed and ``batch`` propose the same points in-process and on Ray, and a resumed search (which
    replays the finished points from the store) proposes the same points again. A proposal equal to
    an evaluated point is answered from its record and does not count as a trial.
    """

    def __init__(self, space: ConfigSpace, n_trials: int, seed: int, batch: int, valid_metric: str):
        optuna = require("optuna", "search: tpe")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.space, self.valid_metric = optuna, space, valid_metric
        self.total = min(n_trials, space.n_points)
        self.batch = batch
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, self.total // 4)))
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._asked = 0
        self._known: dict[str, tuple[Any, float | None]] = {}   # point -> (state, value)
        self._waiting: dict[str, list[Any]] = {}               # point -> optuna trials awaiting it
        self._numeric = {k: all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                         for k, values in space.grid.items()}

    def _suggest(self, trial) -> Point:
        point = {}
        for key, values in self.space.grid.items():
            if self._numeric[key]:
                ordered = sorted(values)
                point[key] = ordered[trial.suggest_int(key, 0, len(values) - 1)]
            else:
                point[key] = values[trial.suggest_categorical(key, list(range(len(values))))]
        return point

    def ask(self) -> list[Point] | None:
        want = min(self.batch, self.total - self._asked)
        batch: list[Point] = []
        for _ in range(50 * max(want, 1)):  # bounded: the sampler may keep proposing known points
            if len(batch) >= want:
                break
            trial = self.study.ask()
            point = self._suggest(trial)
            key = point_key(point)
            if key in self._known:
                self._tell(trial, *self._known[key])
            elif key in self._waiting:
                self._waiting[key].append(trial)
            else:
                self._waiting[key] = [trial]
                batch.append(point)
        self._asked += len(batch)
        if not batch:
            if want:
                logger.info("TPE stopped after %d configs: it keeps proposing evaluated ones", self._asked)
            return None
        return batch

    def tell(self, point: Point, records: list[dict[str, Any]]) -> None:
        state, value = self._objective(records)
        key = point_key(point)
        self._known[key] = (state, value)
        for trial in self._waiting.pop(key, []):
            self._tell(trial, state, value)

    def _objective(self, records: list[dict[str, Any]]) -> tuple[Any, float | None]:
        states = self.optuna.trial.TrialState
        finished = [r["valid"].get(self.valid_metric, 0.0) for r in records if r.get("status") == "finished"]
        if finished:
            return states.COMPLETE, float(np.mean(finished))
        if any(r.get("status") == "pruned" for r in records):
            return states.PRUNED, None
        return states.FAIL, None

    def _tell(self, trial, state, value) -> None:
        if state == self.optuna.trial.TrialState.COMPLETE:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=state)


def make_strategy(space: ConfigSpace, parallelism: int = 1):
    """The strategy ``space``'s ``search`` key names (``parallelism``: runs an executor does at once,
    the default TPE batch)."""
    base = space.base
    seed = space.seeds[0]
    if base["search"] == "random":
        return RandomSearch(space, base["n_trials"], seed)
    if base["search"] == "tpe":
        batch = base["tpe_batch"] or max(1, math.ceil(parallelism / len(space.seeds)))
        return TPESearch(space, base["n_trials"], seed, batch, base["valid_metric"])
    return GridSearch(space)


class Asha:
    """Asynchronous successive halving as a stopping rule (Li et al., MLSys 2020).

    Rungs sit at ``grace * reduction**k`` evaluations. A run reaching a rung reports its best valid
    metric so far; once at least ``reduction`` runs have reported there, a run below the
    ``1 - 1/reduction`` quantile of the rung's scores is stopped. Reports are keyed by run id, so a
    retried run replaces its own score. Which runs stop depends on the order in which runs reach
    the rungs: with parallel workers it varies from one search to the next (hence off by default).
    """

    def __init__(self, grace: int, reduction: int):
        self.grace, self.reduction = grace, reduction
        self.rungs: dict[int, dict[str, float]] = {}

    def is_rung(self, n_evals: int) -> bool:
        rung = self.grace
        while rung < n_evals:
            rung *= self.reduction
        return rung == n_evals

    def should_stop(self, run_id: str, n_evals: int, score: float) -> bool:
        if not self.is_rung(n_evals):
            return False
        scores = self.rungs.setdefault(n_evals, {})
        scores[run_id] = score
        if len(scores) < self.reduction:
            return False
        cutoff = float(np.quantile(list(scores.values()), 1 - 1 / self.reduction))
        return score < cutoff
