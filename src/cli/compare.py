"""``python main.py compare --run A --run B`` or ``compare -d <dataset> --label A --label B``: is B
better than A on the same test users? The paired difference B - A of the per-user test metrics
(``per_user.npz``), with its 95% interval and p-value, overall, on cold and zero-shot items and per
item-degree bucket. A ``--label`` side is that label's best config by valid metric, all its seeds
(each user's value averaged over them)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from src.cli._common import Today, overrides_of, reading_overrides, split_results_dir
from src.common.config import DEFAULT_TEST_MASK, ConfigError, test_mask_of
from src.common.data.dataset import DataError, dataset_files, fingerprint_files
from src.common.eval.per_user import load_per_user
from src.common.experiment.results import ResultsStore, best_per_label, markdown_table
from src.common.experiment.runs import RunError, find_run
from src.common.experiment.stats import paired_difference, seed_average
from src.common.recommender import resolve

HELP = "paired difference B - A of two runs' (or two labels' best configs') per-user test metrics"
logger = logging.getLogger(__name__)

VIEWS = ["", "cold/", "zero/", "deg0/", "deg1-4/", "deg5-9/", "deg10-19/", "deg20+/"]


def add_arguments(parser) -> None:
    parser.add_argument("--run", dest="runs", action="append", default=[], metavar="RUN",
                        help="a run id (or unique prefix, or folder); give it twice: A then B")
    parser.add_argument("--label", action="append", default=[], metavar="LABEL",
                        help="a leaderboard label (its best config, all seeds); twice, with -d")
    parser.add_argument("-d", "--dataset", help="the dataset of --label (runs know their own)")
    parser.add_argument("--metrics", default="recall@20,ndcg@20", help="default recall@20,ndcg@20")
    parser.add_argument("--current", action="store_true",
                        help="--label: choose only among runs today's defaults (and --set) would train")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="results_dir=... to read another results store; data_path=... where the dataset "
                             "lives; test_mask=train for --label runs ranked with only train items masked; "
                             "with --current, any key (the settings today's runs have)")


class Side:
    """One side of the comparison: its name, records and per-user files (one per seed), and for a
    label's best config what in it today's defaults would not train (``stale``, '' if nothing)."""

    def __init__(self, name: str, records: list[dict], run_dirs: list[Path], stale: str = ""):
        self.name, self.records, self.stale = name, records, stale
        self.per_user = []
        for run_dir in run_dirs:
            loaded = load_per_user(run_dir)
            if loaded is None:
                raise RunError(f"run {run_dir.name} has no per_user.npz (trained before per-user metrics were "
                               f"stored); re-run it with --force to compare it")
            self.per_user.append(loaded)

    def values(self, key: str):
        if any(key not in p for p in self.per_user):
            return None
        return seed_average([p[key] for p in self.per_user])


def run(args) -> int:
    results_dir, rest = split_results_dir(overrides_of(args))
    test_mask = rest.pop("test_mask", DEFAULT_TEST_MASK)
    where = {"data_path": rest.pop("data_path")} if "data_path" in rest else {}
    reading_overrides(rest)      # every key must belong to some model
    if rest and not args.current:
        raise ConfigError(f"compare: only results_dir, data_path and test_mask can be set (other keys with "
                          f"--current: the settings today's runs have), not {', '.join(rest)}")
    if args.runs and args.label or len(args.runs or args.label) != 2:
        raise ConfigError("compare: give exactly two --run (A then B) or exactly two --label (with -d)")
    sides = _by_run(args.runs, results_dir) if args.runs else _by_label(args.label, args.dataset, results_dir, test_mask,
                                                                          {**where, **rest}, args.current)
    a, b = sides
    masks = {test_mask_of(r["config"]) for s in sides for r in s.records}
    if len(masks) > 1:
        logger.warning("the sides were ranked with different test masks (%s): their metrics are not comparable",
                       ", ".join(sorted(masks)))
    metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
    rows = []
    for view in VIEWS:
        for m in metrics:
            va, vb = a.values(view + m), b.values(view + m)
            result = None if va is None or vb is None else paired_difference(va, vb)
            if result is None:
                continue
            rows.append({"view": view.rstrip("/") or "all", "metric": m, "users": result.n_users,
                         "A": result.mean_a, "B": result.mean_b, "B-A": result.diff,
                         "95% CI": f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}]", "p": _p(result.p)})
    if not rows:
        raise ConfigError(f"compare: no common test users with metrics {', '.join(metrics)} in both sides")
    dataset = a.records[0]["dataset"]
    print(f"## {dataset}: B - A, paired over the test users both were evaluated on\n")
    print(f"A = {a.name}\nB = {b.name}\n")
    for letter, side in (("A", a), ("B", b)):
        if side.stale:
            print(f"{letter}'s config is not what today's defaults would train: {side.stale}\n")
    print(markdown_table(pd.DataFrame(rows)))
    print("\nA, B: the mean metric over the row's users (each user's value averaged over a side's seeds); "
          "B-A: mean of the per-user differences with its 95% t interval; p: two-sided paired t-test, "
          "not corrected for the rows shown. A view's users are those with a test item in it; the metric "
          "counts only hits on its items (as result.json's cold/, deg*/ metrics).")
    return 0


def _p(p: float) -> str:
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def _by_run(runs: list[str], results_dir: str) -> list[Side]:
    sides = []
    for query in runs:
        run_dir = find_run(query, results_dir)
        path = run_dir / "result.json"
        record = json.loads(path.read_text()) if path.exists() else {}
        if record.get("status") != "finished":
            raise RunError(f"run {run_dir.name} has not finished ({path}); nothing to compare")
        name = f"{record['label']} run {run_dir.name} (seed {record['seed']})"
        sides.append(Side(name, [record], [run_dir]))
    return sides


def _by_label(labels: list[str], dataset: str | None, results_dir: str, test_mask: str,
              settings: dict | None = None, current: bool = False) -> list[Side]:
    """Each label's best config by valid (``current``: among the runs today's defaults and ``settings``
    would train), all its seeds."""
    if not dataset:
        raise ConfigError("compare --label needs -d <dataset>")
    store = ResultsStore(results_dir, dataset)
    settings = {"test_mask": test_mask, "results_dir": results_dir, **(settings or {})}
    records = [r for r in store.records(_current_fingerprint(dataset, settings.get("data_path")))
               if test_mask_of(r["config"]) == test_mask]
    today = Today(dataset, settings)
    if current:
        records = [r for r in records if today.current(r)]
    sides = []
    for label in labels:
        mine = [r for r in records if r["label"].lower() == label.lower()]
        if not mine:
            known = sorted({r["label"] for r in records})
            which = " that today's defaults would train" if current else ""
            raise ConfigError(f"compare: no finished run labelled {label!r} on {dataset} with test_mask={test_mask}"
                              f"{which} in {store.root}; labels there: {', '.join(known) or 'none'}")
        runs = next(iter(best_per_label(mine).values()))
        config = ", ".join(f"{k}={v}" for k, v in runs[0]["swept"].items()) or "as in YAML"
        name = f"{runs[0]['label']} best config ({config}), {len(runs)} seed(s)"
        sides.append(Side(name, runs, [store.root / r["model"] / r["run_id"] for r in runs], today.note(runs[0])))
    return sides


def _current_fingerprint(dataset: str, data_path: str | None = None) -> str | None:
    """The content hash of the dataset's files now (None when they are not on disk: every run counts)."""
    try:
        where = {"data_path": data_path} if data_path else {}
        return fingerprint_files(dataset_files(resolve(None, dataset, where).first()).sources)
    except (ConfigError, DataError):
        return None
