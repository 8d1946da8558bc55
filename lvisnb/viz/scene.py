"""Ground truth, optional results and images held together for looking at (notebook 04).

A :class:`Scene` indexes an LVIS ground truth and a results list by image, reads images on
demand (a small cache, so redrawing one image with other settings does not read it again),
resolves categories given by name or id, and computes federated verdicts
(:mod:`lvisnb.viz.verdicts`). Works the same for real LVIS (COCO images under an image root) and
toy-LVIS.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lvisnb.annotations import validate
from lvisnb.annotations.categories import find_category
from lvisnb.annotations.images import (
    ImageReadError,
    default_image_root,
    image_path,
    image_relpath,
    read_record_pixels,
)
from lvisnb.annotations.json_file import load_json
from lvisnb.evaluation.caps import cap_per_image
from lvisnb.evaluation.result_records import read_result_records
from lvisnb.evaluation.result_validation import mask_areas, validate_detections
from lvisnb.viz import verdicts as federated


@dataclass
class Scene:
    """One ground truth with its images, and optionally results, indexed by image id.

    - ``dataset``: the LVIS annotation dict (never modified); ``source``: its file, for messages.
    - ``image_root``: folder the images resolve under
      (:func:`lvisnb.annotations.images.image_path`).
    - ``results``: result records by image id (LVIS category ids, ``bbox`` XYWH pixels,
      ``segmentation`` RLE, ``score``), each list in decreasing score order and cut to the
      top 300 as ``lvis.LVISResults`` does (:func:`lvisnb.evaluation.caps.cap_per_image`); empty
      without results (``has_results`` tells).
    - ``image_ids``: every image id, sorted; ``frequency`` / ``names``: by LVIS category id.
    """

    dataset: dict
    source: str
    image_root: Path
    results: dict[int, list[dict]]
    has_results: bool
    image_ids: list[int] = field(init=False)
    images: dict[int, dict] = field(init=False)
    instances: dict[int, list[dict]] = field(init=False)
    frequency: dict[int, str] = field(init=False)
    names: dict[int, str] = field(init=False)
    cache_size: int = 8  # images, and federated verdicts, kept for redrawing
    reads: int = 0  # images actually read from disk (not from the cache)

    def __post_init__(self):
        self.images = {int(i["id"]): i for i in self.dataset["images"]}
        self.image_ids = sorted(self.images)
        self.instances = defaultdict(list)
        for ann in self.dataset["annotations"]:
            self.instances[int(ann["image_id"])].append(ann)
        categories = self.dataset["categories"]
        self.frequency = {int(c["id"]): c["frequency"] for c in categories}
        self.names = {int(c["id"]): c["name"] for c in categories}
        # category -> images annotating it / image -> its best score of it (images_with)
        self._annotated_in: dict[int, set[int]] = defaultdict(set)
        for image_id, anns in self.instances.items():
            for ann in anns:
                self._annotated_in[int(ann["category_id"])].add(image_id)
        self._best_score: dict[int, dict[int, float]] = defaultdict(dict)
        for image_id, records in self.results.items():
            for record in records:  # decreasing score: the first one is the best
                self._best_score[int(record["category_id"])].setdefault(image_id, record["score"])
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._verdicts: OrderedDict[tuple, federated.ImageVerdict] = OrderedDict()

    @property
    def has_masks(self) -> bool:
        """Whether the results carry masks (all of them do, or none: checked at load)."""
        return any("segmentation" in r for records in self.results.values() for r in records[:1])

    # ------------------------------------------------------------------ lookups

    def category_id(self, category: int | str) -> int:
        """LVIS id of ``category``, given as an id, a digit string or a name or LVIS synonym
        in any case (:func:`lvisnb.annotations.categories.find_category`: ``"couch"`` is sofa);
        ``ValueError`` for an unknown id, and for an unknown or ambiguous name, naming close
        names or the categories it could be."""
        if isinstance(category, int | np.integer) or str(category).strip().isdigit():
            category_id = int(category)
            if category_id not in self.names:
                raise ValueError(f"category id {category_id} is not in {self.source}")
            return category_id
        return find_category(str(category), self.dataset["categories"], self.source)

    def predictions(
        self, image_id: int, score_thr: float = 0.0, category_id: int | None = None
    ) -> list[dict]:
        """The image's results scoring at least ``score_thr`` (optionally one category only)."""
        return [
            r
            for r in self.results.get(image_id, [])
            if r["score"] >= score_thr and (category_id is None or r["category_id"] == category_id)
        ]

    def ground_truth(self, image_id: int, category_id: int | None = None) -> list[dict]:
        """The image's annotations (optionally of one category)."""
        anns = self.instances.get(image_id, [])
        return [a for a in anns if category_id is None or a["category_id"] == category_id]

    def images_with(self, category_id: int, score_thr: float = 0.0) -> list[int]:
        """Sorted ids of the images where ``category_id`` is annotated or predicted at
        ``score_thr`` or above."""
        found = set(self._annotated_in.get(category_id, ()))
        found.update(
            i for i, best in self._best_score.get(category_id, {}).items() if best >= score_thr
        )
        return sorted(found)

    def showcase(self, n: int, among: Iterable[int] | None = None) -> list[int]:
        """``n`` image ids worth a look, of ``among`` (default: every image): most distinct
        rare categories annotated, then most distinct common ones, then most instances, then
        smallest id. (On the real v0.5 val subset of the tests, the one image with a rare
        instance comes first.)"""

        def rank(image_id: int):
            anns = self.instances.get(image_id, [])
            groups = Counter(self.frequency[c] for c in {a["category_id"] for a in anns})
            return (-groups["r"], -groups["c"], -len(anns), image_id)

        return sorted(self.image_ids if among is None else among, key=rank)[:n]

    def parse_image_ids(self, image_ids, parameter: str = "image_ids") -> list[int] | None:
        """Image ids given as text (``"397133, 37777"``), one int or a list of them, in that
        order without repeats; ``None`` (or blank text) for "not given". ``ValueError``
        naming ``parameter`` for a word that is no integer or an id not in the ground truth."""
        if image_ids is None or (isinstance(image_ids, str) and not image_ids.strip()):
            return None
        if isinstance(image_ids, str):
            words = [w for w in re.split(r"[\s,]+", image_ids.strip()) if w]
        else:
            words = [image_ids] if isinstance(image_ids, int | np.integer) else list(image_ids)
        ids = []
        for word in words:
            try:
                image_id = int(str(word))
            except ValueError:
                raise ValueError(
                    f"{parameter}: {word!r} is not an image id (an integer); "
                    "give ids separated by commas"
                ) from None
            if image_id not in self.images:
                raise ValueError(
                    f"image id {image_id} ({parameter}) is not in {self.source} "
                    f"(ids {self.image_ids[0]}..{self.image_ids[-1]})"
                )
            if image_id not in ids:
                ids.append(image_id)
        return ids or None

    def pick_images(self, image_ids=None, n: int = 3) -> list[int]:
        """LVIS ids of the images to draw: ``image_ids`` (:meth:`parse_image_ids`), or by
        default the first ``n`` of :meth:`showcase` (rare categories first) among the images
        that can be read. The images picked are read here (and stay in the cache for drawing).

        Raises ``FileNotFoundError`` when not one of the images (the given ones, or every
        image) has its file under ``image_root``, ``ImageReadError`` when none of those that
        have one decodes; both name ``image_root`` and where one image was expected. When
        some cannot be read, one ``UserWarning`` gives their number: the default pick skips
        them, given ids are kept (their panels say why).
        """
        if n < 1:
            raise ValueError(f"n_images must be at least 1, got {n}")
        given = self.parse_image_ids(image_ids)
        candidates = self.image_ids if given is None else given
        missing = [
            i for i in candidates if not image_path(self.images[i], self.image_root).is_file()
        ]
        present = set(candidates).difference(missing)
        ranked = self.showcase(len(present), present) if given is None else sorted(present)
        picked, failed = [], []
        for image_id in ranked:
            if given is None and len(picked) == n:
                break
            try:
                self.image(image_id)
            except ImageReadError as error:
                failed.append(str(error))
                continue
            picked.append(image_id)
        if not picked:
            raise self._none_readable(candidates, failed, given is not None)
        if missing or failed:
            what = "given as image_ids" if given is not None else f"of {self.source}"
            then = "their panels say why" if given is not None else "the pick skips them"
            example = failed[0] if failed else f"no file {self._expected(missing[0])}"
            warnings.warn(
                f"{len(missing) + len(failed)} of the {len(candidates)} images {what} "
                f"cannot be read under image_root {self.image_root} ({example}); "
                f"{then}",
                UserWarning,
                stacklevel=2,
            )
        return given if given is not None else picked

    def _expected(self, image_id: int) -> str:
        return f"{image_path(self.images[image_id], self.image_root)} (image id {image_id})"

    def _none_readable(self, candidates: list[int], failed: list[str], given: bool) -> Exception:
        """The error of :meth:`pick_images` when it found no image it could read."""
        record = self.images[candidates[0]]
        what = "image given as image_ids" if given else f"image of {self.source}"
        head = (
            f"not one {what} ({len(candidates)}) can be read under image_root {self.image_root}: "
        )
        if failed:
            return ImageReadError(head + failed[0])
        return FileNotFoundError(
            head + f"e.g. image id {record['id']} is expected at "
            f"{image_path(record, self.image_root)}; image_root should be the folder holding "
            f"{image_relpath(record)}"
        )

    def verdict(
        self,
        image_id: int,
        score_thr: float = 0.0,
        category_id: int | None = None,
        iou_type: str | None = None,
        iou_threshold: float = 0.5,
    ) -> federated.ImageVerdict:
        """Federated verdicts of the image's predictions at ``score_thr`` (see
        :func:`lvisnb.viz.verdicts.image_verdict`); with ``category_id``, that category only.
        ``iou_type``: "segm" or "bbox"; ``None``: "segm" when the results have masks, else
        "bbox" (``ValueError`` for "segm" on box-only results).
        The last ``cache_size`` are kept, so a view and its status line match masks once."""
        iou_type = iou_type or ("segm" if self.has_masks else "bbox")
        if iou_type == "segm" and not self.has_masks:
            raise ValueError(
                "the results have no masks ('segmentation'): federated verdicts of boxes need "
                "iou_type='bbox'"
            )
        key = (image_id, score_thr, category_id, iou_type, iou_threshold)
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        verdict = federated.image_verdict(
            self.images[image_id],
            self.ground_truth(image_id, category_id),
            self.predictions(image_id, score_thr, category_id),
            iou_threshold,
            iou_type,
        )
        self._verdicts[key] = verdict
        while len(self._verdicts) > self.cache_size:
            self._verdicts.popitem(last=False)
        return verdict

    # ------------------------------------------------------------------ images

    def image(self, image_id: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB of ``image_id``; :class:`ImageReadError` (naming the file and
        the id) when it is missing, unreadable or not the size its record states."""
        if image_id in self._cache:
            self._cache.move_to_end(image_id)
            return self._cache[image_id]
        pixels = read_record_pixels(self.images[image_id], self.image_root)
        self.reads += 1
        self._cache[image_id] = pixels
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return pixels


def _results_by_image(records: list, dataset: dict, source: str) -> dict:
    """Results grouped by image id, each list in decreasing score order and cut as
    ``lvis.LVISResults`` cuts it (:func:`lvisnb.evaluation.caps.cap_per_image`), so that the
    verdicts are those of ``LVISEval``. The records are checked as evaluation checks them, RLE runs
    included (what is drawn is what is scored): ``ValueError`` naming the first offending one.
    """
    if not records:
        return {}
    images = sorted(dataset["images"], key=lambda i: int(i["id"]))
    image_ids = np.array([int(i["id"]) for i in images], dtype=np.int64)
    sizes = np.array([[int(i["height"]), int(i["width"])] for i in images], dtype=np.int64)
    category_ids = np.array(sorted(int(c["id"]) for c in dataset["categories"]), dtype=np.int64)
    boxes = any(isinstance(r, dict) and "bbox" in r for r in records)  # all or none
    masks = any(isinstance(r, dict) and "segmentation" in r for r in records)
    det = validate_detections(
        records, image_ids, sizes.reshape(-1, 2), category_ids, boxes, masks or not boxes, source
    )
    if det.segmentation is not None:
        mask_areas(det, np.arange(len(det)))
    kept, _ = cap_per_image(det, sort=True)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for index, image_id in zip(kept.tolist(), det.image_id[kept].tolist(), strict=True):
        by_image[image_id].append(records[index])
    return dict(by_image)


def load_scene(
    gt: str | os.PathLike | dict,
    image_root: str | os.PathLike | None = None,
    results: str | os.PathLike | list | None = None,
) -> Scene:
    """A :class:`Scene` from an LVIS JSON path (or loaded dict, or ``lvis.LVIS``), the image
    root (default: two levels above the JSON file, the layout of LVIS and toy-LVIS) and an
    optional results JSON path or list (validated against the ground truth)."""
    if isinstance(gt, str | os.PathLike):
        source = str(gt)
        dataset = load_json(gt)
        default_root = default_image_root(gt)
    elif isinstance(gt, Mapping) or isinstance(getattr(gt, "dataset", None), dict):
        dataset = gt if isinstance(gt, Mapping) else gt.dataset
        source, default_root = str(getattr(gt, "source", "<dict>")), None
    else:
        raise TypeError(f"gt must be a path or an LVIS dict, got {type(gt).__name__}")
    if not validate.is_validated(gt):  # an lvis.LVIS from validate.load_lvis already was
        validate.validate_dataset(dataset, source)
    root = Path(image_root) if image_root else default_root
    if root is None:
        raise ValueError("image_root is needed when the ground truth is not a file")
    records, results_source = [], "<none>"
    if results is not None:
        records, results_source = read_result_records(results)
    by_image = _results_by_image(records, dataset, results_source)
    return Scene(dataset, source, root, by_image, results is not None)
