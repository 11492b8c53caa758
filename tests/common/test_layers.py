"""The folder tree is the architecture: a module never imports one of a higher layer.

Layers, lowest first (README, "Layout"): the small infrastructure and config at ``src/common/``;
``data/``, ``eval/`` and ``nn/`` (which do not import each other); the model contract
``recommender``; the models and the ``trainer``; ``experiment/``; ``prepare``; the command line.
Every import is checked, late ones inside functions too.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = {"errors", "paths", "storage", "cache", "extras", "plots", "config", "mmrec"}


def layer(module: str) -> tuple[int, str]:
    """(rank, group) of a ``src....`` module name."""
    parts = module.split(".")
    if parts[:2] == ["src", "common"]:
        sub = parts[2] if len(parts) > 2 else ""
        if sub in INFRA or sub in ("", "__init__"):
            return 0, "infra"
        if sub in ("data", "eval", "nn"):
            return 1, sub
        if sub == "recommender":
            return 2, sub
        if sub == "trainer":
            return 3, sub
        if sub == "experiment":
            return 4, sub
        raise AssertionError(f"{module}: src/common module outside the known layers")
    if parts[:2] == ["src", "models"]:
        return 3, "models"
    if parts[:2] == ["src", "prepare"]:
        return 5, "prepare"
    if parts[:2] == ["src", "cli"]:
        return 6, "cli"
    return 6, "other"


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
            found += [(node.lineno, node.module)] if node.module.count(".") >= 2 or node.module != "src.common" \
                else [(node.lineno, f"src.common.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("src")]
    return found


def test_no_module_imports_a_higher_layer():
    bad = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        rank, group = layer(module)
        for line, target in imports(path):
            if target == "src.models":  # the registry's discovery of model files
                continue
            t_rank, t_group = layer(target)
            if t_rank > rank or (t_rank == rank == 1 and t_group != group):
                bad.append(f"{path.relative_to(ROOT)}:{line} ({group}) imports {target} ({t_group})")
    assert not bad, "\n".join(bad)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from src.common.recommender import get_model_class\n")
    assert [layer(t)[0] for _, t in imports(src)] == [2] and layer("src.common.config")[0] == 0


def test_every_layer_folder_states_its_rule():
    for folder in ("data", "eval", "nn", "experiment"):
        doc = ast.get_docstring(ast.parse((ROOT / "src/common" / folder / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), f"src/common/{folder}/__init__.py needs its one-line rule"
