"""Reading item codes (discrete tokens) for people: code strings, which items use a code, which
items share codes with an item, and the words that describe a group of items.

Codes come as ``{modality: (n_items, L) int array}``; a code string shows one item's tuples,
e.g. ``v:121-7-33 t:34-2-9`` (``v`` = image, ``t`` = text, other modalities by their name).
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from src.common.errors import DataError, first_non_utf8_line

SHORT = {"image": "v", "text": "t"}
ALIASES = {"v": "image", "visual": "image", "t": "text", "textual": "text"}
STOPWORDS = set("""a an and are as at be by for from has have in inch is it its of on or pack pcs
the this to with x mm cm ft oz lb set size new use used""".split())


def code_string(codes: dict[str, np.ndarray], item: int) -> str:
    """``v:121-7-33 t:34-2-9`` for one item."""
    return " ".join(f"{SHORT.get(m, m)}:{'-'.join(str(int(c)) for c in codes[m][item])}" for m in codes)


def parse_code(text: str, codes: dict[str, np.ndarray]) -> tuple[str, list[int | None]]:
    """``v:121-7`` -> ('image', [121, 7, None]): a modality and a pattern over the levels, where
    ``*`` (or a missing trailing level) matches any code. Raises ValueError on bad input."""
    if ":" not in text:
        raise ValueError(f"code {text!r}: expected MODALITY:C1-C2-..., e.g. v:121-7 or t:*-3")
    name, tuple_text = text.split(":", 1)
    modality = ALIASES.get(name, name)
    if modality not in codes:
        raise ValueError(f"code {text!r}: unknown modality {name!r}; the model has {sorted(codes)}")
    levels = codes[modality].shape[1]
    parts = [p.strip() for p in tuple_text.split("-") if p.strip()]
    if not parts or len(parts) > levels:
        raise ValueError(f"code {text!r}: give 1 to {levels} levels separated by '-'")
    try:
        pattern = [None if p == "*" else int(p) for p in parts]
    except ValueError:
        raise ValueError(f"code {text!r}: levels must be integers or '*'") from None
    return modality, pattern + [None] * (levels - len(pattern))


def items_with_code(codes: dict[str, np.ndarray], modality: str, pattern: list[int | None]) -> np.ndarray:
    """Ids of the items whose code tuple in ``modality`` matches ``pattern`` (None = any)."""
    table = codes[modality]
    keep = np.ones(len(table), dtype=bool)
    for level, c in enumerate(pattern):
        if c is not None:
            keep &= table[:, level] == c
    return np.flatnonzero(keep)


def items_sharing_codes(codes: dict[str, np.ndarray], item: int, top: int = 10) -> list[tuple[int, int, int]]:
    """The ``top`` other items sharing most (modality, level, code) positions with ``item``:
    [(item, shared codes, shared prefix levels summed over modalities)], best first."""
    shared = sum((codes[m] == codes[m][item]).sum(1) for m in codes)
    prefix = sum(np.cumprod(codes[m] == codes[m][item], axis=1).sum(1) for m in codes)
    order = np.lexsort((-prefix, -shared))
    return [(int(i), int(shared[i]), int(prefix[i])) for i in order if i != item and shared[i] > 0][:top]


def read_item_text(path: Path | None) -> dict[int, str]:
    """itemID -> text from a tab-separated table with columns itemID and text (empty if absent)."""
    if path is None or not Path(path).exists():
        return {}
    import pandas as pd
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except UnicodeDecodeError:
        raise DataError(f"{path}, line {first_non_utf8_line(path)}: not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a tab-separated table with a header ({str(e).strip()})") from None
    if "itemID" not in table.columns or "text" not in table.columns:
        raise DataError(f"{path}: expected columns itemID and text, got {list(table.columns)}")
    ids = pd.to_numeric(table["itemID"], errors="coerce")
    bad = ids.isna() | (ids != ids.round())
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{path}, line {row + 2}: itemID {table['itemID'].iloc[row]!r} is not an integer")
    return dict(zip(ids.astype(int), table["text"]))


def words(text: str) -> set[str]:
    """Lower-case words of 3+ letters, without stopwords."""
    return {w for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in STOPWORDS}


def top_words(texts: dict[int, str], items: np.ndarray, top: int = 10,
              max_share: float = 0.3) -> list[tuple[str, int]]:
    """Most frequent words (documents containing them) among ``items``; words found in more than
    ``max_share`` of the whole catalogue (e.g. the category name) are left out as uninformative."""
    catalogue = Counter(w for t in texts.values() for w in words(t))
    common = {w for w, n in catalogue.items() if n > max_share * max(len(texts), 1)}
    counts = Counter(w for i in items for w in words(texts.get(int(i), "")) if w not in common)
    return counts.most_common(top)
