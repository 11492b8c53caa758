"""``python main.py runs [-d <dataset>] [-m A,B] [--all]``: the saved runs, oldest first."""
from __future__ import annotations

import pandas as pd

from src.cli._common import models_of, overrides_of, split_results_dir
from src.common.config import ConfigError
from src.common.recommender import resolve
from src.common.data.dataset import DataError, dataset_files, fingerprint_files
from src.common.paths import from_root
from src.common.experiment.results import markdown_table
from src.common.experiment.runs import saved_runs

HELP = "list saved runs (id, model, config, valid/test metric, date) to load or recommend from"


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", help="only this dataset (default: every dataset with runs)")
    parser.add_argument("-m", "--model", help="only these models (comma-separated)")
    parser.add_argument("--metric", default="recall@20", help="metric shown for valid and test (default recall@20)")
    parser.add_argument("--all", action="store_true", help="include failed runs")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="results_dir=... to read another results store")


def run(args) -> int:
    results_dir, rest = split_results_dir(overrides_of(args))
    if rest:
        raise ConfigError(f"runs: only results_dir can be set, not {', '.join(rest)}")
    runs = saved_runs(results_dir, args.dataset, status=None if args.all else "finished")
    wanted = {m.lower() for m in models_of(args)}
    if wanted:
        runs = [r for r in runs if r.record.get("model", "").lower() in wanted
                or r.record.get("label", "").lower() in wanted]
    if not runs:
        where = from_root(results_dir) / (args.dataset or "")
        print(f"no saved runs in {where}; train one with python main.py -m LightGCN -d "
              f"{args.dataset or 'scientific'} --set threads=1")
        return 1
    metric = args.metric.lower()
    for dataset in dict.fromkeys(r.record["dataset"] for r in runs):
        current = _current_fingerprint(dataset)
        rows = []
        for r in (r for r in runs if r.record["dataset"] == dataset):
            rec = r.record
            rows.append({
                "run_id": r.run_id, "model": rec.get("label") or rec.get("model"),
                "config": ", ".join(f"{k}={v}" for k, v in rec.get("swept", {}).items()) or "-",
                f"valid {metric}": rec.get("valid", {}).get(metric), f"test {metric}": rec.get("test", {}).get(metric),
                "best epoch": rec.get("best_epoch"), "finished": rec.get("finished_at", "-"),
                "checkpoint": "yes" if r.has_checkpoint else "no",
                "data": "?" if current is None else "current" if rec.get("fingerprint") == current else "changed",
                **({"status": rec.get("status")} if args.all else {}),
            })
        print(f"## {dataset}: {len(rows)} run(s) in {from_root(results_dir) / dataset}\n")
        print(markdown_table(pd.DataFrame(rows)))
        print()
    print("use one: python main.py recommend --run <run_id or a unique prefix> --users 0,1,2 -k 10")
    return 0


def _current_fingerprint(dataset: str) -> str | None:
    """The content hash of the dataset's files now (None when the dataset is not on disk)."""
    try:
        return fingerprint_files(dataset_files(resolve(None, dataset).first()).sources)
    except (ConfigError, DataError):
        return None
