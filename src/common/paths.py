"""Paths resolved from the repository root, never from the working directory."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "src" / "configs"


def from_root(path: str | Path) -> Path:
    """An absolute path: ``path`` itself if absolute, else relative to the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path


def relative_to_root(path: str | Path) -> str:
    """``path`` for messages and reports: relative to the repository root when it lies inside it
    (as given, or once resolved against the working directory), else as given."""
    for candidate in (Path(path), Path(path).resolve()):
        try:
            return str(candidate.relative_to(ROOT))
        except ValueError:
            continue
    return str(path)
