"""Optional dependencies (``requirements-distributed.txt``): imported only when a config asks for
them, so the default in-process grid search never imports Ray or Optuna."""
from __future__ import annotations

import importlib
from types import ModuleType

from src.common.config import ConfigError

INSTALL = "pip install -r requirements-distributed.txt"


class MissingExtra(ConfigError):
    """An optional package a setting needs is not installed (one line: what to install)."""


def require(package: str, feature: str) -> ModuleType:
    """Import ``package`` or stop with one line naming it and the ``feature`` that needs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingExtra(f"{feature} needs the '{package}' package, which is not installed: "
                           f"{INSTALL} (or pip install {package})") from None
