"""``python main.py benchmark [-m all|A,B] [-d scientific,sports] [--seeds 3] [--trials 8]``:
every model's search on every dataset with the same budget, its best config on every seed, and
one report (markdown + CSV + PNG per dataset, an index page). Resumable like any search."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from src.cli._common import models_of, run_overrides
from src.common.experiment import benchmark as bm
from src.common.experiment.executors import executor_for
from src.common.experiment.search import run_search
from src.common.paths import from_root
from src.common.recommender import resolve

HELP = "run the benchmark suite (every model, dataset and seed, equal search budget) and write its report"
logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("-m", "--model", help="models, comma-separated, or 'all' (default: the suite's)")
    parser.add_argument("-d", "--dataset", help="datasets, comma-separated (default: the suite's)")
    parser.add_argument("--suite", help=f"suite YAML (default {bm.DEFAULT_SUITE.relative_to(from_root('.'))})")
    parser.add_argument("--seeds", type=int, metavar="N", help="run the chosen configs on N seeds")
    parser.add_argument("--trials", type=int, metavar="N", help="configs searched per model (random search), on the cold variants too")
    parser.add_argument("--cold", type=float, metavar="SHARE", nargs="?", const=0.2,
                        help="also run the strict item cold-start variant of each dataset, SHARE of the "
                             "items (default 0.2) never in training")
    parser.add_argument("--out", help="report folder (default reports/<suite file name>, e.g. reports/benchmark: "
                                      "kept in git, linked from the README)")
    parser.add_argument("--report-only", action="store_true", help="only (re)write the report from the store")
    parser.add_argument("--readme", metavar="README.md",
                        help="also put the report's tables between the benchmark markers of this file")
    parser.add_argument("--force", action="store_true", help="re-run search runs that already finished")
    parser.add_argument("--workers", type=int, metavar="N", help="N runs at once on a local Ray")
    parser.add_argument("--ray-address", metavar="ADDR", help="run on a Ray cluster (auto | ray://HEAD:10001)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides for every run, e.g. threads=1 (a suite's per-dataset set: wins "
                             "over the YAMLs, --set over both)")


def run(args) -> int:
    from src.prepare.variants import cold_variant

    extra = run_overrides(args)
    datasets = [d.strip() for d in (args.dataset or "").split(",") if d.strip()] or None
    suite = bm.load_suite(args.suite, models_of(args) or None, datasets, args.seeds, args.trials, args.cold)
    stem = Path(suite.source).stem
    out_dir = Path(args.out) if args.out else from_root(f"reports/{stem}")

    def plan_of(suite: bm.Suite) -> dict[str, tuple[str, bm.DatasetSuite]]:
        plan = {}
        for name, entry in suite.datasets.items():
            plan[name] = (name, entry)
            if suite.cold_share > 0:
                variant = cold_variant(resolve(None, name, extra).first(), suite.cold_share, seed=entry.seeds[0])
                plan[variant] = (f"{name}, strict item cold start ({suite.cold_share:.0%} of items never in "
                                 f"training)", suite.cold_entry(entry))
        return plan

    plan = plan_of(suite)
    # the report covers the suite's models even when -m trains only some of them (plus any extra ones)
    report_plan = plan
    if models_of(args):
        whole = plan_of(bm.load_suite(args.suite, None, datasets, args.seeds, args.trials, args.cold))
        report_plan = {name: (title, dataclasses.replace(
            entry, models=whole[name][1].models + [m for m in entry.models if m not in whole[name][1].models]))
            for name, (title, entry) in plan.items()}
    for name, (_, entry) in plan.items():   # validate every model on every dataset before training any
        for model in entry.models:
            bm.resolve_label(model, name, bm.search_overrides(entry, extra, model))
    record = bm.SuiteRun()
    if not args.report_only:
        t0 = time.perf_counter()
        with executor_for(resolve(None, next(iter(plan)), extra).first()) as executor:
            for name, (_, entry) in plan.items():
                logger.info("benchmark %s: %s; %d configs each, then %d seeds", name, ", ".join(entry.models),
                            entry.trials, len(entry.seeds))
                bm.run_dataset(name, entry, extra, executor, args.force, record, run_search)
        logger.info("benchmark runs done in %.1f min", (time.perf_counter() - t0) / 60)
    index = bm.write_report(suite, record, extra, out_dir, report_plan)
    for name in report_plan:
        text = (out_dir / f"{name}.md")
        if text.exists():
            print(text.read_text())
    phases = [f"{p.dataset} {p.model} {p.phase}: {p.seconds / 60:.1f} min ({p.finished} trained, "
              f"{p.skipped} from the store, {p.failed} failed)" for p in record.phases]
    if phases:
        print("wall time per part:\n  " + "\n  ".join(phases))
    print(f"report: {index}")
    if args.readme:
        if not bm.update_readme(Path(args.readme), index, stem):
            from src.common.config import ConfigError
            begin, end = bm.readme_markers(stem)
            raise ConfigError(f"{args.readme}: no markers for this suite's report ({begin} ... {end})")
        print(f"{args.readme}: results section regenerated from the report")
    return 1 if record.errors and not record.phases else 0

