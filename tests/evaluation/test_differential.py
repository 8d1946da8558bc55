"""Differential tests: ``lvisnb.evaluation.evaluator.evaluate`` (both backends) against the official
``lvis.LVISResults`` + ``LVISEval`` on seeded random LVIS cases (:mod:`lvis_cases`)."""

import copy
import functools
import json
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from lvis_cases import box_mask, case_features, make_case, reference_metrics, rle

from lvisnb.evaluation.evaluator import evaluate

FEW_SEEDS = range(8)
MANY_SEEDS = range(8, 200)
IOU_TYPES = ("bbox", "segm")
BACKENDS = ("fast", "lvis")
TOLERANCE = 1e-4
METRICS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "APr",
    "APc",
    "APf",
    "AR@300",
    "ARs@300",
    "ARm@300",
    "ARl@300",
)


@functools.cache
def _case(seed: int) -> tuple[dict, list[dict]]:
    return make_case(seed)


@functools.cache
def _reference(seed: int, iou_type: str) -> dict[str, float]:
    gt, results = _case(seed)
    return reference_metrics(gt, results, iou_type)


def _kit(
    gt: dict, results: list[dict], iou_type: str, backend: str, from_file: bool = False, **options
) -> dict[str, float]:
    """The kit's metrics; ``from_file``: the results written to a JSON file first (read by
    the C column reader, :mod:`lvisnb.evaluation.result_columns`), else passed as a list."""
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as folder:
        warnings.simplefilter("ignore", UserWarning)  # more than 300 detections on an image
        source = copy.deepcopy(results)
        if from_file:
            source = Path(folder) / "results.json"
            source.write_text(json.dumps(results))
        evaluation = evaluate(
            copy.deepcopy(gt),
            source,
            iou_types=(iou_type,),
            backend=backend,
            **({"fixed": False} | options),
        )
    return evaluation.metrics[iou_type]


def _other_forms(results: list[dict], seed: int) -> list[dict]:
    """``results`` with every third mask as an uncompressed RLE and every third (shifted) as
    polygons (the outline of its box), the other legal forms ``lvis`` converts."""
    out = copy.deepcopy(results)
    for index, record in enumerate(out):
        segm = record["segmentation"]
        if (index + seed) % 3 == 0:
            mask = mask_utils.decode(segm)
            flat = mask.ravel(order="F")
            change = np.flatnonzero(np.diff(flat)) + 1
            bounds = np.concatenate([[0], change, [flat.size]])
            counts = np.diff(bounds).tolist()
            if flat.size and flat[0]:
                counts = [0, *counts]
            record["segmentation"] = {"size": segm["size"], "counts": counts}
        elif (index + seed) % 3 == 1:
            x, y, w, h = record["bbox"]
            if w > 0 and h > 0:
                record["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return out


def _compressed(gt: dict, results: list[dict]) -> list[dict]:
    """``results`` with every segmentation as a compressed RLE, as ``lvis.LVIS.ann_to_rle``
    converts it (the reference takes mask areas of compressed RLEs only)."""
    sizes = {i["id"]: (i["height"], i["width"]) for i in gt["images"]}
    out = copy.deepcopy(results)
    for record in out:
        segm, (h, w) = record["segmentation"], sizes[record["image_id"]]
        if isinstance(segm, list):
            segm = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
        elif isinstance(segm["counts"], list):
            segm = mask_utils.frPyObjects(segm, h, w)
        record["segmentation"] = {"size": [h, w], "counts": segm["counts"]}
        if isinstance(segm["counts"], bytes):
            record["segmentation"]["counts"] = segm["counts"].decode()
    return out


def _mismatches(label: str, want: dict[str, float], got: dict[str, float]) -> list[str]:
    lines = []
    for name, value in want.items():
        if name not in got:
            lines.append(f"{label} {name}: reference {value:.6f}, kit has no such metric")
        elif abs(got[name] - value) > TOLERANCE:
            lines.append(f"{label} {name}: reference {value:.6f}, kit {got[name]:.6f}")
    return lines


def _check(seed: int, iou_type: str, backend: str, from_file: bool = False) -> None:
    gt, results = _case(seed)
    want = _reference(seed, iou_type)  # outside any try: the reference must never fail
    assert set(want) == set(METRICS)
    got = _kit(gt, results, iou_type, backend, from_file)
    label = f"seed={seed} iou_type={iou_type} backend={backend} from_file={from_file}"
    lines = _mismatches(label, want, got)
    if lines:
        print("\n".join(lines))
    assert not lines, "kit disagrees with lvis.LVISEval:\n" + "\n".join(lines)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", IOU_TYPES)
@pytest.mark.parametrize("seed", FEW_SEEDS)
def test_kit_matches_official_lvis_eval(seed, iou_type, backend):
    _check(seed, iou_type, backend)


@pytest.mark.parametrize("iou_type", IOU_TYPES)
@pytest.mark.parametrize("seed", FEW_SEEDS)
def test_kit_matches_official_lvis_eval_reading_a_file(seed, iou_type):
    _check(seed, iou_type, "fast", from_file=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", IOU_TYPES)
@pytest.mark.parametrize("seed", MANY_SEEDS)
def test_kit_matches_official_lvis_eval_on_many_seeds(seed, iou_type, backend):
    _check(seed, iou_type, backend, from_file=seed % 2 == 0)


def _check_variant(seed: int, backend: str, segm_area: str, other_forms: bool) -> None:
    """segm with ``segm_area`` (and polygon / uncompressed-RLE results when ``other_forms``)
    against raw LVISEval on the same records (``"box"``: boxes kept, raw LVISEval bit for bit)
    or on their compressed RLEs (``"mask"``: boxes dropped, as detectron2)."""
    gt, results = _case(seed)
    if other_forms:
        results = _other_forms(results, seed)
    reference_records = results if segm_area == "box" else _compressed(gt, results)
    want = reference_metrics(gt, reference_records, "segm", segm_area)
    got = _kit(gt, results, "segm", backend, segm_area=segm_area)
    label = f"seed={seed} segm_area={segm_area} other_forms={other_forms} backend={backend}"
    lines = _mismatches(label, want, got)
    assert not lines, "kit disagrees with lvis.LVISEval:\n" + "\n".join(lines)


VARIANTS = [("box", False), ("box", True), ("mask", True)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("segm_area", "other_forms"), VARIANTS)
@pytest.mark.parametrize("seed", FEW_SEEDS[:4])
def test_segm_variants_match_official_lvis_eval(seed, segm_area, other_forms, backend):
    _check_variant(seed, backend, segm_area, other_forms)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("segm_area", "other_forms"), VARIANTS)
@pytest.mark.parametrize("seed", range(4, 60))
def test_segm_variants_match_official_lvis_eval_on_many_seeds(
    seed, segm_area, other_forms, backend
):
    _check_variant(seed, backend, segm_area, other_forms)


def _check_zero_area_gt(seed: int, iou_type: str, backend: str) -> None:
    """Every fourth GT instance with ``area`` 0 (not evaluated by LVISEval, nor positive)."""
    gt, results = _case(seed)
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"][seed % 4 :: 4]:
        ann["area"] = 0.0
    want = reference_metrics(gt, results, iou_type)
    got = _kit(gt, results, iou_type, backend)
    lines = _mismatches(f"seed={seed} iou_type={iou_type} backend={backend} GT area 0", want, got)
    assert not lines, "kit disagrees with lvis.LVISEval:\n" + "\n".join(lines)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", IOU_TYPES)
@pytest.mark.parametrize("seed", FEW_SEEDS[:4])
def test_zero_area_ground_truth_matches_official_lvis_eval(seed, iou_type, backend):
    _check_zero_area_gt(seed, iou_type, backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", IOU_TYPES)
@pytest.mark.parametrize("seed", range(4, 60))
def test_zero_area_ground_truth_matches_official_lvis_eval_on_many_seeds(seed, iou_type, backend):
    _check_zero_area_gt(seed, iou_type, backend)


def _check_fixed(seed: int, iou_type: str) -> None:
    """AP-fixed / AP-pool of the fast backend equal those of the official ``LVISEval`` (the
    lvis backend), with a per-class budget small enough to cut."""
    gt, results = _case(seed)
    options = {"fixed": True, "dets_per_class": 40}
    want = _kit(gt, results, iou_type, "lvis", **options)
    got = _kit(gt, results, iou_type, "fast", **options)
    lines = _mismatches(f"seed={seed} iou_type={iou_type} fixed", want, got)
    assert not lines, "fast backend disagrees with the lvis backend:\n" + "\n".join(lines)


@pytest.mark.parametrize("iou_type", IOU_TYPES)
@pytest.mark.parametrize("seed", FEW_SEEDS[:4])
def test_fixed_and_pooled_ap_agree_between_backends(seed, iou_type):
    _check_fixed(seed, iou_type)


@pytest.mark.slow
@pytest.mark.parametrize("iou_type", IOU_TYPES)
@pytest.mark.parametrize("seed", range(4, 80))
def test_fixed_and_pooled_ap_agree_between_backends_on_many_seeds(seed, iou_type):
    _check_fixed(seed, iou_type)


def test_cases_are_deterministic():
    assert make_case(3) == make_case(3)
    assert make_case(3) != make_case(4)


@pytest.mark.slow
def test_generator_produces_every_awkward_kind():
    """Summed over every seed, each awkward input occurs (the generator cannot silently lose
    one), and the official evaluation accepts a zero-area-heavy case."""
    total = Counter()
    for seed in [*FEW_SEEDS, *MANY_SEEDS]:
        gt, results = _case(seed)
        features = case_features(gt, results)
        assert features["frequencies"] == 3, f"seed {seed}: a frequency group is missing"
        total.update(features)
    kinds = (
        "empty_masks",
        "zero_box_sides",
        "zero_box_fine_mask",
        "images_over_300",
        "score_ties",
        "duplicates",
        "negative_dets",
        "not_exhaustive_dets",
        "unverified_dets",
        "categories_without_gt",
        "images_without_gt",
        "boxes_crossing_border",
        "box_mask_disagree",
        "gt_small",
        "gt_medium",
        "gt_large",
        "gt_area_on_range_end",
        "box_area_on_range_end",
    )
    missing = [kind for kind in kinds if total[kind] == 0]
    assert not missing, f"the generator no longer produces {missing}: {dict(total)}"


def test_generated_cases_are_legal():
    """What the generator promises about the records, on the fast seeds."""
    for seed in FEW_SEEDS:
        gt, results = _case(seed)
        images = {i["id"]: i for i in gt["images"]}
        assert 2 <= len(images) <= 6 and 3 <= len(gt["categories"]) <= 8
        assert len({a["id"] for a in gt["annotations"]}) == len(gt["annotations"])
        for ann in gt["annotations"]:
            image = images[ann["image_id"]]
            h, w = image["height"], image["width"]
            assert ann["id"] > 0 and ann["area"] > 0
            assert all(len(part) >= 6 and len(part) % 2 == 0 for part in ann["segmentation"])
            xs = [v for part in ann["segmentation"] for v in part[0::2]]
            ys = [v for part in ann["segmentation"] for v in part[1::2]]
            assert 0 <= min(xs) and max(xs) <= w and 0 <= min(ys) and max(ys) <= h
            x, y, bw, bh = ann["bbox"]
            assert [x, y, x + bw, y + bh] == pytest.approx([min(xs), min(ys), max(xs), max(ys)])
            mask = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
            assert ann["area"] == mask_utils.area(mask)
            positive = {a["category_id"] for a in gt["annotations"] if a["image_id"] == image["id"]}
            assert not positive & set(image["neg_category_ids"])
        assert results
        for det in results:
            image = images[det["image_id"]]
            assert det["segmentation"]["size"] == [image["height"], image["width"]]
            assert isinstance(det["segmentation"]["counts"], str)
            assert len(det["bbox"]) == 4 and min(det["bbox"][2:]) >= 0


# ----------------------------------------------------------------------------- the bug report


def _bug_report_case() -> tuple[dict, list[dict]]:
    """One GT box; an empty-mask detection (score 0.95, zero-width box) outranks the right one."""
    gt = {
        "images": [
            {
                "id": 1,
                "height": 100,
                "width": 100,
                "coco_url": "http://images.cocodataset.org/val2017/000000000001.jpg",
                "neg_category_ids": [],
                "not_exhaustive_category_ids": [],
            }
        ],
        "categories": [{"id": 1, "name": "thing", "frequency": "f", "image_count": 200}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
                "bbox": [10, 10, 20, 20],
                "area": 400,
            }
        ],
    }
    empty = {
        "image_id": 1,
        "category_id": 1,
        "score": 0.95,
        "bbox": [50, 50, 0, 5],
        "segmentation": rle(box_mask(100, 100, 0, 0, 0, 0)),
    }
    right = {
        "image_id": 1,
        "category_id": 1,
        "score": 0.90,
        "bbox": [10, 10, 20, 20],
        "segmentation": rle(box_mask(100, 100, 10, 10, 20, 20)),
    }
    return gt, [empty, right]


@pytest.mark.parametrize("iou_type", IOU_TYPES)
def test_reference_drops_zero_area_detections(iou_type):
    gt, results = _bug_report_case()
    assert mask_utils.area(results[0]["segmentation"]) == 0
    assert reference_metrics(gt, results, iou_type)["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", IOU_TYPES)
def test_zero_area_detection_does_not_cost_ap(iou_type, backend):
    gt, results = _bug_report_case()
    want = reference_metrics(gt, results, iou_type)
    assert want["AP"] == pytest.approx(1.0)
    got = _kit(gt, results, iou_type, backend)
    assert got["AP"] == pytest.approx(1.0, abs=TOLERANCE), f"{iou_type} {backend}: {got['AP']}"
    lines = _mismatches(f"bug report iou_type={iou_type} backend={backend}", want, got)
    assert not lines, "\n".join(lines)
