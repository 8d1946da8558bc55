"""Reading an LVIS annotation file's JSON, with errors that say where and why.

- :func:`load_json` decodes a file into plain dicts and lists; invalid JSON is an
  :class:`LVISFormatError` naming the file and the line and column, or saying in words what is
  wrong (an empty or cut-short file, UTF-16, a byte-order mark, ``NaN``: :func:`json_problem`).
- :class:`LVISFormatError`, the error every check of an annotation file raises, and the keys
  an LVIS file's records carry (:data:`REQUIRED_KEYS`, :data:`LABEL_LISTS`).
- The helpers the checks read decoded values with: :data:`ABSENT` (a key a record lacks),
  :data:`INT` / :data:`NUMBER` (JSON's integer and number types), :func:`as_float64`,
  :func:`short` (a value as an error message quotes it).
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import Any, TypedDict

import msgspec
import numpy as np

REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "images": ("id", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "segmentation", "area", "bbox"),
    "categories": ("id", "name", "frequency"),
}
LABEL_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


class LVISFormatError(ValueError):
    """An annotation file that is not valid LVIS; the message names the file and the field."""


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while building or walking millions of JSON
    objects (they hold no cycles; reference counting frees them): its repeated full
    collections otherwise cost as much as the decoding itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LVIS annotation file not found: {path}")
    return path.read_bytes()


_NON_JSON_LITERALS = (b"NaN", b"Infinity", b"-Infinity")  # what Python's json.dump writes


def json_problem(data: bytes, message: str) -> str:
    """msgspec's JSON error ``message`` on ``data``, said in words: an empty file, a UTF-16 or
    UTF-8-BOM encoding, or a ``NaN`` / ``Infinity`` literal (Python's ``json.dump`` writes them
    for float nan/inf; JSON has no such values), else the line and column of the error."""
    if not data.strip():
        return "the file is empty"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and 0 in data[:2]):
        return "the file is UTF-16 encoded; JSON files must be UTF-8"
    if data.startswith(b"\xef\xbb\xbf"):
        return "the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without one"
    if "truncated" in message:
        return "the JSON ends early: the file is cut short (an interrupted write or copy?)"
    if "(byte " not in message:
        return message
    offset = int(message.rsplit("(byte ", 1)[1].rstrip(")"))
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    where = f"line {line}, column {column}"
    for literal in _NON_JSON_LITERALS:
        if data.startswith(literal, offset) or data.startswith(literal, offset - 1):
            return (
                f"{literal.decode()} at {where} is not JSON (Python's json writes it for a "
                "non-finite float): every number must be finite"
            )
    return f"invalid JSON at {where}: {message}"


def decode_error(path: Path, data: bytes, error: msgspec.DecodeError) -> LVISFormatError:
    """Turn msgspec's message (with a byte offset or a ``$.annotations[3]`` path) into ours."""
    message = str(error)
    if "(byte " in message or "truncated" in message or not data.strip():
        return LVISFormatError(f"{path}: {json_problem(data, message)}")
    if "[...]" in message:  # e.g. 1e999 (no float) in an untyped decode: where exactly?
        message = _located(data) or message
    if " - at `$" in message:
        what, where = message.split(" - at `", 1)
        return LVISFormatError(f"{path}: {where.rstrip('`')}: {what}")
    return LVISFormatError(f"{path}: {message}")


def _where_schema():
    """A type that decodes an LVIS file's sections as TypedDicts of ``Any``, so that msgspec's
    error path names the section, the index and the key (``$.annotations[3].area``) where an
    untyped decode only says ``$[...][3][...]``."""
    keys = {
        "images": (*REQUIRED_KEYS["images"], "file_name", "coco_url", *LABEL_LISTS),
        "annotations": REQUIRED_KEYS["annotations"],
        "categories": (*REQUIRED_KEYS["categories"], "synset", "image_count", "instance_count"),
    }
    records = {
        section: list[TypedDict(f"_Where_{section}", dict.fromkeys(names, Any), total=False)]
        for section, names in keys.items()
    }
    return TypedDict("_WhereFile", records, total=False)


def _located(data: bytes) -> str | None:
    """msgspec's message for ``data`` with its path spelled out (:func:`_where_schema`), or
    ``None`` if that decode finds nothing. Runs only on a bad file."""
    try:
        msgspec.json.decode(data, type=_where_schema())
    except msgspec.DecodeError as error:
        return None if "[...]" in str(error) else str(error)
    return None


def load_json(path: str | os.PathLike) -> dict:
    """Parse an LVIS annotation file into plain Python objects (dicts and lists).

    Raises ``FileNotFoundError`` for a missing file and :class:`LVISFormatError` (with line and
    column) for invalid JSON.
    """
    path = Path(path)
    data = read_bytes(path)
    try:
        with gc_paused():
            return msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        raise decode_error(path, data, error) from None
    except RecursionError:
        raise LVISFormatError(f"{path}: {TOO_DEEP}") from None


TOO_DEEP = "the JSON is nested too deeply to be an LVIS file (lists within lists ...)"


# ----------------------------------------------------------------------------- decoded values


class Absent:
    """The value of an optional key that a record does not have (``null`` is not absent)."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = Absent()
INT = frozenset({int})
NUMBER = frozenset({int, float})


def short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_float64(values: list) -> np.ndarray:
    """float64 of numbers (type-checked: ``np.fromiter`` would also take ``True`` and ``"4"``);
    an integer beyond the float range becomes inf."""
    try:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:
        return np.array(
            [v if type(v) is float or -1e308 < v < 1e308 else np.inf for v in values],
            dtype=np.float64,
        )
