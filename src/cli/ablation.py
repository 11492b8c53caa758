"""``python main.py ablation -d <dataset>``: the MoToRec ablation table (full, w/o RQ-VAE, w/o ARA,
w/o Sparsity, w/o CL, w/o HF), each variant trained from the full model's best grid point with three
seeds (``--set seed=...`` to change them) and reported as mean ± std over the seeds."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from src.cli._common import overrides_of
from src.common.recommender import resolve
from src.common.data.dataset import load_dataset
from src.common.experiment.results import ResultsStore, best_per_label, markdown_table
from src.common.experiment.search import run_search

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
}


#: seeds of every variant unless ``--set seed=...`` is given (one seed's noise hid the ablation's effects)
SEEDS = [999, 1, 2]

BOOKKEEPING = {"seed", "threads", "show_progress", "device", "results_dir", "cache_dir", "save_checkpoint", "label"}


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("--only", help="comma-separated subset of the variants (e.g. 'MoToRec,MoToRec w/o CL')")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override keys for every variant, e.g. threads=1 epochs=50")


def base_point(dataset, overrides: dict) -> dict:
    """The swept keys pinned to the full model's best finished grid point (by valid metric), or
    to the first value of each grid list when the grid has not been run."""
    space = resolve("MoToRec", dataset.name, overrides)
    first = space.first()
    records = [r for r in ResultsStore(first.results_dir, dataset.name).records(dataset.fingerprint)
               if r["model"] == "MoToRec" and r["label"] == "MoToRec"
               and all(r["config"].get(k) == v for k, v in overrides.items()
                       if k not in space.grid and k not in BOOKKEEPING)]
    if records:
        best = next(iter(best_per_label(records).values()))[0]
        logger.info("base config: best MoToRec run %s (%s)", best["run_id"], best["swept"])
        return {k: best["config"][k] for k in space.grid}
    logger.info("no finished MoToRec grid run: base config = the first grid point")
    return {k: first[k] for k in space.grid}


def mean_std(values: list[float]) -> str:
    """'0.1234 ± 0.0012' over the seeds ('-' without values, no ± for one seed)."""
    if not values:
        return "-"
    return f"{np.mean(values):.4f}" + (f" ± {np.std(values):.4f}" if len(values) > 1 else "")


def run(args) -> int:
    overrides = overrides_of(args)
    if args.no_progress:
        overrides["show_progress"] = False
    names = [n.strip() for n in args.only.split(",")] if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        from src.common.config import ConfigError
        raise ConfigError(f"--only: unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    dataset = load_dataset(resolve("MoToRec", args.dataset, overrides).first())
    base = {**base_point(dataset, overrides), **overrides}
    base.setdefault("seed", SEEDS)
    rows = []
    for name in names:
        space = resolve("MoToRec", args.dataset, {**base, **VARIANTS[name], "label": name})
        summary = run_search(space, dataset)
        if not summary.best:
            rows.append({"variant": name})
            continue
        runs = summary.best
        row = {"variant": name, "seeds": len(runs)}
        for column, key in (("R@20", "recall@20"), ("N@20", "ndcg@20"), ("cold R@20", "cold/recall@20"),
                            ("cold N@20", "cold/ndcg@20")):
            values = [r["test"].get(key) for r in runs]
            row[column] = mean_std([v for v in values if v is not None])
        row["best epoch"] = f"{np.mean([r['best_epoch'] for r in runs]):.0f}"
        row["s/epoch"] = f"{np.mean([r['seconds_per_epoch'] for r in runs]):.2f}"
        rows.append(row)
    print(f"\n## MoToRec ablation on {args.dataset} (test split, mean ± std over seeds {base['seed']}; cold = items with < "
          f"{space.first().cold_threshold} train interactions; base: "
          f"{', '.join(f'{k}={v}' for k, v in base.items() if k in space.grid) or 'YAML'})\n")
    print(markdown_table(pd.DataFrame(rows)))
    return 0
