"""``python main.py ablation -d <dataset>``: the MoToRec ablation table (full, w/o RQ-VAE, w/o ARA,
w/o Sparsity, w/o CL, w/o HF; of ours w/o FR: the feature residual off, w/o IG: the item-item graph off, w/o L0: items'
content at the layer mean, and w/o CJ: the ID channel summed into the content, as printed), each variant trained from the
full model's best grid point (among those its random search draws today: :func:`base_point`) with three seeds
(``--set seed=...`` to change them) and reported as
mean ± sample std over the seeds, with each variant's paired difference from the full model
(per-user test values averaged over the seeds, paired t-test over the test users, Holm-corrected
over the variants), so that "a component helps" is a claim a test backs, not a gap between two
means."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from src.cli._common import overrides_of
from src.common.recommender import resolve
from src.common.data.dataset import load_dataset
from src.common.experiment.results import ResultsStore, best_per_label, departures, describe_departures, markdown_table
from src.common.experiment.search import run_search
from src.common.experiment.strategies import random_points
from src.common.experiment.stats import ALPHA, holm, paired_difference, seed_averaged, seed_summary

HELP = "train the MoToRec ablation variants and print their overall and cold-start metrics"
logger = logging.getLogger(__name__)

#: the paper's ablation rows: leaderboard label -> config switches
VARIANTS = {
    "MoToRec": {},
    "MoToRec w/o RQ-VAE": {"use_rqvae": False},
    "MoToRec w/o ARA": {"use_ara": False},
    "MoToRec w/o Sparsity": {"use_sparsity": False},
    "MoToRec w/o CL": {"use_cl": False},
    "MoToRec w/o HF": {"fusion": "concat"},   # hybrid fusion replaced by the concat-projection alone
    "MoToRec w/o FR": {"feature_residual": "off"},   # ours: the paper's token sum alone, no feature residual
    "MoToRec w/o IG": {"knn_k": 0},   # ours: no item-item (feature kNN) graph on the ID channel
    "MoToRec w/o L0": {"item_content": "propagated"},   # ours: items' content channels at the layer mean, as printed
    "MoToRec w/o CJ": {"fusion_join": "sum"},   # ours: ID channel added to the fused content, as printed (not concatenated)
}


#: seeds of every variant unless ``--set seed=...`` is given (one seed's noise hid the ablation's effects)
SEEDS = [999, 1, 2]


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("--only", help="comma-separated subset of the variants (e.g. 'MoToRec,MoToRec w/o CL')")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override keys for every variant, e.g. threads=1 epochs=50")


def base_point(dataset, overrides: dict) -> dict:
    """The swept keys pinned to the full model's best finished grid point (by valid metric) among
    the points today's search visits, or to the first value of each grid list when none has run."""
    space = resolve("MoToRec", dataset.name, overrides)
    first = space.first()
    stored = [r for r in ResultsStore(first.results_dir, dataset.name).records(dataset.fingerprint)
              if r["model"] == "MoToRec" and r["label"] == "MoToRec"]
    # only runs today's search (YAML defaults and grid, the command's --set) could have made: a run
    # of an earlier default is not the full model the variants are compared with
    differs = {r["run_id"]: departures(r, space) for r in stored}
    records = [r for r in stored if not differs[r["run_id"]]]
    if len(records) < len(stored):
        old = best_per_label([r for r in stored if differs[r["run_id"]]])["MoToRec"][0]
        logger.info("leaving out %d MoToRec run(s) of other settings than today's, e.g. %s", len(stored) - len(records),
                    describe_departures(differs[old["run_id"]]))
    # and, under random search, only the points it draws today (those `python main.py -m MoToRec` and
    # the benchmark suite choose from): a point an earlier draw (of a smaller grid) ran stays out. The
    # draw's seed is the config's, not a ``seed`` override (that one only sets the variants' seeds)
    if first.search == "random":
        unseeded = space if "seed" not in overrides else \
            resolve("MoToRec", dataset.name, {k: v for k, v in overrides.items() if k != "seed"})
        seed = unseeded.seeds[0]
        drawn = random_points(space, first.n_trials, seed)
        kept = [r for r in records if {k: r["config"].get(k) for k in space.grid} in drawn]
        if len(kept) < len(records):
            logger.info("leaving out %d MoToRec run(s) at grid points today's random search (%d of %d points, "
                        "seed %d) does not draw", len(records) - len(kept), len(drawn), space.n_points, seed)
        records = kept
    if records:
        best = next(iter(best_per_label(records).values()))[0]
        logger.info("base config: best MoToRec run %s (%s)", best["run_id"], best["swept"])
        return {k: best["config"][k] for k in space.grid}
    logger.info("no finished MoToRec grid run: base config = the first grid point")
    return {k: first[k] for k in space.grid}


#: table column -> metric: the mean ± std columns, and the ones tested against the full model
COLUMNS = {"R@20": "recall@20", "N@20": "ndcg@20", "cold R@20": "cold/recall@20", "cold N@20": "cold/ndcg@20"}
TESTED = {"R@20": "recall@20", "cold N@20": "cold/ndcg@20"}
#: added (shown and tested) when a variant hits items never seen in training, e.g. on a strict cold-start variant
ZERO = {"zero N@20": "zero/ndcg@20"}
FULL = "MoToRec"


def mean_std(values: list[float]) -> str:
    """'0.1234 ± 0.0012' over the seeds, sample std as in the leaderboard ('-' without values, no ±
    for one seed)."""
    if not values:
        return "-"
    s = seed_summary(values)
    return f"{s.mean:.4f}" + (f" ± {s.std:.4f}" if s.n > 1 else "")


def table_columns(runs_of: dict[str, list | None]) -> tuple[dict[str, str], dict[str, str]]:
    """The shown and the tested columns (column -> metric): ``ZERO`` joins both when some variant's
    run ranked an item never seen in training into a top 20 (test zero/ndcg@20 > 0)."""
    zero = any(r["test"].get(key, 0) > 0 for runs in runs_of.values() for r in runs or [] for key in ZERO.values())
    return ({**COLUMNS, **ZERO}, {**TESTED, **ZERO}) if zero else (COLUMNS, TESTED)


def versus_full(per_user: dict[str, list | None], alpha: float = ALPHA,
                tested: dict[str, str] = TESTED) -> dict[str, dict[str, str]]:
    """Per variant (not the full model) and tested column: 'Δ (p)' = variant - full of the seed-averaged
    per-user metric, p of the paired t-test Holm-adjusted over the variants, '*' when p < alpha.
    ``per_user``: variant -> its runs' per-user files (None when missing); ``tested``: column -> metric."""
    full = per_user.get(FULL)
    out: dict[str, dict[str, str]] = {name: {} for name in per_user if name != FULL}
    if not full:
        return out
    for column, key in tested.items():
        base = seed_averaged(full, key)
        tests = {}
        for name in out:
            variant = seed_averaged(per_user[name], key)
            if base is None or variant is None:
                continue
            tests[name] = paired_difference(base, variant)
        tests = {n: t for n, t in tests.items() if t is not None}
        adjusted = dict(zip(tests, holm([t.p for t in tests.values()]))) if tests else {}
        for name, t in tests.items():
            p = adjusted[name]
            out[name][f"Δ{column} (p)"] = f"{t.diff:+.4f} ({'<1e-4' if p < 1e-4 else f'{p:.3f}'}){'*' if p < alpha else ''}"
    return out


def run(args) -> int:
    overrides = overrides_of(args)
    if args.no_progress:
        overrides["show_progress"] = False
    names = [n.strip() for n in args.only.split(",")] if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        from src.common.config import ConfigError
        raise ConfigError(f"--only: unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    first = resolve("MoToRec", args.dataset, overrides).first()
    dataset = load_dataset(first)
    base = {**base_point(dataset, overrides), **overrides}
    base.setdefault("seed", SEEDS)
    runs_of, per_user = {}, {}
    store = ResultsStore(first.results_dir, dataset.name)
    for name in names:
        space = resolve("MoToRec", args.dataset, {**base, **VARIANTS[name], "label": name})
        summary = run_search(space, dataset)
        runs_of[name] = summary.best
        if summary.best:
            per_user[name] = store.per_user(summary.best)
    columns, tested_columns = table_columns(runs_of)
    zero = set(ZERO) <= set(columns)
    rows = []
    for name, runs in runs_of.items():
        if not runs:
            rows.append({"variant": name})
            continue
        row = {"variant": name, "seeds": len(runs)}
        for column, key in columns.items():
            values = [r["test"].get(key) for r in runs]
            row[column] = mean_std([v for v in values if v is not None])
        row["best epoch"] = f"{np.mean([r['best_epoch'] for r in runs]):.0f}"
        row["s/epoch"] = f"{np.mean([r['seconds_per_epoch'] for r in runs]):.2f}"
        rows.append(row)
    tested = versus_full(per_user, tested=tested_columns)
    for row in rows:
        row.update(tested.get(row["variant"], {}))
    print(f"\n## MoToRec ablation on {args.dataset} (test split, mean ± std over seeds {base['seed']}; cold = items with < "
          f"{space.first().cold_threshold} train interactions{'; zero = items without any' if zero else ''}; base: "
          f"{', '.join(f'{k}={v}' for k, v in base.items() if k in space.grid) or 'YAML'})\n")
    print(markdown_table(pd.DataFrame(rows)))
    if FULL in names and len(names) > 1:
        print(f"\nΔ = variant - {FULL} on the same test users (each user's value averaged over the seeds); p: paired "
              f"t-test over the users, Holm-corrected over the variants; * = significant at {ALPHA:.0%}. A negative "
              f"significant Δ means the removed component helps.")
    return 0
