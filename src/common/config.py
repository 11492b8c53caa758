"""Layered, typed, validated configuration.

Layers, later ones win:  ``overall.yaml`` < ``dataset/<name>.yaml`` < ``model/<Name>.yaml`` < ``--set``.

Every key is declared once, as a field of a dataclass (the *schema*): the run-level keys in
:class:`RunConfig`, the dataset keys in :class:`DatasetConfig`, each model's keys in its nested
``Params`` dataclass, and any extra section (e.g. the item representation) through
:func:`register_section`. The loader rejects unknown keys (with a suggestion), values of the wrong
type and lists under keys that expect a scalar, naming the file and the key. MMRec's own key names
are read as ours first (:mod:`src.common.mmrec`), so MMRec's YAMLs load as they are.

Grid search keeps MMRec's convention: a list is a sweep only under a key named in
``hyper_parameters``; the Cartesian product of those lists (and of ``seed`` when it is a list)
gives the points of the search (``search: random | tpe`` visit ``n_trials`` of them instead, see
:class:`SearchConfig`). Each point is a :class:`Config`: read-only, attribute access,
and reading an undeclared key raises instead of returning ``None``.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import itertools
import json
import logging
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import yaml

from src.common import mmrec
from src.common.paths import CONFIG_DIR, ROOT, from_root, relative_to_root

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration problem, with the file and key that caused it in the message."""


class UndeclaredKey(ConfigError, KeyError):
    """Reading a key no section declares (a KeyError too, so ``Mapping.get`` works)."""

    def __str__(self):
        return str(self.args[0])


# ----------------------------------------------------------------------------- schema sections
DEFAULT_TEST_MASK = "train+valid"   # items masked when ranking for the test split (RunConfig.test_mask)


@dataclass
class RunConfig:
    """Keys shared by every run (``src/configs/overall.yaml``)."""

    model: str = ""                      # model name, set by ``-m``
    dataset: str = ""                    # dataset name, set by ``-d``
    seed: int = 999                      # one seed fixes sampling, initialisation and results
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    threads: int = 0                     # torch threads; 0 = all cores
    reuse_freed_memory: bool = True      # glibc: keep freed memory for reuse (see trainer.reuse_freed_memory)
    epochs: int = 1000
    train_batch_size: int = 2048
    eval_batch_size: int = 4096
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    embedding_size: int = 64
    eval_step: int = 1                   # evaluate on valid every N epochs
    stopping_step: int = 20              # stop after N evaluations without improvement
    valid_metric: str = "recall@20"
    metrics: list[str] = field(default_factory=lambda: ["recall", "ndcg", "precision", "map", "hit"])
    topk: list[int] = field(default_factory=lambda: [10, 20, 50])
    cold_threshold: int = 10             # items with fewer train interactions are cold
    test_mask: Literal["train+valid", "train"] = DEFAULT_TEST_MASK  # items not ranked at test (train: MMRec's)
    negatives: Literal["all", "trained"] = "all"   # BPR negatives from every item (MMRec's) | items with train interactions
    negative_popularity: float = 0.0     # share of BPR negatives drawn in proportion to the train degree
    hyper_parameters: list[str] = field(default_factory=list)
    results_dir: str = "saved"           # relative to the repository root
    cache_dir: str = "cache"             # relative to the repository root
    show_progress: bool = True
    save_checkpoint: bool = True
    save_topk: int = 0                   # write each test user's top-K to <run dir>/test_top<K>.tsv; 0 = off
    label: str = ""                      # leaderboard row name; default: the model name

    def __post_init__(self):
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("epochs", "train_batch_size", "eval_batch_size", "eval_step", "embedding_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.learning_rate > 0:  # "not >" also rejects NaN
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.negative_popularity <= 1.0:
            raise ValueError(f"negative_popularity must lie in [0, 1], got {self.negative_popularity}")
        for name in ("weight_decay", "threads", "cold_threshold"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.stopping_step < 1:
            raise ValueError(f"stopping_step must be >= 1, got {self.stopping_step}")
        if self.save_topk < 0:
            raise ValueError(f"save_topk must be >= 0 (0 = off), got {self.save_topk}")
        if not self.topk or min(self.topk) <= 0:
            raise ValueError(f"topk must be a non-empty list of positive ints, got {self.topk}")
        m = re.fullmatch(r"(?:\w+/)?(\w+)@(\d+)", self.valid_metric.strip().lower())
        if not m:
            raise ValueError(f"valid_metric {self.valid_metric!r} must look like <metric>@<k>, e.g. recall@20")
        name, k = m[1], int(m[2])
        if name not in [m.lower() for m in self.metrics] or k not in self.topk:
            raise ValueError(f"valid_metric {self.valid_metric!r} must be one of metrics {self.metrics} "
                             f"at one of topk {self.topk}")


@dataclass
class SearchConfig:
    """How the points of ``hyper_parameters`` are visited and where the runs execute
    (``src/configs/overall.yaml``; executor keys are read from the first model of a command)."""

    search: Literal["grid", "random", "tpe"] = "grid"  # every point | n_trials sampled | Optuna's TPE
    n_trials: int = 0                    # random/tpe: configs to run (each once per seed)
    tpe_batch: int = 0                   # tpe: configs proposed at a time; 0 = as many as run at once
    workers: int = 0                     # 0: in this process; N: N parallel trials on a local Ray
    ray_address: str = ""                # auto | ray://host:10001: submit to a running Ray cluster
    cpus_per_trial: int = 1              # Ray: CPUs (= torch threads) reserved by each trial
    gpus_per_trial: float = 0.0          # Ray: GPUs per trial (fractions share a GPU)
    max_retries: int = 1                 # Ray: re-runs of a trial whose worker process died
    scheduler: Literal["none", "asha"] = "none"  # asha: stop trials trailing at rung milestones
    asha_grace: int = 4                  # evaluations before a trial can first be stopped
    asha_reduction: int = 3              # eta: each rung keeps the best 1/eta; rungs at grace*eta^k

    def __post_init__(self):
        if self.search != "grid" and self.n_trials < 1:
            raise ValueError(f"search: {self.search} needs n_trials >= 1 (how many configs to run)")
        for name in ("n_trials", "tpe_batch", "workers", "max_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.cpus_per_trial < 1:
            raise ValueError(f"cpus_per_trial must be >= 1, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise ValueError(f"gpus_per_trial must be >= 0, got {self.gpus_per_trial}")
        if self.asha_grace < 1 or self.asha_reduction < 2:
            raise ValueError(f"asha_grace must be >= 1 and asha_reduction >= 2, got "
                             f"{self.asha_grace} and {self.asha_reduction}")
        address = self.ray_address
        if address and address != "auto" and not address.startswith("ray://") and ":" not in address:
            raise ValueError(f"ray_address must be auto, ray://host:port or host:port, got {address!r}")


#: keys added after runs were stored, each with the value that computes what runs from before the
#: key did: at that value a key stays out of run ids and config groups (see ``inactive_keys``), so
#: those runs keep their ids and group with new runs of the same config
LATER_KEYS: dict[str, Any] = {"test_mask": DEFAULT_TEST_MASK, "degree_form": "bias", "motor_reg_weight": 0.0,
                              "learn_score_scale": False, "zero_untrained_id": False,
                              "degree_floor": -1, "degree_floor_rule": "threshold", "negatives": "all",
                              "negative_popularity": 0.0, "motor_graph_tokens": 0,
                              "motor_graph_factors": False, "motor_factor_dropout": 0.0, "motor_graph_rank": 64,
                              "fusion_join": "sum"}   # degree_form, fusion_join: MoToRec's


def test_mask_of(config: Mapping[str, Any]) -> str:
    """The test mask of a (recorded) config; records from before the key existed used the default."""
    return config.get("test_mask", DEFAULT_TEST_MASK)


#: keys that decide how and where runs execute, not what a run computes: left out of the run id
#: (so a point finished in-process is skipped on Ray and vice versa) and of the grouping of seeds
EXECUTION_KEYS = frozenset({"show_progress", "results_dir", "cache_dir", "threads", "device", "reuse_freed_memory",
                            *(f.name for f in dataclasses.fields(SearchConfig))})


@dataclass
class DatasetConfig:
    """Keys of ``src/configs/dataset/<name>.yaml``: where the files are and what they hold."""

    data_path: str = "data"              # folder holding <dataset>/ (relative to the repo root)
    inter_file: str = ""                 # default: <dataset>.inter
    user_field: str = "userID"
    item_field: str = "itemID"
    split_field: str = "x_label"         # 0 train, 1 valid, 2 test
    # modality -> file name, e.g. {image: image_feat.npy, text: text_feat.npy}; files may be absent
    feature_files: dict[str, str] = field(default_factory=dict)
    feature_help: str = ""               # how to get missing feature files (shown in errors)
    item_text_file: str = ""             # optional itemID -> text table, for inspecting codes
    n_items: int = 0                     # catalogue size; 0 = max item id + 1
    # npy: feature files read into memory (default); lmdb: rows read from an LMDB store on demand
    feature_store: Literal["npy", "lmdb"] = "npy"
    lmdb_path: str = "features.lmdb"     # the LMDB store, relative to the dataset folder
    feature_batch_rows: int = 65536      # rows per read when a model needs all rows of the store

    def __post_init__(self):
        if self.feature_batch_rows <= 0:
            raise ValueError(f"feature_batch_rows must be positive, got {self.feature_batch_rows}")
        if self.n_items < 0:
            raise ValueError(f"n_items must be >= 0 (0 = max item id + 1), got {self.n_items}")


Section = type  # a dataclass type
_SECTIONS: dict[str, Section] = {"run": RunConfig, "search": SearchConfig, "dataset": DatasetConfig}


def register_section(name: str):
    """Class decorator: declare an extra group of keys shared by all models (e.g. the item
    representation). A section may define ``inactive_keys(values) -> set[str]``: keys that do not
    affect a run with these values (kept out of its run identity, so changing them re-runs nothing)."""
    def decorate(schema: Section) -> Section:
        _SECTIONS[name] = schema
        return schema
    return decorate


# ----------------------------------------------------------------------------- type coercion
def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to the declared type ``tp`` or raise ConfigError naming ``where``.

    YAML 1.1 reads ``1e-4`` as a string; strings that parse as the declared number are accepted.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        if isinstance(value, bool):   # YAML 1.1 reads off/no/on/yes as booleans: `feature_residual: off`
            spellings = ("on", "yes", "true") if value else ("off", "no", "false")
            named = [a for a in args if isinstance(a, str) and a.lower() in spellings]
            if len(named) == 1:
                return named[0]
        raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list of {_type_name(args[0])}, got {value!r}")
        return [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {coerce(k, args[0], where): coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected float, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected str, got {value!r}")
    if tp is Any:
        return value
    raise ConfigError(f"{where}: unsupported declared type {tp!r}")


def _is_list_type(tp) -> bool:
    origin = typing.get_origin(tp)
    if origin is list:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_is_list_type(a) for a in typing.get_args(tp))
    return False


# ----------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class Key:
    name: str
    type: Any
    default: Any
    section: str


class Schema:
    """The union of the declared sections: every key a run may set, with its type and default."""

    def __init__(self, sections: Mapping[str, Section]):
        self.sections = dict(sections)
        self.keys: dict[str, Key] = {}
        for section, cls in self.sections.items():
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if f.default is not dataclasses.MISSING:
                    default = f.default
                elif f.default_factory is not dataclasses.MISSING:
                    default = f.default_factory()
                else:
                    default = dataclasses.MISSING
                key = Key(f.name, hints[f.name], default, section)
                if f.name in self.keys and self.keys[f.name].section != section:
                    other = self.keys[f.name]
                    if _type_name(other.type) != _type_name(key.type):
                        raise ConfigError(f"key {f.name!r} is declared as {_type_name(other.type)} in "
                                          f"{other.section} and as {_type_name(key.type)} in {section}")
                    continue  # a model re-declaring a shared key keeps the shared declaration
                self.keys[f.name] = key

    def check_known(self, name: str, where: str, scope: list[str] | None = None) -> Key:
        """The declaration of ``name``; an unknown key is a ConfigError with the close matches, the
        keys of the ``scope`` sections (the layer's own, not all 60-odd) and the command listing all."""
        if name in self.keys:
            return self.keys[name]
        close = difflib.get_close_matches(name, self.keys, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        scope = [s for s in (scope or []) if s in self.sections]
        listed = sorted(k.name for k in self.keys.values() if k.section in scope)
        model = next((s.split(" ", 1)[1] for s in self.sections if s.startswith("model ")), "")
        owner = " and ".join(f"{s.split(' ', 1)[1]}'s" if s.startswith("model ") else s for s in scope)
        shown = f" {owner} keys: {', '.join(listed)}." if listed else ""
        raise ConfigError(f"{where}: unknown config key {name!r}.{hint}{shown} Every key with its type, "
                          f"default and meaning: python main.py keys{' -m ' + model if model else ''}")


# ----------------------------------------------------------------------------- the resolved config
class Config(Mapping):
    """One fully resolved, typed, read-only configuration (one point of a search).

    ``config.n_layers`` and ``config['n_layers']`` both work; an undeclared key raises.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._values, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UndeclaredKey(f"config key {name!r} is not declared.{hint}") from None

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def __setattr__(self, name, value):
        raise AttributeError("Config is read-only; use config.replace(key=value)")

    def __reduce__(self):  # pickled for Ray workers; the default would go through __setattr__
        return (Config, (self._values,))

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Config({self._values!r})"

    def replace(self, **changes) -> "Config":
        values = dict(self._values)
        for k, v in changes.items():
            if k not in values:
                raise ConfigError(f"config key {k!r} is not declared")
            values[k] = v
        return Config(values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def identity(self) -> str:
        """A hash of every value that changes what a run computes (not its bookkeeping)."""
        ignored = EXECUTION_KEYS | {"label", "hyper_parameters", "save_checkpoint", "save_topk"}
        ignored = ignored | inactive_keys(self._values)   # incl. LATER_KEYS at their old value
        payload = {k: v for k, v in sorted(self._values.items()) if k not in ignored}
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def as_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=True)


# ----------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (PyYAML would
    silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML layer; malformed YAML or a non-mapping top level is a ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); a YAML layer is a text file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: malformed YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value at the top level")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (``0.5``, ``[1,2]``, ``true``)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
    return key, value


def dataset_yaml(name: str, data_path: str | Path = "data") -> Path | None:
    """The dataset's config layer: ``src/configs/dataset/<name>.yaml`` if there is one, else the
    ``<data_path>/<name>/<name>.yaml`` that ``python main.py prepare`` writes beside the data."""
    path = CONFIG_DIR / "dataset" / f"{name}.yaml"
    if path.exists():
        return path
    prepared = from_root(data_path) / name / f"{name}.yaml"
    return prepared if prepared.exists() else None


def known_datasets() -> list[str]:
    names = {p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml")}
    data = ROOT / "data"
    if data.exists():
        names |= {p.name for p in data.iterdir() if (p / f"{p.name}.inter").exists()}
    return sorted(names)


@dataclass
class ConfigSpace:
    """The resolved base values plus the swept keys: iterate it to get one Config per point."""

    base: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: list[int]
    schema: Schema
    sources: dict[str, str]
    #: MMRec keys the layers held: "ignored" (no effect here) and "unsupported" (not applied), by file
    mmrec: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.n_points * len(self.seeds)

    def __iter__(self) -> Iterator[Config]:
        for point in self.points():
            for seed in self.seeds:
                yield self.config_at(point, seed)

    @property
    def n_points(self) -> int:
        """Grid points (configurations) before the seeds repeat them."""
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n

    def points(self) -> Iterator[dict[str, Any]]:
        """The swept values of every grid point, ``{key: value}``, in the YAML's order."""
        keys = list(self.grid)
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            yield dict(zip(keys, combo))

    def point_at(self, index: int) -> dict[str, Any]:
        """The ``index``-th grid point of :meth:`points` (mixed radix, the last key fastest)."""
        point = {}
        for key in reversed(list(self.grid)):
            index, digit = divmod(index, len(self.grid[key]))
            point[key] = self.grid[key][digit]
        return {k: point[k] for k in self.grid}

    def config_at(self, point: Mapping[str, Any], seed: int) -> Config:
        """The validated config of one grid point and seed."""
        return self._validated(dict(self.base, **point, seed=seed))

    def first(self) -> Config:
        return next(iter(self))

    def _validated(self, values: dict[str, Any]) -> Config:
        """Run each section's ``__post_init__`` cross-key checks on this point."""
        for name, cls in self.schema.sections.items():
            kwargs = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
            try:
                cls(**kwargs)
            except (ValueError, TypeError) as e:
                named = [k for k in kwargs if re.search(rf"\b{k}\b", str(e))]
                where = ", ".join(f"{k} from {self.sources.get(k, 'default')}" for k in named)
                raise ConfigError(f"invalid {name} settings: {e}" + (f" ({where})" if where else "")) from None
        return Config(values)


def schema_for(model_cls: type | None) -> Schema:
    """Every key a run of ``model_cls`` may set: the shared sections and the model's ``Params``."""
    sections = dict(_SECTIONS)
    if model_cls is not None:
        sections[f"model {model_cls.__name__}"] = model_cls.Params
    return Schema(sections)


def resolve_layers(model_cls: type | None, dataset: str, overrides: Mapping[str, Any] | None = None,
                   extra_layers: list[tuple[str, Mapping[str, Any]]] | None = None) -> ConfigSpace:
    """Layer overall → dataset → model → overrides, validate every key and build the search space.

    ``model_cls`` is what the layer above found for a model name: any class with a ``Params``
    dataclass (its keys) and a ``__name__`` (its YAML); ``None`` gives only the run and dataset
    keys, e.g. for the leaderboard. Config never looks models up itself — the registry lives
    above it (``src.common.recommender.resolve`` is the by-name entry point). ``overrides`` are
    command-line values; ``extra_layers`` (name, mapping) go between the model YAML and the
    overrides (e.g. an ablation switch).
    """
    schema = schema_for(model_cls)

    reading = _MMRecKeys(schema)
    overall_where = relative_to_root(CONFIG_DIR / "overall.yaml")
    overall = reading.layer(overall_where, load_yaml(CONFIG_DIR / "overall.yaml"))
    layers: list[tuple[str, dict[str, Any]]] = [(overall_where, overall)]
    data_path = (overrides or {}).get("data_path") or overall.get("data_path") or DatasetConfig.data_path
    ds_path = dataset_yaml(dataset, str(data_path))
    ds_where = relative_to_root(ds_path) if ds_path is not None else None
    if ds_path is not None:
        layers.append((ds_where, reading.layer(ds_where, load_yaml(ds_path))))
    elif dataset not in known_datasets() and not (from_root(data_path) / dataset / f"{dataset}.inter").exists():
        raise ConfigError(f"unknown dataset {dataset!r}: no src/configs/dataset/{dataset}.yaml and no "
                          f"data/{dataset}/{dataset}.inter. Known datasets: {', '.join(known_datasets())}")
    model_yaml = CONFIG_DIR / "model" / f"{model_cls.__name__}.yaml" if model_cls else None
    if model_yaml is not None and model_yaml.exists():
        model_where = relative_to_root(model_yaml)
        layers.append((model_where, reading.layer(model_where, load_yaml(model_yaml))))
    layers.extend((name, reading.layer(name, values)) for name, values in (extra_layers or []))
    layers.append(("--set", reading.layer("--set", overrides or {})))

    merged: dict[str, Any] = {k.name: k.default for k in schema.keys.values()}
    sources: dict[str, str] = {k: "default" for k in merged}
    for where, values in layers:
        # an unknown key's error lists the keys of its own layer: overall.yaml's run-level sections,
        # the dataset's, or the model's (--set and extra layers too)
        scope = ([name for name in _SECTIONS if name != "dataset"] if where == overall_where else
                 ["dataset"] if where == ds_where else
                 [f"model {model_cls.__name__}"] if model_cls else ["run"])
        for key, value in values.items():
            if key == "feat_embed_dim" and key not in schema.keys:
                continue  # MMRec's, checked against the merged embedding_size below
            schema.check_known(key, where, scope)
            merged[key] = value
            sources[key] = where
    reading.check_feat_embed_dim(model_cls.__name__ if model_cls else "", layers, merged)
    merged["model"], merged["dataset"] = (model_cls.__name__ if model_cls else ""), dataset
    missing = [k for k, v in merged.items() if v is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"required config keys not set: {', '.join(missing)}")

    # hyper_parameters first: it decides which lists are sweeps
    hp = coerce(merged["hyper_parameters"], list[str], f"{sources['hyper_parameters']}: hyper_parameters")
    for key in hp:
        schema.check_known(key, f"{sources['hyper_parameters']}: hyper_parameters")
    merged["hyper_parameters"] = hp

    base, grid = {}, {}
    for key, value in merged.items():
        spec = schema.keys[key]
        where = f"{sources[key]}: {key}"
        if key == "seed":
            seeds = value if isinstance(value, list) else [value]
            seeds = [coerce(s, int, where) for s in seeds]
            if not seeds:
                raise ConfigError(f"{where}: empty seed list")
            continue
        if key in hp:
            # a swept key holds a list of candidate values (a scalar pins it to one)
            is_list_of_candidates = isinstance(value, list) and (
                not _is_list_type(spec.type) or (value and isinstance(value[0], list)))
            candidates = value if is_list_of_candidates else [value]
            if not candidates:
                raise ConfigError(f"{where}: empty list of values to search")
            grid[key] = [coerce(v, spec.type, where) for v in candidates]
            continue
        if isinstance(value, list) and not _is_list_type(spec.type):
            raise ConfigError(f"{where}: got a list {value!r} but {key} expects one "
                              f"{_type_name(spec.type)}; to search over it, add {key!r} to hyper_parameters")
        base[key] = coerce(value, spec.type, where)
    base["valid_metric"] = base["valid_metric"].lower()
    base["metrics"] = [m.lower() for m in base["metrics"]]
    space = ConfigSpace(base=base, grid=grid, seeds=seeds, schema=schema, sources=sources,
                        mmrec=reading.report())
    for _ in space:  # run the cross-key checks on every point now, not halfway through a grid
        pass
    return space


class _MMRecKeys:
    """Reads MMRec's keys in each layer as ours (:mod:`src.common.mmrec`) and reports the ones
    without effect once per process, in one line."""

    _reported: set[str] = set()

    def __init__(self, schema: Schema):
        self.schema = schema
        self.ignored: dict[str, list[str]] = {}
        self.unsupported: dict[str, list[str]] = {}

    def layer(self, where: str, values: Mapping[str, Any]) -> dict[str, Any]:
        try:
            out = mmrec.translate(values, self.schema.keys)
        except mmrec.MMRecValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        if out.ignored:
            self.ignored.setdefault(where, []).extend(out.ignored)
        if out.unsupported:
            self.unsupported.setdefault(where, []).extend(out.unsupported)
        return out.values

    def check_feat_embed_dim(self, model: str, layers, merged: Mapping[str, Any]) -> None:
        values = dict(merged)
        where = ""
        for name, layer in layers:
            if "feat_embed_dim" in layer and "feat_embed_dim" not in self.schema.keys:
                values["feat_embed_dim"], where = layer["feat_embed_dim"], name
        try:
            if where and mmrec.check_feat_embed_dim(model, values):
                self.ignored.setdefault(where, []).append("feat_embed_dim")
        except mmrec.MMRecValueError as e:
            raise ConfigError(f"{where}: {e}") from None

    def report(self) -> dict[str, list[str]]:
        """Log the MMRec keys not applied (each once per process) and return them."""
        for what, found, log in (("ignored (no effect here)", self.ignored, logger.info),
                                 ("not applied (we do otherwise)", self.unsupported, logger.warning)):
            new = {w: [k for k in keys if (w, k) not in self._reported] for w, keys in found.items()}
            new = {w: keys for w, keys in new.items() if keys}
            if new:
                log("MMRec keys %s: %s. Details: python main.py keys --mmrec", what,
                    "; ".join(f"{w}: {', '.join(keys)}" for w, keys in new.items()))
                self._reported.update((w, k) for w, keys in new.items() for k in keys)
        return {"ignored": [f"{w}: {k}" for w, keys in self.ignored.items() for k in keys],
                "unsupported": [f"{w}: {k}" for w, keys in self.unsupported.items() for k in keys]}


def inactive_keys(values: Mapping[str, Any], later: bool = True) -> set[str]:
    """Keys whose values do not change what a run with ``values`` computes (each section says which,
    e.g. MOTOR's settings in a run with ID embeddings), and (``later``) ``LATER_KEYS`` at the value
    runs from before them used: left out of run ids and of config groups."""
    out = {k for k, old in LATER_KEYS.items() if values.get(k, old) == old} if later else set()
    for section in _SECTIONS.values():
        if hasattr(section, "inactive_keys"):
            out |= section.inactive_keys(values)
    return out


def default_label(config) -> str:
    """Leaderboard row name: the model, prefixed by a non-default item representation."""
    rep = config.item_representation
    return config.model if rep == "id" else f"{rep.upper()}-{config.model}"
