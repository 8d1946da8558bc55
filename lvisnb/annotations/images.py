"""Where an LVIS image file lives, and reading its pixels (PIL and numpy, no torch).

Image paths (:func:`~lvisnb.annotations.image_paths.image_relpath`, kept inside the root):
the last two parts of ``coco_url``, e.g.
``http://images.cocodataset.org/train2017/000000391895.jpg`` -> ``train2017/000000391895.jpg``
under an image root (as detectron2 resolves it); real v0.5 records carry a ``coco_url`` too, and
a COCO 2014 ``file_name`` that names no COCO 2017 file. Without ``coco_url``, ``file_name`` with
its ``COCO_<split>2014_`` prefix stripped (as mmdetection's ``LVISV05Dataset``).

:func:`read_record_pixels` reads an image record's file as ``(H, W, 3)`` uint8 RGB, or raises
:class:`ImageReadError` naming the file and the image id; drawing uses it as it is, and
:mod:`lvisnb.data.dataset` turns it into a tensor. :func:`split_files` gives the annotation file
and image root of a split, toy-LVIS's when none is named.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lvisnb.annotations.image_paths import image_path_field, image_relpath, outside_root


class ImageReadError(RuntimeError):
    """An image file that is missing or cannot be decoded; names the path and the image id."""


def default_image_root(ann_file: str | os.PathLike) -> Path:
    """Where images resolve when no root is given: two levels above the annotation file
    (``ROOT/annotations/lvis_v1_val.json`` -> ``ROOT``, the layout of LVIS and toy-LVIS); the
    file's own folder when it has no grandparent (a file directly under ``/``)."""
    parents = Path(ann_file).resolve().parents
    return parents[1] if len(parents) > 1 else parents[0]


def image_path(image: dict, image_root: str | os.PathLike) -> Path:
    """Location of an LVIS image under ``image_root`` (see :func:`image_relpath`);
    :class:`ImageReadError` naming the image id and field when the record's path would leave
    the root (:func:`~lvisnb.annotations.image_paths.outside_root`)."""
    relpath = image_relpath(image)
    if (reason := outside_root(relpath)) is not None:
        raise ImageReadError(f"image id {image.get('id')}: '{image_path_field(image)}' {reason}")
    return Path(image_root) / relpath


def read_pixels(path: str | os.PathLike, image_id: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of the image file ``path``; :class:`ImageReadError` naming the
    path and ``image_id`` when it is missing or cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found for image id {image_id}: {path}")
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ImageReadError(f"cannot decode image id {image_id} at {path}: {error}") from None


def read_record_pixels(info: dict, image_root: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of the LVIS image record ``info`` under ``image_root``
    (:func:`image_path`); :class:`ImageReadError` when missing, undecodable or not the record's
    height x width."""
    path = image_path(info, image_root)
    pixels = read_pixels(path, info["id"])
    if pixels.shape[:2] != (info["height"], info["width"]):
        raise ImageReadError(
            f"image id {info['id']} at {path} is {pixels.shape[1]}x{pixels.shape[0]}, "
            f"the annotation says {info['width']}x{info['height']}"
        )
    return pixels


def split_files(
    ann_file: str | os.PathLike | None, image_root: str | os.PathLike | None, split: str
) -> tuple[Path, Path]:
    """``(annotation file, image root)`` of a split as the notebooks and ``lvisnb train`` take
    them: ``ann_file`` with ``image_root`` (default: :func:`default_image_root`), or, when both
    are empty, toy-LVIS's ``split`` ("train" or "val") in
    :func:`lvisnb.annotations.toy.default_root`, made if absent. An ``image_root`` without
    ``ann_file`` is a ``ValueError``: toy-LVIS is never generated into a user's image folder."""
    from lvisnb.annotations import toy  # shapely and the drawing code: only when toy is asked for

    if ann_file:
        return Path(ann_file), Path(image_root) if image_root else default_image_root(ann_file)
    if image_root:
        raise ValueError(
            f"an image root ({image_root}) was given without an annotation file: name the LVIS "
            f"annotation file of its {split} images, or give neither to use toy-LVIS (kept in "
            f"its own folder, {toy.default_root()}; LVISNB_TOY_ROOT moves it)"
        )
    paths = toy.ensure_toy_lvis()
    return paths[split], paths["root"]
