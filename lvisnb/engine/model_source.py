"""One way to get a model for inference: a kit checkpoint, an mmdetection checkpoint, or the
name of a published model zoo row.

:func:`load_model` takes what a user has at hand and returns the kit's Mask R-CNN in eval mode
with the mapping from its labels to LVIS category ids:

- a kit run's checkpoint (``checkpoints/final.pt``):
  :func:`load_trained_model`;
- an mmdetection 2.x / 3.x Mask R-CNN checkpoint file of a kit preset (named by ``preset`` or
  inferred from the file): :func:`load_mmdet_model`; its class ``k``
  (0-based) is the ``k``-th category id of its LVIS version in ascending order, as mmdetection's
  ``LVISV1Dataset`` / ``LVISV05Dataset`` number them;
- a preset name with a published checkpoint (:data:`lvisnb.model.mmdet_zoo.PUBLISHED`),
  fetched once into torch hub's cache and hash-checked
  (:func:`lvisnb.model.mmdet_zoo.published_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from lvisnb.annotations.categories import VERSIONS, categories
from lvisnb.data.dataset import CategoryMapping
from lvisnb.engine.device import resolve_device
from lvisnb.model.builder import build_model, no_weight_init
from lvisnb.model.checkpoint import load_checkpoint, load_weights_only
from lvisnb.model.mmdet_weights import (
    MMDetCheckpointError,
    convert_mmdet_state_dict,
    infer_preset_name,
    mmdet_class_count,
    mmdet_class_names,
    read_mmdet_state_dict,
)
from lvisnb.model.mmdet_zoo import PUBLISHED, check_published_file, published_checkpoint
from lvisnb.model.presets import Preset, get_preset, preset_from_record

__all__ = [
    "load_model",
    "load_trained_model",
    "load_mmdet_model",
    "checkpoint_path",
    "is_kit_checkpoint",
]


def load_trained_model(
    checkpoint: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, CategoryMapping]:
    """The model of a kit checkpoint (``checkpoints/final.pt``) in eval mode, and its mapping.

    The checkpoint is read with ``weights_only=True``; its ``config["preset"]`` rebuilds the
    architecture (no backbone weights are fetched), ``category_ids`` gives the label mapping
    (label ``k`` = ``category_ids[k - 1]``). The box classifier's loss, which scores the
    detections, is the preset's ``cls_loss``; its buffers (e.g. the federated class weights)
    come from the checkpoint.
    """
    state = load_checkpoint(checkpoint)
    try:
        preset_fields = state["config"]["preset"]
        category_ids = state["category_ids"]
        weights = state["model"]
    except KeyError as error:
        raise ValueError(
            f"{checkpoint}: not a kit training checkpoint (missing key {error.args[0]!r})"
        ) from None
    preset = preset_from_record(preset_fields)
    version = state["config"].get("resolved", {}).get("lvis_version")
    mapping = CategoryMapping(tuple(category_ids), lvis_version=version)
    # the federated loss is built with placeholder counts; load_state_dict sets its weights
    counts = [0] * mapping.num_classes if preset.cls_loss == "federated" else None
    with no_weight_init():  # every weight comes from the checkpoint (strict load)
        model = build_model(
            preset, num_classes=mapping.num_classes, weights=False, class_image_counts=counts
        )
    model.load_state_dict(weights)
    return model.to(device).eval(), mapping


def is_kit_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a kit training checkpoint (its ``config`` and ``category_ids``),
    looked at without reading its tensors (``mmap``; a file of torch's older format is read
    whole); ``False`` for anything else, unreadable files included (the loader that follows
    names their problem)."""
    try:
        payload = load_weights_only(path, mmap=True)
    except Exception:  # noqa: BLE001 - mmap needs torch's zip format; an older file is read
        try:
            payload = load_weights_only(path)
        except Exception:  # noqa: BLE001 - any unreadable file is "not a kit checkpoint" here
            return False
    return isinstance(payload, dict) and {"config", "category_ids", "model"} <= set(payload)


def checkpoint_path(checkpoint: str | os.PathLike, progress: bool = True) -> Path:
    """The file of ``checkpoint``: the path itself when it is a file, else the published
    checkpoint of that preset name, fetched once
    (:func:`~lvisnb.model.mmdet_zoo.published_checkpoint`). A local file named as a published
    file is checked against the hash in its name. Raises ``IsADirectoryError`` for a folder,
    ``FileNotFoundError`` naming it when it is neither, and ``DownloadError``."""
    path = Path(checkpoint)
    if not path.exists() and str(checkpoint) in PUBLISHED:
        return published_checkpoint(str(checkpoint), progress=progress)
    if path.is_dir():
        raise IsADirectoryError(f"{checkpoint}: a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(
            f"{checkpoint}: no such checkpoint file, nor a published model "
            f"(published: {', '.join(PUBLISHED)})"
        )
    row = next((r for r in PUBLISHED.values() if r.file_name == path.name), None)
    if row is not None:  # a copy of a published file: the hash in its name holds it to it
        check_published_file(path, row, "not the published file of that name")
    return path


def load_model(
    checkpoint: str | os.PathLike,
    preset: Preset | str | None = None,
    *,
    category_ids: tuple[int, ...] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[torch.nn.Module, CategoryMapping]:
    """``(model in eval mode on device, label -> LVIS category id mapping)`` of ``checkpoint``.

    ``checkpoint``: a file path (kit or mmdetection checkpoint) or a preset name of
    :data:`~lvisnb.model.mmdet_zoo.PUBLISHED` (downloaded once; an existing file of that name
    wins). ``preset``: the preset of an mmdetection file when the file does not say (ignored for
    a kit checkpoint, which holds its own). ``category_ids``: the LVIS ids of an mmdetection
    model's classes in label order (ascending, as mmdetection numbers them), needed only when
    it has not every category of its LVIS version and its file names no classes (mmdetection
    3.x ``meta["dataset_meta"]["classes"]``, 2.x ``meta["CLASSES"]``; names are matched to
    LVIS v1, else v0.5, categories). Raises ``FileNotFoundError`` naming a path that is
    neither a file nor a published name, and the loaders' errors (``CheckpointError``,
    ``MMDetCheckpointError``, ``DownloadError``), each naming the file.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    path = checkpoint_path(checkpoint, progress)
    if path != Path(checkpoint):  # a published row's file: its name is its preset
        preset = preset or str(checkpoint)
    if is_kit_checkpoint(path):
        return load_trained_model(path, device=device)
    return _load_mmdet(path, preset, category_ids, device)


def model_from_mmdet_state(
    state: dict[str, torch.Tensor], preset: Preset | str, source: str = "checkpoint"
) -> torch.nn.Module:
    """The kit's Mask R-CNN of ``preset`` (eval mode, on the CPU) holding mmdetection's weights
    ``state`` (:func:`convert_mmdet_state_dict`, whose errors name ``source``)."""
    with no_weight_init():  # every weight comes from the file (strict load)
        model = build_model(preset, weights=False)
    expected = model.state_dict()
    model.load_state_dict(convert_mmdet_state_dict(state, expected, model.preset, source))
    return model.eval()


def load_mmdet_model(
    path: str | os.PathLike, preset: Preset | str | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The kit's Mask R-CNN in eval mode holding the weights of an mmdetection checkpoint file.

    ``preset``: a :class:`Preset`, a preset name, or ``None`` to infer it from the file
    (:func:`infer_preset_name`). Raises :class:`MMDetCheckpointError` as
    :func:`read_mmdet_state_dict` and :func:`convert_mmdet_state_dict` do.
    """
    return _mmdet_model(path, preset, None, device)[0]


def _load_mmdet(
    path: Path, preset: Preset | str | None, category_ids: tuple[int, ...] | None, device
) -> tuple[torch.nn.Module, CategoryMapping]:
    """An mmdetection file's model and mapping (:func:`_mmdet_model`, :func:`_mmdet_mapping`)."""
    model, category_ids, version = _mmdet_model(path, preset, category_ids, device)
    return model, _mmdet_mapping(model.preset, category_ids, version, path)


def _mmdet_model(
    path: str | os.PathLike,
    preset: Preset | str | None,
    category_ids: tuple[int, ...] | None,
    device,
) -> tuple[torch.nn.Module, tuple[int, ...] | None, str | None]:
    """An mmdetection file's model, read once, its classes' LVIS ids and their LVIS version:
    ``category_ids`` (version unknown), else those of the class names the file's meta holds,
    looked up in the preset's LVIS version (named or inferred), else ``None`` (every category
    of the preset's version). The preset, when not given, is inferred from the file."""
    state, meta = read_mmdet_state_dict(path)
    preset = get_preset(preset) if isinstance(preset, str) else preset
    names = mmdet_class_names(meta) if category_ids is None else None
    version = None
    if names is not None:
        _check_name_count(names, state, Path(path))
        version, category_ids = _ids_of_names(names, Path(path), preset and preset.dataset)
    if preset is None:
        preset = get_preset(infer_preset_name(path, state, meta, dataset=version))
    if version is not None and version != preset.dataset:
        raise MMDetCheckpointError(
            f"{path}: its classes (meta) are LVIS {version} categories, preset {preset.name!r} "
            f"is LVIS {preset.dataset}"
        )
    if category_ids is not None and len(category_ids) != preset.num_classes:
        preset = dataclasses.replace(preset, num_classes=len(category_ids))
    model = model_from_mmdet_state(state, preset, str(path)).to(device)
    return model, category_ids, version


def _check_name_count(names: tuple[str, ...], state: dict, path: Path) -> None:
    count = mmdet_class_count(state)
    if count is not None and count != len(names):
        raise MMDetCheckpointError(
            f"{path}: the meta names {len(names)} classes, the weights have {count}"
        )


# mmdetection's class lists (mmdet/datasets/lvis.py, LVISV05Dataset and LVISV1Dataset, which
# its checkpoints' meta repeats) spell one LVIS category otherwise than the LVIS files do
MMDET_SPELLINGS = {"speaker_(stereo_equipment)": "speaker_(stero_equipment)"}


def _ids_of_names(
    names: tuple[str, ...], path: Path, prefer: str | None
) -> tuple[str, tuple[int, ...]]:
    """``(LVIS version, category ids)`` of mmdetection's class names (its spellings read as
    LVIS's, :data:`MMDET_SPELLINGS`): of ``prefer``'s version when it has them all, else of the
    other one that does. ``MMDetCheckpointError`` naming the
    file and what is wrong: a name of no LVIS version, names no one version has all of, or
    names repeated or out of mmdetection's order (ascending ids)."""
    names = tuple(MMDET_SPELLINGS.get(name, name) for name in names)
    versions = sorted(VERSIONS, key=lambda v: v != prefer) if prefer else list(VERSIONS)
    tables = {
        v: dict(zip(categories(v)["name"], categories(v)["id"], strict=True)) for v in VERSIONS
    }
    version = next((v for v in versions if all(n in tables[v] for n in names)), None)
    if version is None:
        unknown = [n for n in names if not any(n in table for table in tables.values())]
        problem = (
            f"meta class {unknown[0]!r} is a category of no LVIS version"
            if unknown
            else "meta classes mix LVIS v1-only and v0.5-only categories "
            f"({', '.join(next(n for n in names if n not in tables[v]) for v in VERSIONS)})"
        )
        raise MMDetCheckpointError(f"{path}: {problem}")
    ids = [int(tables[version][n]) for n in names]
    for index in range(1, len(ids)):
        if ids[index] <= ids[index - 1]:
            raise MMDetCheckpointError(
                f"{path}: meta classes {names[index - 1]!r} then {names[index]!r} are LVIS "
                f"{version} ids {ids[index - 1]} then {ids[index]}: mmdetection labels "
                "classes in ascending id order, each once"
            )
    return version, tuple(ids)


def _mmdet_mapping(
    preset: Preset, category_ids: tuple[int, ...] | None, version: str | None, path: Path
) -> CategoryMapping:
    """mmdetection's labels as LVIS ids: ``category_ids`` in label order (which mmdetection
    takes ascending; of LVIS ``version`` when known, which predict then holds the annotation
    file to), else every id of the preset's version ascending."""
    if category_ids is not None:
        if list(category_ids) != sorted(set(category_ids)):
            raise ValueError(
                f"{path}: category ids must be unique and ascending, as mmdetection labels them"
            )
        return CategoryMapping(tuple(category_ids), lvis_version=version)
    ids = tuple(int(i) for i in categories(preset.dataset)["id"])
    if preset.num_classes != len(ids):
        raise ValueError(
            f"{path}: a model of {preset.num_classes} classes, not LVIS {preset.dataset}'s "
            f"{len(ids)}, and the file names no classes; give their LVIS ids (category_ids)"
        )
    return CategoryMapping(ids, lvis_version=preset.dataset)
