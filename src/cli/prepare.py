"""``python main.py prepare -d <name> -i <interactions> [-M <metadata>] [--config FILE] [--set key=value ...]``

Writes ``data/<name>/`` (MMRec's layout, the id maps, features and a dataset YAML), then
``python main.py -m LightGCN -d <name>`` trains on it. Paths given here are relative to the
current directory.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from src.cli._common import overrides_of
from src.common.config import load_yaml
from src.prepare.pipeline import describe_settings, prepare, prepare_config

HELP = "make a dataset from raw interactions (+ item metadata): k-core, id maps, split, text/image features"

#: settings holding a path; made absolute against the current directory (recorded in prepare.yaml)
PATH_KEYS = ("interactions", "metadata", "image_model", "image_dir")


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="name of the new dataset: writes <data-path>/<name>/")
    parser.add_argument("-i", "--interactions", help="raw interactions: .csv/.tsv with a header, or JSON lines "
                        "(e.g. an Amazon review dump: reviewerID, asin, overall, unixReviewTime)")
    parser.add_argument("-M", "--metadata", help="item metadata (Amazon metadata JSON lines, or a .csv/.tsv "
                        "with an item column and text fields); needed for text features")
    parser.add_argument("--config", help="YAML file of settings (see below); --set wins over it")
    parser.add_argument("--data-path", default="data", help="folder that receives <name>/ (default: data, "
                        "relative to the repository root)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="settings, e.g. --set split=cold k_core=10 text_encoder=none threads=1")
    parser.add_argument("--force", action="store_true", help="overwrite files in an existing dataset folder")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "settings (--set key=value, or key: value in --config):\n" + describe_settings()


def run(args) -> int:
    layers = []
    if args.config:
        layers.append((args.config, load_yaml(Path(args.config))))
    layers.append(("command line", {k: getattr(args, k) for k in ("interactions", "metadata") if getattr(args, k)}))
    layers.append(("--set", overrides_of(args)))
    config = prepare_config(layers)
    for key in PATH_KEYS:
        if getattr(config, key):
            setattr(config, key, str(Path(getattr(config, key)).expanduser().resolve()))
    if config.text_encoder not in ("default", "none"):
        config.text_encoder = str(Path(config.text_encoder).expanduser().resolve())
    result = prepare(config, args.dataset, args.data_path, args.force)
    print(f"\n## {args.dataset}: prepared in {result.folder}\n")
    print("| statistic | value |\n|---|---|")
    for key, value in result.stats.items():
        shown = f"{value:.6f}" if key == "density" else f"{value:.4f}" if isinstance(value, float) else value
        print(f"| {key} | {shown} |")
    print(f"\nfiles: {', '.join(result.files)}")
    print(f"train on it: python main.py -m LightGCN -d {args.dataset}"
          + (f" --set data_path={args.data_path}" if args.data_path != "data" else ""))
    return 0
