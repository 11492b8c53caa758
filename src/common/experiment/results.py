"""The results store and the leaderboard.

Layout, one folder per finished (or failed) run, under ``<results_dir>/<dataset>/``::

    <Model>/<run_id>/config.yaml   the fully resolved config
                     result.json   the record (written last, atomically: its presence = finished)
                     model.pt      the best checkpoint
                     per_user.npz  per-user test metrics (src.common.eval.per_user)
                     run.log       the run's log

``run_id`` is a hash of the config and the dataset's content, so the same command finds the runs
it already finished and skips them (resume), and a changed dataset never reuses stale results.
"""
from __future__ import annotations

import functools
import getpass
import hashlib
import json
import logging
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from src.common.config import EXECUTION_KEYS, LATER_KEYS, default_label, inactive_keys
from src.common.eval.per_user import load_per_user
from src.common.experiment.stats import ALPHA, seed_averaged, seed_summary, tie_marks
from src.common.paths import ROOT, from_root
from src.common.storage import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

LEADERBOARD_METRICS = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]
#: per-column companions of a metric column ``c`` in a leaderboard frame (folded into ``c``'s cell)
COMPANIONS = (" std", " ci_low", " ci_high", " p", " mark")


def run_id_for(config, fingerprint: str) -> str:
    """Deterministic id of (config, dataset content): ``<Model>-<12 hex>``."""
    digest = hashlib.sha1(f"{config.identity()}:{fingerprint}".encode()).hexdigest()[:12]
    return f"{config.model}-{digest}"


class ResultsStore:
    """All runs of one dataset, on disk. Only the driver process writes records."""

    def __init__(self, results_dir: str | Path, dataset: str):
        self.root = from_root(results_dir) / dataset
        self.dataset = dataset

    def run_dir(self, config, fingerprint: str) -> Path:
        return self.root / config.model / run_id_for(config, fingerprint)

    def record_path(self, run_dir: Path) -> Path:
        return run_dir / "result.json"

    def finished(self, run_dir: Path, also: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The record of a finished run in ``run_dir`` (or of one whose status is in ``also``,
        e.g. ``pruned``), or None (not run, or failed)."""
        path = self.record_path(run_dir)
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        return record if record.get("status") in ("finished", *also) else None

    def per_user(self, runs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The per-user test metrics (``per_user.npz``) of each of ``runs``, or None when a run has
        none (trained before they were stored)."""
        loaded = [load_per_user(self.root / r["model"] / r["run_id"]) for r in runs]
        return None if any(p is None for p in loaded) else loaded

    def write(self, run_dir: Path, record: dict[str, Any]) -> Path:
        return atomic_write_json(self.record_path(run_dir), record)

    def write_config(self, run_dir: Path, config) -> Path:
        return atomic_write_text(run_dir / "config.yaml", config.as_yaml())

    def records(self, fingerprint: str | None = None, status: str = "finished") -> list[dict[str, Any]]:
        """Every record of this dataset (optionally only those of the current data content)."""
        return [record for _, record in self.entries(fingerprint, status)]

    def entries(self, fingerprint: str | None = None, status: str = "finished") -> list[tuple[Path, dict[str, Any]]]:
        """(run folder, record) of every recorded run, as :meth:`records` selects them."""
        out = []
        for path in sorted(self.root.glob("*/*/result.json")):
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError:
                logger.warning("skipping unreadable record %s", path)
                continue
            if status and record.get("status") != status:
                continue
            if fingerprint and record.get("fingerprint") != fingerprint:
                continue
            out.append((path.parent, record))
        return out


def make_record(config, fingerprint: str, run_id: str, result=None, status: str = "finished",
                error: str = "", dataset=None) -> dict[str, Any]:
    """One results record: config, seed, metrics, timings, versions and host; with ``dataset``,
    also its counts and per-file hashes (``data``), so that loading the run later can say what
    changed in the data.

    The host is the one the run trained on (``result.host``; this machine for a failed run). A run that
    the search's scheduler stopped early (``result.pruned``) gets the status ``pruned``.
    """
    swept = {k: config[k] for k in config.hyper_parameters}
    record = {
        "run_id": run_id, "status": status, "dataset": config.dataset, "model": config.model,
        "label": config.label or default_label(config), "seed": config.seed, "swept": swept,
        "config": config.to_dict(), "fingerprint": fingerprint,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"), "host": socket.gethostname(),
        "user": _user(), "versions": {"python": platform.python_version(), "torch": torch.__version__,
                                      "numpy": np.__version__, "code": code_version()},
        "argv": " ".join(sys.argv),
    }
    if dataset is not None:
        record["data"] = dataset.content_summary()
    if result is not None:
        record.update(asdict(result))
        if result.pruned and status == "finished":
            record["status"] = "pruned"
    if error:
        record["error"] = error
    return record


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The project's git commit (``+dirty`` with uncommitted changes), or "" outside a git checkout."""
    root = ROOT
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):   # no git on this machine
        return ""
    return head.stdout.strip() + ("+dirty" if dirty else "")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return ""


# ----------------------------------------------------------------------------- selection
def group_by_config(records: Iterable[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Records of the same label and config (all keys but the seed), i.e. the seeds of one point."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        # e.g. MOTOR keys of an ID run, and keys added later (test_mask, ...) at the value older records lacked
        skip = inactive_keys(r["config"])
        cfg = {k: v for k, v in r["config"].items()
               if k not in ("seed", "save_checkpoint", "save_topk") and k not in EXECUTION_KEYS and k not in skip}
        key = (r["label"], json.dumps(cfg, sort_keys=True, default=str))
        groups.setdefault(key, []).append(r)
    return groups


#: config keys that name or file a run rather than set what it computes
BOOKKEEPING_KEYS = frozenset({"seed", "label", "hyper_parameters", "save_checkpoint", "save_topk", "data_path"})


def departures(record: dict[str, Any], space) -> dict[str, tuple[Any, Any]]:
    """Where a stored run's config differs from what ``space`` (its model's search space as resolved
    today: the YAML's defaults and grid, plus the command's overrides) would train:
    ``{key: (the run's value, today's)}``, empty for a run today's search could have made. A swept
    key departs only when its value is outside today's grid; keys of where and how runs execute,
    bookkeeping, and keys that change nothing in either config (e.g. MOTOR's under ID embeddings)
    aside. Runs from before a key existed count at the value they used (``LATER_KEYS``); a key the
    record lacks otherwise is not judged. E.g. MoToRec runs from before ``negative_popularity``
    became 0.25 depart with ``{"negative_popularity": (0.0, 0.25)}``."""
    today = space.first().to_dict()
    values = {**LATER_KEYS, **record["config"]}
    skip = EXECUTION_KEYS | BOOKKEEPING_KEYS | inactive_keys(values, later=False) | inactive_keys(today, later=False)
    out = {}
    for key, now in today.items():
        if key in skip or key not in values:
            continue
        ran = values[key]
        if key in space.grid:
            if ran not in space.grid[key]:
                out[key] = (ran, space.grid[key])
        elif ran != now:
            out[key] = (ran, now)
    return out


def describe_departures(found: dict[str, tuple[Any, Any]]) -> str:
    """``negative_popularity=0.0 (today 0.25), n_layers=3 (today's grid [1, 2])``."""
    def today(now: Any) -> str:
        return f"today's grid {now}" if isinstance(now, list) else f"today {now}"

    return ", ".join(f"{k}={ran} ({today(now)})" for k, (ran, now) in sorted(found.items()))


def best_per_label(records: list[dict[str, Any]], valid_metric: str | None = None) -> dict[str, list[dict]]:
    """For each label, the seeds-group whose *valid* metric is best (never the test).

    Configs are compared on the seeds they all ran (e.g. the search's first seed when the chosen
    one was re-run on more seeds), so that a one-seed config cannot win merely because its single,
    noisier valid value beats another config's mean over seeds. Without a seed common to every
    config, each config's mean over its own seeds."""
    groups: dict[str, list[list[dict]]] = {}
    for (label, _), runs in group_by_config(records).items():
        groups.setdefault(label, []).append(runs)
    best: dict[str, list[dict]] = {}
    for label, configs in groups.items():
        common = set.intersection(*({r.get("seed") for r in runs} for runs in configs))

        def score(runs: list[dict]) -> float:
            key = valid_metric or runs[0]["config"]["valid_metric"]
            values = [r["valid"].get(key, float("nan")) for r in runs if not common or r.get("seed") in common]
            return float(np.mean(values))

        scores = [score(runs) for runs in configs]
        best[label] = configs[int(np.argmax(np.nan_to_num(scores, nan=-np.inf)))]
    return best


def summarise(runs: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    """Mean, sample std and 95% t interval over the seeds of one config, for the given test metrics
    and views (std and interval with two seeds or more)."""
    row: dict[str, Any] = {"model": runs[0]["label"], "seeds": len(runs)}
    key = runs[0]["config"]["valid_metric"]
    row[f"valid {key}"] = float(np.mean([r["valid"].get(key, np.nan) for r in runs]))
    for prefix in ("", "cold/", "zero/"):
        for m in metrics:
            values = [r["test"].get(prefix + m) for r in runs]
            if any(v is None for v in values):
                continue
            summary = seed_summary(values)
            row[prefix + m] = summary.mean
            if len(runs) > 1:
                row[prefix + m + " std"] = summary.std
                row[prefix + m + " ci_low"], row[prefix + m + " ci_high"] = summary.ci_low, summary.ci_high
    row["params"] = runs[0].get("n_parameters")
    row["s/epoch"] = float(np.mean([r.get("seconds_per_epoch", np.nan) for r in runs]))
    row["best epoch"] = runs[0].get("best_epoch")
    row["config"] = ", ".join(f"{k}={v}" for k, v in runs[0]["swept"].items())
    row["run_id"] = runs[0]["run_id"]
    return row


def leaderboard(records: list[dict[str, Any]], metrics: list[str] = LEADERBOARD_METRICS,
                models: list[str] | None = None, sort_by: str = "recall@20") -> pd.DataFrame:
    """One row per model label (its best config by valid metric), test metrics overall and cold."""
    records = _of_models(records, models)
    rows = [summarise(runs, metrics) for runs in best_per_label(records).values()]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    if sort_by in df:
        df = df.sort_values(sort_by, ascending=False, kind="stable")
    return df.reset_index(drop=True)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4f", with_std: bool = True, with_ci: bool = True) -> str:
    """A GitHub markdown table; ``x std``, ``x ci_low``/``x ci_high`` and ``x mark`` columns are folded
    into ``x`` as ``mean ± std [low, high]`` with a trailing ``*`` where the mark is True."""
    if df.empty:
        return "(no results)"
    cols = [c for c in df.columns if not c.endswith(COMPANIONS)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                if np.isnan(v):
                    cell = "-"
                else:
                    cell = format(v, floatfmt) if abs(v) < 1e4 else f"{v:.0f}"
                    std = row.get(f"{c} std") if with_std else None
                    if std is not None and not (isinstance(std, float) and np.isnan(std)):
                        cell += f" ± {std:{floatfmt}}"
                    low, high = row.get(f"{c} ci_low"), row.get(f"{c} ci_high")
                    if with_ci and low is not None and high is not None and not np.isnan(low):
                        cell += f" [{low:{floatfmt}}, {high:{floatfmt}}]"
                    mark = row.get(f"{c} mark")
                    if isinstance(mark, (bool, np.bool_)) and mark:
                        cell += "*"
            elif v is None:
                cell = "-"
            else:
                cell = str(v)
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- significance
def significance_table(records: list[dict[str, Any]], store: ResultsStore, metrics: list[str] = LEADERBOARD_METRICS,
                       models: list[str] | None = None, sort_by: str = "recall@20",
                       alpha: float = ALPHA) -> pd.DataFrame:
    """The :func:`leaderboard` (best config per label by valid metric; per test metric column ``c``
    its mean over seeds, ``c std``, the 95% interval ``c ci_low``/``c ci_high``) plus, per column,
    ``c mark``: True where the row is *not* significantly different from the column's best row (the
    best row itself included), False where it is, None where it cannot be tested (no per-user file);
    and ``c p``: the Holm-adjusted p-value of the paired t-test against the best row (see
    :mod:`src.common.experiment.stats`). ``df.attrs["notes"]`` lists the rows that could not be tested.
    Render with :func:`significance_markdown`."""
    df = leaderboard(records, metrics, models=models, sort_by=sort_by)
    if df.empty:
        return df
    groups = best_per_label(_of_models(records, models))
    per_user: dict[str, list | None] = {}
    notes = []
    for label, runs in groups.items():
        per_user[label] = store.per_user(runs)
        if per_user[label] is None:
            notes.append(f"{label}: no significance mark (its runs have no per_user.npz: trained "
                         f"before per-user metrics were stored; re-run with --force to include it)")
    columns = [c for c in df.columns if c.split("/")[-1] in metrics]
    for c in columns:
        values = {label: seed_averaged(per_user.get(label), c) for label in df["model"]}
        best = df.loc[df[c].idxmax(), "model"] if df[c].notna().any() else None
        marks: dict[str, tuple[bool | None, float]] = {label: (None, np.nan) for label in df["model"]}
        if best is not None and values[best] is not None:
            marks.update(tie_marks(values[best], {l: v for l, v in values.items() if l != best}, alpha))
            marks[best] = (True, np.nan)
        df[f"{c} mark"] = [marks[label][0] for label in df["model"]]
        df[f"{c} p"] = [marks[label][1] for label in df["model"]]
    df.attrs["notes"] = notes
    df.attrs["alpha"] = alpha
    return df


def significance_markdown(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """:func:`markdown_table` of a :func:`significance_table`, with the legend and notes under it."""
    text = markdown_table(df, floatfmt)
    if df.empty:
        return text
    alpha = df.attrs.get("alpha", ALPHA)
    lines = [text, "",
             f"mean ± std over seeds [95% t interval of the mean] (std and interval need 2+ seeds); `*` = not "
             f"significantly different from the column's best row (itself marked): paired t-test over the "
             f"test users, each user's value averaged over a config's seeds, Holm-corrected for the rows "
             f"compared, {alpha:.0%} level."]
    lines += [f"note: {n}" for n in df.attrs.get("notes", [])]
    return "\n".join(lines)


def _of_models(records: list[dict[str, Any]], models: list[str] | None) -> list[dict[str, Any]]:
    if not models:
        return records
    wanted = {m.lower() for m in models}
    return [r for r in records if r["label"].lower() in wanted or r["model"].lower() in wanted]


# ----------------------------------------------------------------------------- degree buckets
def bucket_table(records: list[dict[str, Any]], buckets: list[str], metrics: list[str],
                 models: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Test metrics per item-degree bucket (the views ``deg0/``, ``deg1-4/``, ... the trainer
    records) for the best config of each label by valid metric, mean over its seeds.

    Returns (a frame with one row per bucket plus ``all`` and columns ``<label> <metric>`` and
    ``test users``, the labels shown). Labels whose best runs lack bucket metrics (trained before
    they were recorded) are left out with a warning.
    """
    if models:
        wanted = {m.lower() for m in models}
        records = [r for r in records if r["model"].lower() in wanted or r["label"].lower() in wanted]
    rows: dict[str, dict[str, Any]] = {b: {"bucket": b} for b in [*buckets, "all"]}
    labels = []
    # each host's ID label first, then MOTOR-<host>
    by_host = sorted(best_per_label(records).items(),
                     key=lambda kv: (kv[1][0]["model"], kv[0] != kv[1][0]["model"], kv[0]))
    for label, runs in by_host:
        if any(f"{buckets[0]}/{metrics[0]}" not in r["test"] for r in runs):
            logger.warning("%s (run %s) has no degree-bucket metrics: it was trained before they were "
                           "recorded; re-run it with --force to include it", label, runs[0]["run_id"])
            continue
        labels.append(label)
        for b in [*buckets, "all"]:
            prefix = "" if b == "all" else f"{b}/"
            rows[b].setdefault("test users", runs[0]["test"].get(f"{prefix}n_users", 0))
            for m in metrics:
                rows[b][f"{label} {m}"] = float(np.mean([r["test"].get(prefix + m, np.nan) for r in runs]))
    return pd.DataFrame(list(rows.values())), labels
