"""``python main.py [train] -m <Model>[,<Model>...] -d <dataset> [--workers N | --ray-address ADDR]
[--set key=value ...]``"""
from __future__ import annotations

import difflib
import logging

from src.cli._common import add_model_dataset, models_of, run_overrides
from src.common import mmrec
from src.common.config import ConfigError, schema_for
from src.common.recommender import get_model_class, resolve
from src.common.data.dataset import load_dataset
from src.common.experiment.executors import executor_for
from src.common.config import test_mask_of
from src.common.experiment.results import ResultsStore, departures, significance_markdown, significance_table
from src.common.experiment.stats import seed_summary
from src.common.experiment.runs import ensure_test_topk
from src.common.experiment.search import DATA_KEYS, check_space, run_search
from src.common.eval.topk import run_topk_path

HELP = "train model(s) on a dataset, running the YAML grid (default command)"
logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    add_model_dataset(parser)
    parser.add_argument("--force", action="store_true",
                        help="re-run grid points that already have a finished result")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="run N trials at once on a local Ray instance (needs ray; sets workers)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="run the trials on a running Ray cluster: auto (on a node of it) or "
                             "ray://HEAD:10001 (needs ray; sets ray_address)")
    parser.add_argument("--save-topk", type=int, metavar="K",
                        help="write every test user's top-K (test_mask items masked) to "
                             "<run dir>/test_top<K>.tsv, to recompute the test metrics independently "
                             "(same as --set save_topk=K)")


def run(args) -> int:
    overrides = run_overrides(args)
    if args.save_topk is not None:
        overrides["save_topk"] = args.save_topk
    models = models_of(args)
    per_model = overrides_per_model(models, overrides)
    spaces = [resolve(m, args.dataset, per_model[m]) for m in models]  # validate all before training any
    for space in spaces:
        check_space(space)
    with executor_for(spaces[0].first()) as executor:  # one Ray instance for all the models
        summaries, datasets = _train_all(spaces, executor, args.force)
    if len(models) > 1:
        first = spaces[0].first()
        ds = next(iter(datasets.values()))
        store = ResultsStore(first.results_dir, first.dataset)
        # the runs this command's search spaces cover (trained now or found finished), not the
        # store's runs of earlier defaults or other --set values (``leaderboard`` shows those too)
        space_of = {space.first().model: space for space in spaces}
        records = [r for r in store.records(ds.fingerprint) if test_mask_of(r["config"]) == first.test_mask
                   and r["model"] in space_of and not departures(r, space_of[r["model"]])]
        print(f"\n## {first.dataset}: best config per model (by valid {first.valid_metric}), test metrics "
              f"({first.test_mask} items masked)\n")
        table = significance_table(records, store, models=models)
        print(significance_markdown(table.drop(columns=["run_id"], errors="ignore")))
    return 0 if all(s.finished or s.skipped for s in summaries) else 1


def overrides_per_model(models: list[str], overrides: dict) -> dict[str, dict]:
    """The ``--set`` values each model gets: a key some of the models declare goes to those only
    (reported once as not applicable to the others); every other key goes to all, so a key that no
    model and no run-level section declares stays an unknown-key error."""
    declared = {m: set(schema_for(get_model_class(m)).keys) for m in models}
    everyone = set().union(*declared.values())
    out = {m: {} for m in models}
    for key, value in overrides.items():
        if len(models) > 1 and key not in everyone and not mmrec.is_mmrec_key(key):
            close = difflib.get_close_matches(key, everyone, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"--set: unknown config key {key!r}: none of {', '.join(models)} and no "
                              f"layer declares it.{hint} Every key of a model: python main.py keys -m {models[0]}")
        takers = [m for m in models if key in declared[m]] or models
        for m in takers:
            out[m][key] = value
        if len(takers) < len(models):
            logger.info("--set %s applies to %s; not applicable to %s (no such key)", key, ", ".join(takers),
                        ", ".join(m for m in models if m not in takers))
    return out


def _train_all(spaces, executor, force: bool):
    """Search each space (one model each) with ``executor``, loading each distinct dataset once."""
    datasets: dict[str, object] = {}
    summaries = []
    for space in spaces:
        first = space.first()
        key = repr({k: first[k] for k in sorted(DATA_KEYS)})  # every key that changes the loaded data
        if key not in datasets:
            datasets[key] = load_dataset(first)
        logger.info("%s on %s: %s", first.model, first.dataset, plan(space))
        summary = run_search(space, datasets[key], executor=executor, force=force)
        summaries.append(summary)
        if first.save_topk:
            save_missing_topk(summary, first, datasets[key])
        print(report(summary, first))
        if first.save_topk and summary.best:
            best = summary.best[0]
            run_dir = ResultsStore(first.results_dir, first.dataset).root / best["model"] / best["run_id"]
            print(f"test top-{first.save_topk} of every test user: {run_topk_path(run_dir, first.save_topk)}")
    return summaries, datasets


def plan(space) -> str:
    """One line: how many runs the search does, over which keys."""
    grid = ", ".join(f"{k}: {len(v)}" for k, v in space.grid.items()) or "no grid"
    seeds = f" x {len(space.seeds)} seeds" if len(space.seeds) > 1 else ""
    search = space.base["search"]
    if search == "grid":
        return f"{len(space)} run(s) ({grid}{seeds})"
    n = min(space.base["n_trials"], space.n_points)
    return f"{search} search, {n} of {space.n_points} configs ({grid}){seeds}"


def save_missing_topk(summary, config, dataset) -> None:
    """Runs that had finished before without ``save_topk`` get their test top-K from the checkpoint."""
    store = ResultsStore(config.results_dir, config.dataset)
    for record in summary.records:
        run_dir = store.root / record["model"] / record["run_id"]
        if record.get("status") == "finished" and (run_dir / "model.pt").exists():
            ensure_test_topk(run_dir, config.save_topk, dataset=dataset, threads=config.threads,
                             device=config.device, show_progress=config.show_progress)


def report(summary, config) -> str:
    """The best config's valid and test metrics as a markdown table (rows = metrics)."""
    if not summary.best:
        return f"\n{config.model}: no run finished; {counts(summary)}; see the run logs."
    runs = summary.best
    r0 = runs[0]
    n = len(runs)
    cols = [("valid", "valid", ""), ("test", "test", ""), ("test cold", "test", "cold/"),
            ("test zero-shot", "test", "zero/")]
    cols = [c for c in cols if not c[2] or any(k.startswith(c[2]) for k in r0[c[1]])]
    metrics = [k for k in r0["test"] if "/" not in k and "@" in k]
    lines = [f"\n## {r0['label']} on {r0['dataset']}: best of {len(summary.records)} run(s) by valid "
             f"{config.valid_metric}" + (f" (mean of {n} seeds)" if n > 1 else ""),
             f"config: {', '.join(f'{k}={v}' for k, v in r0['swept'].items()) or 'as in YAML'}; "
             f"best epoch {r0['best_epoch']} of {r0['epochs_run']}; {r0['seconds_per_epoch']:.3f} s/epoch; "
             f"{r0['n_parameters']} parameters; run {r0['run_id']}", "",
             "| metric | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for m in metrics:
        cells = []
        for _, split, prefix in cols:
            vals = [r[split].get(prefix + m) for r in runs]
            if any(v is None for v in vals):
                cells.append("-")
            else:  # the spread over seeds is part of the result: sample std, 95% t interval
                s = seed_summary(vals)
                cells.append(f"{s.mean:.4f}" + (f" ± {s.std:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]" if n > 1 else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    users = [f"{c[0]}: {r0[c[1]].get(c[2] + 'n_users', '-')}" for c in cols]
    lines.append(f"\nusers evaluated — {'; '.join(users)}")
    lines.append(f"runs: {counts(summary)}")
    return "\n".join(lines)


def counts(summary) -> str:
    """``N finished, N failed, N skipped`` (and the runs a scheduler stopped early, and the runs
    re-run because their worker or node was lost, if any)."""
    text = (f"{summary.finished} finished, {summary.failed} failed, {summary.skipped} skipped "
            f"(already finished)")
    if summary.pruned:
        text += f", {summary.pruned} stopped early"
    if summary.faults():
        text += f"; {summary.faults()}"
    return f"{text} in {summary.seconds:.1f}s"
