"""LVIS as a torch Dataset for torchvision's Mask R-CNN, and the category-id <-> label mapping.

``LVISDetection[i]`` is ``(image, target)``:

- ``image``: ``tv_tensors.Image``, uint8, 3 x H x W (RGB) before transforms; the kit's
  transforms turn it into float32 in [0, 1].
- ``target["boxes"]``: ``tv_tensors.BoundingBoxes`` N x 4, float32, **XYXY** in pixels
  (LVIS files store XYWH; converted here).
- ``target["labels"]``: int64 N, **contiguous labels 1..K** (0 is the background class of the
  model); :class:`CategoryMapping` converts to and from LVIS category ids.
- ``target["masks"]``: ``tv_tensors.Mask`` uint8 N x H x W, decoded from polygons or RLE with
  pycocotools.
- ``target["image_id"]``: int, the LVIS image id.

An image without annotations gives empty tensors of the right shapes (0 x 4, 0, 0 x H x W).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from lvisnb.annotations.images import ImageReadError, image_path, read_record_pixels
from lvisnb.annotations.json_file import LVISFormatError
from lvisnb.annotations.masks import decode_masks, segmentation_rle  # noqa: F401 - re-exported
from lvisnb.annotations.validate import is_validated, load_lvis, validate_dataset


@dataclass(frozen=True)
class CategoryMapping:
    """LVIS category ids <-> contiguous model labels.

    ``category_ids`` is sorted; label ``k`` (1..K) is ``category_ids[k - 1]``; label 0 is the
    background and has no category id. ``lvis_version``: the LVIS version ("v1", "v0.5") whose
    ids these are, when known (a model trained on a whole LVIS category set).
    """

    category_ids: tuple[int, ...]
    lvis_version: str | None = field(default=None, compare=False)

    def __post_init__(self):
        ids = tuple(int(c) for c in self.category_ids)
        if list(ids) != sorted(set(ids)):
            raise ValueError("category_ids must be unique and sorted")
        object.__setattr__(self, "category_ids", ids)
        lookup = np.zeros(max(ids, default=0) + 1, dtype=np.int64)
        lookup[list(ids)] = np.arange(1, len(ids) + 1)
        object.__setattr__(self, "_label_of", lookup)

    @classmethod
    def from_lvis(cls, gt) -> CategoryMapping:
        """Mapping over every category of an ``lvis.LVIS`` object."""
        return cls(tuple(sorted(gt.get_cat_ids())))

    @property
    def num_classes(self) -> int:
        """K, the number of categories (the model has K + 1 classes with background)."""
        return len(self.category_ids)

    def to_labels(self, category_ids: Iterable[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """LVIS category ids -> int64 labels 1..K; an unknown id raises ``KeyError`` naming it."""
        ids = torch.as_tensor(np.asarray(category_ids, dtype=np.int64).reshape(-1))
        known = (ids > 0) & (ids < len(self._label_of))
        labels = torch.zeros_like(ids)
        labels[known] = torch.from_numpy(self._label_of)[ids[known]]
        if (labels == 0).any():
            bad = int(ids[labels == 0][0])
            raise KeyError(f"LVIS category id {bad} is not in this mapping")
        return labels

    def to_category_ids(self, labels: Iterable[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """int labels 1..K -> LVIS category ids (int64); background or out-of-range raises."""
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
        if len(labels) and (labels.min() < 1 or labels.max() > self.num_classes):
            bad = int(labels[(labels < 1) | (labels > self.num_classes)][0])
            raise KeyError(f"label {bad} is outside 1..{self.num_classes}")
        return torch.tensor(self.category_ids, dtype=torch.int64)[labels - 1]


def read_record_image(info: dict, image_root: str | os.PathLike) -> torch.Tensor:
    """uint8 RGB 3 x H x W (contiguous) of the LVIS image record ``info`` under ``image_root``;
    :class:`ImageReadError` when missing, undecodable or not the record's height x width
    (:func:`lvisnb.annotations.images.read_record_pixels`, as a tensor)."""
    pixels = read_record_pixels(info, image_root)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def _root_hint(info: dict, image_root: Path) -> str:
    """Where the path came from and what ``image_root`` should be, for a missing image."""
    if info.get("coco_url"):
        return (
            f"its path is coco_url's last two parts under image_root {image_root}, which "
            "should be the folder holding train2017/ and val2017/"
        )
    return (
        f"its path is file_name under image_root {image_root}, which should be the folder "
        "holding the split's images (e.g. .../val2017)"
    )


class LVISDetection(torch.utils.data.Dataset):
    """LVIS images and instance targets for torchvision detection models.

    Args:
        ann_file: an LVIS annotation JSON path, or an already loaded ``lvis.LVIS``; checked
            once (:func:`lvisnb.annotations.validate.validate_dataset`, ``LVISFormatError`` on a bad
            value), not again for one from :func:`lvisnb.annotations.validate.load_lvis`.
        image_root: folder the image paths resolve under (``coco_url``'s last two parts, e.g.
            ``val2017/000000266409.jpg``, for v1 and real v0.5 records; see
            :func:`lvisnb.annotations.images.image_relpath`).
        transforms: a ``torchvision.transforms.v2`` callable on ``(image, target)``.
        mapping: category mapping; default: every category of ``ann_file``.
        skip_empty: drop images without annotations (mmdetection's ``filter_empty_gt`` for
            training; a file without any annotation is then an ``LVISFormatError``); keep them
            for evaluation.
    """

    def __init__(
        self,
        ann_file,
        image_root: str | os.PathLike,
        transforms: Callable | None = None,
        mapping: CategoryMapping | None = None,
        skip_empty: bool = False,
    ):
        if isinstance(ann_file, str | os.PathLike):
            ann_file = load_lvis(ann_file)
        source = str(getattr(ann_file, "source", "<lvis.LVIS>"))
        if not is_validated(ann_file):
            validate_dataset(ann_file.dataset, source)
        self.lvis, self.source = ann_file, source
        if skip_empty and not self.lvis.anns:
            raise LVISFormatError(f"{source}: no annotations (nothing to train on)")
        self.image_root = Path(image_root)
        self.transforms = transforms
        self.mapping = mapping or CategoryMapping.from_lvis(self.lvis)
        image_ids = sorted(self.lvis.imgs)
        if skip_empty:
            image_ids = [i for i in image_ids if self.lvis.img_ann_map.get(i)]
        self.image_ids = image_ids

    def __len__(self) -> int:
        return len(self.image_ids)

    def category_sets(self) -> list[set[int]]:
        """LVIS category ids annotated in each image, by dataset index (input of RFS)."""
        return [
            {a["category_id"] for a in self.lvis.img_ann_map.get(i, [])} for i in self.image_ids
        ]

    def check_images(self) -> None:
        """:class:`ImageReadError` naming the file, how many images are missing and the first,
        when an image of the dataset is not a file under ``image_root`` (a stat per image,
        before hours of work find it half-way)."""
        missing = [
            info
            for info in (self.image_info(i) for i in range(len(self)))
            if not image_path(info, self.image_root).is_file()
        ]
        if missing:
            first = missing[0]
            raise ImageReadError(
                f"{self.source}: {len(missing)} of {len(self)} images are not under "
                f"{self.image_root} (the first, image id {first['id']}: "
                f"{image_path(first, self.image_root)}); {_root_hint(first, self.image_root)}"
            )

    def image_info(self, index: int) -> dict:
        """The LVIS image record of dataset index ``index``."""
        return self.lvis.imgs[self.image_ids[index]]

    def target(self, index: int) -> dict:
        """Target dict of ``index`` before transforms (see the module docstring)."""
        info = self.image_info(index)
        height, width = int(info["height"]), int(info["width"])
        anns = self.lvis.img_ann_map.get(info["id"], [])
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        return {
            "boxes": tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=(height, width)),
            "labels": self.mapping.to_labels([a["category_id"] for a in anns]),
            "masks": tv_tensors.Mask(
                torch.from_numpy(decode_masks([a["segmentation"] for a in anns], height, width))
            ),
            "image_id": int(info["id"]),
        }

    def __getitem__(self, index: int):
        info = self.image_info(index)
        try:
            pixels = read_record_image(info, self.image_root)
        except ImageReadError as error:
            raise ImageReadError(
                f"{self.source}: {error}; {_root_hint(info, self.image_root)}"
            ) from None
        image = tv_tensors.Image(pixels)
        target = self.target(index)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate(batch):
    """Detection batches are lists: ``(images, targets)`` tuples of length B."""
    return tuple(zip(*batch, strict=True))
