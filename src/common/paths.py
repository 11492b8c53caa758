"""Paths resolved from the repository root, never from the working directory."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "src" / "configs"


def from_root(path: str | Path) -> Path:
    """An absolute path: ``path`` itself if absolute, else relative to the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path
