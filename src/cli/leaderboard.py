"""``python main.py leaderboard -d <dataset> [-m A,B]``: best config per model, side by side."""
from __future__ import annotations

import logging

from src.cli._common import Today, models_of, overrides_of, reading_overrides
from src.common.recommender import resolve
from src.common.data.dataset import dataset_files, fingerprint_files
from src.common.config import test_mask_of
from src.common.experiment.results import (LEADERBOARD_METRICS, ResultsStore, significance_markdown,
                                           significance_table)
from src.common.storage import atomic_write_text

HELP = "print the best config of every model on a dataset as a markdown table and write a CSV"
logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("-m", "--model", help="only these models (comma-separated)")
    parser.add_argument("--metrics", default=",".join(LEADERBOARD_METRICS),
                        help=f"test metrics to show, overall and cold (default {','.join(LEADERBOARD_METRICS)})")
    parser.add_argument("--current", action="store_true",
                        help="rank only runs today's defaults (and --set) would train, not those of earlier defaults")
    parser.add_argument("--out", help="CSV path (default <results_dir>/<dataset>/leaderboard.csv)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="e.g. results_dir=... to read another results store")


def run(args) -> int:
    config = resolve(None, args.dataset, reading_overrides(overrides_of(args))).first()
    store = ResultsStore(config.results_dir, args.dataset)
    fingerprint = fingerprint_files(dataset_files(config).sources)
    records = store.records()
    current = [r for r in records if r.get("fingerprint") == fingerprint]
    if len(current) < len(records):
        logger.warning("ignoring %d run(s) made on other contents of %s's files",
                       len(records) - len(current), args.dataset)
    same_protocol = [r for r in current if test_mask_of(r["config"]) == config.test_mask]
    if len(same_protocol) < len(current):
        logger.info("leaving out %d run(s) ranked with test_mask=%s (this table: test_mask=%s; "
                    "--set test_mask=... to see them)", len(current) - len(same_protocol),
                    "/".join(sorted({test_mask_of(r["config"]) for r in current} - {config.test_mask})),
                    config.test_mask)
    today = Today(args.dataset, overrides_of(args))
    if args.current:
        kept = [r for r in same_protocol if today.current(r)]
        logger.info("--current: leaving out %d run(s) today's defaults would not train", len(same_protocol) - len(kept))
        same_protocol = kept
    metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
    table = significance_table(same_protocol, store, metrics, models=models_of(args) or None)
    if table.empty:
        print(f"no finished runs for {args.dataset} in {store.root}; train one with "
              f"python main.py -m LightGCN -d {args.dataset}")
        return 1
    out = args.out or store.root / "leaderboard.csv"
    atomic_write_text(out, table.to_csv(index=False))
    shown = table.drop(columns=["run_id"])
    print(f"## {args.dataset}: best config per model by valid {config.valid_metric}; test metrics with "
          f"{config.test_mask} items masked (cold = items with < {config.cold_threshold} train interactions)\n")
    print(significance_markdown(shown))
    stale = today.notes(same_protocol, table["model"])
    if stale:
        print("\nRows whose chosen config today's defaults (and this command's --set) would not train: the "
              "store keeps runs of earlier defaults and of other --set values (--current ranks only today's):")
        for label, note in stale.items():
            print(f"- {label}: {note}")
    print(f"\nCSV: {out}")
    return 0
