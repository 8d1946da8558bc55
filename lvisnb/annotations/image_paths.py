"""An LVIS image record's path under the image root, and paths that would leave the root.

:func:`image_relpath` is the path of a record's file relative to the image root: the last two
parts of ``coco_url`` (``http://images.cocodataset.org/val2017/000000266409.jpg`` ->
``val2017/000000266409.jpg``, as detectron2 resolves it), else ``file_name`` with its COCO 2014
prefix stripped (as mmdetection's ``LVISV05Dataset``). :func:`outside_root` says why such a path
would reach a file outside the root (an absolute path, a ``..`` part); the annotation check
refuses those records and :func:`lvisnb.annotations.images.image_path` never joins them.
Only the text is looked at: a symbolic link inside the root (an image folder kept elsewhere) is
the user's own choice and is followed.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

_COCO_2014_PREFIX = re.compile(r"^COCO_[a-z]+2014_(?=\d+\.\w+$)")


def image_relpath(image: dict) -> str:
    """Path of an LVIS image relative to the image root (the COCO 2017 folder holding
    ``train2017/`` and ``val2017/``).

    - ``coco_url`` present (v1, and every real v0.5 record): its last two parts,
      ``http://images.cocodataset.org/val2017/000000266409.jpg`` -> ``val2017/000000266409.jpg``
      (detectron2's ``lvis.get_file_name``). Real v0.5 records also carry a COCO 2014
      ``file_name`` (``COCO_val2014_000000266409.jpg``) that names no file of COCO 2017.
    - otherwise ``file_name``, with a COCO 2014 prefix ``COCO_<split>2014_`` stripped
      (mmdetection's ``LVISV05Dataset`` keeps ``file_name[-16:]``), relative to the image root:
      for such files give the split's own folder (``.../val2017``) as the root.
    """
    url = image.get("coco_url")
    if url:
        parts = url.rstrip("/").split("/")
        return "/".join(parts[-2:])
    return _COCO_2014_PREFIX.sub("", image["file_name"], count=1)


def image_path_field(image: dict) -> str:
    """The record field :func:`image_relpath` reads: ``"coco_url"`` or ``"file_name"``."""
    return "coco_url" if image.get("coco_url") else "file_name"


def outside_root(relpath: str) -> str | None:
    """Why the image path ``relpath`` would name a file outside the image root (an absolute
    path, a drive, a ``..`` part; ``\\`` read as a separator too), or ``None`` when it stays in."""
    posix = PurePosixPath(relpath.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(relpath).drive or relpath.startswith("~"):
        return f"is an absolute path ({relpath!r}); image paths are relative to the image root"
    if ".." in posix.parts:
        return f"leaves the image root ({relpath!r} has a '..' part)"
    return None
