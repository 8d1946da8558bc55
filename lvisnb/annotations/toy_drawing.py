"""How toy-LVIS draws one image: shapes, occlusion, textures, and the masks of what is visible.

:func:`draw_image` places a task's instances (:class:`ImageTask`: categories, instance counts,
each category's shape x colour x texture) at log-uniform scales over COCO's small, medium and
large ranges, largest first so that smaller objects occlude larger ones; the mask of an instance
is its *visible* part (shapely), cut into hole-free polygons (:func:`hole_free_parts`), as COCO
polygons require. Pixels are painted through the same polygons rasterised by pycocotools, so the
annotation matches the drawn pixels; ``bbox`` (XYWH) and ``area`` come from the mask's RLE. Some
instances of a pair with two or more are left unannotated on purpose (``not_exhaustive``).
:mod:`lvisnb.annotations.toy` makes the data set from these images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_utils
import shapely
from PIL import Image
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.ops import split as split_geometry

SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "crescent")
COLOURS = {
    "red": (215, 38, 38),
    "orange": (245, 140, 20),
    "yellow": (240, 215, 35),
    "green": (40, 165, 60),
    "cyan": (35, 195, 205),
    "blue": (40, 75, 215),
    "purple": (135, 55, 195),
    "pink": (245, 120, 190),
}
TEXTURES = ("solid", "stripes", "dots", "checker")
MIN_VISIBLE_FRACTION = 0.35  # a placement that hides more of an earlier object is re-drawn
NOT_EXHAUSTIVE_PROB = 0.15  # chance that a pair with >= 2 instances is left not exhaustive


# ----------------------------------------------------------------------------- geometry


def _unit_shape(shape: str) -> Polygon:
    """The shape centred on the origin with radius about 1."""
    if shape == "circle":
        return shapely.Point(0, 0).buffer(1.0, quad_segs=8)
    if shape == "square":
        return shapely.box(-0.8, -0.8, 0.8, 0.8)
    if shape == "diamond":
        return Polygon([(0, -1), (0.7, 0), (0, 1), (-0.7, 0)])
    if shape == "triangle":
        return Polygon([(math.cos(a), math.sin(a)) for a in np.radians([-90, 30, 150])])
    if shape == "hexagon":
        return Polygon([(math.cos(a), math.sin(a)) for a in np.radians(np.arange(0, 360, 60))])
    if shape == "star":
        angles = np.radians(np.arange(0, 360, 36) - 90)
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return Polygon(np.c_[radii * np.cos(angles), radii * np.sin(angles)])
    if shape == "cross":
        return shapely.box(-1, -0.33, 1, 0.33).union(shapely.box(-0.33, -1, 0.33, 1))
    if shape == "crescent":
        outer = shapely.Point(0, 0).buffer(1.0, quad_segs=8)
        return outer.difference(shapely.Point(0.45, -0.1).buffer(0.8, quad_segs=8))
    raise ValueError(f"unknown shape {shape!r}")


_UNIT_SHAPES = {name: _unit_shape(name) for name in SHAPES}


def _polygons(geometry) -> list[Polygon]:
    if isinstance(geometry, Polygon):
        return [] if geometry.is_empty else [geometry]
    if isinstance(geometry, MultiPolygon):
        return [g for g in geometry.geoms if not g.is_empty]
    if hasattr(geometry, "geoms"):  # GeometryCollection after a difference
        return [p for g in geometry.geoms for p in _polygons(g)]
    return []


def hole_free_parts(geometry, min_area: float = 2.0) -> list[Polygon]:
    """Polygons without interiors whose union is ``geometry`` (COCO polygons cannot have holes).

    A polygon with a hole is cut by a vertical line through the hole's centre, recursively.
    Slivers under ``min_area`` px^2 are dropped.
    """
    parts: list[Polygon] = []
    stack = _polygons(geometry)
    while stack:
        polygon = stack.pop()
        if polygon.area < min_area:
            continue
        if not polygon.interiors:
            parts.append(polygon)
            continue
        x = polygon.interiors[0].centroid.x
        _, miny, _, maxy = polygon.bounds
        stack.extend(_polygons(split_geometry(polygon, LineString([(x, miny - 1), (x, maxy + 1)]))))
    return parts


def _coco_polygon(polygon: Polygon) -> list[float]:
    coords = np.asarray(polygon.exterior.coords)[:-1]
    return [round(float(v), 2) for v in coords.reshape(-1)]


# ----------------------------------------------------------------------------- drawing


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Muted smooth noise plus grain: an HxWx3 uint8 textured background."""
    base = rng.uniform(70, 170, size=3)
    coarse = base + rng.normal(0, 22, size=(6, 6, 1)) + rng.normal(0, 8, size=(6, 6, 3))
    smooth = Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    grain = rng.normal(0, 7, size=(height, width, 1))
    return np.clip(np.asarray(smooth, dtype=np.float64) + grain, 0, 255).astype(np.uint8)


def _texture(
    texture: str,
    colour: tuple[int, int, int],
    yy: np.ndarray,
    xx: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pixels of a textured fill at the given pixel coordinates, (..., 3) uint8."""
    rgb = np.asarray(colour, dtype=np.float64)
    dark = rgb * 0.45
    light = rgb + (255 - rgb) * 0.6
    if texture == "solid":
        out = np.broadcast_to(rgb, yy.shape + (3,)).copy()
    elif texture == "stripes":
        angle = rng.uniform(0, math.pi)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / 4.0
        out = np.where((np.floor(phase) % 2 == 0)[..., None], rgb, dark)
    elif texture == "dots":
        on = ((xx % 7) - 3) ** 2 + ((yy % 7) - 3) ** 2 <= 4
        out = np.where(on[..., None], light, rgb)
    elif texture == "checker":
        on = ((xx // 5) + (yy // 5)) % 2 == 0
        out = np.where(on[..., None], rgb, dark)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    out = out + rng.normal(0, 5, size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _raster(polygon: Polygon, height: int, width: int) -> np.ndarray:
    """HxW bool mask of ``polygon`` rasterised by pycocotools (the evaluator's rasteriser)."""
    rles = mask_utils.frPyObjects([_coco_polygon(polygon)], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


# ----------------------------------------------------------------------------- one image


@dataclass
class ImageTask:
    """One image to draw: its id, split and size (pixels), its categories (LVIS ids) with the
    instances of each, every category's appearance, the seed of its generator, its JPEG path
    and the small / medium / large mix."""

    image_id: int
    split: str
    width: int
    height: int
    category_ids: list[int]  # positive categories, LVIS ids
    instances: list[int]  # instances to draw per positive category
    appearance: dict[int, tuple[str, str, str]]  # LVIS id -> (shape, colour, texture)
    seed: tuple[int, ...]
    out_path: str
    size_mix: tuple[float, float, float]


# Area ranges (px^2) of COCO's small / medium / large objects, with margins so that a partly
# occluded object still lands in its range most of the time.
SIZE_RANGES = ((48.0, 32.0**2), (36.0**2, 90.0**2), (110.0**2, 230.0**2))


def _radii(shapes: list[str], task: ImageTask, rng: np.random.Generator) -> np.ndarray:
    """Radius per object: a COCO size class drawn with ``task.size_mix``, then an area
    log-uniform in that class's range, converted with the unit shape's area
    (``area = radius^2 * unit_area``). Capped so the object fits in the image.
    """
    classes = rng.choice(3, size=len(shapes), p=np.asarray(task.size_mix))
    cap = (0.42 * min(task.width, task.height)) ** 2
    radii = np.empty(len(shapes))
    for i, (shape, size_class) in enumerate(zip(shapes, classes, strict=True)):
        lo, hi = SIZE_RANGES[size_class]
        area = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        radii[i] = min(math.sqrt(area / _UNIT_SHAPES[shape].area), math.sqrt(cap))
    return radii


def _place(task: ImageTask, rng: np.random.Generator) -> tuple[list[tuple[int, Polygon]], list]:
    """Place every instance, larger ones first (drawn below smaller ones).

    Returns ``placed``, (LVIS category id, full polygon) in drawing order, and ``visible``, the
    part of each polygon that no later polygon covers (same order).
    """
    wanted = [
        cid for cid, n in zip(task.category_ids, task.instances, strict=True) for _ in range(n)
    ]
    radii = _radii([task.appearance[c][0] for c in wanted], task, rng)
    order = np.argsort(-radii, kind="stable")
    placed: list[tuple[int, Polygon]] = []
    visible: list = []
    for index in order:
        cid = wanted[index]
        radius = float(radii[index])
        shape = task.appearance[cid][0]
        for _attempt in range(25):
            polygon = affinity.rotate(_UNIT_SHAPES[shape], rng.uniform(0, 360), origin=(0, 0))
            stretch = rng.uniform(0.8, 1.25)
            polygon = affinity.scale(polygon, radius * stretch, radius / stretch, origin=(0, 0))
            minx, miny, maxx, maxy = polygon.bounds
            if maxx - minx >= task.width - 2 or maxy - miny >= task.height - 2:
                radius *= 0.85
                continue
            cx = rng.uniform(1 - minx, task.width - 1 - maxx)
            cy = rng.uniform(1 - miny, task.height - 1 - maxy)
            polygon = affinity.translate(polygon, cx, cy)
            shown = [v.difference(polygon) for v in visible]
            if all(
                s.area >= MIN_VISIBLE_FRACTION * p.area
                for s, (_, p) in zip(shown, placed, strict=True)
            ):
                visible = [*shown, polygon]
                placed.append((cid, polygon))
                break
            radius *= 0.9
    return placed, visible


def draw_image(task: ImageTask) -> tuple[list[dict], list[int]]:
    """Draw one image to ``task.out_path`` (JPEG).

    Returns its annotations (no ``id`` yet; ``bbox`` XYWH pixels) and its not-exhaustive
    category ids.
    """
    rng = np.random.default_rng(list(task.seed))
    h, w = task.height, task.width
    pixels = _background(rng, w, h)
    placed, visible = _place(task, rng)
    for cid, polygon in placed:
        shape, colour, texture = task.appearance[cid]
        mask = _raster(polygon, h, w)
        yy, xx = np.nonzero(mask)
        pixels[yy, xx] = _texture(texture, COLOURS[colour], yy, xx, rng)
    Image.fromarray(pixels).save(task.out_path, format="JPEG", quality=90, subsampling=0)

    # federated incompleteness: drop some instances of a multi-instance pair on purpose
    by_category: dict[int, list[int]] = {}
    for index, (cid, _) in enumerate(placed):
        by_category.setdefault(cid, []).append(index)
    not_exhaustive = []
    dropped: set[int] = set()
    for cid in sorted(by_category):
        indices = by_category[cid]
        if len(indices) >= 2 and rng.random() < NOT_EXHAUSTIVE_PROB:
            keep = int(rng.integers(1, len(indices)))
            dropped.update(indices[keep:])
            not_exhaustive.append(cid)

    annotations = []
    for index, ((cid, _), geometry) in enumerate(zip(placed, visible, strict=True)):
        if index in dropped:
            continue
        parts = hole_free_parts(geometry)
        if not parts:
            continue
        segmentation = [_coco_polygon(p) for p in parts]
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
        area = float(mask_utils.area(rle))
        if area < 1:
            continue
        bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
        annotations.append(
            {
                "image_id": task.image_id,
                "category_id": cid,
                "segmentation": segmentation,
                "area": area,
                "bbox": bbox,
            }
        )
    present = {a["category_id"] for a in annotations}
    not_exhaustive = [c for c in not_exhaustive if c in present]
    return annotations, not_exhaustive
