"""``python main.py recommend --run <run-id> --users 3,17,42 -k 10``: top-k items of a saved run.

``--users all --out topk.tsv`` ranks every user in batches (with progress) and writes
``userID  rank  itemID  score``; without ``--out`` the chosen users' lists are printed, with item
titles when the dataset has an ``item_text_file`` and the source ids (e.g. ASINs) when the dataset
folder has MMRec's ``i_id_mapping.csv`` / ``u_id_mapping.csv``.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from src.cli._common import overrides_of, split_results_dir
from src.common.config import ConfigError
from src.common.experiment.runs import load_run
from src.common.eval.topk import write_topk

HELP = "top-k items per user from a saved run (printed, or all users to a TSV file)"
logger = logging.getLogger(__name__)

TITLE_CHARS = 70
SPLITS = ("train", "valid", "test")


def add_arguments(parser) -> None:
    parser.add_argument("--run", dest="run_id", required=True, help="run id or a unique prefix (python main.py runs lists them)")
    parser.add_argument("--users", required=True,
                        help="user ids: 3,17,42 or ranges 0-9, or 'all' (needs --out)")
    parser.add_argument("-k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--out", help="write userID, rank, itemID, score as a TSV file instead of printing")
    parser.add_argument("--exclude", default="train",
                        help="interactions never recommended: train (default), train+valid, "
                             "train+valid+test or none")
    parser.add_argument("--allow-changed-data", action="store_true",
                        help="load the run even if its dataset's files changed since training "
                             "(only possible when the user and item counts still match)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="threads=1, device=cpu, eval_batch_size=..., show_progress=false, "
                             "results_dir=... (where the run is)")


def run(args) -> int:
    if args.k < 1:  # the arguments are checked before the run is loaded
        raise ConfigError(f"-k {args.k}: must be >= 1 (items per user)")
    exclusion_parts(args.exclude)
    results_dir, runtime = split_results_dir(overrides_of(args))
    users_all = args.users.strip().lower() == "all"
    if users_all and not args.out:
        raise ConfigError("--users all writes one line per user and item: give --out FILE (e.g. --out topk.tsv)")
    users = None if users_all else parse_users(args.users)
    model, dataset, config, record = load_run(args.run_id, results_dir,
                                              check_data=not args.allow_changed_data, **runtime)
    if users is None:
        users = np.arange(dataset.n_users)
    exclude = exclusion(dataset, args.exclude)
    if args.out:
        t0 = time.perf_counter()
        rows = write_topk(args.out, model, users, args.k, exclude=exclude, progress=config.show_progress)
        print(f"wrote {rows} rows (top-{args.k} of {len(users)} users, {args.exclude} items excluded) "
              f"to {args.out} in {time.perf_counter() - t0:.2f}s")
        return 0
    top = model.recommend(users, args.k, exclude=exclude)
    print(header(record, args.k, args.exclude, dataset))
    titles = dataset.item_text()
    sources, user_sources = dataset.original_ids("item"), dataset.original_ids("user")
    width = max((len(x) for x in sources), default=0)
    for row, user in enumerate(users):
        source = f" ({user_sources[user]})" if user_sources and user_sources[user] else ""
        print(f"\nuser {user}{source}: {history(dataset, int(user), titles)}")
        print(f"{'rank':>4}  {'itemID':>6}" + (f"  {'source id':<{width}}" if sources else "")
              + f"  {'score':>8}" + ("  title" if titles else ""))
        for rank, (item, score) in enumerate(zip(top.items[row].tolist(), top.scores[row].tolist()), 1):
            if item < 0:
                break
            title = f"  {short(titles[item])}" if titles else ""
            source = f"  {sources[item]:<{width}}" if sources else ""
            print(f"{rank:>4}  {item:>6}{source}  {score:>8.4f}{title}")
    return 0


def parse_users(text: str) -> np.ndarray:
    """``'3,17,42'`` / ``'0-9,20'`` -> user ids (range checks happen in ``model.recommend``)."""
    ids: list[int] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        lo, _, hi = token.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ConfigError(f"--users {text!r}: {token!r} is not a user id or a range a-b of ids")
        if hi and int(hi) < int(lo):
            raise ConfigError(f"--users {text!r}: range {token} is empty (write low-high)")
        ids.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    if not ids:
        raise ConfigError(f"--users {text!r}: no user ids given")
    return np.asarray(ids, dtype=np.int64)


def exclusion(dataset, spec: str):
    """The (n_users, n_items) interactions ``recommend`` must not return: ``train``,
    ``train+valid``, ``train+valid+test``; ``none`` -> None."""
    parts = exclusion_parts(spec)
    if not parts:
        return None
    return sum(dataset.split(p).matrix(dataset.n_users, dataset.n_items) for p in dict.fromkeys(parts)).tocsr()


def exclusion_parts(spec: str) -> list[str]:
    """The splits named by ``--exclude`` (``[]`` for ``none``); an unknown name is a ConfigError."""
    if spec.strip().lower() == "none":
        return []
    parts = [p.strip().lower() for p in spec.split("+")]
    unknown = [p for p in parts if p not in SPLITS]
    if unknown:
        raise ConfigError(f"--exclude {spec!r}: {unknown[0]!r} is not a split; use train, train+valid, "
                          f"train+valid+test or none")
    return parts


def header(record, k: int, exclude: str, dataset) -> str:
    config = ", ".join(f"{k_}={v}" for k_, v in record.get("swept", {}).items())
    test = record.get("test", {}).get("recall@20")
    facts = [f for f in (config, f"test recall@20 {test:.4f}" if test is not None else "",
                         f"finished {record.get('finished_at', '?')}") if f]
    return (f"{record['label']} run {record['run_id']} on {record['dataset']} ({'; '.join(facts)})\n"
            f"top-{k} items per user; {exclude if exclude != 'none' else 'no'} items excluded"
            + (f"; titles from {dataset.item_text_path}" if dataset.item_text() else ""))


def history(dataset, user: int, titles: list[str], shown: int = 3) -> str:
    """How many train items the user has, and the first few (with titles)."""
    items = dataset.train_matrix[user].indices
    if not len(items):
        return "no train items"
    examples = "; ".join(f"{i} {short(titles[i], 40)}" if titles else str(i) for i in items[:shown])
    more = ", ..." if len(items) > shown else ""
    return f"{len(items)} train item(s): {examples}{more}"


def short(text: str, width: int = TITLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"
