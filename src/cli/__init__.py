"""Sub-commands of ``main.py``: each module here defines ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Argument parsing, logging setup and one-line errors live here, once."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

DEFAULT_COMMAND = "train"


def _commands() -> dict[str, object]:
    import src.cli as pkg
    return {info.name: importlib.import_module(f"src.cli.{info.name}")
            for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="Multimodal recommendation with cold-start items in focus. "
        f"Without a command, '{DEFAULT_COMMAND}' runs: python main.py -m LightGCN -d scientific")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, module in sorted(_commands().items()):
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("-v", "--verbose", action="store_true", help="show per-epoch log lines on the console")
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


class _TqdmConsole(logging.Handler):
    """Console log lines that do not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(verbose: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        root.removeHandler(h)
    console = _TqdmConsole()
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root.addHandler(console)
    for noisy in ("matplotlib", "PIL", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def os_error_line(e: OSError) -> str:
    """``<file>: <reason>``, and for a write that failed, that what was written before is kept."""
    from src.common.storage import STORAGE_ERRNOS

    where = f"{e.filename}: " if e.filename else ""
    text = f"{where}{e.strerror or e}"
    if e.errno in STORAGE_ERRNOS:
        text += (" (files are written atomically: what was saved before is intact; free space or choose "
                 "another results_dir / --out, then run the same command again to resume)")
    return text


def main(argv: list[str]) -> int:
    from src.common.config import ConfigError
    from src.common.data.dataset import DataError
    from src.common.recommender import RecommendError
    from src.common.experiment.runs import RunError

    parser = build_parser()
    commands = _commands()
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help")):
        argv = [DEFAULT_COMMAND, *argv]
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    try:
        return args.run(args) or 0
    except (ConfigError, DataError, RunError, RecommendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing file, a full disk, a read-only folder: name the file, no traceback
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; run the same command again to resume",
              file=sys.stderr)
        return 130
