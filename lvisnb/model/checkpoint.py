"""Training checkpoints that are good when called good: atomic, finite, checksummed, safe to load.

A checkpoint is one ``torch.save`` file (``checkpoints/last.pt``, ``final.pt``) holding plain
containers, tensors and numbers, so that it loads with ``torch.load(..., weights_only=True)``:
no code in the file runs. Writing (:func:`save_checkpoint`):

1. every floating-point tensor of the payload (model weights, optimizer state) must be finite,
   else :class:`NonFiniteStateError` and nothing is written, so the previous good file stays;
2. a BLAKE2b digest of every tensor's bytes (in payload order) and of the other values is
   stored under ``"checksum"``;
3. the file goes to a temporary name in the same folder, then ``os.replace``; a failed write
   (a full disk) removes the temporary file and says so.

Reading (:func:`load_checkpoint`) turns every way a file can be unusable (missing, empty,
truncated, not a torch file, holding objects ``weights_only`` refuses, keys missing, a digest
that does not match) into a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from lvisnb.files import atomic_path

CHECKSUM_KEY = "checksum"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and why."""


class NonFiniteStateError(FloatingPointError):
    """The state to be saved holds NaN or infinite values (names the first tensor)."""


def _leaves(value, path: str = "") -> Iterator[tuple[str, object]]:
    """``(dotted path, leaf)`` of a nested dict/list/tuple, in insertion order."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def first_non_finite(payload: dict, skip: Iterable[str] = ("rng",)) -> str | None:
    """Dotted path of the first floating-point tensor of ``payload`` holding a NaN or an
    infinity (top-level keys in ``skip`` not looked at), else ``None``."""
    skipped = set(skip)
    for key, value in payload.items():
        if key in skipped:
            continue
        for path, leaf in _leaves(value, key):
            if torch.is_tensor(leaf) and leaf.is_floating_point():
                if not bool(torch.isfinite(leaf).all()):
                    return path
    return None


def checksum(payload: dict) -> str:
    """BLAKE2b (hex) of ``payload`` without its ``"checksum"`` key: each leaf's path, and for a
    tensor its dtype, shape and raw bytes (on the CPU), for anything else its ``repr``."""
    digest = hashlib.blake2b(digest_size=32)
    for path, leaf in _leaves({k: v for k, v in payload.items() if k != CHECKSUM_KEY}):
        digest.update(path.encode())
        if torch.is_tensor(leaf):
            data = leaf.detach().cpu().contiguous()
            digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(leaf).encode())
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` to ``path`` as described in the module docstring; returns the path.

    Raises :class:`NonFiniteStateError` (nothing written) when a floating-point tensor outside
    ``payload["rng"]`` is not finite, and ``OSError`` naming the file when the write fails
    (``ENOSPC``: "the disk is full"); no temporary file is left behind either way.
    """
    path = Path(path)
    bad = first_non_finite(payload)
    if bad is not None:
        raise NonFiniteStateError(f"{bad} holds NaN or infinite values; {path} not written")
    try:
        with atomic_path(path) as tmp:
            torch.save({**payload, CHECKSUM_KEY: checksum(payload)}, tmp)
    except (OSError, RuntimeError) as error:  # torch.save reports a short write as RuntimeError
        code = getattr(error, "errno", None) or errno.EIO
        full = code == errno.ENOSPC or shutil.disk_usage(path.parent).free < _NEARLY_FULL
        reason = "the disk is full" if full else f"{type(error).__name__}: {error}"
        raise OSError(code, f"could not write checkpoint {path}: {reason}") from error
    return path


_NEARLY_FULL = 64 << 20  # bytes free below which a failed write is put down to a full disk


def load_weights_only(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> object:
    """``torch.load(path, weights_only=True)``, the one way the kit reads a weights file.

    torch's warning about an unknown pickle protocol, which a damaged or foreign file draws
    before the error that names it, is not shown. Raises what ``torch.load`` raises."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)


def describe_load_error(error: Exception) -> str:
    """A short reason for a failed ``torch.load(..., weights_only=True)``, without torch's
    advice to retry with ``weights_only=False`` (which would run whatever the file asks)."""
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text:
        return "it holds objects other than tensors and plain containers, refused unloaded"
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"{type(error).__name__}{': ' + first if first else ''}"


def load_checkpoint(
    path: str | os.PathLike, map_location="cpu", required: Iterable[str] = ()
) -> dict:
    """The payload of the checkpoint at ``path``, loaded with ``weights_only=True``.

    Raises ``FileNotFoundError`` when there is no file, and :class:`CheckpointError` naming
    ``path`` when it is empty, truncated, not a torch file, holds objects ``weights_only``
    refuses, is not a dict, lacks a key of ``required``, or fails its checksum (files written
    before checksums existed, without the key, are accepted).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty: not a usable checkpoint")
    try:
        payload = load_weights_only(path, map_location)
    except Exception as error:  # torch.load fails on garbage with many kinds of error
        raise CheckpointError(
            f"{path} is not a usable checkpoint (truncated, damaged or not written by the "
            f"kit: {describe_load_error(error)})"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a checkpoint")
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is not a usable checkpoint: it has no {missing}")
    stored = payload.pop(CHECKSUM_KEY, None)
    if stored is not None and stored != checksum(payload):
        raise CheckpointError(
            f"{path} is damaged: its contents do not match the checksum written with it"
        )
    return payload
