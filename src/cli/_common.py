"""Arguments and helpers shared by several sub-commands."""
from __future__ import annotations

import argparse

from src.common.config import ConfigError, RunConfig, load_yaml, parse_override
from src.common.paths import CONFIG_DIR


def add_model_dataset(parser: argparse.ArgumentParser, model_required: bool = True) -> None:
    parser.add_argument("-m", "--model", required=model_required,
                        help="model name(s), comma-separated: -m BPR,LightGCN,VBPR")
    parser.add_argument("-d", "--dataset", required=True, help="dataset name (data/<name>/)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set learning_rate=0.005 embedding_size=32")


def models_of(args) -> list[str]:
    return [m.strip() for m in (args.model or "").split(",") if m.strip()]


def overrides_of(args) -> dict:
    out = {}
    for text in args.overrides:
        key, value = parse_override(text)
        if key in out:
            raise ConfigError(f"--set {key} given twice")
        out[key] = value
    return out


def run_overrides(args) -> dict:
    """``--set`` values plus the run options a training command shares: ``--no-progress``,
    ``--workers`` and ``--ray-address``."""
    out = overrides_of(args)
    if args.no_progress:
        out["show_progress"] = False
    for key, value in (("workers", args.workers), ("ray_address", args.ray_address)):
        if value is not None:
            out[key] = value
    return out


def default_results_dir() -> str:
    """``results_dir`` as ``overall.yaml`` sets it (commands that read runs of any dataset)."""
    return str(load_yaml(CONFIG_DIR / "overall.yaml").get("results_dir", RunConfig.results_dir))


def split_results_dir(overrides: dict) -> tuple[str, dict]:
    """(results_dir, the other overrides) of a command that reads saved runs."""
    rest = dict(overrides)
    return str(rest.pop("results_dir", None) or default_results_dir()), rest
