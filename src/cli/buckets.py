"""``python main.py buckets -d <dataset> -m LightGCN``: accuracy by item degree, ID vs MOTOR."""
from __future__ import annotations

import logging

from src.cli._common import Today, models_of, overrides_of, reading_overrides
from src.common.recommender import resolve
from src.common.data.dataset import load_dataset
from src.common.eval.evaluator import degree_buckets
from src.common.plots import plot_buckets
from src.common.experiment.results import ResultsStore, bucket_table, markdown_table
from src.common.storage import atomic_write_text

HELP = ("test Recall/NDCG per item-degree bucket (0, 1-4, 5-9, 10-19, 20+ train interactions) of "
        "each model's best run, e.g. ID vs MOTOR: a table and a PNG plot")
logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("-m", "--model", required=True,
                        help="model(s), comma-separated; every label of each (e.g. LightGCN and "
                             "MOTOR-LightGCN) is shown")
    parser.add_argument("--metrics", default="recall@20,ndcg@20", help="test metrics (default recall@20,ndcg@20)")
    parser.add_argument("--current", action="store_true",
                        help="choose only among runs today's defaults (and --set) would train")
    parser.add_argument("--out", help="PNG path (default <results_dir>/<dataset>/buckets-<models>.png); "
                                      "a CSV is written beside it")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="e.g. results_dir=... to read another results store")


def run(args) -> int:
    config = resolve(None, args.dataset, reading_overrides(overrides_of(args))).first()
    dataset = load_dataset(config)
    buckets = degree_buckets(dataset.item_degree)
    store = ResultsStore(config.results_dir, args.dataset)
    metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
    models = models_of(args)
    records = store.records(dataset.fingerprint)
    today = Today(args.dataset, overrides_of(args))
    if args.current:
        records = [r for r in records if today.current(r)]
    table, labels = bucket_table(records, list(buckets), metrics, models)
    if not labels:
        print(f"no finished runs of {', '.join(models)} with degree-bucket metrics in {store.root}; "
              f"train one with python main.py -m {models[0]} -d {args.dataset}")
        return 1
    table.insert(1, "items", [int(buckets[b].sum()) if b in buckets else dataset.n_items for b in table["bucket"]])
    out = args.out or store.root / f"buckets-{'-'.join(models)}.png"
    plot_buckets(table, labels, metrics, out, title=f"{args.dataset}: test metrics by item train degree")
    csv = str(out).rsplit(".", 1)[0] + ".csv"
    atomic_write_text(csv, table.to_csv(index=False))
    print(f"## {args.dataset}: test metrics by the item's train interactions (best config per label by "
          f"valid {config.valid_metric}; 'test users' = users with a test item in the bucket)\n")
    print(markdown_table(table))
    for label, note in today.notes(records, labels).items():
        print(f"\n{label}'s chosen config is not what today's defaults would train (--current: only theirs): {note}")
    print(f"\nPNG: {out}\nCSV: {csv}")
    return 0
