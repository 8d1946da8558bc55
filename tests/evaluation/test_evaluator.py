import copy
import json
import re
from collections import defaultdict

import lvis
import numpy as np
import pytest
from synthetic import box_mask, rle, toy_detections
from tiny_lvis import CATEGORIES
from tiny_lvis import ann as _ann
from tiny_lvis import good as _good
from tiny_lvis import image as _image
from tiny_lvis import tiny_gt as _tiny_gt

from lvisnb.annotations.json_file import LVISFormatError
from lvisnb.annotations.lvis_compat import LVISEval, LVISFromDict
from lvisnb.annotations.validate import load_lvis
from lvisnb.evaluation import caps, evaluator, report, result_records, result_validation
from lvisnb.evaluation import metrics as metrics_module
from lvisnb.evaluation import results as detections

# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module", params=["distinct scores", "tied scores"])
def toy_case(request, toy_val):
    gt = json.loads(toy_val.read_text())
    results = toy_detections(gt)
    if request.param == "tied scores":  # ties are broken by input order, as LVIS does
        for record in results:
            record["score"] = round(record["score"], 1)
    snapshot = copy.deepcopy(results)
    runs = {}
    for backend in evaluator.BACKENDS:
        with pytest.warns(UserWarning, match="more than 300 detections"):
            runs[backend] = evaluator.evaluate(toy_val, results, backend=backend)
    return gt, results, snapshot, runs


def _both(gt, results, **kwargs):
    return {b: evaluator.evaluate(gt, results, backend=b, **kwargs) for b in evaluator.BACKENDS}


def _assert_agree(runs, iou_types=evaluator.IOU_TYPES):
    fast, official = runs["fast"], runs["lvis"]
    for iou_type in iou_types:
        assert list(fast.metrics[iou_type]) == list(official.metrics[iou_type])
        for name, value in official.metrics[iou_type].items():
            assert fast.metrics[iou_type][name] == pytest.approx(value, abs=1e-4), (iou_type, name)


# ----------------------------------------------------------------------------- backends agree


def test_toy_detections_exercise_every_lvis_rule(toy_case):
    gt, results, _, runs = toy_case
    images = {i["id"]: i for i in gt["images"]}
    positive = defaultdict(set)
    for ann in gt["annotations"]:
        positive[ann["image_id"]].add(ann["category_id"])
    kinds = defaultdict(int)
    for r in results:
        image = images[r["image_id"]]
        if r["category_id"] in image["neg_category_ids"]:
            kinds["negative"] += 1
        elif r["category_id"] in image["not_exhaustive_category_ids"]:
            kinds["not_exhaustive"] += 1
        elif r["category_id"] not in positive[r["image_id"]]:
            kinds["unverified"] += 1
    assert min(kinds["negative"], kinds["not_exhaustive"], kinds["unverified"]) >= 20
    info = runs["fast"].info
    assert info["images_over_limit"] >= 2 and info["dropped_by_image_limit"] > 0
    assert info["num_verified_detections"] < info["num_detections"]


def test_fast_and_official_backends_agree_on_every_metric(toy_case):
    _, _, _, runs = toy_case
    _assert_agree(runs)
    for iou_type in evaluator.IOU_TYPES:
        metrics = runs["lvis"].metrics[iou_type]
        assert list(metrics) == list(metrics_module.metric_names())
        assert 0.05 < metrics["AP"] < 0.9 and metrics["AP50"] > metrics["AP75"]
        assert all(0 < metrics[name] < 1 for name in ("APr", "APc", "APf", "APpool"))
        assert metrics["APfixed"] != metrics["AP"]  # the per-image limit mattered


def test_per_category_tables_agree_and_describe_categories(toy_case):
    gt, _, _, runs = toy_case
    fast, official = runs["fast"].per_category, runs["lvis"].per_category
    assert list(fast.columns) == [
        "id",
        "name",
        "frequency",
        "train_image_count",
        "val_images",
        "AP_bbox",
        "APfixed_bbox",
        "AP_segm",
        "APfixed_segm",
        "val_instances",
    ]
    for column in ("AP_bbox", "AP_segm", "APfixed_bbox", "APfixed_segm"):
        assert np.array_equal(fast[column].isna(), official[column].isna())
        np.testing.assert_allclose(fast[column].fillna(0), official[column].fillna(0), atol=1e-4)
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    assert fast["id"].tolist() == [c["id"] for c in cats]
    # toy-LVIS is no whole LVIS category set and no train file was given: counts unknown
    assert fast["train_image_count"].isna().all()
    assert runs["fast"].info["train_count_source"] == "unknown (no train file given)"
    pairs = {(a["image_id"], a["category_id"]) for a in gt["annotations"]}
    assert fast["val_images"].tolist() == [sum(c["id"] == p[1] for p in pairs) for c in cats]
    assert fast["val_instances"].sum() == len(gt["annotations"])
    assert fast["AP_bbox"].isna().tolist() == (fast["val_instances"] == 0).tolist()
    # the mean of per-category AP is AP
    assert fast["AP_segm"].mean() == pytest.approx(runs["fast"].metrics["segm"]["AP"], abs=1e-9)


def test_results_list_is_not_modified(toy_case):
    _, results, snapshot, _ = toy_case
    assert results == snapshot


def test_lvis_backend_matches_lvis_eval_run_directly(toy_case, toy_val):
    """The reference path is the official one: LVISResults (300 per image) + LVISEval."""
    _, results, _, runs = toy_case
    gt = LVISFromDict(json.loads(toy_val.read_text()))
    boxes = [{k: r[k] for k in ("image_id", "category_id", "score", "bbox")} for r in results]
    ev = LVISEval(gt, boxes, "bbox")
    ev.run()
    for name, value in ev.get_results().items():
        assert runs["lvis"].metrics["bbox"][name] == pytest.approx(value, abs=1e-12)


def test_ground_truth_can_be_loaded_once_and_reused(toy_case, toy_val):
    _, results, _, runs = toy_case
    truth = evaluator.load_ground_truth(toy_val)
    for gt in (truth, lvis.LVIS(str(toy_val))):
        with pytest.warns(UserWarning):
            again = evaluator.evaluate(gt, results, iou_types="bbox", fixed=False)
        assert again.metrics["bbox"]["AP"] == runs["fast"].metrics["bbox"]["AP"]


def test_options_are_checked():
    with pytest.raises(ValueError, match="iou_types"):
        evaluator.evaluate({}, [], iou_types=("keypoints",))
    with pytest.raises(ValueError, match="backend"):
        evaluator.evaluate({}, [], backend="coco")
    with pytest.raises(ValueError, match="segm_area"):
        evaluator.evaluate({}, [], segm_area="polygon")
    with pytest.raises(ValueError, match="no detections"):
        evaluator.evaluate(_tiny_gt(), [])


# ----------------------------------------------------------------------------- hand-built cases


def test_segm_size_ranges_use_the_mask_area_not_the_box_area():
    """A false positive with a 5x5 mask but a 200x200 box: small for segm, large for bbox."""
    gt = {
        "images": [_image(1, size=(200, 200))],
        "annotations": [_ann(1, 1, 3, 20, 20, 10, 10)],
        "categories": CATEGORIES,
    }
    true_positive = {
        "image_id": 1,
        "category_id": 3,
        "score": 0.9,
        "bbox": [20, 20, 10, 10],
        "segmentation": rle(box_mask(200, 200, 20, 20, 10, 10)),
    }
    false_positive = {
        "image_id": 1,
        "category_id": 3,
        "score": 0.95,
        "bbox": [0, 0, 200, 200],
        "segmentation": rle(box_mask(200, 200, 150, 150, 5, 5)),
    }
    results = [true_positive, false_positive]
    runs = _both(gt, results, fixed=False)
    _assert_agree(runs)
    segm, bbox = runs["fast"].metrics["segm"], runs["fast"].metrics["bbox"]
    assert segm["APs"] == pytest.approx(0.5)  # the FP (mask area 25) outranks the TP
    assert segm["AP"] == pytest.approx(0.5)
    assert bbox["APs"] == pytest.approx(1.0)  # the FP box (area 40000) is large: ignored
    assert bbox["AP"] == pytest.approx(0.5)
    # lvis.LVISResults itself takes the area from the box when one is given:
    ev = LVISEval(LVISFromDict(copy.deepcopy(gt)), copy.deepcopy(results), "segm")
    ev.run()
    assert ev.get_results()["APs"] == pytest.approx(1.0)
    # ... which segm_area="box" reproduces, every metric, on both backends
    raw = {k: float(v) for k, v in ev.get_results().items()}
    for run in _both(gt, results, iou_types=("segm",), fixed=False, segm_area="box").values():
        assert run.info["segm_area"] == "box"
        for name, value in raw.items():
            assert run.metrics["segm"][name] == pytest.approx(value, abs=1e-12), name
    assert runs["fast"].info["segm_area"] == "mask"
    assert "areas from the masks" in report.format_summary(runs["fast"])
    assert "-1.0000" not in report.format_summary(runs["fast"])
    assert "--segm-area box" in runs["fast"].info["segm_area_rule"]


def _one_box_gt(annotation_ids=(1,), area=400.0):
    """One 100x100 image, category 3 ('cup', f), one GT box [10, 10, 20, 20] per id."""
    anns = [_ann(i, 1, 3, 10, 10, 20, 20) | {"area": area} for i in annotation_ids]
    return {"images": [_image(1)], "annotations": anns, "categories": CATEGORIES}


def _box_result(score, box=(10, 10, 20, 20), mask_box=None, category_id=3):
    return {
        "image_id": 1,
        "category_id": category_id,
        "score": score,
        "bbox": list(box),
        "segmentation": rle(box_mask(100, 100, *(mask_box or box))),
    }


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_zero_area_results_are_not_evaluated(iou_type):
    """The issue's minimal case: an empty mask (segm) / a [50, 50, 0, 5] box (bbox) at 0.95
    above the right detection at 0.90: LVISEval gives AP 1.0 (area 0 is not evaluated)."""
    empty = _box_result(0.95, box=(50, 50, 0, 5), mask_box=(0, 0, 0, 0))
    results = [empty, _box_result(0.90)]
    runs = _both(_one_box_gt(), results, iou_types=(iou_type,), fixed=True)
    for run in runs.values():
        metrics = run.metrics[iou_type]
        assert metrics["AP"] == pytest.approx(1.0)
        assert metrics["APfixed"] == pytest.approx(1.0) and metrics["APpool"] == pytest.approx(1)
        assert run.info["zero_area_detections"] == {iou_type: 1}
    assert "not evaluated (area 0, as LVISEval): 1 " in report.format_summary(runs["fast"])


def test_zero_area_ground_truth_is_not_evaluated():
    """A GT record with area 0 is neither matchable nor counted, and does not make its category
    positive on its image: a detection there is then unverified (LVISEval's get_ann_ids)."""
    gt = _one_box_gt()
    gt["annotations"].append(_ann(2, 1, 1, 60, 60, 20, 20) | {"area": 0.0})
    results = [_box_result(0.9), _box_result(0.8, box=(60, 60, 20, 20), category_id=1)]
    runs = _both(gt, results, fixed=False)
    _assert_agree(runs)
    for run in runs.values():
        for iou_type in ("bbox", "segm"):
            assert run.metrics[iou_type]["AP"] == pytest.approx(1.0)
            assert run.metrics[iou_type]["APr"] == -1.0  # abacus has no evaluated GT
        assert run.info["zero_area_gt"] == 1
        assert run.per_category["val_instances"].tolist() == [0, 0, 1]


@pytest.mark.parametrize("ids", [(7, 7), (0, 1)])
def test_repeated_or_zero_annotation_ids_are_rejected(ids, tmp_path):
    """LVISEval gives 0.2525 for two perfect detections of two GT sharing id 7 (or with id 0),
    the fast backend 1.0: neither is a legal LVIS file, so both are rejected at load."""
    gt = _one_box_gt(annotation_ids=ids)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    expected = "share the id 7" if ids == (7, 7) else r"annotations\[0\] field 'id' is 0"
    for backend in evaluator.BACKENDS:
        with pytest.raises(LVISFormatError, match=re.escape(str(path)) + ".*" + expected):
            evaluator.evaluate(path, [_box_result(0.9)], backend=backend)
    with pytest.raises(LVISFormatError, match=expected):
        load_lvis(path)


def test_segm_with_nothing_evaluable_gives_zero_ap():
    """One result on a category unverified for its image: LVISEval gives AP 0 for segm (the
    kit used to raise AssertionError: unreachable)."""
    results = [_box_result(0.9, category_id=2)]
    for run in _both(_one_box_gt(), results).values():
        assert run.metrics["segm"]["AP"] == 0.0 and run.metrics["bbox"]["AP"] == 0.0


def test_polygon_and_uncompressed_rle_results_are_converted_as_lvis_does():
    """Both other legal forms of a mask give what its compressed RLE gives."""
    compressed = [_box_result(0.9, box=(10, 10, 20, 20)), _box_result(0.8, box=(12, 8, 20, 24))]
    mask = box_mask(100, 100, 12, 8, 20, 24).ravel(order="F").astype(np.int64)
    starts = np.flatnonzero(np.diff(np.concatenate([[0], mask, [0]])))
    counts = np.diff(np.concatenate([[0], starts, [mask.size]])).tolist()
    other = copy.deepcopy(compressed)
    other[0]["segmentation"] = [[10, 10, 30, 10, 30, 30, 10, 30]]
    other[1]["segmentation"] = {"size": [100, 100], "counts": counts}
    want = _both(_one_box_gt(), compressed, iou_types=("segm",))
    got = _both(_one_box_gt(), other, iou_types=("segm",))
    for backend in evaluator.BACKENDS:
        assert got[backend].metrics == want[backend].metrics
    assert want["fast"].metrics["segm"]["AP"] > 0


def _cap_case():
    """Image 1: one 'abacus' (rare) found with score 0.1, below 300 'banana' (common) false
    positives on the same image; banana is verified absent there (negative)."""
    gt = {
        "images": [_image(1, neg=[2]), _image(2, neg=[1, 2])],
        "annotations": [_ann(1, 1, 1, 10, 10, 30, 30), _ann(2, 2, 3, 50, 50, 20, 20)],
        "categories": CATEGORIES,
    }
    rng = np.random.default_rng(0)
    results = [
        {"image_id": 1, "category_id": 2, "score": float(s), "bbox": [60, 60, 10, 10]}
        for s in rng.uniform(0.5, 1.0, 300)
    ]
    results.append({"image_id": 1, "category_id": 1, "score": 0.1, "bbox": [10, 10, 30, 30]})
    results.append({"image_id": 2, "category_id": 3, "score": 0.8, "bbox": [50, 50, 20, 20]})
    return gt, results


def test_per_image_limit_changes_ap_and_ap_fixed_removes_it():
    gt, results = _cap_case()
    with pytest.warns(UserWarning, match="1 image\\(s\\) have more than 300 detections"):
        runs = _both(gt, results, iou_types=("bbox",))
    _assert_agree(runs, ("bbox",))
    m = runs["fast"].metrics["bbox"]
    assert m["APr"] == 0.0  # the abacus detection was cut by the 300-per-image limit
    assert m["APf"] == pytest.approx(1.0)
    assert m["AP"] == pytest.approx(0.5)
    assert m["APc"] == -1.0  # banana has no GT anywhere
    assert m["APfixed_r"] == pytest.approx(1) and m["APfixed"] == pytest.approx(1)
    # pooled over all categories: 300 banana FPs rank above the abacus TP, the cup TP first
    # (0.8 > most banana scores): precision 1 at recall 0.5, then 2 / 302 at recall 1.
    banana_above_cup = sum(r["score"] > 0.8 for r in results if r["category_id"] == 2)
    first = 1 / (banana_above_cup + 1)
    expected = (51 * max(first, 2 / 302) + 50 * (2 / 302)) / 101
    assert m["APpool"] == pytest.approx(expected, abs=1e-9)
    assert m["APpool_r"] == pytest.approx(1) and m["APpool_f"] == pytest.approx(1)
    assert m["APpool_c"] == -1.0


def test_dets_per_class_budget_keeps_the_best_scored():
    gt, results = _cap_case()
    # a better-scored abacus false positive on image 2, where abacus is verified absent
    results.append({"image_id": 2, "category_id": 1, "score": 0.2, "bbox": [0, 0, 5, 5]})
    for budget, expected in ((1, 0.0), (2, 0.5)):
        with pytest.warns(UserWarning):
            runs = _both(gt, results, iou_types=("bbox",), dets_per_class=budget)
        _assert_agree(runs, ("bbox",))
        assert runs["fast"].metrics["bbox"]["APfixed_r"] == pytest.approx(expected)


# ----------------------------------------------------------------------------- validation


def _counts(mask_size=(100, 100)):
    return rle(box_mask(*mask_size, 10, 10, 30, 30))["counts"]


INVALID_RECORDS = [
    ({"category_id": 99}, "category_id", "99 is not a category"),
    ({"image_id": 5}, "image_id", "5 is not an image"),
    ({"image_id": 1.0}, "image_id", "must be an integer"),
    ({"score": float("nan")}, "score", "must be finite"),
    ({"score": "high"}, "score", "must be a number"),
    ({"score": [0.5]}, "score", "must be a number"),
    ({"image_id": 2**64}, "image_id", "beyond 64-bit integers"),
    ({"category_id": -(2**63) - 1}, "category_id", "beyond 64-bit integers"),
    ({"image_id": [1]}, "image_id", "must be an integer"),
    ({"bbox": [1, 2, float("inf"), 3]}, "bbox", "must be finite"),
    ({"bbox": [1, 2, -3, 3]}, "bbox", "negative width or height"),
    ({"bbox": [1, 2, 3]}, "bbox", "must be 4 numbers"),
    ({"segmentation": [[1, 2, 3, 4]]}, "segmentation", "polygon 0 has 4 numbers"),
    ({"segmentation": [[1, 2, 3, 4, 5, 6, 7]]}, "segmentation", "needs an even count"),
    ({"segmentation": []}, "segmentation", "non-empty list of polygons"),
    ({"segmentation": [[]]}, "segmentation", "polygon 0 has 0 numbers"),
    ({"segmentation": [[1, 2, 3, "4", 5, 6]]}, "segmentation", "list of numbers"),
    ({"segmentation": [[1, 2, 3, 4, 2.08e8, 3.52e8]]}, "segmentation", "far outside"),
    ({"segmentation": [[1, 2, 3, 4, 5, float("nan")]]}, "segmentation", "not finite"),
    ({"segmentation": "abc"}, "segmentation", "must be polygons"),
    ({"segmentation": {"size": [100, 90], "counts": _counts()}}, "segmentation.size", ""),
    ({"segmentation": {"size": [100, 100], "counts": [0, 5]}}, "segmentation", "add up to 5"),
    ({"segmentation": {"size": [100, 90], "counts": [9000]}}, "segmentation", "size is"),
    ({"segmentation": {"size": [100, 100], "counts": [-5, 10005]}}, "segmentation", "negative"),
    (
        {"segmentation": {"size": [100, 100], "counts": _counts()[:-1]}},
        "segmentation.counts",
        "not a valid compressed RLE",
    ),
    (
        {"segmentation": {"size": [100, 100], "counts": _counts((90, 100))}},
        "segmentation.counts",
        "runs cover 9000 pixels",
    ),
    (
        {"segmentation": {"size": [100, 100], "counts": "~~" + _counts()}},
        "segmentation.counts",
        "not a valid compressed RLE string",
    ),
]


@pytest.mark.parametrize(("bad", "field", "reason"), INVALID_RECORDS)
def test_invalid_records_name_the_first_offender(bad, field, reason):
    records = [_good(), _good(score=0.7), _good() | bad, _good() | bad]
    with pytest.raises(ValueError, match=r"<list>: results\[2\] \(image_id=.*\) field") as error:
        evaluator.evaluate(_tiny_gt(), records, fixed=False)
    assert f"field '{field}'" in str(error.value)
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        case
        for case in INVALID_RECORDS
        if case[1] != "score" and case[0].get("bbox") is None and "finite" not in case[2]
    ]
    + [({"score": "high"}, "score", "must be a number")],
)
@pytest.mark.parametrize("iou_types", [("bbox", "segm"), ("segm",)])
def test_invalid_records_in_a_file_name_the_first_offender(tmp_path, bad, field, reason, iou_types):
    """Files are decoded typed (well-typed records) or as dicts (the others): same messages."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps([_good(), _good(score=0.7), _good() | bad, _good() | bad]))
    expected = re.escape(f"{path}: results[2] (image_id=") + r".*\) field"
    with pytest.raises(ValueError, match=expected) as error:
        evaluator.evaluate(_tiny_gt(), path, iou_types=iou_types, fixed=False)
    assert f"field '{field}'" in str(error.value)
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"bbox": [1, 2, -3, 3]}, "negative width or height"),
        ({"bbox": [1, 2, 3]}, "must be 4 numbers"),
        ({"bbox": None}, "must be 4 numbers"),
    ],
)
def test_invalid_boxes_in_a_file_matter_only_for_bbox(tmp_path, bad, reason):
    path = tmp_path / "results.json"
    path.write_text(json.dumps([_good(), _good() | bad]))
    with pytest.raises(
        ValueError, match=re.escape(f"{path}: results[1] (image_id=1) field 'bbox'")
    ):
        evaluator.evaluate(_tiny_gt(), path, fixed=False)
    segm = evaluator.evaluate(_tiny_gt(), path, iou_types=("segm",), fixed=False)
    assert segm.info["num_detections"] == 2


def test_missing_boxes_or_masks_in_a_file_are_reported(tmp_path):
    path = tmp_path / "results.json"
    no_box = {k: v for k, v in _good().items() if k != "bbox"}
    no_mask = {k: v for k, v in _good().items() if k != "segmentation"}
    path.write_text(json.dumps([_good(), no_box]))
    with pytest.raises(ValueError, match=r"results\[1\] \(image_id=1\) field 'bbox' is missing"):
        evaluator.evaluate(_tiny_gt(), path, fixed=False)
    path.write_text(json.dumps([no_box, _good()]))
    with pytest.raises(ValueError, match=r"results\[1\] .* field 'bbox' is given but results\[0\]"):
        evaluator.evaluate(_tiny_gt(), path, iou_types=("bbox",), fixed=False)
    path.write_text(json.dumps([_good(), no_mask]))
    for iou_types in (("segm",), ("bbox", "segm")):
        with pytest.raises(ValueError, match=r"results\[1\] .* 'segmentation' is missing"):
            evaluator.evaluate(_tiny_gt(), path, iou_types=iou_types, fixed=False)


def test_results_files_are_decoded_typed_when_well_typed(tmp_path):
    path = tmp_path / "results.json"
    extra = _good(extra_key={"anything": [1, "x"]}, score=1)  # unknown keys are skipped
    path.write_text(json.dumps([_good(), extra]))
    records, source = result_records.read_results(path)
    assert source == str(path)
    assert [type(r) for r in records] == [detections.Record] * 2
    assert records[1].score == 1.0 and records[1].bbox == (10.0, 10.0, 30.0, 30.0)
    assert records[1].segmentation == detections.RLE((100, 100), _good()["segmentation"]["counts"])
    masks_only, _ = result_records.read_results(path, boxes=False)
    assert [type(r) for r in masks_only] == [detections.MaskRecord] * 2
    boxes_only, _ = result_records.read_results(path, masks=False)
    assert [type(r) for r in boxes_only] == [detections.BoxRecord] * 2
    assert boxes_only[1].bbox == (10.0, 10.0, 30.0, 30.0)
    tiny = evaluator.load_ground_truth(_tiny_gt())
    with pytest.raises(ValueError, match="without their masks"):
        result_validation.validate_detections(
            boxes_only, tiny.image_ids, tiny.image_sizes, tiny.category_ids, False, True
        )
    no_box = {k: v for k, v in _good().items() if k != "bbox"}
    mask_only = tmp_path / "mask_only.json"
    mask_only.write_text(json.dumps([no_box]))  # boxes must come from the masks: kept
    assert [type(r) for r in result_records.read_results(mask_only, masks=False)[0]] == [
        detections.Record
    ]
    path.write_text(json.dumps([_good(), _good(score="0.5")]))
    assert [type(r) for r in result_records.read_results(path)[0]] == [dict, dict]
    # typed records give the same columns, areas and RLE dicts as the dicts
    gt = evaluator.load_ground_truth(_tiny_gt())
    typed = [_good(), _good(score=0.25, category_id=2)]
    path.write_text(json.dumps(typed))
    args = (gt.image_ids, gt.image_sizes, gt.category_ids, True, True)
    a = result_validation.validate_detections(result_records.read_results(path)[0], *args)
    b = result_validation.validate_detections(typed, *args)
    for name in ("image_id", "category_id", "score", "bbox"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    indices = np.arange(2)
    assert (
        detections.rle_dicts(a, indices)
        == detections.rle_dicts(b, indices)
        == [r["segmentation"] for r in typed]
    )
    np.testing.assert_array_equal(
        result_validation.mask_areas(a, indices), result_validation.mask_areas(b, indices)
    )
    np.testing.assert_array_equal(
        detections.boxes_from_masks(a, indices), detections.boxes_from_masks(b, indices)
    )
    _assert_agree(_both(_tiny_gt(), path, fixed=False), ("bbox", "segm"))
    with pytest.raises(ValueError, match="without their boxes"):
        result_validation.validate_detections(
            result_records.read_results(path, boxes=False)[0], *args
        )


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_ids_beyond_int64_in_a_file_are_reported(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps([_good(), _good(image_id=2**63)]))
    assert type(result_records.read_results(path)[0][1]) is detections.Record
    expected = r"results\[1\] .* field 'image_id' is 9223372036854775808, beyond 64-bit"
    with pytest.raises(ValueError, match=expected):
        evaluator.evaluate(_tiny_gt(), path, fixed=False)


def test_results_file_and_list_give_the_same_evaluation(toy_case, toy_val, tmp_path):
    _, results, _, runs = toy_case
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    for iou_types in (evaluator.IOU_TYPES, ("segm",)):
        with pytest.warns(UserWarning, match="more than 300 detections"):
            again = evaluator.evaluate(toy_val, path, iou_types=iou_types)
        for iou_type in iou_types:
            assert again.metrics[iou_type] == runs["fast"].metrics[iou_type]
            np.testing.assert_array_equal(
                again.precision[iou_type], runs["fast"].precision[iou_type]
            )


def test_missing_fields_and_files_are_reported(tmp_path):
    record = _good()
    del record["score"]
    with pytest.raises(ValueError, match=r"results\[1\] \(image_id=1\) field 'score' is missing"):
        evaluator.evaluate(_tiny_gt(), [_good(), record], fixed=False)
    path = tmp_path / "results.json"
    path.write_text(json.dumps([_good(), _good(category_id=42)]))
    with pytest.raises(
        ValueError, match=re.escape(f"{path}: results[1] (image_id=1) field 'category_id' 42")
    ):
        evaluator.evaluate(_tiny_gt(), path)
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="JSON list of detections"):
        evaluator.evaluate(_tiny_gt(), path)
    with pytest.raises(FileNotFoundError):
        evaluator.evaluate(_tiny_gt(), tmp_path / "missing.json")
    gt = _tiny_gt()
    del gt["images"][1]["neg_category_ids"]
    with pytest.raises(ValueError, match=r"images\[1\] \(id=7\) needs a list 'neg_category_ids'"):
        evaluator.evaluate(gt, [_good()])


def test_box_only_results_are_enough_for_bbox():
    records = [{k: v for k, v in _good().items() if k != "segmentation"}]
    result = evaluator.evaluate(_tiny_gt(), records, iou_types=["bbox"])
    assert result.metrics["bbox"]["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="field 'segmentation' is missing.*--iou-types bbox"):
        evaluator.evaluate(_tiny_gt(), records, iou_types=["segm"])


def test_mask_only_results_get_boxes_and_areas_from_masks():
    records = [{k: v for k, v in _good().items() if k != "bbox"}]
    runs = _both(_tiny_gt(), records)
    _assert_agree(runs)
    assert runs["fast"].metrics["bbox"]["AP"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- building blocks


def test_per_image_cap_reproduces_lvis_results_order():
    rng = np.random.default_rng(2)
    n = 500
    records = [
        {
            "image_id": int(rng.integers(1, 4)),
            "category_id": 1,
            "score": float(rng.integers(0, 20)) / 20,  # many ties
            "bbox": [0, 0, 1, 1],
            "id": i,
        }
        for i in range(n)
    ]
    det = detections.Detections(
        image_id=np.array([r["image_id"] for r in records]),
        category_id=np.ones(n, dtype=np.int64),
        score=np.array([r["score"] for r in records]),
        bbox=None,
        segmentation=None,
    )
    kept, info = caps.cap_per_image(det, 150)
    expected = lvis.LVISResults.limit_dets_per_image(None, records, 150)
    assert kept.tolist() == [r["id"] for r in expected]
    assert info["images_over_limit"] == 3
    # sorted: the same ones, each image's in descending score order, ties in input order
    kept, _ = caps.cap_per_image(det, 150, sort=True)
    by_image = defaultdict(list)
    for r in expected:
        by_image[r["image_id"]].append(r)
    in_order = [sorted(rs, key=lambda r: r["score"], reverse=True) for rs in by_image.values()]
    assert kept.tolist() == [r["id"] for rs in in_order for r in rs]


# ----------------------------------------------------------------------------- reading results


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'[{"score": NaN}]', "NaN at line 1, column 12 is not JSON"),
        (b'[{"score": Infinity}]', "Infinity at line 1"),
        (b"\xef\xbb\xbf[]", "byte-order mark"),
        ("[]".encode("utf-16"), "UTF-16"),
        (b"", "the file is empty"),
        (b'[{"score": 1', "cut short"),
        (b'{"annotations": []}', "a JSON list of detections, got a dict"),
    ],
)
def test_unreadable_results_files_are_named_in_words(tmp_path, text, expected):
    path = tmp_path / "results.json"
    path.write_bytes(text)
    with pytest.raises(ValueError, match=re.escape(f"{path}: ") + ".*" + re.escape(expected)):
        result_records.read_results(path)


def test_ids_beyond_float64_precision_evaluate_exactly():
    """Image, category and annotation ids near 2**62 (legal JSON integers): the fast backend
    numbers images and categories by position, so no id is rounded on its way to hotcoco."""
    big = 2**62
    gt = _one_box_gt(annotation_ids=(big + 1, big + 3))
    gt["images"] = [_image(big + 1), _image(big + 2)]
    gt["categories"] = [c | {"id": big + c["id"]} for c in CATEGORIES]
    gt["annotations"][0] |= {"image_id": big + 1, "category_id": big + 3}
    gt["annotations"][1] |= {"image_id": big + 2, "category_id": big + 3}
    results = [
        _box_result(0.9) | {"image_id": big + 1, "category_id": big + 3},
        _box_result(0.8) | {"image_id": big + 2, "category_id": big + 3},
        _box_result(0.7) | {"image_id": big + 2, "category_id": big + 2},  # unverified there
    ]
    runs = _both(gt, results)
    _assert_agree(runs)
    assert runs["fast"].metrics["bbox"]["AP"] == pytest.approx(1.0)


def test_an_ignore_flag_in_ground_truth_is_refused(tmp_path):
    """LVISEval honours 'ignore', hotcoco knows only iscrowd: the backends would disagree on
    such a file (0.0 vs 0.505), and LVIS has no such flag, so it is refused at load."""
    gt = _one_box_gt(annotation_ids=(1, 2))
    gt["annotations"][1]["ignore"] = 1
    with pytest.raises(LVISFormatError, match=r"annotations\[1\] \(id=2\) field 'ignore'"):
        evaluator.evaluate(gt, [_box_result(0.9)])
    gt["annotations"][1]["ignore"] = 0
    _assert_agree(_both(gt, [_box_result(0.9)]))


def test_train_counts_come_from_the_train_file_given(toy_train, toy_val):
    """``train_ann``: images of the train file per category, counted from its annotations
    (toy-LVIS writes the same numbers into its categories' ``image_count``)."""
    train = json.loads(toy_train.read_text())
    val = json.loads(toy_val.read_text())
    results = toy_detections(val)[:50]
    evaluation = evaluator.evaluate(
        toy_val, results, iou_types=("bbox",), fixed=False, train_ann=toy_train
    )
    expected = {c["id"]: c["image_count"] for c in train["categories"]}
    table = evaluation.per_category
    assert table["train_image_count"].tolist() == [expected[i] for i in table["id"]]
    assert evaluation.info["train_count_source"] == "training images (lvis_v1_train.json)"
    assert (table["train_image_count"] != table["val_images"]).any()
