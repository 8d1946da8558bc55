"""Federated verdicts per image agree with what lvis.LVISEval decides at IoU 0.5."""

import json
from collections import defaultdict

import lvis
import numpy as np
import pytest
from synthetic import rle, toy_detections

from lvisnb.annotations.lvis_compat import LVISEval, LVISFromDict
from lvisnb.viz import verdicts as federated
from lvisnb.viz.scene import load_scene


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_verdicts_equal_lvis_eval_at_iou_half(toy_val, iou_type):
    gt = json.loads(toy_val.read_text())
    results = toy_detections(gt, seed=3)  # over 300 on some images: both sides keep the top 300
    # area 0 is not evaluated: GT instances, empty masks (segm), boxes of width 0 (bbox)
    for ann in gt["annotations"][::29]:
        ann["area"] = 0.0
    images = {i["id"]: i for i in gt["images"]}
    for record in results[::37]:
        image = images[record["image_id"]]
        record["segmentation"] = rle(np.zeros((image["height"], image["width"]), bool))
    for record in results[5::41]:
        record["bbox"][2] = 0.0
    scene = load_scene(gt, toy_val.parents[1], results=results)
    lvis_gt = LVISFromDict(gt)
    # segm: areas from the masks, as the kit's default (detectron2 drops the boxes likewise)
    records = [
        {k: v for k, v in r.items() if not (iou_type == "segm" and k == "bbox")} for r in results
    ]
    official = LVISEval(lvis_gt, lvis.LVISResults(lvis_gt, records), iou_type)
    official.evaluate()
    everything = official.params.area_rng[0]
    # (image, category) -> {status: sorted scores} / matched GT ids, as LVISEval decided
    expected, expected_gt = {}, {}
    for entry in official.eval_imgs:
        if entry is None or entry["area_rng"] != everything:
            continue
        scores = np.asarray(entry["dt_scores"])
        matched = entry["dt_matches"][0] > 0
        ignored = entry["dt_ignore"][0].astype(bool)
        key = (entry["image_id"], entry["category_id"])
        expected[key] = {
            federated.MATCHED: sorted(scores[matched]),
            federated.FALSE_POSITIVE: sorted(scores[~matched & ~ignored]),
            federated.IGNORED_NOT_EXHAUSTIVE: sorted(scores[~matched & ignored]),
        }
        expected_gt[key] = sorted(
            g for g, m in zip(entry["gt_ids"], entry["gt_matches"][0], strict=True) if m > 0
        )

    seen, verdicts = defaultdict(int), []
    for image in gt["images"]:
        instances = lvis_gt.img_ann_map.get(image["id"], [])
        predictions = scene.predictions(image["id"])
        verdict = federated.image_verdict(image, instances, predictions, 0.5, iou_type)
        verdicts.append(verdict)
        got = defaultdict(lambda: defaultdict(list))
        for record, status in zip(verdict.predictions, verdict.prediction_status, strict=True):
            got[image["id"], record["category_id"]][status].append(record["score"])
            seen[status] += 1
        for key, statuses in got.items():
            if key not in expected:  # LVISEval never looked at this pair
                assert set(statuses) <= {federated.IGNORED_UNVERIFIED, federated.NOT_EVALUATED}
                continue
            assert federated.IGNORED_UNVERIFIED not in statuses
            for status, scores in expected[key].items():
                assert sorted(statuses.get(status, [])) == scores, (key, status)
        for key, ids in expected_gt.items():
            if key[0] == image["id"]:
                got_ids = sorted(
                    a["id"]
                    for a, s in zip(verdict.instances, verdict.instance_status, strict=True)
                    if a["category_id"] == key[1] and s == federated.MATCHED
                )
                assert got_ids == ids, key
    # the synthetic results exercise every verdict
    assert all(seen[s] > 10 for s in federated.PREDICTION_STATUSES), dict(seen)
    assert sum(s == federated.NOT_EVALUATED for v in verdicts for s in v.instance_status) > 0


def test_matching_takes_the_best_free_instance_and_later_one_on_ties():
    ious = np.array([[0.6, 0.9, 0.9], [0.7, 0.95, 0.2], [0.4, 0.3, 0.1]])
    dt_match, gt_match = federated.match_category(ious, 0.5)
    # row 0: 0.9 twice, the later column wins; row 1 takes column 1; row 2 has nothing >= 0.5
    assert dt_match.tolist() == [2, 1, -1]
    assert gt_match.tolist() == [-1, 1, 0]


def test_verdict_on_a_hand_built_image():
    image = {
        "id": 1,
        "height": 20,
        "width": 20,
        "neg_category_ids": [2],
        "not_exhaustive_category_ids": [3],
    }
    instances = [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
        {"id": 11, "image_id": 1, "category_id": 1, "bbox": [10, 10, 5, 5], "area": 25},
        {"id": 12, "image_id": 1, "category_id": 3, "bbox": [0, 10, 5, 5], "area": 25},
        {"id": 13, "image_id": 1, "category_id": 5, "bbox": [0, 0, 20, 20], "area": 0},
    ]
    predictions = [
        {"category_id": 1, "score": 0.9, "bbox": [0, 0, 10, 9]},  # matches 10
        {"category_id": 1, "score": 0.8, "bbox": [0, 0, 10, 10]},  # 10 taken: FP
        {"category_id": 2, "score": 0.7, "bbox": [5, 5, 5, 5]},  # negative category: FP
        {"category_id": 3, "score": 0.6, "bbox": [15, 0, 5, 5]},  # not exhaustive: ignored
        {"category_id": 4, "score": 0.5, "bbox": [0, 0, 5, 5]},  # unverified: ignored
        {"category_id": 1, "score": 0.95, "bbox": [10, 10, 0, 5]},  # area 0: not evaluated
        {"category_id": 5, "score": 0.4, "bbox": [0, 0, 20, 20]},  # 13 has area 0: unverified
    ]
    verdict = federated.image_verdict(image, instances, predictions, iou_type="bbox")
    assert verdict.prediction_status == [
        federated.MATCHED,
        federated.FALSE_POSITIVE,
        federated.FALSE_POSITIVE,
        federated.IGNORED_NOT_EXHAUSTIVE,
        federated.IGNORED_UNVERIFIED,
        federated.NOT_EVALUATED,
        federated.IGNORED_UNVERIFIED,
    ]
    assert verdict.prediction_iou[0] == pytest.approx(0.9)
    assert verdict.instance_status == [
        federated.MATCHED,
        federated.MISSED,
        federated.MISSED,
        federated.NOT_EVALUATED,
    ]
    assert verdict.counts() == {
        federated.MATCHED: 1,
        federated.FALSE_POSITIVE: 2,
        federated.IGNORED_NOT_EXHAUSTIVE: 1,
        federated.IGNORED_UNVERIFIED: 2,
        federated.NOT_EVALUATED: 1,
        federated.MISSED: 2,
    }
    with pytest.raises(ValueError, match="iou_type"):
        federated.image_verdict(image, instances, predictions, iou_type="keypoints")


def test_verdict_table_counts_by_group(toy_val):
    gt = json.loads(toy_val.read_text())
    scene = load_scene(toy_val, results=toy_detections(gt, seed=4))
    results = [r for recs in scene.results.values() for r in recs]  # top 300 per image
    frequency = scene.frequency
    verdicts = [scene.verdict(i) for i in scene.image_ids]
    table = federated.verdict_table(verdicts, frequency)
    assert list(table.index) == ["r", "c", "f", "total"]
    assert table.loc["total", list(federated.PREDICTION_STATUSES)].sum() == len(results)
    rare = [r for r in results if frequency[r["category_id"]] == "r"]
    assert table.loc["r", list(federated.PREDICTION_STATUSES)].sum() == len(rare)
    missed = sum(v.counts()[federated.MISSED] for v in verdicts)
    assert table.loc["total", federated.MISSED] == missed > 0


def test_not_exhaustive_ignores_unmatched_predictions_even_of_a_negative_category():
    """LVISEval ignores an unmatched detection whose category is in the image's
    not_exhaustive_category_ids, whether or not the category is also listed as negative."""
    image = {
        "id": 1,
        "height": 20,
        "width": 20,
        "neg_category_ids": [2],
        "not_exhaustive_category_ids": [2],
    }
    predictions = [{"category_id": 2, "score": 0.7, "bbox": [5, 5, 5, 5]}]
    verdict = federated.image_verdict(image, [], predictions, iou_type="bbox")
    assert verdict.prediction_status == [federated.IGNORED_NOT_EXHAUSTIVE]
