"""toy-LVIS: a deterministic synthetic long-tail instance-segmentation data set in LVIS v1 format.

Layout written by :func:`make_toy_lvis` (the ``lvis`` API loads the JSON files unchanged)::

    out_dir/annotations/lvis_v1_train.json   images addressed by coco_url .../train2017/<id>.jpg
    out_dir/annotations/lvis_v1_val.json     .../val2017/<id>.jpg
    out_dir/train2017/*.jpg, out_dir/val2017/*.jpg
    out_dir/toy_lvis.json                    generator settings and each category's appearance

How it is made:

1. Categories. ``num_categories`` LVIS v1 categories are taken at evenly spaced quantiles of the
   real v1 train image counts (so r/c/f come out near LVIS v1's 28/38/34%) and keep their real id,
   name and synset. Each gets a visual appearance: shape x colour x texture.
2. Long tail. A category's number of train images is its real v1 count when that is <= 100;
   frequent counts (real counts 101 .. ~50k) are squeezed log-linearly into 101 .. half the
   train split. Categories are spread over images so no image is overloaded.
3. Instances. Each (image, category) pair has 1-4 instances at log-uniform scales spanning
   COCO's small (< 32^2 px), medium and large (> 96^2 px) ranges, drawn largest first so that
   smaller objects occlude larger ones. A mask is the *visible* part: the object's polygon minus
   the polygons drawn above it (shapely), split where needed so that each part is a hole-free
   polygon, as COCO polygons require. Pixels are painted through the same polygons rasterised by
   pycocotools, so the annotation matches the drawn pixels. ``bbox`` (XYWH) and ``area`` come
   from the mask's RLE, as in COCO/LVIS (:mod:`lvisnb.annotations.toy_drawing`).
4. Federated labels. ``neg_category_ids``: categories verified absent. For some pairs with two
   or more instances, some instances are deliberately left unannotated and the category is listed
   in ``not_exhaustive_category_ids``.
5. ``image_count``, ``instance_count`` and ``frequency`` of every category are computed from the
   train split with LVIS's rule (r: 1-10 images, c: 11-100, f: > 100); both files carry them.

Everything is a function of ``seed``: the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
import numpy as np
from tqdm.auto import tqdm

from lvisnb.annotations.categories import categories as lvis_categories
from lvisnb.annotations.categories import frequency_of
from lvisnb.annotations.toy_drawing import COLOURS, SHAPES, TEXTURES, ImageTask, draw_image
from lvisnb.files import write_bytes_atomic, write_text_atomic

GENERATOR_VERSION = 1
TRAIN_FILE = "annotations/lvis_v1_train.json"
VAL_FILE = "annotations/lvis_v1_val.json"
META_FILE = "toy_lvis.json"
URL_ROOT = "https://toy-lvis.invalid"  # never fetched: paths are the last two parts of coco_url

INSTANCE_COUNTS = np.array([1, 2, 3, 4])  # instances drawn per (image, category) pair ...
INSTANCE_COUNT_PROBS = np.array([0.55, 0.25, 0.12, 0.08])  # ... with these probabilities


@dataclass(frozen=True)
class ToyCategory:
    """A toy category: a real LVIS v1 category (id, name) and how it is drawn."""

    id: int
    name: str
    shape: str
    colour: str
    texture: str
    lvis_v1_train_image_count: int  # the real category's count, the tail shape we imitate

    @property
    def appearance(self) -> str:
        return f"{self.colour} {self.texture} {self.shape}"


@dataclass(frozen=True)
class ToySettings:
    """Sizes of toy-LVIS; defaults generate in well under 30 s on 2 cores."""

    seed: int = 0
    num_categories: int = 40
    num_train_images: int = 1000
    num_val_images: int = 200
    image_size: tuple[int, int] = (256, 352)  # width and height drawn from this range, pixels
    size_mix: tuple[float, float, float] = (0.4, 0.35, 0.25)  # small/medium/large, as in COCO
    max_frequent_fraction: float = 0.5  # the most frequent category is in this share of images
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))


# ----------------------------------------------------------------------------- categories


def choose_categories(num_categories: int) -> list[ToyCategory]:
    """``num_categories`` real LVIS v1 categories at evenly spaced quantiles of train image count.

    Rank ``k = floor((j + 1/2) * 1203 / n)`` for ``j = 0 .. n-1`` in the list sorted by count
    (descending, then id). Appearances are distinct shape x colour x texture triples; the texture
    is ``(shape + colour) mod 4`` so that two classes differ in at least two of the three
    attributes unless their colours are four apart in the list.
    """
    if not 3 <= num_categories <= len(SHAPES) * len(COLOURS):
        raise ValueError(f"num_categories must be in 3..{len(SHAPES) * len(COLOURS)}")
    real = lvis_categories("v1").sort_values(
        ["v1_train_image_count", "id"], ascending=[False, True]
    )
    ranks = [int((j + 0.5) * len(real) / num_categories) for j in range(num_categories)]
    picked = real.iloc[ranks]
    combos = [(s, c, (s + c) % len(TEXTURES)) for s in range(len(SHAPES)) for c in range(8)]
    order = np.random.default_rng(20191025).permutation(len(combos))  # fixed, not per seed
    colour_names = list(COLOURS)
    chosen = []
    for (_, row), combo_index in zip(picked.iterrows(), order, strict=False):
        s, c, t = combos[combo_index]
        chosen.append(
            ToyCategory(
                id=int(row["id"]),
                name=str(row["name"]),
                shape=SHAPES[s],
                colour=colour_names[c],
                texture=TEXTURES[t],
                lvis_v1_train_image_count=int(row["v1_train_image_count"]),
            )
        )
    return sorted(chosen, key=lambda cat: cat.id)


def target_image_counts(
    real_counts: np.ndarray, num_images: int, max_fraction: float
) -> np.ndarray:
    """Train image count per category: real count up to 100, frequent ones squeezed.

    For a real count ``n > 100``: ``101 * (n / 101) ** a`` with ``a`` chosen so that the largest
    real count maps to ``max_fraction * num_images`` (log-linear, keeps the Zipf shape).
    """
    real_counts = np.asarray(real_counts, dtype=np.float64)
    top = max(max_fraction * num_images, 102.0)
    largest = real_counts.max()
    counts = real_counts.copy()
    frequent = real_counts > 100
    if frequent.any() and largest > 101:
        exponent = min(1.0, math.log(top / 101) / math.log(largest / 101))
        counts[frequent] = 101 * (real_counts[frequent] / 101) ** exponent
    counts = np.maximum(np.round(counts), 1).astype(np.int64)
    counts[frequent] = np.maximum(counts[frequent], 101)
    if counts.max() > num_images:
        raise ValueError(
            f"toy-LVIS needs at least {counts.max()} train images (its frequent categories are "
            f"in more than 100 images each, as LVIS's), got {num_images}: --train-images "
            f"{counts.max()} or more"
        )
    return counts


def _spread(counts: np.ndarray, num_images: int, rng: np.random.Generator) -> list[list[int]]:
    """Give each category index ``k`` exactly ``counts[k]`` distinct images, balancing load."""
    load = np.zeros(num_images)
    per_image: list[list[int]] = [[] for _ in range(num_images)]
    for k in np.argsort(-counts, kind="stable"):
        weights = 1.0 / (1.0 + load) ** 2
        chosen = rng.choice(
            num_images, size=int(counts[k]), replace=False, p=weights / weights.sum()
        )
        load[chosen] += 1
        for i in chosen:
            per_image[i].append(int(k))
    return per_image


# ----------------------------------------------------------------------------- splits


def _split_tasks(
    split: str,
    first_id: int,
    per_image_categories: list[list[int]],
    cats: list[ToyCategory],
    settings: ToySettings,
    rng: np.random.Generator,
    out_dir: Path,
) -> list[ImageTask]:
    appearance = {c.id: (c.shape, c.colour, c.texture) for c in cats}
    tasks = []
    folder = out_dir / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    for offset, indices in enumerate(per_image_categories):
        image_id = first_id + offset
        width, height = (int(v) for v in rng.integers(*settings.image_size, endpoint=True, size=2))
        instances = rng.choice(INSTANCE_COUNTS, size=len(indices), p=INSTANCE_COUNT_PROBS).tolist()
        tasks.append(
            ImageTask(
                image_id=image_id,
                split=split,
                width=width,
                height=height,
                category_ids=[cats[k].id for k in indices],
                instances=[int(n) for n in instances],
                appearance=appearance,
                seed=(settings.seed, image_id),
                out_path=str(folder / f"{image_id:012d}.jpg"),
                size_mix=settings.size_mix,
            )
        )
    return tasks


def _image_record(task: ImageTask, neg: list[int], not_exhaustive: list[int]) -> dict:
    return {
        "id": task.image_id,
        "width": task.width,
        "height": task.height,
        "license": 1,
        "coco_url": f"{URL_ROOT}/{task.split}2017/{task.image_id:012d}.jpg",
        "flickr_url": f"{URL_ROOT}/{task.split}2017/{task.image_id:012d}.jpg",
        "date_captured": "2026-01-01 00:00:00",
        "neg_category_ids": sorted(neg),
        "not_exhaustive_category_ids": sorted(not_exhaustive),
    }


def _run_tasks(tasks: list[ImageTask], workers: int, desc: str) -> list:
    if workers <= 1:
        return [draw_image(t) for t in tqdm(tasks, desc=desc, leave=False)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(
            tqdm(
                pool.map(draw_image, tasks, chunksize=16), total=len(tasks), desc=desc, leave=False
            )
        )


def _write_json_atomic(path: Path, payload: object) -> None:
    write_bytes_atomic(path, msgspec.json.encode(payload))


def is_complete(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` holds a finished toy-LVIS (the metadata file is written last)."""
    out_dir = Path(out_dir)
    return all((out_dir / name).is_file() for name in (META_FILE, TRAIN_FILE, VAL_FILE))


PARTIAL_MARKER = ".toy-lvis-partial"  # written first, removed when toy-LVIS is complete
TOY_ENTRIES = frozenset({META_FILE, PARTIAL_MARKER, "annotations", "train2017", "val2017"})
FULL_SCALE_FILE = "annotations/lvis_v1_train_full_scale.json"
TOY_ANNOTATIONS = frozenset(Path(f).name for f in (TRAIN_FILE, VAL_FILE, FULL_SCALE_FILE))
IGNORED_ENTRIES = frozenset({".DS_Store", "Thumbs.db"})  # what file browsers add
_TOY_HEADER = b'{"info":{"description":"toy-LVIS'


def _written_by_toy(annotation_file: Path) -> bool:
    """Whether an annotation file starts as toy-LVIS writes its files (its ``info`` first)."""
    with open(annotation_file, "rb") as file:
        return file.read(len(_TOY_HEADER)) == _TOY_HEADER


def check_toy_folder(out_dir: str | os.PathLike, marker_required: bool = True) -> Path:
    """``out_dir`` if toy-LVIS may be written there, else ``FileExistsError`` naming it.

    toy-LVIS writes only into a folder that is absent, empty, or a toy-LVIS it wrote before,
    complete (``toy_lvis.json``) or interrupted (``.toy-lvis-partial``), holding nothing but
    toy-LVIS's own entries (its annotation files start with toy-LVIS's ``info``; no symbolic
    links), because its files carry real names (``annotations/lvis_v1_train.json``,
    ``train2017/000000000009.jpg``) that would replace a user's LVIS or COCO files.
    """
    out_dir = Path(out_dir)
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise FileExistsError(f"{out_dir} is a file or a link, not a folder for toy-LVIS")
    listed = list(out_dir.iterdir()) if out_dir.is_dir() else []
    entries = {p.name for p in listed} - IGNORED_ENTRIES
    if not entries:
        return out_dir
    annotations = list((out_dir / "annotations").glob("*")) if "annotations" in entries else []
    own = (
        (entries & {META_FILE, PARTIAL_MARKER} or not marker_required)
        and entries <= TOY_ENTRIES
        and not any(p.is_symlink() for p in listed + annotations)
        and {p.name for p in annotations} <= TOY_ANNOTATIONS
        and all(_written_by_toy(p) for p in annotations if p.is_file())
    )
    if not own:
        raise FileExistsError(
            f"{out_dir} is not empty and is not a toy-LVIS folder (it holds "
            f"{', '.join(sorted(entries)[:5])}); toy-LVIS writes files with LVIS and COCO names "
            "and never into a folder that holds anything it did not write: name an empty or "
            "new folder (for the kit's default, set LVISNB_TOY_ROOT)"
        )
    return out_dir


def make_toy_lvis(
    out_dir: str | os.PathLike,
    seed: int = 0,
    num_categories: int | None = None,
    num_train_images: int | None = None,
    num_val_images: int | None = None,
    workers: int | None = None,
) -> dict[str, Path]:
    """Write toy-LVIS to ``out_dir``; return ``{"train": path, "val": path}`` of the JSON files.

    Arguments left ``None`` take :class:`ToySettings` defaults. Deterministic for a ``seed``.
    ``out_dir`` must be absent, empty or an earlier toy-LVIS (:func:`check_toy_folder`,
    ``FileExistsError`` otherwise).
    """
    defaults = ToySettings()
    settings = ToySettings(
        seed=seed,
        num_categories=defaults.num_categories if num_categories is None else num_categories,
        num_train_images=(
            defaults.num_train_images if num_train_images is None else num_train_images
        ),
        num_val_images=defaults.num_val_images if num_val_images is None else num_val_images,
        workers=workers or defaults.workers,
    )
    for name in ("num_categories", "num_train_images", "num_val_images"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"toy-LVIS needs {name} >= 1, got {value!r}")
    out_dir = check_toy_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PARTIAL_MARKER).touch()  # an interrupted run leaves a folder it may finish
    rng = np.random.default_rng(settings.seed)
    cats = choose_categories(settings.num_categories)
    train_images, val_images = _image_categories(cats, settings, rng)
    splits = {
        "train": _split_tasks("train", 1, train_images, cats, settings, rng, out_dir),
        "val": _split_tasks(
            "val", settings.num_train_images + 1, val_images, cats, settings, rng, out_dir
        ),
    }
    datasets = {split: _draw_split(split, tasks, cats, settings) for split, tasks in splits.items()}
    offset = len(datasets["train"][1])  # unique annotation ids across splits, as in LVIS
    for ann in datasets["val"][1]:
        ann["id"] += offset
    category_records = _category_records(cats, datasets["train"][1])
    paths = {}
    for split, (image_records, ann_records) in datasets.items():
        paths[split] = out_dir / (TRAIN_FILE if split == "train" else VAL_FILE)
        payload = _dataset_header(split, settings.seed) | {
            "images": image_records,
            "annotations": ann_records,
            "categories": category_records,
        }
        _write_json_atomic(paths[split], payload)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "settings": asdict(settings) | {"workers": None},
        "categories": [asdict(c) | {"appearance": c.appearance} for c in cats],
    }
    write_text_atomic(out_dir / META_FILE, json.dumps(meta, indent=1))  # last: marks complete
    (out_dir / PARTIAL_MARKER).unlink(missing_ok=True)
    return paths


def _image_categories(
    cats: list[ToyCategory], settings: ToySettings, rng: np.random.Generator
) -> tuple[list[list[int]], list[list[int]]]:
    """Category indices of each train and val image: the long tail of train counts
    (:func:`target_image_counts`); val holds every category, frequent ones in proportion to
    train, at least 3 images each; an image left empty gets a frequent category."""
    real = np.array([c.lvis_v1_train_image_count for c in cats])
    train_counts = target_image_counts(
        real, settings.num_train_images, settings.max_frequent_fraction
    )
    share = settings.num_val_images / settings.num_train_images
    val_counts = np.clip(np.round(train_counts * share), 3, settings.num_val_images // 2)
    train_images = _spread(train_counts, settings.num_train_images, rng)
    val_images = _spread(val_counts.astype(np.int64), settings.num_val_images, rng)
    frequent = [k for k in range(len(cats)) if train_counts[k] > 100]
    for per_image in (*train_images, *val_images):
        if not per_image:
            per_image.append(int(rng.choice(frequent)) if frequent else 0)
    return train_images, val_images


def _draw_split(
    split: str, tasks: list[ImageTask], cats: list[ToyCategory], settings: ToySettings
) -> tuple[list[dict], list[dict]]:
    """Draw a split's images (in worker processes); return its image and annotation records.

    Each image's ``neg_category_ids`` are 1-6 categories absent from it, drawn with a
    generator seeded by ``(seed, image id)`` so that they do not depend on the worker count.
    """
    drawn = _run_tasks(tasks, settings.workers, f"toy-LVIS {split}")
    all_ids = [c.id for c in cats]
    images, annotations = [], []
    for task, (anns, not_exhaustive) in zip(tasks, drawn, strict=True):
        present = {a["category_id"] for a in anns}
        absent = [c for c in all_ids if c not in present]
        neg_rng = np.random.default_rng([settings.seed, task.image_id, 1])
        neg = []
        if absent:
            size = min(len(absent), int(neg_rng.integers(1, 7)))
            neg = neg_rng.choice(absent, size=size, replace=False).tolist()
        images.append(_image_record(task, [int(c) for c in neg], not_exhaustive))
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, **ann})
    return images, annotations


def _dataset_header(split: str, seed: int) -> dict:
    """``info`` and ``licenses`` of a toy-LVIS file (``info`` first: :func:`check_toy_folder`
    recognises toy-LVIS's files by it)."""
    return {
        "info": {
            "description": f"toy-LVIS {split} (synthetic, lvisnb generator "
            f"v{GENERATOR_VERSION}, seed {seed})",
            "version": "1.0",
            "year": 2026,
        },
        "licenses": [
            {"id": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}
        ],
    }


def _category_records(cats: list[ToyCategory], train_annotations: list[dict]) -> list[dict]:
    """LVIS category records with image_count/instance_count/frequency from the train split."""
    real = lvis_categories("v1").set_index("id")
    images_of: dict[int, set[int]] = {c.id: set() for c in cats}
    instances = dict.fromkeys(images_of, 0)
    for ann in train_annotations:
        images_of[ann["category_id"]].add(ann["image_id"])
        instances[ann["category_id"]] += 1
    records = []
    for cat in cats:
        row = real.loc[cat.id]
        image_count = len(images_of[cat.id])
        records.append(
            {
                "id": cat.id,
                "name": cat.name,
                "synset": row["synset"],
                "synonyms": list(row["synonyms"]),
                "def": row["def"],
                "frequency": frequency_of(image_count),
                "image_count": image_count,
                "instance_count": instances[cat.id],
            }
        )
    return records


def default_root() -> Path:
    """Where notebooks find toy-LVIS: ``$LVISNB_TOY_ROOT``, else ``~/.cache/lvisnb/toy-lvis``."""
    env = os.environ.get("LVISNB_TOY_ROOT")
    return Path(env) if env else Path.home() / ".cache" / "lvisnb" / "toy-lvis"


def ensure_toy_lvis(root: str | os.PathLike | None = None, seed: int = 0) -> dict[str, Path]:
    """Paths of toy-LVIS under ``root`` (default :func:`default_root`), generating it if absent.

    Returns ``{"root", "train", "val"}``; images resolve under ``root`` (v1 ``coco_url`` rule).
    """
    root = Path(root) if root is not None else default_root()
    if not is_complete(root):
        make_toy_lvis(root, seed=seed)
    return {"root": root, "train": root / TRAIN_FILE, "val": root / VAL_FILE}
