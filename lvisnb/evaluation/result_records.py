"""Reading an LVIS results file into records: typed msgspec structs when the file is well typed
(:func:`read_results`), plain dicts otherwise (:func:`read_result_records`); errors name the file
and, for JSON that is not JSON, where (line, column) and why. :func:`read_detections` reads and
validates (:func:`lvisnb.evaluation.result_validation.validate_detections`): the general path, for
every legal form of results.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

import msgspec
import numpy as np

from lvisnb.evaluation.result_validation import validate_detections
from lvisnb.evaluation.results import BoxRecord, Detections, MaskRecord, Record

_DECODERS = {  # (boxes, masks) -> decoder
    (True, True): msgspec.json.Decoder(list[Record]),
    (False, True): msgspec.json.Decoder(list[MaskRecord]),
    (True, False): msgspec.json.Decoder(list[BoxRecord]),
}


def _results_path(results) -> Path:
    """``results`` as a path to an existing file; ``TypeError`` / ``FileNotFoundError``."""
    if not isinstance(results, str | os.PathLike):
        raise TypeError(
            "results must be a path to an LVIS results JSON file or a list of result records, "
            f"got a {type(results).__name__}"
        )
    path = Path(results)
    if not path.is_file():
        raise FileNotFoundError(f"LVIS results file not found: {path}")
    return path


def read_result_records(results: str | os.PathLike | list) -> tuple[list[dict], str]:
    """The records of an LVIS results file as plain dicts (or ``results`` itself if it is a
    list), with ``source`` naming the file for messages; errors as :func:`read_results`."""
    if isinstance(results, list):
        return results, "<list>"
    path = _results_path(results)
    data = path.read_bytes()
    try:
        records = msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        from lvisnb.annotations.json_file import json_problem  # pandas: only on an unreadable file

        raise ValueError(f"{path}: {json_problem(data, str(error))}") from None
    except RecursionError:
        from lvisnb.annotations.json_file import TOO_DEEP  # pandas: only on an unreadable file

        raise ValueError(f"{path}: {TOO_DEEP}") from None
    if not isinstance(records, list):
        raise ValueError(
            f"{path}: an LVIS results file is a JSON list of detections, "
            f"got a {type(records).__name__}"
        )
    return records, str(path)


def read_results(
    results: str | os.PathLike | list, boxes: bool = True, masks: bool = True
) -> tuple[list, str]:
    """The records of an LVIS results file (parsed with msgspec), or ``results`` itself if it is
    already a list. Returns ``(records, source)``; ``source`` names the file for messages.

    A well-typed file is decoded straight into :class:`Record` structs, faster and smaller than
    dicts: :class:`MaskRecord` (boxes skipped) when not ``boxes``, :class:`BoxRecord` (masks
    skipped: a third of the time and half the memory) when not ``masks``, unless the records
    have no ``bbox`` (boxes then come from the masks). Any other file is decoded into plain
    dicts, so that :func:`validate_detections` can name its first offending record and field.
    """
    if not (boxes or masks):
        raise ValueError("read_results needs boxes, masks or both")
    if isinstance(results, list):
        return results, "<list>"
    path = _results_path(results)
    with _mapped(path) as data:  # no copy of the file: the decoded structs hold their own
        try:
            records = _DECODERS[bool(boxes), bool(masks)].decode(data)
            if not masks and records and records[0].bbox is msgspec.UNSET:
                records = _DECODERS[True, True].decode(data)  # mask-only: boxes from masks
            return records, str(path)
        except (msgspec.DecodeError, RecursionError):  # ill-typed: decoded generically
            pass
    return read_result_records(path)


@contextlib.contextmanager
def _mapped(path: Path):
    """The file's bytes, memory-mapped read-only (``b""`` for an empty file)."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def read_detections(
    results: str | os.PathLike | list,
    image_ids: np.ndarray,
    image_sizes: np.ndarray,
    category_ids: np.ndarray,
    need_boxes: bool,
    need_masks: bool,
) -> Detections:
    """:func:`read_results` then :func:`validate_detections` (the general path: every legal
    form of results, and the message naming the record and field of what is not legal)."""
    records, source = read_results(results, boxes=need_boxes, masks=need_masks)
    return validate_detections(
        records, image_ids, image_sizes, category_ids, need_boxes, need_masks, source
    )
