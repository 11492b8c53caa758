"""Reading raw interactions and item metadata.

The format follows the file name: ``.json``/``.jsonl``/``.ndjson`` are JSON lines (one object per
line; Python-literal lines, as in the 2014 Amazon metadata dumps, are read with
``ast.literal_eval``), ``.csv`` is comma-separated, ``.tsv``/``.txt``/``.inter``/``.tab``
tab-separated; any of them may be gzipped (``.gz``). Tables need a header unless ``columns``
names their columns.

Columns are found by name unless given: the user is the first of :data:`USER_KEYS` present, the
item of :data:`ITEM_KEYS`, and so on, which covers the Amazon review dumps (``reviewerID``,
``asin``, ``overall``, ``unixReviewTime``) and RecBole/MMRec-style tables. Every problem is a
:class:`DataError` naming the file and line.
"""
from __future__ import annotations

import ast
import gzip
import html
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from src.common.errors import DataError, first_non_utf8_line

logger = logging.getLogger(__name__)

USER_KEYS = ("user_id", "userID", "user", "reviewerID", "uid")
ITEM_KEYS = ("item_id", "itemID", "item", "asin", "parent_asin", "iid")
RATING_KEYS = ("rating", "overall", "score")
TIME_KEYS = ("timestamp", "unixReviewTime", "time", "date")
META_ITEM_KEYS = ("asin", "parent_asin", "item_id", "itemID", "item", "iid")
#: metadata fields holding an image reference (a local path, or a URL whose file name is looked up)
IMAGE_KEYS = ("image_path", "image", "imUrl", "imageURLHighRes", "imageURL", "images")


def table_format(path: Path) -> str:
    """``json`` for JSON lines, else the column separator of the table (from the file name)."""
    name = path.name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    if suffix == ".csv":
        return ","
    if suffix in (".tsv", ".txt", ".inter", ".tab"):
        return "\t"
    raise DataError(f"{path}: unknown file type {suffix or '(none)'!r}; use .csv, .tsv, .json or .jsonl "
                    f"(optionally .gz)")


def _open_text(path: Path):
    if not path.exists():
        raise DataError(f"file not found: {path}")
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


def json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSON-lines file."""
    n = 0
    try:
        with _open_text(path) as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    yield n, _json_object(path, n, line.strip())
    except UnicodeDecodeError:
        raise DataError(f"{path}{_bad_line(path)}: not UTF-8 text (a binary file, or another encoding)") from None
    except (OSError, EOFError) as e:  # a corrupt or truncated .gz
        raise DataError(f"{path}, after line {n}: cannot read ({e})") from None


def _bad_line(path: Path) -> str:
    """``", line N"`` of the first bytes that are not UTF-8 (text is decoded in blocks, so the
    reader's own position is not the line); empty for a .gz."""
    return "" if path.name.endswith(".gz") else f", line {first_non_utf8_line(path)}"


def _json_object(path: Path, n: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        try:  # the 2014 Amazon dumps hold Python literals ({'asin': ...})
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            raise DataError(f"{path}, line {n}: not a JSON object ({e.msg})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}, line {n}: expected a JSON object, got {type(record).__name__}")
    return record


def _read_table(path: Path, sep: str, columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """A table as strings and the file line of its first row."""
    try:
        with _open_text(path) as f:
            df = pd.read_csv(f, sep=sep, dtype=str, keep_default_na=False, header=None if columns else 0,
                             names=list(columns) or None, quoting=3 if sep == "\t" else 0)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}{_bad_line(path)}: not UTF-8 text (a binary file, or another encoding)") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: cannot read as a {'tab' if sep == chr(9) else 'comma'}-separated table "
                        f"({e})") from None
    except (OSError, EOFError) as e:  # a corrupt or truncated .gz
        raise DataError(f"{path}: cannot read ({e})") from None
    return df, 1 if columns else 2


def _pick(available: Sequence[str], given: str, candidates: Sequence[str], what: str, path: Path,
          where: str, required: bool) -> str:
    if given:
        if given not in available:
            raise DataError(f"{path}{where}: no {what} column {given!r}; found {list(available)}")
        return given
    found = next((c for c in candidates if c in available), "")
    if required and not found:
        raise DataError(f"{path}{where}: no {what} column (looked for {', '.join(candidates)}); found "
                        f"{list(available)}. Name it with {what}_column, or give the columns of a "
                        f"file without header with columns: [user, item, rating, timestamp]")
    return found


def read_interactions(path: str | Path, columns: Sequence[str] = (), user_column: str = "",
                      item_column: str = "", rating_column: str = "", time_column: str = "") -> pd.DataFrame:
    """Raw interactions: columns ``user``, ``item`` (str), ``rating``, ``timestamp`` (float, NaN when
    the file has none) and ``line`` (the file line, for messages). ``attrs['columns']`` says which
    source columns were used."""
    path = Path(path)
    fmt = table_format(path)
    if fmt == "json":
        records = json_records(path)
        first = next(records, None)
        if first is None:
            raise DataError(f"{path}: no records")
        keys = list(first[1])
        where = f", line {first[0]}"
        cols = {"user": _pick(keys, user_column, USER_KEYS, "user", path, where, True),
                "item": _pick(keys, item_column, ITEM_KEYS, "item", path, where, True),
                "rating": _pick(keys, rating_column, RATING_KEYS, "rating", path, where, False),
                "timestamp": _pick(keys, time_column, TIME_KEYS, "time", path, where, False)}
        rows: dict[str, list] = {k: [] for k in ("line", *cols)}
        for n, record in _chain(first, records):
            rows["line"].append(n)
            for field, key in cols.items():
                rows[field].append(record.get(key, "") if key else "")
        df = pd.DataFrame(rows)
    else:
        table, first_line = _read_table(path, fmt, columns)
        keys = list(table.columns)
        cols = {"user": _pick(keys, user_column, USER_KEYS, "user", path, "", True),
                "item": _pick(keys, item_column, ITEM_KEYS, "item", path, "", True),
                "rating": _pick(keys, rating_column, RATING_KEYS, "rating", path, "", False),
                "timestamp": _pick(keys, time_column, TIME_KEYS, "time", path, "", False)}
        df = pd.DataFrame({f: table[k] if k else "" for f, k in cols.items()})
        df.insert(0, "line", np.arange(len(df)) + first_line)
    if df.empty:
        raise DataError(f"{path}: no interactions")
    for field in ("user", "item"):
        values = df[field].map(lambda v: "" if v is None else str(v).strip())
        empty = values == ""
        if empty.any():
            raise DataError(f"{path}, line {df['line'][empty.idxmax()]}: empty {field} id ({cols[field]!r})")
        df[field] = values
    df["rating"] = _numbers(df, "rating", cols["rating"], path) if cols["rating"] else np.nan
    df["timestamp"] = _times(df, cols["timestamp"], path) if cols["timestamp"] else np.nan
    df.attrs["columns"] = {k: v for k, v in cols.items() if v}
    logger.info("%s: %d interactions (columns %s)", path, len(df),
                ", ".join(f"{k}={v}" for k, v in df.attrs["columns"].items()))
    return df


def _chain(first, rest):
    yield first
    yield from rest


def _numbers(df: pd.DataFrame, field: str, column: str, path: Path) -> pd.Series:
    raw = df[field].map(lambda v: "" if v is None else str(v).strip())
    values = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
    bad = values.isna() & (raw != "")
    if bad.any():
        row = bad.idxmax()
        raise DataError(f"{path}, line {df['line'][row]}: {column!r} must be a number, got {raw[row]!r}")
    return values.astype(float)


def _times(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """Timestamps as float seconds: numbers are taken as they are, date strings are parsed."""
    raw = df["timestamp"].map(lambda v: "" if v is None else str(v).strip())
    values = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
    text = values.isna() & (raw != "")
    if text.any():
        parsed = pd.to_datetime(raw[text], errors="coerce", format="mixed", utc=True)
        if parsed.isna().any():
            row = parsed.isna().idxmax()
            raise DataError(f"{path}, line {df['line'][row]}: {column!r} is neither a number nor a date: "
                            f"{raw[row]!r}")
        values[text] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return values.astype(float)


# ----------------------------------------------------------------------------- metadata
def read_metadata(path: str | Path, item_column: str = "", text_fields: Sequence[str] = (),
                  image_fields: Sequence[str] = IMAGE_KEYS) -> pd.DataFrame:
    """Item metadata indexed by raw item id: ``text`` (the ``text_fields`` present, in that order,
    joined by '. '; '' when none) and ``image`` (the first image reference; '' when none).

    List values are flattened (Amazon's ``categories`` is a list of category paths), HTML tags and
    entities are removed and repeated fragments dropped. The first record of an item wins."""
    path = Path(path)
    fmt = table_format(path)
    if fmt == "json":
        records = ((n, r) for n, r in json_records(path))
    else:
        table, first_line = _read_table(path, fmt, ())
        records = ((first_line + k, r) for k, r in enumerate(table.to_dict("records")))
    ids, texts, images, key = [], [], [], None
    for n, record in records:
        if key is None:
            key = _pick(list(record), item_column, META_ITEM_KEYS, "item", path, f", line {n}", True)
        item = str(record.get(key) or "").strip()
        if not item:
            raise DataError(f"{path}, line {n}: no item id ({key!r})")
        ids.append(item)
        texts.append(compose_text(record, text_fields))
        images.append(_first_string(next((record[k] for k in image_fields if record.get(k)), "")))
    if key is None:
        raise DataError(f"{path}: no records")
    meta = pd.DataFrame({"text": texts, "image": images}, index=pd.Index(ids, name="item"))
    duplicated = meta.index.duplicated()
    if duplicated.any():
        logger.warning("%s: %d repeated item ids (kept the first record of each), e.g. %s", path,
                       int(duplicated.sum()), meta.index[duplicated][0])
        meta = meta[~duplicated]
    logger.info("%s: metadata of %d items (%d with text, %d with an image reference)", path, len(meta),
                int((meta["text"] != "").sum()), int((meta["image"] != "").sum()))
    return meta


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def compose_text(record: dict[str, Any], fields: Sequence[str]) -> str:
    """The item's text: the non-empty ``fields`` of ``record`` in order, joined by '. '."""
    parts: list[str] = []
    for field in fields:
        for piece in _strings(record.get(field)):
            piece = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", piece))).strip(" .;,")
            if piece and piece not in parts:
                parts.append(piece)
    return ". ".join(parts)


def _strings(value: Any) -> list[str]:
    """Flatten a metadata value to strings (a category path [[a, b]] gives 'a, b')."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (list, tuple)) for v in value):
            return [", ".join(str(x) for x in v) for v in value]
        return [s for v in value for s in _strings(v)]
    return [str(value)]


def _first_string(value: Any) -> str:
    strings = _strings(value)
    return strings[0].strip() if strings else ""
