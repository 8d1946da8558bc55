"""An annotation file the size of LVIS v1 train, for scale benchmarks (synthetic, no images).

:func:`make_full_scale_lvis` writes ``annotations/lvis_v1_train_full_scale.json`` into a toy-LVIS
folder (:func:`lvisnb.annotations.toy.check_toy_folder` guards it as it guards toy-LVIS): all 1,203
real LVIS v1 categories, each in its real number of train images scaled by ``num_images / 100170``,
``num_instances`` instances in all (1,270,141 by default, as LVIS v1 train) with 1-based counts
per (image, category) pair, 16-vertex polygons, and federated label lists. It exists to measure
what the kit's loading, analysis and evaluation cost at LVIS's real size
(``benchmarks/analysis_scale.py``, ``benchmarks/eval_scale.py``); it is not toy-LVIS, whose
images are drawn and learnable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
from tqdm.auto import tqdm

from lvisnb.annotations.categories import categories as lvis_categories
from lvisnb.annotations.toy import FULL_SCALE_FILE, URL_ROOT, check_toy_folder
from lvisnb.files import atomic_path

LVIS_V1_TRAIN_IMAGES = 100_170  # LVIS v1 train (Gupta et al. 2019; lvis_v1_train.json)
LVIS_V1_TRAIN_INSTANCES = 1_270_141
VERTICES = 16  # polygon vertices of each instance
_HEADER = (
    b'{"info":{"description":"toy-LVIS full scale (synthetic)","version":"1.0"},'
    b'"licenses":[{"id":1,"name":"CC BY 4.0"}],"images":'
)


@dataclass
class _Layout:
    """Which category each instance has and on which (0-based) image, images' sizes."""

    category_ids: np.ndarray  # (1203,) LVIS v1 ids
    image_counts: np.ndarray  # (1203,) images per category after scaling
    pair_image: np.ndarray  # (P,) image of each (image, category) pair, sorted
    pair_category: np.ndarray  # (P,) category id of each pair
    ann_image: np.ndarray  # (N,) image of each instance
    ann_category: np.ndarray  # (N,) category id of each instance
    widths: np.ndarray  # (num_images,) px
    heights: np.ndarray  # (num_images,) px


def _layout(rng: np.random.Generator, num_images: int, num_instances: int) -> _Layout:
    real = lvis_categories("v1")
    category_ids = real["id"].to_numpy()
    scale = num_images / LVIS_V1_TRAIN_IMAGES
    counts = np.clip(
        np.round(real["v1_train_image_count"].to_numpy(np.float64) * scale), 1, num_images
    ).astype(np.int64)
    pair_image = np.concatenate(
        [rng.choice(num_images, size=int(n), replace=False) for n in counts]
    )
    pair_category = np.repeat(category_ids, counts)
    order = np.argsort(pair_image, kind="stable")
    pair_image, pair_category = pair_image[order], pair_category[order]
    extra = max(num_instances - len(pair_image), 0)
    per_pair = 1 + rng.multinomial(extra, rng.dirichlet(np.full(len(pair_image), 0.5)))
    return _Layout(
        category_ids=category_ids,
        image_counts=counts,
        pair_image=pair_image,
        pair_category=pair_category,
        ann_image=np.repeat(pair_image, per_pair),
        ann_category=np.repeat(pair_category, per_pair),
        widths=rng.integers(400, 641, size=num_images),
        heights=rng.integers(300, 481, size=num_images),
    )


def _image_records(rng: np.random.Generator, layout: _Layout) -> list[dict]:
    """Image records with federated lists: up to 8 verified-absent categories each, and a
    tenth of the present ones marked not exhaustive."""
    num_images = len(layout.widths)
    bounds = np.searchsorted(layout.pair_image, np.arange(1, num_images))
    present_by_image = np.split(layout.pair_category, bounds)
    images = []
    for i in range(num_images):
        neg = rng.choice(layout.category_ids, size=int(rng.integers(0, 9)), replace=False)
        present = present_by_image[i]
        neg = np.setdiff1d(neg, present)
        not_exhaustive = present[rng.random(len(present)) < 0.1]
        images.append(
            {
                "id": i + 1,
                "width": int(layout.widths[i]),
                "height": int(layout.heights[i]),
                "license": 1,
                "coco_url": f"{URL_ROOT}/train2017/{i + 1:012d}.jpg",
                "date_captured": "2026-01-01 00:00:00",
                "neg_category_ids": neg.tolist(),
                "not_exhaustive_category_ids": not_exhaustive.tolist(),
            }
        )
    return images


def _category_records(layout: _Layout) -> list[dict]:
    real = lvis_categories("v1")
    return [
        {
            "id": int(row.id),
            "name": row.name,
            "synset": row.synset,
            "synonyms": list(row.synonyms),
            "frequency": str(row.frequency),
            "image_count": int(count),
        }
        for row, count in zip(real.itertuples(), layout.image_counts, strict=True)
    ]


def _annotation_records(
    rng: np.random.Generator, layout: _Layout, start: int, stop: int
) -> list[dict]:
    """Instances ``start:stop`` (ids ``start + 1 ...``): a wobbly 16-gon inside its image, its
    XYWH box and shoelace area (px^2), rounded to 0.01 px as LVIS files are."""
    m = stop - start
    image = layout.ann_image[start:stop]
    w, h = layout.widths[image], layout.heights[image]
    radius = np.exp(rng.uniform(np.log(3), np.log(0.3 * np.minimum(w, h)), size=m))
    cx = rng.uniform(radius, w - radius)
    cy = rng.uniform(radius, h - radius)
    wobble = rng.uniform(0.7, 1.0, size=(m, VERTICES))
    angles = np.linspace(0, 2 * np.pi, VERTICES, endpoint=False)
    xs = np.round(cx[:, None] + radius[:, None] * wobble * np.cos(angles), 2)
    ys = np.round(cy[:, None] + radius[:, None] * wobble * np.sin(angles), 2)
    x0, y0 = xs.min(1), ys.min(1)
    bw, bh = np.round(xs.max(1) - x0, 2), np.round(ys.max(1) - y0, 2)
    area = np.round(
        0.5 * np.abs(np.sum(xs * np.roll(ys, -1, 1) - ys * np.roll(xs, -1, 1), axis=1)), 2
    )
    polygons = np.stack([xs, ys], axis=2).reshape(m, 2 * VERTICES).tolist()
    return [
        {
            "id": start + j + 1,
            "image_id": int(image[j]) + 1,
            "category_id": int(layout.ann_category[start + j]),
            "segmentation": [polygons[j]],
            "area": float(area[j]),
            "bbox": [float(x0[j]), float(y0[j]), float(bw[j]), float(bh[j])],
        }
        for j in range(m)
    ]


def make_full_scale_lvis(
    out_dir: str | os.PathLike,
    seed: int = 0,
    num_images: int = LVIS_V1_TRAIN_IMAGES,
    num_instances: int = LVIS_V1_TRAIN_INSTANCES,
    chunk: int = 50_000,
) -> Path:
    """Write an annotation file the size of LVIS v1 train; return its path,
    ``out_dir/annotations/lvis_v1_train_full_scale.json``.

    Deterministic for a ``seed``. Annotations are encoded ``chunk`` at a time, so memory stays
    far below the file's decoded size, and the file is written atomically. ``out_dir`` must be
    absent, empty or a toy-LVIS folder (``FileExistsError`` otherwise, see
    :func:`lvisnb.annotations.toy.check_toy_folder`).
    """
    path = check_toy_folder(out_dir, marker_required=False) / FULL_SCALE_FILE
    rng = np.random.default_rng(seed)
    layout = _layout(rng, num_images, num_instances)
    images = _image_records(rng, layout)
    encoder = msgspec.json.Encoder()
    total = len(layout.ann_image)
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(_HEADER + encoder.encode(images))
        out.write(b',"categories":' + encoder.encode(_category_records(layout)))
        out.write(b',"annotations":[')
        for start in tqdm(range(0, total, chunk), desc="full-scale annotations", leave=False):
            records = _annotation_records(rng, layout, start, min(start + chunk, total))
            out.write((b"," if start else b"") + encoder.encode(records)[1:-1])
        out.write(b"]}")
    return path
