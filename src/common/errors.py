"""Errors about input data, shared by the dataset loader, the feature stores and ``prepare``."""
from __future__ import annotations

import codecs
from pathlib import Path


class DataError(ValueError):
    """Bad input data, with the file and line (or key) in the message."""


def first_non_utf8_line(path: Path, chunk: int = 1 << 20) -> int:
    """The 1-based line of the first byte sequence that is not UTF-8 (0 if there is none); reads
    ``chunk`` bytes at a time, so a binary file without newlines costs no more memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                return line + block[:max(e.start, 0)].count(b"\n")
            line += block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line
    return 0
