"""The leaderboard: run directories into one table, means and t-intervals over seeds."""

import json
import math

import numpy as np
import pytest

from lvisnb.methods import ranking as L


def _run(root, name, seed, box_ap, method="ce", sampler="rfs", threshold=0.1, mask=True):
    run = root / name
    run.mkdir()
    metrics = {"bbox": {"AP": box_ap, "APr": -1.0, "APc": 0.2, "APf": 0.3}}
    if mask:
        metrics["segm"] = {"AP": box_ap / 2, "APr": 0.05, "APc": 0.1, "APf": 0.15}
    (run / "metrics.json").write_text(json.dumps({"info": {}, "metrics": metrics}))
    config = {
        "train": {"seed": seed, "preset": "toy", "sampler": sampler},
        "preset": {"name": "toy", "cls_loss": method, "rfs_threshold": 0.1},
        "resolved": {"sampler": sampler, "rfs_threshold": threshold, "max_iters": 30},
    }
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_rows_hold_what_each_run_trained_and_scored(tmp_path):
    runs = [
        _run(tmp_path, "a", 0, 0.25),
        _run(tmp_path, "b", 1, 0.30, method="seesaw", threshold=0.0),
        _run(tmp_path, "c", 2, 0.20, sampler="uniform", mask=False),
    ]
    board = L.leaderboard(runs)
    assert list(board.columns) == [*L.RUN_COLUMNS, *L.METRIC_COLUMNS]
    assert board["method"].tolist() == ["ce", "seesaw", "ce"]
    # RFS with t = 0 repeats nothing: it is the uniform sampler
    assert board["sampler"].tolist() == ["rfs", "uniform", "uniform"]
    assert board["rfs_threshold"].iloc[0] == 0.1 and board["rfs_threshold"][1:].isna().all()
    assert board["seed"].tolist() == [0, 1, 2] and board["iterations"].tolist() == [30] * 3
    assert board["box_AP"].tolist() == [0.25, 0.30, 0.20]
    assert board["box_APr"].isna().all()  # LVIS's -1: undefined, not a score of -1
    assert board["mask_AP"].iloc[0] == 0.125 and math.isnan(board["mask_AP"].iloc[2])


def test_a_run_without_config_keeps_its_metrics(tmp_path):
    run = _run(tmp_path, "a", 0, 0.25)
    (run / "config.json").unlink()
    row = L.leaderboard([run]).iloc[0]
    assert row["method"] is None and row["seed"] is None and row["box_AP"] == 0.25


def test_bad_runs_are_named(tmp_path):
    run = _run(tmp_path, "a", 0, 0.25)
    with pytest.raises(ValueError, match="twice"):
        L.leaderboard([run, tmp_path / "a" / ".." / "a"])
    with pytest.raises(ValueError, match="at least one"):
        L.leaderboard([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty[/\\]metrics.json"):
        L.leaderboard([tmp_path / "empty"])
    (run / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="metrics.json: the metrics"):
        L.read_run(run)
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json: not valid JSON"):
        L.read_run(run)
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="no 'metrics' object"):
        L.read_run(run)


def test_over_seeds_by_hand(tmp_path):
    runs = [_run(tmp_path, f"ce{s}", s, ap) for s, ap in enumerate((0.1, 0.2, 0.3))]
    runs.append(_run(tmp_path, "seesaw0", 0, 0.4, method="seesaw"))
    table = L.over_seeds(L.leaderboard(runs), metrics=("box_AP", "box_APr"))
    assert table["method"].tolist() == ["ce", "seesaw"] and table["seeds"].tolist() == [3, 1]
    ce = table.iloc[0]
    half = 4.3027 * 0.1 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 0.1
    assert ce["box_AP"] == pytest.approx(0.2)
    assert (ce["box_AP_low"], ce["box_AP_high"]) == pytest.approx((0.2 - half, 0.2 + half))
    assert math.isnan(ce["box_APr"]) and math.isnan(ce["box_APr_low"])  # undefined everywhere
    seesaw = table.iloc[1]  # one seed: a mean, no interval
    assert seesaw["box_AP"] == 0.4 and math.isnan(seesaw["box_AP_low"])
    with pytest.raises(ValueError, match="no column"):
        L.over_seeds(L.leaderboard(runs), by=("loss",))


def test_t_quantiles():
    assert L.t975(1) == 12.7062 and L.t975(2) == 4.3027
    with pytest.raises(ValueError, match="at least 1"):
        L.t975(0)
    beyond = [L.t975(df) for df in range(30, 200)]
    assert abs(beyond[1] - 2.0395) < 2e-4  # t(0.975, 31) = 2.0395
    assert abs(L.t975(120) - 1.9799) < 2e-4
    assert np.all(np.diff(beyond) < 0) and beyond[-1] > L._Z975


def test_the_interval_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    samples = rng.normal(0.3, 0.05, size=(4000, 3))  # 4000 experiments of 3 seeds
    covered = 0
    for values in samples:
        _, low, high, _ = L._interval(values)
        covered += low <= 0.3 <= high
    assert 0.935 < covered / len(samples) < 0.965


def test_a_real_evaluation_reads_back(tmp_path, toy_val, results):
    from lvisnb.evaluation.evaluator import evaluate
    from lvisnb.evaluation.report import save_metrics

    with pytest.warns(UserWarning, match="more than 300 detections"):
        evaluation = evaluate(toy_val, results, fixed=False)
    run = tmp_path / "run"
    run.mkdir()
    save_metrics(run / "metrics.json", evaluation)
    row = L.leaderboard([run]).iloc[0]
    for iou_type, prefix in L.IOU_PREFIX.items():
        for name in L.METRICS:
            value, read = evaluation.metrics[iou_type][name], row[f"{prefix}_{name}"]
            assert read == value if value >= 0 else math.isnan(read)


def test_over_seeds_refuses_runs_that_are_not_seeds_of_one_experiment(tmp_path):
    twice = [_run(tmp_path, "a", 0, 0.1), _run(tmp_path, "b", 0, 0.2)]
    with pytest.raises(ValueError, match="share a seed"):
        L.over_seeds(L.leaderboard(twice))
    other = _run(tmp_path, "c", 1, 0.3)
    config = json.loads((other / "config.json").read_text())
    config["resolved"]["max_iters"] = 60
    (other / "config.json").write_text(json.dumps(config))
    board = L.leaderboard([twice[0], other])
    with pytest.raises(ValueError, match="differ in iterations"):
        L.over_seeds(board)
    assert L.over_seeds(board, by=("method", "sampler", "iterations"))["seeds"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="sequences of column names"):
        L.over_seeds(board, by="method")
    with pytest.raises(ValueError, match="a list of run directories"):
        L.leaderboard(str(other))
