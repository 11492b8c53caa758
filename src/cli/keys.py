"""``python main.py keys [-m MODEL] [--mmrec]``: every config key with its type, default and meaning.

Keys are grouped by the section that declares them (run, search, dataset, item representation,
the model's own). The meaning is the comment beside the key in its YAML layer, or else beside its
declaration in the code. ``--mmrec`` lists MMRec's keys and what each becomes here.
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import re
import tokenize
import typing

import yaml

from src.common import mmrec
from src.common.config import _type_name, schema_for
from src.common.paths import CONFIG_DIR
from src.common.recommender import get_model_class

HELP = "list every config key with its type, default and meaning (-m MODEL adds its keys; --mmrec: MMRec's keys)"


def add_arguments(parser) -> None:
    parser.add_argument("-m", "--model", help="also list this model's keys (and its YAML values)")
    parser.add_argument("--mmrec", action="store_true",
                        help="list MMRec's config keys and what each becomes here")


def run(args) -> int:
    if args.mmrec:
        rows = mmrec.table()
        width = max(len(k) for k, _ in rows)
        print("# MMRec keys read here (any other key not declared here is an error)\n")
        for key, meaning in rows:
            print(f"{key:<{width}}  {meaning}")
        return 0
    model = get_model_class(args.model) if args.model else None
    schema = schema_for(model)
    sections = schema.sections
    yamls = {name: CONFIG_DIR / "overall.yaml" for name in sections if name != "dataset"}
    if model is not None:
        yamls[f"model {model.__name__}"] = CONFIG_DIR / "model" / f"{model.__name__}.yaml"
    for section, cls in sections.items():
        yaml_comments = _yaml_comments(yamls.get(section))
        code_comments = _code_comments(cls)
        print(f"\n## {section} ({yamls[section].relative_to(CONFIG_DIR.parent.parent) if section in yamls else 'dataset/<name>.yaml'})")
        rows = []
        for f in dataclasses.fields(cls):
            key = schema.keys[f.name]
            if key.section != section:
                continue  # re-declared; listed where it is first declared
            default = "(required)" if key.default is dataclasses.MISSING else repr(key.default)
            value, comment = yaml_comments.get(f.name, (None, ""))
            comment = comment or code_comments.get(f.name, "")
            shown = default if value is None or _same(value, key.default) else f"{default} (YAML: {value})"
            rows.append((f.name, _type_text(typing.get_type_hints(cls)[f.name]), shown, comment))
        widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
        for r in rows:
            print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())
    return 0


def _type_text(tp) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(tp))
    return _type_name(tp)


def _same(text: str, default) -> bool:
    try:
        return yaml.safe_load(text) == default
    except yaml.YAMLError:
        return False


_YAML_LINE = re.compile(r"^(\w+):\s*(.*?)\s*#\s*(.*)$")


def _yaml_comments(path) -> dict[str, tuple[str, str]]:
    """``key -> (value text, comment)`` from ``key: value  # (type) comment`` lines of a YAML layer."""
    if path is None or not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        m = _YAML_LINE.match(line)
        if m:
            out[m[1]] = (m[2], re.sub(r"^\([^)]*\)\s*", "", m[3]))
    return out


def _code_comments(cls) -> dict[str, str]:
    """``field -> comment`` from the dataclass source: the comment after the field, or the comment
    lines just above it."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out, above = {}, []
    names = {f.name for f in dataclasses.fields(cls)}
    lines = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            lines.setdefault(tok.start[0], tok.string.lstrip("# ").strip())
    for number, line in enumerate(source.splitlines(), 1):
        m = re.match(r"\s*(\w+)\s*:", line)
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(lines.get(number, ""))
            continue
        if m and m[1] in names and m[1] not in out:
            out[m[1]] = lines.get(number) or " ".join(above)
        above = []
    return out
