"""Bootstrap intervals (lvisnb.evaluation.bootstrap) and paired comparisons
(lvisnb.evaluation.comparison.compare)."""

import copy
import json
import warnings

import lvis
import numpy as np
import pytest
from synthetic import toy_detections

from lvisnb import cli
from lvisnb.annotations.lvis_compat import LVISEval, LVISFromDict
from lvisnb.evaluation import bootstrap as boot
from lvisnb.evaluation import comparison, evaluator, report
from lvisnb.evaluation.ground_truth import load_ground_truth
from lvisnb.evaluation.metrics import IOU_THRESHOLDS, RECALL_POINTS, interpolated_precision
from lvisnb.evaluation.result_records import read_detections

# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def toy_gt(toy_val):
    return json.loads(toy_val.read_text())


@pytest.fixture(scope="module")
def toy_results(toy_gt):
    """Random results with distinct scores (toy_detections), 420 on some images (cut to 300)."""
    return toy_detections(toy_gt, seed=5)


def _evaluate(gt, results, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice")
        warnings.filterwarnings("ignore", ".*more than 300 detections.*")
        return evaluator.evaluate(gt, results, **kwargs)


@pytest.fixture(scope="module")
def toy_matches(toy_val, toy_results):
    """Per IoU type, the Matches of the standard evaluation (the kit's own pipeline)."""
    truth = load_ground_truth(toy_val)
    options = evaluator._Options(evaluator.IOU_TYPES, "fast", False, 300, 10_000, "mask", None, 1)
    arrays = (truth.image_ids, truth.image_sizes, truth.category_ids)
    det = read_detections(toy_results, *arrays, need_boxes=True, need_masks=True)
    source = det.source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = evaluator._prepare(truth, det, source, options)
    runner = evaluator._runner(prepared, options)
    metrics = {t: runner.standard(t, prepared.standard, 300)[1] for t in evaluator.IOU_TYPES}
    return truth, runner.matches, metrics


def _reference_ap(matches: boot.Matches, weights: np.ndarray) -> np.ndarray:
    """AP_k [K] of one replicate, category by category, with interpolated_precision's
    weights (NaN where the category has no GT in the replicate)."""
    gt = boot.weighted_gt(matches, weights[None])[0]
    out = np.full(matches.num_categories, np.nan)
    for k in np.flatnonzero(gt):
        rows = matches.category == k
        w = weights[matches.image[rows]]
        out[k] = interpolated_precision(matches.tp[:, rows], matches.fp[:, rows], gt[k], w).mean()
    return out


def _duplicated(gt: dict, results: list[dict], weights: np.ndarray):
    """The data set in which image row i appears weights[i] times, under new ids."""
    images = sorted(gt["images"], key=lambda image: image["id"])
    by_image = {}
    for record in results:
        by_image.setdefault(record["image_id"], []).append(record)
    anns = {}
    for ann in gt["annotations"]:
        anns.setdefault(ann["image_id"], []).append(ann)
    out = {**gt, "images": [], "annotations": []}
    new_results, next_id = [], 1
    for image, count in zip(images, weights.tolist(), strict=True):
        for copy_index in range(count):
            new_id = image["id"] * 100 + copy_index  # a new id, order within copies kept
            out["images"].append({**image, "id": new_id})
            for ann in anns.get(image["id"], []):
                out["annotations"].append({**ann, "id": next_id, "image_id": new_id})
                next_id += 1
            new_results += [{**r, "image_id": new_id} for r in by_image.get(image["id"], [])]
    return out, new_results


def _lvis_eval(gt: dict, results: list[dict], iou_type: str) -> dict:
    lvis_gt = LVISFromDict(copy.deepcopy(gt))
    records = copy.deepcopy(results)
    if iou_type == "segm":  # mask areas, as the kit's default segm_area="mask"
        for record in records:
            record.pop("bbox")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = lvis.LVISResults(lvis_gt, records, max_dets=300)
    ev = LVISEval(lvis_gt, dt, iou_type)
    ev.run()
    return {name: float(value) for name, value in ev.get_results().items()}


# ----------------------------------------------------------------------------- equal to LVIS


def test_unit_weights_reproduce_the_plain_metrics(toy_matches):
    truth, matches, metrics = toy_matches
    ones = np.ones((1, len(truth.image_ids)), dtype=np.int32)
    for iou_type, m in matches.items():
        values = boot.replicate_metrics(m, ones, truth.frequency)
        for name in boot.METRICS:
            assert values[name][0] == pytest.approx(metrics[iou_type][name], abs=1e-12)


@pytest.mark.parametrize("iou_type", evaluator.IOU_TYPES)
def test_integer_weights_equal_lvis_eval_on_duplicated_images(
    toy_gt, toy_results, toy_matches, iou_type
):
    truth, matches, _ = toy_matches
    rng = np.random.default_rng(3)
    weights = rng.multinomial(len(truth.image_ids), np.full(len(truth.image_ids), 1 / 60))
    weights[:3] = [0, 2, 3]  # images left out, doubled and tripled for sure
    assert (weights == 0).any() and (weights > 1).any()
    ours = boot.replicate_metrics(matches[iou_type], weights[None], truth.frequency)
    official = _lvis_eval(*_duplicated(toy_gt, toy_results, weights), iou_type)
    for name in boot.METRICS:
        assert ours[name][0] == pytest.approx(official[name], abs=1e-12), name


def test_not_exhaustive_and_negative_categories_carry_through(toy_matches):
    """The toy case has detections ignored on not-exhaustive categories (neither TP nor FP)
    and false positives on negative ones: both reach the bootstrap's flags."""
    truth, matches, _ = toy_matches
    m = matches["bbox"]
    ignored = ~(m.tp | m.fp)
    assert ignored.any(axis=1).all()
    keys = m.image * truth.num_categories + m.category
    assert np.isin(keys[ignored[0]], truth.not_exhaustive).all()
    assert m.fp[:, np.isin(keys, truth.negative)].all()


@pytest.mark.parametrize("block_elements", [1, 64, boot.BLOCK_ELEMENTS])
def test_replicates_equal_category_by_category_weighted_precision(
    toy_matches, monkeypatch, block_elements
):
    truth, matches, _ = toy_matches
    monkeypatch.setattr(boot, "BLOCK_ELEMENTS", block_elements)  # many blocks, or one
    weights = boot.image_weights(len(truth.image_ids), 4, seed=1)
    sums, gt = boot.precision_sums(matches["segm"], weights)
    for b in range(len(weights)):
        expected = _reference_ap(matches["segm"], weights[b])
        got = np.where(gt[b] > 0, sums[b] / (len(IOU_THRESHOLDS) * len(RECALL_POINTS)), np.nan)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, equal_nan=True)


def test_recall_counts_are_searchsorted_exactly():
    rng = np.random.default_rng(0)
    exact = np.concatenate([RECALL_POINTS, np.arange(0, 2001) / 2000, [0.29, 0.57, 0.58]])
    values = np.concatenate(
        [rng.random(10_000), exact, np.nextafter(exact, 2), np.nextafter(exact, -1)]
    )
    values = np.clip(values, 0, 1).reshape(1, -1)
    expected = np.searchsorted(RECALL_POINTS, values, side="right")
    np.testing.assert_array_equal(boot._recall_counts(values), expected)


# ----------------------------------------------------------------------------- intervals


@pytest.fixture(scope="module")
def with_bootstrap(toy_val, toy_results):
    return _evaluate(toy_val, toy_results, fixed=False, bootstrap=100, seed=0)


def test_intervals_contain_the_point_estimates(with_bootstrap):
    assert set(with_bootstrap.intervals) == set(evaluator.IOU_TYPES)
    for iou_type, values in with_bootstrap.intervals.items():
        assert list(values) == list(boot.METRICS)
        for name, (low, high) in values.items():
            assert low < with_bootstrap.metrics[iou_type][name] < high, (iou_type, name)
            assert high - low < 0.2
        assert with_bootstrap.replicates[iou_type]["AP"].shape == (100,)


def test_a_fixed_seed_gives_identical_intervals(toy_val, toy_results, with_bootstrap):
    again = _evaluate(toy_val, toy_results, fixed=False, bootstrap=100, seed=0)
    other = _evaluate(toy_val, toy_results, fixed=False, bootstrap=100, seed=1)
    assert again.intervals == with_bootstrap.intervals
    assert other.intervals != with_bootstrap.intervals
    assert other.metrics == with_bootstrap.metrics


def test_no_bootstrap_adds_nothing(toy_val, toy_results, with_bootstrap):
    plain = _evaluate(toy_val, toy_results, fixed=False)
    assert plain.intervals is None and plain.replicates is None
    assert "intervals" not in plain.to_dict() and "bootstrap" not in plain.info
    assert plain.metrics == with_bootstrap.metrics


def test_to_dict_with_intervals_is_json_ready(with_bootstrap, tmp_path):
    data = json.loads(json.dumps(with_bootstrap.to_dict()))
    assert data["info"]["bootstrap"]["replicates"] == 100
    assert data["info"]["bootstrap"]["seed"] == 0
    assert data["intervals"]["segm"]["APr"] == list(with_bootstrap.intervals["segm"]["APr"])
    bias = data["info"]["bootstrap"]["bias"]["bbox"]["AP"]
    replicates = with_bootstrap.replicates["bbox"]["AP"]
    assert bias == pytest.approx(replicates.mean() - with_bootstrap.metrics["bbox"]["AP"])
    path = report.save_metrics(tmp_path / "metrics.json", with_bootstrap)
    assert json.loads(path.read_text())["intervals"] == data["intervals"]


def test_image_weights_are_resamples_of_every_image():
    weights = boot.image_weights(50, 7, seed=0)
    assert weights.shape == (7, 50) and weights.dtype == np.int32
    assert (weights.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(weights, boot.image_weights(50, 7, seed=0))


def test_undefined_groups_have_no_interval():
    assert boot.percentile_interval(np.full(10, -1.0)) is None
    low, high = boot.percentile_interval(np.array([-1.0, 0.1, 0.2, 0.3]), confidence=0.5)
    assert (low, high) == pytest.approx((0.15, 0.25))
    assert boot.difference_interval(np.array([0.1, -1]), np.array([0.3, 0.5])) == (
        pytest.approx(0.2),
        pytest.approx(0.2),
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bootstrap": 10, "backend": "lvis"}, 'bootstrap needs backend="fast"'),
        ({"bootstrap": -1}, "bootstrap must be"),
        ({"bootstrap": 2.5}, "bootstrap must be"),
        ({"bootstrap": True}, "bootstrap must be"),
    ],
)
def test_bootstrap_options_are_checked(toy_val, toy_results, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluator.evaluate(toy_val, toy_results[:5], **kwargs)


# ----------------------------------------------------------------------------- compare


def test_compare_is_paired_and_its_difference_is_b_minus_a(toy_val, toy_results, with_bootstrap):
    rng = np.random.default_rng(0)
    worse = [r for r in toy_results if rng.random() > 0.3]  # a third of the detections lost
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = comparison.compare(toy_val, toy_results, worse, bootstrap=100, seed=0)
    table = result.table.set_index(["iou_type", "metric"])
    assert list(table.columns) == ["A", "B", "difference", "low", "high"]
    assert len(table) == len(evaluator.IOU_TYPES) * len(boot.METRICS)
    for (iou_type, name), row in table.iterrows():
        assert row["A"] == with_bootstrap.metrics[iou_type][name]
        assert row["difference"] == pytest.approx(row["B"] - row["A"])
        assert row["low"] <= row["difference"] <= row["high"], (iou_type, name)
        assert row["high"] < 0 or name == "APr"  # few rare categories: may straddle 0
        replicates = result.b.replicates[iou_type][name] - result.a.replicates[iou_type][name]
        assert (row["low"], row["high"]) == pytest.approx(
            tuple(np.quantile(replicates, [0.025, 0.975]))
        )
    assert json.loads(json.dumps(result.to_dict()))["info"]["replicates"] == 100


def test_compare_of_a_result_with_itself_is_exactly_zero(toy_val, toy_results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = comparison.compare(toy_val, toy_results, toy_results, ["bbox"], bootstrap=20)
    assert (result.table[["difference", "low", "high"]] == 0).all().all()
    with pytest.raises(ValueError, match="bootstrap >= 1"):
        comparison.compare(toy_val, toy_results, toy_results, bootstrap=0)


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_and_writes_intervals(toy_val, toy_results, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(toy_results))
    out = tmp_path / "metrics.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.main(
            [
                "evaluate",
                str(toy_val),
                str(results),
                "--iou-types",
                "bbox",
                "--no-fixed",
                "--out",
                str(out),
                "--bootstrap",
                "30",
                "--seed",
                "4",
            ]
        )
    assert code == 0
    text = capsys.readouterr().out
    assert "95% bootstrap intervals (percentile; 30 resamples of the images, seed 4;" in text
    data = json.loads(out.read_text())
    low, high = data["intervals"]["bbox"]["AP"]
    assert f"[{low:.4f}, {high:.4f}]" in text
    assert data["info"]["bootstrap"]["seed"] == 4


@pytest.mark.parametrize("seed", range(4))
def test_unit_weights_reproduce_the_metrics_on_awkward_cases(seed, monkeypatch):
    """The differential cases (ties, area 0, border boxes, > 300 per image, federated labels):
    a replicate that draws every image once is the plain evaluation."""
    from lvis_cases import make_case

    gt, results = make_case(seed)
    monkeypatch.setattr(boot, "image_weights", lambda n, b, seed: np.ones((b, n), np.int32))
    evaluation = _evaluate(gt, results, fixed=False, bootstrap=1)
    for iou_type, values in evaluation.replicates.items():
        for name in boot.METRICS:
            assert values[name][0] == pytest.approx(
                evaluation.metrics[iou_type][name], abs=1e-12
            ), (iou_type, name)


def test_results_without_a_true_positive_give_zero_intervals(toy_gt, toy_val):
    """Only false positives (a negative category of each image that has one): AP 0 in every
    replicate, so the intervals are (0, 0)."""
    records = [
        {
            "image_id": image["id"],
            "category_id": image["neg_category_ids"][0],
            "score": 0.5,
            "bbox": [1.0, 1.0, 10.0, 10.0],
        }
        for image in toy_gt["images"]
        if image["neg_category_ids"]
    ]
    evaluation = _evaluate(toy_val, records, iou_types=["bbox"], fixed=False, bootstrap=5)
    assert evaluation.metrics["bbox"]["AP"] == 0
    assert evaluation.intervals["bbox"] == {name: (0.0, 0.0) for name in boot.METRICS}
