"""An LVIS ground truth prepared for evaluation: the annotation dict plus index arrays.

(image, category) pairs are numbered ``row * K + col``, with ``row`` the image's position in
the sorted image ids and ``col`` the category's position in the sorted category ids (K of
them); every evaluation array's category axis follows ``category_ids``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lvisnb.annotations.categories import (
    FREQUENCY_GROUPS,
    check_same_version,
    embedded_train_image_counts,
    images_per_category,
    lvis_version_of,
)


@dataclass
class GroundTruth:
    """An LVIS annotation dict with the arrays evaluation needs (the dict is never modified).

    - ``image_ids``: sorted int64 (I,); ``image_sizes``: (I, 2) ``[height, width]`` pixels.
    - ``category_ids``: sorted int64 (K,), LVIS ids, the K axis of every precision array;
      ``names``, ``frequency`` ("r"/"c"/"f"), ``train_image_count`` (training images per
      category, -1 where unknown; see :func:`train_image_counts`, ``train_count_source`` says
      where they come from) and ``image_count`` (images of this file annotated with the
      category) in that order.
    - ``ann_row``, ``ann_col``: per GT instance, its image's row in ``image_ids`` and its
      category's column in ``category_ids``.
    - ``ann_area``: float64, per GT instance, its ``area`` field (px^2); ``ann_evaluated``:
      bool, ``0 < area < inf``. Only those instances take part in evaluation: ``LVISEval``
      loads GT through ``get_ann_ids``, whose area range is strict, so an instance of area 0
      is neither matchable nor counted, and does not make its category positive on its image.
    - ``verified``, ``negative``, ``not_exhaustive``: sorted pair keys ``row * K + col`` of
      the (image, category) pairs that are verified (positive, i.e. annotated, or negative),
      negative (in the image's ``neg_category_ids``) and in ``not_exhaustive_category_ids``.
    - ``ann_bbox``: float64 (N, 4), XYWH pixels, per GT instance, its ``bbox`` field, when the
      validation read it (``None`` for a dict validated earlier).
    """

    dataset: dict
    source: str
    image_ids: np.ndarray
    image_sizes: np.ndarray
    category_ids: np.ndarray
    names: list[str]
    frequency: np.ndarray
    train_image_count: np.ndarray
    train_count_source: str
    train_ann: str | None
    image_count: np.ndarray
    ann_row: np.ndarray
    ann_col: np.ndarray
    ann_area: np.ndarray
    ann_evaluated: np.ndarray
    verified: np.ndarray
    negative: np.ndarray
    not_exhaustive: np.ndarray
    ann_bbox: np.ndarray | None = None

    @property
    def num_categories(self) -> int:
        return len(self.category_ids)

    def evaluated_keys(self) -> np.ndarray:
        """Pair keys ``row * K + col`` of the evaluated GT instances (``ann_evaluated``)."""
        ok = self.ann_evaluated
        return self.ann_row[ok] * self.num_categories + self.ann_col[ok]

    def pair_keys(self, image_ids: np.ndarray, category_ids: np.ndarray) -> np.ndarray:
        """``row * K + col`` of known image and category ids (int64 arrays of equal length)."""
        rows = np.searchsorted(self.image_ids, image_ids)
        cols = np.searchsorted(self.category_ids, category_ids)
        return rows * self.num_categories + cols


def _warn_if_same(source: str, train_ann) -> None:
    with contextlib.suppress(OSError):
        if os.path.samefile(source, train_ann):
            warnings.warn(
                f"{train_ann} is both the ground truth and the train file: its image counts "
                "are this file's, not training counts",
                UserWarning,
                stacklevel=3,
            )


def _sorted_categories(dataset: dict) -> list[dict]:
    return sorted(dataset["categories"], key=lambda c: c["id"])


def _flat_pairs(truth_rows: np.ndarray, lists: list[list], category_ids: np.ndarray, k: int):
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter((c for ids in lists for c in ids), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(truth_rows, lengths)
    cols = np.searchsorted(category_ids, flat).clip(0, max(len(category_ids) - 1, 0))
    known = category_ids[cols] == flat
    return rows[known] * k + cols[known]


def train_image_counts(
    category_records: list[dict], train_ann: str | os.PathLike | None = None
) -> tuple[np.ndarray, str]:
    """Training images per category of ``category_records`` (int64, in their order, -1 where
    unknown) and what they count, for plots and tables of AP against training data.

    1. ``train_ann`` (an LVIS train annotation file): images of that file annotated with each
       category, counted from its annotations (0 for a category it lists without any; -1 for
       one it does not list).
    2. A whole LVIS category set: the real LVIS v1 train counts the kit embeds
       (:func:`lvisnb.annotations.categories.embedded_train_image_counts`).
    3. Otherwise unknown (all -1): a file's own ``image_count`` field is not used, because on
       a val file it counts val images (lvis-api's ``lvis_val_100.json``: handbag 4, LVIS v1
       train 1,859).

    A train file whose categories are another LVIS version, or name other categories under
    the same ids, is a ``ValueError`` naming both files' categories (ids are joined).
    """
    ids = [int(c["id"]) for c in category_records]
    if train_ann:
        from lvisnb.annotations import (
            tables as data,  # imports the lvis API, kept out of CLI start-up
        )

        tables = data.read_tables(train_ann)
        _check_train_categories(category_records, tables.categories, train_ann)
        anns = tables.annotations
        counts = images_per_category(anns["image_id"], anns["category_id"], ids)
        listed = np.isin(ids, tables.categories["id"].to_numpy())
        counts = np.where(listed, counts, -1).astype(np.int64)
        return counts, f"training images ({Path(train_ann).name})"
    embedded = embedded_train_image_counts(category_records)
    if embedded is not None:
        return embedded
    return np.full(len(ids), -1, dtype=np.int64), "unknown (no train file given)"


def _check_train_categories(records: list[dict], train: pd.DataFrame, train_ann) -> None:
    """``ValueError`` when the train file's categories cannot be joined to ``records`` by id:
    another LVIS version, or the same id naming another category."""
    train_records = train[["id", "name", "synset"]].to_dict("records")
    check_same_version(lvis_version_of(records), train_records, f"the train file {train_ann}")
    names = dict(zip(train["id"].tolist(), train["name"].tolist(), strict=True))
    clashes = [
        (int(c["id"]), c["name"], names[int(c["id"])])
        for c in records
        if int(c["id"]) in names and names[int(c["id"])] != c["name"]
    ]
    if clashes:
        shown = ", ".join(f"id {i}: {a!r} here, {b!r} there" for i, a, b in clashes[:3])
        raise ValueError(
            f"the train file {train_ann} names {len(clashes)} category id(s) differently from "
            f"the ground truth ({shown}): its counts cannot be joined by id"
        )


def load_ground_truth(gt, train_ann: str | os.PathLike | None = None) -> GroundTruth:
    """:class:`GroundTruth` from a path, a loaded LVIS dict or an ``lvis.LVIS`` object;
    ``train_ann``: the train annotation file whose image counts to report
    (:func:`train_image_counts`).

    The annotations are checked once, as by every entry point (:func:`lvisnb.annotations.validate.
    validate_dataset`; not again for an ``lvis.LVIS`` from
    :func:`lvisnb.annotations.validate.load_lvis`), and evaluation also needs every image's
    ``neg_category_ids`` / ``not_exhaustive_category_ids``; errors
    (:class:`lvisnb.annotations.json_file.LVISFormatError`) name the file, the record and the key.
    """
    train_ann = train_ann or None  # "" (an empty notebook parameter) is no file
    if isinstance(gt, GroundTruth):
        if train_ann is not None:
            _warn_if_same(gt.source, train_ann)
            counts, source = train_image_counts(_sorted_categories(gt.dataset), train_ann)
            gt = replace(
                gt, train_image_count=counts, train_count_source=source, train_ann=str(train_ann)
            )
        return gt
    dataset, source, columns = _checked_dataset(gt)
    if train_ann is not None:
        _warn_if_same(source, train_ann)
    return _index(dataset, source, train_ann, columns)


def _checked_dataset(gt) -> tuple[dict, str, object]:
    """The LVIS dict of ``gt``, its source name and the columns its validation read
    (:class:`lvisnb.annotations.validate.AnnotationColumns`; ``None`` when it was validated before),
    validated once, with federated lists."""
    from lvisnb.annotations import (
        validate as data,  # imports the lvis API, kept out of CLI start-up
    )
    from lvisnb.annotations.json_file import (  # with validate, as above
        LABEL_LISTS,
        LVISFormatError,
        load_json,
    )

    if isinstance(gt, str | os.PathLike):
        dataset, source = load_json(gt), str(gt)
    elif isinstance(gt, dict):
        dataset, source = gt, "<dict>"
    elif isinstance(getattr(gt, "dataset", None), dict):
        dataset, source = gt.dataset, str(getattr(gt, "source", "<lvis.LVIS>"))
    else:
        raise TypeError(f"gt must be a path, an LVIS dict or an lvis.LVIS, got {type(gt)}")
    columns = None if data.is_validated(gt) else data.validate_dataset(dataset, source)
    images = dataset["images"]
    for key in LABEL_LISTS:
        lists = [image.get(key) for image in images]
        if not set(map(type, lists)) <= {list}:
            index = next(i for i, v in enumerate(lists) if not isinstance(v, list))
            raise LVISFormatError(
                f"{source}: images[{index}] (id={images[index]['id']!r}) needs a list "
                f"'{key}' for LVIS (federated) evaluation"
            )
    return dataset, source, columns


def _index(dataset: dict, source: str, train_ann, columns=None) -> GroundTruth:
    """Index arrays of a validated LVIS dict (images by id, categories by id), reusing the
    ``columns`` its validation read when given."""
    images = sorted(dataset["images"], key=lambda image: image["id"])
    image_ids = np.array([i["id"] for i in images], dtype=np.int64)
    image_sizes = np.array([[i["height"], i["width"]] for i in images], dtype=np.int64)
    cats = _sorted_categories(dataset)
    category_ids = np.array([c["id"] for c in cats], dtype=np.int64)
    k = len(category_ids)
    anns = dataset["annotations"]
    if columns is None:
        ann_image = np.fromiter((a["image_id"] for a in anns), dtype=np.int64, count=len(anns))
        ann_cat = np.fromiter((a["category_id"] for a in anns), dtype=np.int64, count=len(anns))
        ann_area = np.fromiter((a["area"] for a in anns), dtype=np.float64, count=len(anns))
        ann_bbox = None
    else:
        ann_image, ann_cat = columns.ann_image, columns.ann_category
        ann_area, ann_bbox = columns.area, columns.bbox
    ann_row = np.searchsorted(image_ids, ann_image).clip(0, len(image_ids) - 1)
    ann_col = np.searchsorted(category_ids, ann_cat).clip(0, k - 1)
    ann_evaluated = (ann_area > 0) & (ann_area < np.inf)
    rows = np.arange(len(images))
    train_counts, train_source = train_image_counts(cats, train_ann)
    negative = _flat_pairs(rows, [i["neg_category_ids"] for i in images], category_ids, k)
    not_exhaustive = _flat_pairs(
        rows, [i["not_exhaustive_category_ids"] for i in images], category_ids, k
    )
    return GroundTruth(
        dataset=dataset,
        source=source,
        image_ids=image_ids,
        image_sizes=image_sizes,
        category_ids=category_ids,
        names=[c["name"] for c in cats],
        frequency=np.array([c["frequency"] for c in cats]),
        train_image_count=train_counts,
        train_count_source=train_source,
        train_ann=None if train_ann is None else str(train_ann),
        image_count=np.bincount(np.unique(ann_row * k + ann_col) % k, minlength=k),
        ann_row=ann_row,
        ann_col=ann_col,
        ann_area=ann_area,
        ann_evaluated=ann_evaluated,
        verified=np.union1d((ann_row * k + ann_col)[ann_evaluated], negative),
        negative=np.unique(negative),
        not_exhaustive=np.unique(not_exhaustive),
        ann_bbox=ann_bbox,
    )


def pool_columns(truth: GroundTruth) -> dict[str, np.ndarray]:
    """AP-pool's pools: column indices of all categories, then of each frequency group."""
    every = np.arange(truth.num_categories)
    return {"all": every} | {g: every[truth.frequency == g] for g in FREQUENCY_GROUPS}
