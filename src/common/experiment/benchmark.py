"""The benchmark suite: every model's search on every dataset with the same budget, the chosen
config on several seeds, and one report.

A suite (``src/configs/benchmark.yaml``, or any YAML given with ``--suite``) names, per dataset,
the models, the search budget and the seeds::

    datasets:
      scientific:
        models: [BPR, LightGCN, ...]
        trials: 8              # configs per model, drawn by random search from its YAML grid
        seeds: [999, 1, 2]     # the chosen config runs once per seed
        set: {}                # overrides for every model on this dataset (e.g. an epoch cap)

Each (dataset, model) goes through two phases, both ordinary searches of the results store, so a
killed suite resumes where it stopped and a finished run is never trained twice:

1. **search** — ``search: random`` with ``n_trials: trials`` over the model's ``hyper_parameters``
   grid, on the first seed only (a grid smaller than ``trials`` is run whole; the report says how
   many configs each model got);
2. **seeds** — the config with the best *valid* metric, pinned, on every seed (its first-seed run
   is the search's, reused).

The report (:func:`write_report`) is a markdown + CSV table per dataset — mean ± std over seeds,
95% confidence interval, significance marks from a paired test over test users, best config,
s/epoch, time to the best epoch, budget — a PNG per dataset and an index page linking them.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from src.common.config import EXECUTION_KEYS, LATER_KEYS, ConfigError, coerce, load_yaml
from src.common.paths import CONFIG_DIR, relative_to_root
from src.common.recommender import get_model_class, model_names, resolve
from src.common.storage import atomic_write_json, atomic_write_text
from src.common.experiment.strategies import random_points
from src.common.experiment.results import (ResultsStore, best_per_label, group_by_config, run_id_for,
                                           significance_markdown, significance_table)

logger = logging.getLogger(__name__)

DEFAULT_SUITE = CONFIG_DIR / "benchmark.yaml"
#: a suite's model ``MOTOR-<host>``: the host with ``item_representation: motor`` (its leaderboard label)
MOTOR_PREFIX = "MOTOR-"
#: test metrics of the report, overall and per view
REPORT_METRICS = ["recall@20", "ndcg@20", "recall@10", "ndcg@10"]
#: columns of the figure: (metric key, title)
FIGURE_METRICS = [("recall@20", "Recall@20"), ("cold/ndcg@20", "cold NDCG@20")]
#: columns of the report's "MOTOR against its host" table
MOTOR_METRICS = ("recall@20", "ndcg@20", "cold/ndcg@20")


@dataclass
class DatasetSuite:
    """What the suite runs on one dataset (keys of ``datasets.<name>`` in the suite YAML)."""

    models: list[str]                  # registered models, or MOTOR-<host>: the host with MOTOR's item tokens
    trials: int = 8
    seeds: list[int] = field(default_factory=lambda: [999, 1, 2])
    set: dict[str, Any] = field(default_factory=dict)
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)   # a model's own overrides (e.g. MOTOR-BM3's)
    note: str = ""

    def __post_init__(self):
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct ints, got {self.seeds}")
        if not self.models:
            raise ValueError("models must name at least one model")


@dataclass
class Suite:
    datasets: dict[str, DatasetSuite]
    cold_share: float = 0.0          # > 0: also a strict item cold-start variant of each dataset
    source: str = ""
    cold_trials: int | None = None   # configs searched per model on a cold variant (None: the dataset's trials)

    def cold_entry(self, entry: DatasetSuite) -> DatasetSuite:
        """The settings of ``entry``'s strict item cold-start variant: the same, with ``cold_trials``."""
        return dataclasses.replace(entry, trials=self.cold_trials or entry.trials, set=dict(entry.set))


def load_suite(path: str | Path | None = None, models: list[str] | None = None,
               datasets: list[str] | None = None, n_seeds: int | None = None,
               trials: int | None = None, cold_share: float | None = None) -> Suite:
    """The suite of ``path`` (default ``src/configs/benchmark.yaml``), narrowed or changed by the
    command line: ``models`` (``["all"]`` = every registered model), ``datasets`` (each needs an
    entry in the suite, or takes the first entry's settings), ``n_seeds`` (the first N seeds of
    999, 1, 2, 3, ...), ``trials`` (on the cold variants too, over the suite's ``cold_trials``)."""
    path = Path(path) if path else DEFAULT_SUITE
    if not path.exists():
        raise ConfigError(f"{path}: no such suite file")
    raw = load_yaml(path)
    where = str(path)
    unknown = set(raw) - {"datasets", "cold_share", "cold_trials"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; a suite has datasets, cold_share and cold_trials")
    entries = raw.get("datasets") or {}
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{where}: datasets must map dataset names to their settings")
    keys = {f.name: f.type for f in dataclasses.fields(DatasetSuite)}
    parsed: dict[str, DatasetSuite] = {}
    for name, values in entries.items():
        values = dict(values or {})
        bad = set(values) - set(keys)
        if bad:
            raise ConfigError(f"{where}: datasets.{name}: unknown key(s) {sorted(bad)}; "
                              f"expected {sorted(keys)}")
        hints = {"models": list[str], "trials": int, "seeds": list[int], "set": dict[str, Any],
                 "per_model": dict[str, dict[str, Any]], "note": str}
        kwargs = {k: coerce(v, hints[k], f"{where}: datasets.{name}.{k}") for k, v in values.items()}
        try:
            parsed[name] = DatasetSuite(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: datasets.{name}: {e}") from None
    if datasets:
        template = next(iter(parsed.values()))
        parsed = {d: parsed.get(d, dataclasses.replace(template, set=dict(template.set))) for d in datasets}
    known = model_names()
    for name, entry in parsed.items():
        if models:
            entry.models = known if [m.lower() for m in models] == ["all"] else list(models)
        lower = {m.lower(): m for m in known}
        missing = [m for m in entry.models if split_label(m)[0].lower() not in lower]
        if missing:
            raise ConfigError(f"{where}: datasets.{name}.models: unknown model(s) {missing}; known: {known} "
                              f"(and {MOTOR_PREFIX}<model> for a model with MOTOR's item tokens)")
        entry.models = [canonical(m, lower) for m in entry.models]
        stray = sorted(m for m in entry.per_model if split_label(m)[0].lower() not in lower)
        if stray:
            raise ConfigError(f"{where}: datasets.{name}.per_model: unknown model(s) {stray}")
        entry.per_model = {canonical(m, lower): v for m, v in entry.per_model.items()}
        if n_seeds is not None:
            if n_seeds < 1:
                raise ConfigError(f"--seeds must be >= 1, got {n_seeds}")
            base = entry.seeds + [s for s in range(1, 1000) if s not in entry.seeds]
            entry.seeds = base[:n_seeds]
        if trials is not None:
            if trials < 1:
                raise ConfigError(f"--trials must be >= 1, got {trials}")
            entry.trials = trials
    share = float(raw.get("cold_share", 0.0) if cold_share is None else cold_share)
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"{where}: cold_share must be in [0, 1), got {share}")
    cold_trials = None if trials is not None else raw.get("cold_trials")   # --trials sets both budgets
    if cold_trials is not None:
        cold_trials = coerce(cold_trials, int, f"{where}: cold_trials")
        if cold_trials < 1:
            raise ConfigError(f"{where}: cold_trials must be >= 1, got {cold_trials}")
    return Suite(parsed, share, where, cold_trials)


def split_label(label: str) -> tuple[str, dict[str, Any]]:
    """A suite's model entry as (registered model, overrides): ``MOTOR-LightGCN`` is LightGCN with
    ``item_representation: motor``, whose runs carry that label."""
    if label.upper().startswith(MOTOR_PREFIX):
        return label[len(MOTOR_PREFIX):], {"item_representation": "motor"}
    return label, {}


def canonical(label: str, lower: dict[str, str]) -> str:
    """``label`` spelt as the registry (and the MOTOR prefix) spell it."""
    model, rep = split_label(label)
    return (MOTOR_PREFIX if rep else "") + lower[model.lower()]


# ----------------------------------------------------------------------------- running
@dataclass
class Phase:
    dataset: str
    model: str
    phase: str          # "search" | "seeds"
    seconds: float
    finished: int
    failed: int
    skipped: int


@dataclass
class SuiteRun:
    phases: list[Phase] = field(default_factory=list)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)


def search_overrides(entry: DatasetSuite, extra: dict[str, Any], label: str | None = None) -> dict[str, Any]:
    """Overrides of a model's search phase on one dataset (with ``label``: that suite model's own,
    e.g. MOTOR's item representation and ``per_model``)."""
    own = {**split_label(label)[1], **entry.per_model.get(label, {})} if label else {}
    return {**entry.set, **own, **extra, "search": "random", "n_trials": entry.trials, "seed": entry.seeds[0]}


def resolve_label(label: str, dataset: str, overrides: dict[str, Any]):
    """The search space of suite model ``label`` (``MOTOR-<host>`` included) on ``dataset``."""
    return resolve(split_label(label)[0], dataset, overrides)


def budget(space, entry: DatasetSuite) -> tuple[int, str]:
    """What the suite gives a model whose search phase is ``space``: the number of configs searched
    (its grid, or ``trials`` of it) and that budget in words, configs then seeds."""
    n = min(entry.trials, space.n_points)
    return n, (f"{n} of {space.n_points} configs ({', '.join(space.grid) or 'no grid'}) x seed {entry.seeds[0]}, "
               f"best x {len(entry.seeds)} seeds")


def run_dataset(name: str, entry: DatasetSuite, extra: dict[str, Any], executor, force: bool,
                run: SuiteRun, search: Callable) -> None:
    """Both phases of every model of ``entry`` on dataset ``name``; ``search`` is
    :func:`src.common.experiment.search.run_search` (passed in so tests can count calls)."""
    from src.common.data.dataset import load_dataset
    from src.common.errors import DataError

    dataset = None
    for model in entry.models:
        try:
            space = resolve_label(model, name, search_overrides(entry, extra, model))
        except ConfigError as e:
            run.errors[(name, model)] = str(e)
            logger.error("%s on %s: %s", model, name, e)
            continue
        if dataset is None:
            dataset = load_dataset(space.first())
        t0 = time.perf_counter()
        try:
            summary = search(space, dataset, executor=executor, force=force)
        except DataError as e:   # e.g. a multimodal model on a dataset without features
            run.errors[(name, model)] = str(e)
            logger.error("%s on %s: %s", model, name, e)
            continue
        run.phases.append(Phase(name, model, "search", time.perf_counter() - t0, summary.finished,
                                summary.failed, summary.skipped))
        if not summary.best:
            run.errors[(name, model)] = "no search run finished"
            continue
        point = {k: summary.best[0]["config"][k] for k in space.grid}
        # the swept keys pinned to the chosen point: same configs (and run ids) as the search's
        seeds_space = resolve_label(model, name, {**search_overrides(entry, extra, model), **point,
                                                  "seed": list(entry.seeds)})
        t0 = time.perf_counter()
        summary = search(seeds_space, dataset, executor=executor, force=False)
        run.phases.append(Phase(name, model, "seeds", time.perf_counter() - t0, summary.finished,
                                summary.failed, summary.skipped))


def chosen_runs(records: list[dict[str, Any]], entry: DatasetSuite) -> dict[str, list[dict[str, Any]]]:
    """Per model label, the seeds of its best config by valid metric among the configs that ran on
    every suite seed (the seeds phase); falls back to the best config overall."""
    seeds = set(entry.seeds)
    complete = [r for runs in group_by_config(records).values() if seeds <= {r["seed"] for r in runs}
                for r in runs if r["seed"] in seeds]
    out = {}
    for label, runs in best_per_label(complete).items():
        out[label] = runs
    for label, runs in best_per_label(records).items():   # a model whose seeds phase has not run yet
        out.setdefault(label, runs)
    return {m: out[m] for m in entry.models if m in out}


# ----------------------------------------------------------------------------- report
def under_settings(record: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether ``record`` ran under the suite's ``settings`` (its ``set``, the model's ``per_model``
    and the command line's overrides; keys of where and how runs execute aside), so that runs from
    an earlier budget of the same dataset (e.g. another epoch cap) stay out of its report. A key the
    settings' own ``hyper_parameters`` make a grid (a per_model search, e.g. of the learning rate)
    matches any of its values."""
    config, grid = record["config"], set(settings.get("hyper_parameters", ()))

    def matches(k: str, v: Any) -> bool:
        got = config.get(k, LATER_KEYS.get(k, v))
        return got in v if k in grid and isinstance(v, list) else got == v

    return all(matches(k, v) for k, v in settings.items()
               if k not in EXECUTION_KEYS and k not in ("data_path", "label", "hyper_parameters"))


def from_space(record: dict[str, Any], space, fingerprint: str, drawn: list[dict[str, Any]] | None = None) -> bool:
    """Whether the model's search space as the suite resolves it today (YAML defaults, suite and
    command-line overrides) would train exactly this run: same run id at the run's grid point and
    seed, and (``drawn``: the points of the suite's random search) a point that search visits.
    Runs of an earlier default stay in the store (and resume nothing) but out of the report: a model
    whose default changed is reported from the runs of its new default only, and a model whose grid
    changed from the points its search draws today only (a point of an earlier draw that is still in
    the grid would otherwise add a trial to the budget)."""
    point = {k: record["config"].get(k) for k in space.grid}
    if any(v not in space.grid[k] for k, v in point.items()):
        return False
    if drawn is not None and point not in drawn:     # == on values: 2 and 2.0 are one point
        return False
    try:
        config = space.config_at(point, record["seed"])
    except ConfigError:
        return False
    return run_id_for(config, fingerprint) == record.get("run_id")


def time_to_best(record: dict[str, Any]) -> float:
    """Seconds of training until the best epoch (epochs up to it x seconds per epoch)."""
    return float((record.get("best_epoch", 0) + 1) * record.get("seconds_per_epoch", float("nan")))


def at_epoch_cap(record: dict[str, Any]) -> bool:
    """Whether the run's best valid epoch was its last of the whole epoch budget (the trainer always
    evaluates the last epoch): it was still improving when the cap stopped it, so the cap, not
    convergence, decided its numbers."""
    cap, ran = record.get("config", {}).get("epochs"), record.get("epochs_run")
    return cap is not None and ran == cap and record.get("best_epoch") == ran - 1


def dataset_table(store: ResultsStore, chosen: dict[str, list[dict[str, Any]]], entry: DatasetSuite,
                  spaces: dict[str, Any], records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per model: means ± std over seeds, 95% CI and significance marks per metric column
    (:func:`significance_table`), best config, speed and budget; ``spaces``: each model's search
    space on this dataset, as the report resolved it."""
    df = significance_table([r for runs in chosen.values() for r in runs], store, REPORT_METRICS)
    if df.empty:
        return df
    notes = df.attrs.get("notes", [])
    more, configs = [], {}
    for label, runs in chosen.items():
        space = spaces[label]
        configs[label], text = budget(space, entry)
        # in the suite's terms, however a run got into the store (the suite, or a train command with
        # the same config): its search keys, then the keys the suite pins for this model
        pinned = [k for k in entry.per_model.get(label, {}) if k not in space.grid and k != "hyper_parameters"]
        searched = len({json.dumps({k: r["config"].get(k) for k in space.grid}, sort_keys=True, default=str)
                        for r in records if r["label"] == label and r["seed"] == entry.seeds[0]})
        more.append({"model": label, "searched": searched,
                      "config": ", ".join(f"{k}={runs[0]['config'].get(k)}" for k in [*space.grid, *pinned]),
                      "time to best s": float(np.mean([time_to_best(r) for r in runs])),
                      "epochs cap": runs[0]["config"].get("epochs"),
                      "best epochs": ", ".join(str(r.get("best_epoch", -1) + 1) for r in runs),
                      "seeds at cap": sum(at_epoch_cap(r) for r in runs),
                      "budget": text})
    df = df.drop(columns="config").merge(pd.DataFrame(more), on="model", how="left")
    if "recall@20" in df:
        df = df.sort_values("recall@20", ascending=False, kind="stable").reset_index(drop=True)
    df.attrs["notes"] = notes
    df.attrs["configs"] = configs   # label -> configs its search phase gets
    return df


def plot_dataset(df: pd.DataFrame, chosen: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path:
    """Bars with error bars (std over seeds) of each model's test Recall@20 and cold NDCG@20."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from src.common.storage import atomic_write

    labels = list(df["model"])
    fig, axes = plt.subplots(1, len(FIGURE_METRICS), figsize=(5.5 * len(FIGURE_METRICS), 0.45 * len(labels) + 1.8),
                             squeeze=False)
    for ax, (key, name) in zip(axes[0], FIGURE_METRICS):
        means, stds = [], []
        for label in labels:
            values = [r["test"].get(key, np.nan) for r in chosen[label]]
            means.append(np.mean(values))
            stds.append(np.std(values) if len(values) > 1 else 0.0)
        y = np.arange(len(labels))
        ax.barh(y, means, xerr=stds, capsize=3, color="#4c72b0")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel(f"test {name} (mean ± std over seeds)")
        ax.grid(axis="x", alpha=0.3)
        for yi, (m, s) in enumerate(zip(means, stds)):
            if np.isfinite(m):
                ax.text(m + s, yi, f" {m:.4f}", va="center", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out = atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), mode="wb")
    plt.close(fig)
    return out


def motor_pairs(chosen: dict[str, list[dict[str, Any]]], store: ResultsStore,
                metrics: tuple[str, ...] = MOTOR_METRICS) -> pd.DataFrame:
    """MOTOR against its host: one row per ``MOTOR-<host>`` whose host is in ``chosen`` (each at
    its own best config, all its seeds); per metric the host's and MOTOR's mean over seeds, MOTOR's
    share of the host's value, and the paired t-test over test users (each user's value averaged
    over seeds) as B - A with its Holm-adjusted p over the hosts."""
    from src.common.experiment.stats import holm, paired_difference, seed_averaged

    rows = []
    for label, runs in chosen.items():
        host = split_label(label)[0]
        if not split_label(label)[1] or host not in chosen:
            continue
        row: dict[str, Any] = {"host": host, "seeds": f"{len(chosen[host])} / {len(runs)}"}
        host_users, motor_users = store.per_user(chosen[host]), store.per_user(runs)
        for m in metrics:
            a = float(np.mean([r["test"].get(m, np.nan) for r in chosen[host]]))
            b = float(np.mean([r["test"].get(m, np.nan) for r in runs]))
            ua, ub = seed_averaged(host_users, m), seed_averaged(motor_users, m)
            test = paired_difference(ua, ub) if ua is not None and ub is not None else None
            row.update({f"{m} host": a, f"{m} MOTOR": b, f"{m} share": b / a if a else np.nan,
                        f"{m} diff": b - a, f"{m} p": test.p if test else np.nan})
        rows.append(row)
    df = pd.DataFrame(rows)
    for m in metrics:
        if not df.empty and df[f"{m} p"].notna().any():
            known = df[f"{m} p"].notna()
            df.loc[known, f"{m} p"] = holm(df.loc[known, f"{m} p"].to_numpy())
    return df


def motor_markdown(df: pd.DataFrame, metrics: tuple[str, ...] = MOTOR_METRICS) -> str:
    """The :func:`motor_pairs` table: host -> MOTOR (MOTOR's share of the host's value), and
    MOTOR - host with its p-value, ``*`` where p < 0.05."""
    head = ["host", "seeds (host / MOTOR)"]
    for m in metrics:
        head += [f"{m}: host → MOTOR (share)", f"{m}: MOTOR − host (p)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        cells = [r["host"], r["seeds"]]
        for m in metrics:
            p = r[f"{m} p"]
            ptext = "-" if not np.isfinite(p) else ("<1e-4" if p < 1e-4 else f"{p:.3f}")
            star = "*" if np.isfinite(p) and p < 0.05 else ""
            cells += [f"{r[f'{m} host']:.4f} → {r[f'{m} MOTOR']:.4f} ({r[f'{m} share']:.1%})",
                      f"{r[f'{m} diff']:+.4f} ({ptext}){star}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + ("\n\nEach side at its own best config by valid Recall@20, all its seeds; share = MOTOR's "
                               "mean / the host's; p: paired t-test over the test users (each user's value averaged "
                               "over seeds), Holm-corrected over the hosts; `*` = p < 0.05.")


SHOWN = ["model", "seeds", "recall@20", "ndcg@20", "cold/recall@20", "cold/ndcg@20", "zero/recall@20",
         "zero/ndcg@20", "config", "s/epoch", "time to best s", "params"]


def write_report(suite: Suite, run: SuiteRun, extra: dict[str, Any], out_dir: Path,
                 datasets: dict[str, tuple[str, DatasetSuite]]) -> Path:
    """Tables, figures and an index for every dataset of the suite; returns the index path.

    ``datasets`` maps a dataset name to (its title in the report, its suite entry); ``extra`` are
    the command line's overrides (results_dir, data_path, ...)."""
    from src.common.data.dataset import dataset_files, fingerprint_files

    out_dir.mkdir(parents=True, exist_ok=True)
    suite_flag = "" if Path(suite.source).resolve() == DEFAULT_SUITE.resolve() else f" --suite {relative_to_root(suite.source)}"
    own_grids = any("hyper_parameters" in v for _, entry in datasets.values() for v in entry.per_model.values())
    grid = ("its grid (the suite's `per_model` one where it gives a model one, else its YAML's)" if own_grids
            else "its YAML grid")
    index = ["# Benchmark report", "",
             f"Suite: `{relative_to_root(suite.source)}`. Each model: random search over {grid} with the budget "
             "shown, on the first seed; the best config by **valid** Recall@20 then on every seed; "
             "test metrics of that config, mean ± std over seeds. Test ranking masks each user's "
             "train and valid items (`test_mask`, see README).", ""]
    for name, (title, entry) in datasets.items():
        config = resolve(None, name, extra).first()
        store = ResultsStore(config.results_dir, name)
        fingerprint = fingerprint_files(dataset_files(config).sources)
        spaces = {}
        for label in entry.models:
            try:
                spaces[label] = resolve_label(label, name, search_overrides(entry, extra, label))
            except ConfigError:   # reported as not run (run.errors) when the suite tried it
                continue
        drawn = {label: random_points(space, entry.trials, entry.seeds[0]) for label, space in spaces.items()}
        records = [r for r in store.records(fingerprint)
                   if r["label"] in spaces
                   and under_settings(r, {**entry.set, **entry.per_model.get(r["label"], {}), **extra})
                   and from_space(r, spaces[r["label"]], fingerprint, drawn[r["label"]])]
        if not records:   # e.g. a cold variant asked for in --report-only before its runs
            index += [f"## {title}", "", f"Not run yet: `python main.py benchmark{suite_flag} -d "
                      f"{name.removesuffix('_cold')}{' --cold' if name.endswith('_cold') else ''}` trains it.", ""]
            continue
        chosen = chosen_runs(records, entry)
        df = dataset_table(store, chosen, entry, spaces, records)
        if df.empty:
            index += [f"## {title}", "", "no finished runs", ""]
            continue
        csv = atomic_write_text(out_dir / f"{name}.csv", df.to_csv(index=False))
        shown = df[[c for c in df.columns if c in SHOWN or (c.split(" ")[0] in SHOWN and c.split(" ")[-1]
                                                            in ("std", "ci_low", "ci_high", "mark"))]]
        shown.attrs = dict(df.attrs)
        png = plot_dataset(df, chosen, out_dir / f"{name}.png", f"{title}: test metrics by model")
        md_lines = [f"# {title}", "",
                    f"{entry.note}".strip(), "",
                    f"Training epochs of its {len(records)} stored runs (search and seeds, all models, "
                    f"without the valid evaluations) took {sum(r.get('train_seconds', 0) for r in records) / 60:.0f} "
                    f"min summed over runs; runs in parallel overlap, and s/epoch and times depend on how "
                    f"loaded the machine was.", "",
                    significance_markdown(shown), "", "Budget per model:", ""]
        md_lines += [f"- {row['model']}: {row['budget']}; epochs ≤ {row['epochs cap']} (best valid epoch per "
                     f"seed: {row['best epochs']}); in the store: {row['searched']} config(s) searched, "
                     f"{row['seeds']} seed(s) of the chosen one" for _, row in df.iterrows()]
        capped = [row["model"] for _, row in df.iterrows() if row["seeds at cap"] == row["seeds"]]
        if capped:
            md_lines += ["", capped_line(capped)]
        blind = [m for m in entry.models if m in chosen and not split_label(m)[1]
                 and get_model_class(m).required_modalities == ()]
        if name.endswith("_cold") and blind:
            md_lines += ["", f"{', '.join(blind)} read no item features: on items never seen in training "
                             "they can only rank by untrained ID vectors, so their `zero/` columns are at best "
                             "chance level (untrained vectors usually rank below every trained item)."]
        errors = [f"- {m}: {e}" for (d, m), e in run.errors.items() if d == name]
        if errors:
            md_lines += ["", "Not run:", "", *errors]
        pairs = motor_pairs(chosen, store)
        if not pairs.empty:
            atomic_write_text(out_dir / f"{name}_motor.csv", pairs.to_csv(index=False))
            md_lines += ["", "## MOTOR against its host", "", motor_markdown(pairs)]
        md_lines += ["", f"![{title}]({png.name})", "", f"CSV: [{csv.name}]({csv.name})"]
        md = atomic_write_text(out_dir / f"{name}.md", "\n".join(md_lines) + "\n")
        brief = shown[[c for c in shown.columns if c in ("model", "seeds")
                       or c.split(" ")[0] in ("recall@20", "ndcg@20", "cold/ndcg@20", "zero/ndcg@20")]]
        brief.attrs = dict(df.attrs)
        configs = df.attrs["configs"]
        short = [f"{row['model']} ({row['searched']} of {configs[row['model']]} configs searched, {row['seeds']} of "
                 f"{len(entry.seeds)} seeds)" for _, row in df.iterrows()
                 if row["seeds"] < len(entry.seeds) or row["searched"] < configs[row["model"]]]
        missing = [m for m in entry.models if m not in chosen]
        index += [f"## {title}", "", f"[table]({md.name}) · [CSV]({csv.name}) · [figure]({png.name})", "",
                  significance_markdown(brief), ""]
        if not pairs.empty:
            index += ["MOTOR against its host:", "", motor_markdown(pairs), ""]
        if capped:
            index += [capped_line(capped), ""]
        if short:
            index += [f"Incomplete (the suite was stopped before their budget was spent): {'; '.join(short)}.", ""]
        if missing:
            index += [f"Not run yet: {', '.join(missing)}.", ""]
    text = "\n".join(index) + "\n"
    if (out_dir / "index.md").exists():    # a command for some datasets keeps the others' sections
        text = merge_sections((out_dir / "index.md").read_text(), text)
    path = atomic_write_text(out_dir / "index.md", text)
    atomic_write_json(out_dir / "phases.json", merge_phases(out_dir / "phases.json", run.phases))
    return path


def merge_phases(path: Path, phases: list[Phase]) -> list[dict[str, Any]]:
    """The phases this command ran, after the earlier ones of the (dataset, model) pairs it did not
    run: like the index, a command for some datasets or models (or ``--report-only``) keeps the rest."""
    try:
        old = json.loads(path.read_text()) if path.exists() else []
    except json.JSONDecodeError:
        old = []
    ran = {(p.dataset, p.model) for p in phases}
    return [p for p in old if isinstance(p, dict) and (p.get("dataset"), p.get("model")) not in ran] + \
        [dataclasses.asdict(p) for p in phases]


def capped_line(models: list[str]) -> str:
    return (f"At the epoch cap (best valid epoch = the last one, on every seed: still improving when "
            f"training stopped, so these rows rank the models at this budget, not at convergence): "
            f"{', '.join(models)}.")


def merge_sections(old: str, new: str) -> str:
    """The report index ``new`` with the ``## `` sections of ``old`` that ``new`` does not have
    (datasets this command did not cover), each kept in its old place: ``-d scientific`` rewrites
    the scientific section and leaves sports' as it was. The text before the first section is new's."""
    def split(text: str) -> tuple[str, list[tuple[str, str]]]:
        parts = re.split(r"^(?=## )", text, flags=re.M)
        return parts[0], [(p.split("\n", 1)[0], p) for p in parts[1:]]

    head, new_sections = split(new)
    _, old_sections = split(old)
    fresh = dict(new_sections)
    merged = [fresh.pop(title, body) for title, body in old_sections]
    merged += [body for title, body in new_sections if title in fresh]      # sections new to the report
    return head + "".join(part if part.endswith("\n\n") else part.rstrip("\n") + "\n\n" for part in merged).rstrip("\n") + "\n"


BEGIN, END = "<!-- benchmark report: begin (python main.py benchmark --readme README.md) -->", "<!-- benchmark report: end -->"


def readme_markers(suite: str = "benchmark") -> tuple[str, str]:
    """The README markers of the report of suite file ``<suite>.yaml`` (the shipped suite's: BEGIN, END)."""
    if suite == "benchmark":
        return BEGIN, END
    return (f"<!-- {suite} report: begin (python main.py benchmark --suite src/configs/{suite}.yaml "
            f"--readme README.md) -->", f"<!-- {suite} report: end -->")


def update_readme(readme: Path, index: Path, suite: str = "benchmark") -> bool:
    """Replace the text between the README's markers of ``suite`` (:func:`readme_markers`) by the
    report's index (its headings one level down, links pointing into the report folder); False when
    there are no markers. The README's results are thus regenerated from the report, never typed."""
    text = readme.read_text()
    begin, end = readme_markers(suite)
    if begin not in text or end not in text:
        return False
    body = index.read_text().split("\n", 1)[1].strip()   # without the "# Benchmark report" title
    try:
        rel = index.parent.resolve().relative_to(readme.parent.resolve())
    except ValueError:
        rel = index.parent.resolve()
    body = re.sub(r"\]\(([^)/]+\.(?:md|csv|png))\)", lambda m: f"]({rel}/{m[1]})", body)
    body = re.sub(r"^## ", "### ", body, flags=re.M)
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{begin}\n{body}\n{end}{tail}")
    return True

