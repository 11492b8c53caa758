"""Arguments and helpers shared by several sub-commands."""
from __future__ import annotations

import argparse

from src.common.config import ConfigError, RunConfig, default_label, load_yaml, parse_override, schema_for
from src.common.experiment.results import best_per_label, departures, describe_departures
from src.common.paths import CONFIG_DIR
from src.common.recommender import get_model_class, model_names, resolve


def add_model_dataset(parser: argparse.ArgumentParser, model_required: bool = True) -> None:
    parser.add_argument("-m", "--model", required=model_required,
                        help="model name(s), comma-separated: -m BPR,LightGCN,VBPR")
    parser.add_argument("-d", "--dataset", required=True, help="dataset name (data/<name>/)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set learning_rate=0.005 embedding_size=32")


def models_of(args) -> list[str]:
    return [m.strip() for m in (args.model or "").split(",") if m.strip()]


def overrides_of(args) -> dict:
    return parse_overrides(args.overrides)


def parse_overrides(texts: list[str], option: str = "--set") -> dict:
    """``key=value`` texts (``--set``'s, or another option's) as a dict; a key given twice is an error."""
    out = {}
    for text in texts:
        key, value = parse_override(text)
        if key in out:
            raise ConfigError(f"{option} {key} given twice")
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


def reading_overrides(overrides: dict) -> dict:
    """The ``--set`` keys every model declares (run and dataset keys), for a command that reads
    stored runs of any model and resolves only the dataset; a model's own keys (e.g. ``reg_weight``,
    the settings :class:`Today` compares runs with) are checked to belong to some model."""
    shared = set(schema_for(None).keys)
    known = shared.union(*(schema_for(get_model_class(m)).keys for m in model_names()))
    unknown = [k for k in overrides if k not in known]
    if unknown:
        raise ConfigError(f"--set: unknown config key(s) {', '.join(map(repr, unknown))}: no model declares "
                          f"them; every key of a model: python main.py keys -m <model>")
    return {k: v for k, v in overrides.items() if k in shared}


class Today:
    """A dataset's models as today's defaults resolve them (their YAML's values and grid, plus the
    command's ``overrides``), to tell a stored run from one the same command would train now: a store
    outlives default changes, and a leaderboard or comparison that picked such runs should say so."""

    def __init__(self, dataset: str, overrides: dict):
        self.dataset, self.overrides, self._spaces = dataset, overrides, {}

    def note(self, record: dict) -> str:
        """'' when today's defaults could have trained ``record``, else what differs, e.g.
        'negative_popularity=0.0 (today 0.25)'. Runs under a label of their own (e.g. an ablation
        variant) differ by design and give ''."""
        rep = record["config"].get("item_representation", "id")
        if record["label"] != default_label(argparse.Namespace(model=record["model"], item_representation=rep)):
            return ""
        key = (record["model"], rep)
        if key not in self._spaces:
            try:
                declared = schema_for(get_model_class(record["model"])).keys
                mine = {k: v for k, v in self.overrides.items() if k in declared}
                self._spaces[key] = resolve(record["model"], self.dataset, {**mine, "item_representation": rep})
            except ConfigError:      # e.g. a model no longer registered, a key no longer declared
                self._spaces[key] = None
        space = self._spaces[key]
        return describe_departures(departures(record, space)) if space is not None else ""

    def current(self, record: dict) -> bool:
        return not self.note(record)

    def notes(self, records: list[dict], labels) -> dict[str, str]:
        """For each of ``labels`` whose best config by valid among ``records`` today's defaults would
        not train: what differs (the lines a leaderboard or bucket table prints under itself)."""
        wanted = set(labels)
        chosen = best_per_label([r for r in records if r["label"] in wanted])
        return {label: note for label, runs in chosen.items() if (note := self.note(runs[0]))}
