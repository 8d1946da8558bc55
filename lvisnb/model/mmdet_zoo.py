"""mmdetection's published LVIS Mask R-CNN models: config files and checkpoint addresses.

One :class:`PublishedModel` per model zoo row the kit names (:data:`lvisnb.model.presets.PRESETS`
without ``toy``), from mmdetection 3.3.0's ``configs/lvis/metafile.yml`` and
``configs/seesaw_loss/metafile.yml``: the row's 3.x config file (inside the ``mmdet`` wheel's
``.mim/configs``) and the address of the checkpoint trained with mmdetection 2.x's config of the
same name. mmdetection names each checkpoint ``NAME-XXXXXXXX.pth``, ``XXXXXXXX`` the first 8 hex
digits of the file's SHA-256, which :func:`published_checkpoint` checks.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import NamedTuple

_BASE = "https://download.openmmlab.com/mmdetection/v2.0"


class PublishedModel(NamedTuple):
    """A model zoo row: its mmdetection 3.x config and its checkpoint's address."""

    config: str  # path inside mmdetection's repository (and the wheel's .mim folder)
    url: str  # checkpoint, NAME-<first 8 hex digits of its sha256>.pth

    @property
    def file_name(self) -> str:
        """The checkpoint's file name (the last part of :attr:`url`)."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """The 8 hex digits the file's SHA-256 starts with (from the file name)."""
        return self.file_name.rsplit("-", 1)[-1].split(".", 1)[0]


def _lvis_rows() -> dict[str, PublishedModel]:
    hashes = {  # (backbone, dataset) -> sha256 prefix, configs/lvis/metafile.yml
        ("r50", "v1"): "aa78ac3d",
        ("r101", "v1"): "ec55ce32",
        ("x101_32x4d", "v1"): "ebbc5c81",
        ("x101_64x4d", "v1"): "43d9edfe",
        ("r50", "v0.5"): "dbd06831",
        ("r101", "v0.5"): "54582ee2",
        ("x101_32x4d", "v0.5"): "3cf55ea2",
        ("x101_64x4d", "v0.5"): "1c99a5ad",
    }
    rows = {}
    for (backbone, dataset), digest in hashes.items():
        schedule = "1x" if dataset == "v1" else "2x"
        name = f"mask_rcnn_{backbone}_fpn_sample1e-3_mstrain_{schedule}_lvis_{dataset}"
        config = (
            f"configs/lvis/mask-rcnn_{backbone.replace('_', '-')}_fpn_sample1e-3_ms-{schedule}"
            f"_lvis-{dataset}.py"
        )
        # the v0.5 checkpoints are named without the dataset version
        stem = name if dataset == "v1" else name.removesuffix("_v0.5")
        rows[name] = PublishedModel(config, f"{_BASE}/lvis/{stem}/{stem}-{digest}.pth")
    return rows


def _seesaw_rows() -> dict[str, PublishedModel]:
    hashes = {  # (sampling, normed mask) -> sha256 prefix, configs/seesaw_loss/metafile.yml
        ("sample1e-3", False): "392a804b",
        ("sample1e-3", True): "cd0f6a12",
        ("random", False): "a698dd3d",
        ("random", True): "a1c11314",
    }
    rows = {}
    for (sampling, normed), digest in hashes.items():
        mask = "_normed_mask" if normed else ""
        name = f"mask_rcnn_r50_fpn_{sampling}_seesaw_loss{mask}_mstrain_2x_lvis_v1"
        loss = "seesaw-loss-normed-mask" if normed else "seesaw-loss"
        config = f"configs/seesaw_loss/mask-rcnn_r50_fpn_{loss}_{sampling}-ms-2x_lvis-v1.py"
        rows[name] = PublishedModel(config, f"{_BASE}/seesaw_loss/{name}-{digest}.pth")
    return rows


PUBLISHED: dict[str, PublishedModel] = {**_lvis_rows(), **_seesaw_rows()}


STALL_TIMEOUT_S = 60.0  # a download that receives nothing this long fails


class DownloadError(RuntimeError):
    """A published checkpoint that could not be fetched or whose hash does not match."""


def published_checkpoint(name: str, progress: bool = True) -> Path:
    """The local file of the published checkpoint of preset ``name``, downloaded once.

    The file lives in torch hub's cache (``$TORCH_HOME/hub/checkpoints``, as
    ``torch.hub.load_state_dict_from_url`` keeps it). A download is checked against the
    8-digit SHA-256 prefix in the file's name before it is moved into place, and a file already
    in the cache is checked again (a truncated copy is refused, not used). Raises
    ``ValueError`` for a name without a published checkpoint (listing those with one) and
    :class:`DownloadError` naming the address or file otherwise (a server that sends nothing
    for :data:`STALL_TIMEOUT_S` seconds included; torch removes its partial file).
    """
    if name not in PUBLISHED:
        raise ValueError(
            f"no published mmdetection checkpoint for {name!r}; published: {', '.join(PUBLISHED)}"
        )
    import torch.hub  # deferred: this table is read without torch (lvisnb's command line)

    row = PUBLISHED[name]
    path = Path(torch.hub.get_dir()) / "checkpoints" / row.file_name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(STALL_TIMEOUT_S)  # torch's urlopen has none: a stall would hang
        try:
            torch.hub.download_url_to_file(row.url, str(path), row.sha256_prefix, progress)
        except (OSError, RuntimeError, ValueError) as error:
            stalled = TimeoutError in (type(error), type(getattr(error, "reason", None)))
            reason = f"no data for {STALL_TIMEOUT_S:g} s" if stalled else error
            raise DownloadError(f"{row.url}: download failed ({reason})") from None
        finally:
            socket.setdefaulttimeout(previous)
    check_published_file(path, row)
    return path


def check_published_file(
    path: Path, row: PublishedModel, remedy: str = "delete it to download again"
) -> None:
    """:class:`DownloadError` naming ``path`` and ``remedy`` unless its SHA-256 starts with the
    prefix in the published file's name (``row``)."""
    digest = sha256_prefix(path, len(row.sha256_prefix))
    if digest != row.sha256_prefix:
        raise DownloadError(
            f"{path}: SHA-256 starts {digest}, the published file's {row.sha256_prefix}; {remedy}"
        )


def sha256_prefix(path: str | os.PathLike, length: int = 8) -> str:
    """The first ``length`` hex digits of the SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
