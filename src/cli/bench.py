"""``python main.py bench``: seconds per epoch, evaluation seconds, peak memory and parameters of
every registered model on baby, scientific and sports, the time to the best epoch of the stored
runs, a scaling run, and hot-path before/after timings; ``--steps`` times training steps of several
variants interleaved in one process (what comparing two variants on a noisy machine needs)."""
from __future__ import annotations

import logging
import math

import pandas as pd
from tqdm.auto import tqdm

from src.common.experiment.bench import (Variant, bench_config, machine_info, measure_in_subprocess,
                                         stored_time_to_best)
from src.common.paths import from_root
from src.common.recommender import model_names
from src.common.experiment.results import markdown_table
from src.common.storage import atomic_write_text

HELP = "benchmark speed and memory of every model (one fresh process per measurement)"
logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("-m", "--model", default="all", help="models, comma-separated (default: all)")
    parser.add_argument("-d", "--dataset", default="baby,scientific,sports", help="datasets, comma-separated")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (median) after the warm-up")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = all cores")
    parser.add_argument("--scaling", action="store_true", help="also run the 1x/2x/4x scaling run")
    parser.add_argument("--scales", default="1,2,4")
    parser.add_argument("--scaling-models", default="LightGCN,MoToRec")
    parser.add_argument("--hotpaths", action="store_true", help="time hot paths before/after optimisation")
    parser.add_argument("--only-hotpaths", action="store_true")
    parser.add_argument("--steps", action="store_true",
                        help="instead: ms per training step of the -m models and --variant variants, built in one "
                             "process and timed in alternating rounds (ratios to the first one)")
    parser.add_argument("--variant", action="append", nargs="+", default=[], metavar="ARG",
                        help="LABEL MODEL [KEY=VALUE ...], a variant of MODEL with its own overrides, e.g. "
                             "--variant 'codes frozen' MoToRec tokenizer_epochs=0 (repeatable; --set applies to "
                             "all; with --variant, -m adds models only when given)")
    parser.add_argument("--step-count", type=int, default=20, help="with --steps: steps per variant and round")
    parser.add_argument("--rounds", type=int, default=4, help="with --steps: rounds (the median is reported)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides for every model (e.g. train_batch_size=2048)")
    parser.add_argument("--out", default="saved/bench", help="folder for the markdown and CSV tables")


def run(args) -> int:
    from src.cli._common import default_results_dir, overrides_of
    out = from_root(args.out)
    overrides = overrides_of(args)
    info = machine_info(args.threads)
    header = (f"machine: {info['cpu']}, {info['cores']} cores; torch {info['torch']}, "
              f"{info['threads']} threads, device {info['device']}; {info['date']}")
    print(header)
    if args.steps:
        return _steps(args, overrides, out, header)
    if args.hotpaths or args.only_hotpaths:
        from src.common.experiment.bench_hotpaths import run_all
        table = pd.DataFrame(run_all())
        _write(out / "hotpaths", table, header)
        print("\n## Hot paths (Baby graph), before -> after\n")
        print(markdown_table(table, floatfmt=".3f"))
        if args.only_hotpaths:
            return 0
    registered = model_names()
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]
    variants = _variants(args, default=[] if args.variant else registered)
    named = {items[0] for items in args.variant}
    shown = {v.label: "" for v in variants}     # a variant's overrides as its config read them
    for v in variants:     # a bad --variant is one clear error before anything runs, as with --steps
        if v.label in named:
            for dataset in datasets:
                config = bench_config(v.model, dataset, args.threads, {**overrides, **v.overrides})
                shown[v.label] = v.as_read(config)
    jobs = [(v, d, 1) for d in datasets for v in variants]
    if args.scaling:
        scaling_models = [m for m in args.scaling_models.split(",") if m in registered]
        jobs += [(Variant(m, m, {}), datasets[0], int(s)) for m in scaling_models
                 for s in args.scales.split(",") if int(s) > 1]
    rows = []
    for v, dataset, scale in tqdm(jobs, desc="bench", unit="job"):
        m = measure_in_subprocess(v.model, dataset, scale, args.epochs, args.warmup, args.threads,
                                  {**overrides, **v.overrides}, args.timeout)
        if m.error:
            logger.warning("%s on %s x%d failed: %s", v.label, dataset, scale, m.error)
        rows.append({"variant": v.label, "plain": not v.overrides, **m.__dict__})
    df = pd.DataFrame(rows)
    main = df[df.scale == 1].drop(columns=["scale"]).copy()
    results_dir = overrides.get("results_dir", default_results_dir())
    # a stored run's time to its best epoch describes the model's stored config, not a variant's
    main["to_best_s"] = [stored_time_to_best(results_dir, r.dataset, r.model) if r.plain else math.nan
                         for r in main.itertuples()]
    labelled = bool((main.variant != main.model).any())
    for dataset, part in main.groupby("dataset", sort=False):
        notes = ["features generated at random, MMRec's shapes: timing only"] if part.synthetic_features.any() else []
        notes.append("to_best_s: time to the best epoch of the best stored run in the results store, '-': none")
        if args.overrides:
            notes.append(f"every row: {' '.join(args.overrides)}")
        note = f" ({'; '.join(notes)})"
        table = part[(["variant"] if labelled else []) +
                     ["model", "s_per_epoch", "eval_s", "setup_s", "to_best_s", "peak_rss_mib", "gpu_peak_mib",
                      "params", "users", "items", "train_edges", "error"]]
        if labelled:
            table.insert(2, "overrides", [shown[lab] for lab in part.variant])
        if not (table.gpu_peak_mib > 0).any():
            table = table.drop(columns=["gpu_peak_mib"])
        _write(out / f"bench_{dataset}", table, header + note)
        print(f"\n## {dataset}{note}\n")
        print(markdown_table(table.reset_index(drop=True), floatfmt=".3f"))
    if args.scaling:
        # the -m rows (label = model name): one base row per model at 1x, never a variant's
        scal = df[(df.variant == df.model) & df.model.isin(args.scaling_models.split(","))
                  & (df.dataset == datasets[0])].copy()
        base = scal[scal.scale == 1].set_index("model")
        for col in ("s_per_epoch", "eval_s", "peak_rss_mib"):
            scal[f"{col} x"] = [r[col] / base.loc[r.model, col] if r.model in base.index and
                                base.loc[r.model, col] else math.nan for _, r in scal.iterrows()]
        table = scal[["model", "scale", "users", "items", "train_edges", "s_per_epoch", "s_per_epoch x",
                      "eval_s", "eval_s x", "peak_rss_mib", "peak_rss_mib x", "error"]].sort_values(["model", "scale"])
        _write(out / f"scaling_{datasets[0]}", table, header)
        print(f"\n## Scaling on {datasets[0]} (growth factors relative to 1x)\n")
        print(markdown_table(table.reset_index(drop=True), floatfmt=".3f"))
    print(f"\ntables written to {out}/")
    return 0


def _steps(args, overrides: dict, out, header: str) -> int:
    from src.common.config import ConfigError
    from src.common.experiment.bench import interleaved_steps
    if args.step_count < 1 or args.rounds < 1:
        raise ConfigError(f"--step-count and --rounds must be >= 1, got {args.step_count} and {args.rounds}")
    variants = _variants(args, default=[])
    if not variants:
        raise ConfigError("bench --steps: name the variants with -m MODEL,... and/or "
                          "--variant LABEL MODEL [KEY=VALUE ...]")
    for dataset in [d.strip() for d in args.dataset.split(",") if d.strip()]:
        table = interleaved_steps(variants, dataset, steps=args.step_count, rounds=args.rounds,
                                  threads=args.threads, common=overrides)
        common = f"; every variant: {' '.join(args.overrides)}" if args.overrides else ""
        note = (f" ({args.rounds} rounds x {args.step_count} steps per variant, interleaved; "
                f"x_first: ratio to {variants[0].label}{common})")
        _write(out / f"steps_{dataset}", table, header + note)
        print(f"\n## {dataset}: ms per training step{note}\n")
        print(markdown_table(table, floatfmt=".2f"))
    print(f"\ntables written to {out}/")
    return 0


def _variants(args, default: list[str]) -> list:
    """The -m models (``default`` for -m all) as plain variants, then the --variant ones; labels must differ."""
    from src.cli._common import parse_overrides
    from src.common.config import ConfigError
    models = default if args.model == "all" else [m.strip() for m in args.model.split(",") if m.strip()]
    variants = [Variant(m, m, {}) for m in models]
    for items in args.variant:
        if len(items) < 2:
            raise ConfigError(f"--variant needs LABEL MODEL [KEY=VALUE ...], got {' '.join(items)!r}")
        label, model, *pairs = items
        variants.append(Variant(label, model, parse_overrides(pairs, f"--variant {label!r}:")))
    if len({v.label for v in variants}) < len(variants):
        raise ConfigError(f"bench: variant labels must differ, got {[v.label for v in variants]}")
    return variants


def _write(stem, table: pd.DataFrame, header: str) -> None:
    atomic_write_text(f"{stem}.csv", f"# {header}\n" + table.to_csv(index=False))
    atomic_write_text(f"{stem}.md", f"{header}\n\n{markdown_table(table.reset_index(drop=True), floatfmt='.3f')}\n")
