"""Arguments and helpers shared by several sub-commands."""
from __future__ import annotations

import argparse

from src.common.config import ConfigError, parse_override


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
