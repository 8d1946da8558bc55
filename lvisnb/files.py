"""Where the kit writes its outputs: never onto one of its inputs, never over a user's file.

An output path is refused (``FileExistsError``, naming it) when it is one of the command's
input files, or when it exists and is not an output of the same kind the kit wrote before (a
metrics JSON, a per-category CSV), unless the caller says ``overwrite``.

Every file the kit writes is written atomically (:func:`atomic_path`): into a temporary file
``.NAME.tmp-PID`` in the same folder, renamed over ``NAME`` only when complete, removed when the
write fails; a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

PER_CATEGORY_HEADER = "id,name,frequency,"
_PEEK_BYTES = 1 << 16


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (links and relative paths resolved)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def is_metrics_file(path: Path) -> bool:
    """A JSON object with ``info``, ``metrics`` and ``per_category`` (``Evaluation.to_dict``)."""
    try:
        with open(path, encoding="utf-8") as file:
            if file.read(1) != "{":
                return False
            file.seek(0)
            data = json.load(file)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"info", "metrics", "per_category"} <= set(data)


def is_json_object_with(path: Path, keys: Iterable[str]) -> bool:
    """Whether ``path`` holds a JSON object with every one of ``keys`` (a summary the kit
    wrote); ``False`` for anything unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and set(keys) <= set(data)


def is_per_category_csv(path: Path) -> bool:
    """A CSV whose header is the kit's per-category table's (``id,name,frequency,...``)."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline(_PEEK_BYTES).startswith(PER_CATEGORY_HEADER)
    except (OSError, ValueError):
        return False


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    *,
    written_by_kit: Callable[[Path], bool],
    overwrite: bool = False,
    what: str = "output",
) -> Path:
    """``path`` as a ``Path`` if the kit may write ``what`` there, else ``FileExistsError``.

    Refused: ``path`` is one of ``inputs`` (always), or an existing file for which
    ``written_by_kit`` is false (unless ``overwrite``), or a folder.
    """
    path = Path(path)
    for source in inputs:
        if isinstance(source, str | os.PathLike) and same_file(path, source):
            raise FileExistsError(f"the {what} path {path} is one of the inputs; choose another")
    if path.is_dir():
        raise FileExistsError(f"the {what} path {path} is a folder")
    if path.exists() and not overwrite and not written_by_kit(path):
        raise FileExistsError(
            f"{path} exists and is not a {what} the kit wrote; not replacing it (choose another "
            "path, or pass overwrite / --overwrite)"
        )
    return path


TEMP_PREFIX, TEMP_INFIX = ".", ".tmp-"  # temporary files: .NAME.tmp-PID


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to (its folder is created); on leaving
    the block without an error it replaces ``path`` (``os.replace``), and in every case the
    temporary file is gone afterwards."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}{TEMP_INFIX}{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a killed write left in ``folder`` (``.NAME.tmp-PID``)."""
    folder = Path(folder)
    pattern = f"{TEMP_PREFIX}*{TEMP_INFIX}*"
    stale = sorted(folder.glob(pattern)) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
