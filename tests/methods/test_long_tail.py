"""The comparison of notebook 05: arms, paired differences, the summary, both protocols."""

import json
import math

import pandas as pd
import pytest

from lvisnb.methods import long_tail
from lvisnb.methods.leaderboard import leaderboard, t975
from lvisnb.methods.long_tail import Arm

SMALL = {"train_scales": (160,), "test_scale": 160, "max_size": 200}


def test_arms_put_uniform_first_then_rfs_with_each_loss():
    names = [a.name for a in long_tail.arms("ce, seesaw,eqlv2,federated")]
    assert names == ["uniform+ce", "rfs+ce", "rfs+seesaw", "rfs+eqlv2", "rfs+federated"]
    assert [a.name for a in long_tail.arms(["ce", "eqlv2"], uniform=False)] == [
        "rfs+ce",
        "rfs+eqlv2",
    ]
    assert Arm("rfs", "seesaw").run_name(2) == "rfs_seesaw_seed2"
    with pytest.raises(ValueError, match="focal"):
        long_tail.arms("ce,focal")
    # refused before any run trains: no baseline to compare with, or nothing to compare
    with pytest.raises(ValueError, match="must include 'ce'"):
        long_tail.arms("seesaw")
    with pytest.raises(ValueError, match="one more arm"):
        long_tail.arms("ce", uniform=False)


def test_metric_columns_per_protocol():
    boxes = ["box_AP", "box_APr", "box_APc", "box_APf"]
    assert long_tail.metric_columns("decoupled", masks=False) == boxes
    assert long_tail.metric_columns("decoupled")[:4] == boxes
    assert long_tail.metric_columns("end_to_end", masks=False) == long_tail.metric_columns(
        "decoupled"
    )
    assert long_tail.metric_columns("end_to_end")[4:] == [
        "mask_AP",
        "mask_APr",
        "mask_APc",
        "mask_APf",
    ]
    with pytest.raises(ValueError, match="protocol"):
        long_tail.metric_columns("both")


def _board() -> pd.DataFrame:
    rows = []
    values = {
        ("rfs", "ce"): [0.10, 0.20, 0.30],
        ("rfs", "seesaw"): [0.20, 0.25, 0.50],
        ("uniform", "ce"): [0.05, 0.10, math.nan],
    }
    for (sampler, method), ap in values.items():
        for seed, value in enumerate(ap):
            rows.append({"method": method, "sampler": sampler, "seed": seed, "box_APr": value})
    rows.append({"method": "seesaw", "sampler": "rfs", "seed": 7, "box_APr": 0.9})  # unpaired
    return pd.DataFrame(rows)


def test_paired_differences_by_hand():
    table = long_tail.paired_differences(_board(), ["box_APr"]).set_index("arm")
    d = [0.10, 0.05, 0.20]  # seesaw - ce for seeds 0, 1, 2; seed 7 has no partner
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    half = t975(2) * sd / math.sqrt(3)
    row = table.loc["rfs+seesaw"]
    assert row["seeds"] == 3 and row["mean"] == pytest.approx(mean)
    assert (row["low"], row["high"]) == pytest.approx((mean - half, mean + half))
    assert row["per_seed"] == pytest.approx({0: 0.10, 1: 0.05, 2: 0.20})
    # a NaN run (an undefined metric) leaves that seed out of the pair
    row = table.loc["uniform+ce"]
    assert row["seeds"] == 2 and row["mean"] == pytest.approx(-0.075)
    assert row["per_seed"] == pytest.approx({0: -0.05, 1: -0.10})


def test_paired_differences_need_the_baseline():
    board = _board()
    with pytest.raises(ValueError, match="rfs\\+ce"):
        long_tail.paired_differences(board[board["method"] != "ce"], ["box_APr"])


def test_one_seed_gives_a_mean_without_interval():
    board = _board()
    table = long_tail.paired_differences(board[board["seed"] == 0], ["box_APr"])
    assert table["seeds"].tolist() == [1, 1]
    assert table["low"].isna().all() and table["high"].isna().all()
    assert long_tail.difference_table(table).loc["rfs+seesaw", "box_APr"] == "+0.100"
    assert long_tail.difference_table(table).loc["uniform+ce", "box_APr"] == "−0.050"


def test_the_summary_keys_differences_by_arm_and_writes_nan_as_null(tmp_path):
    from lvisnb.methods.leaderboard import over_seeds

    board = _board()
    summary = over_seeds(board, metrics=["box_APr"])
    differences = long_tail.paired_differences(board, ["box_APr"])
    path = long_tail.write_summary(tmp_path, board, summary, differences, protocol="decoupled")
    saved = json.loads(path.read_text())  # strict JSON: no NaN
    assert path.name == "long_tail_methods.json" and saved["protocol"] == "decoupled"
    assert set(saved["differences"]) == {"rfs+seesaw", "uniform+ce"}
    assert saved["differences"]["rfs+seesaw"]["box_APr"]["seeds"] == 3
    assert len(saved["leaderboard"]) == len(board)
    uniform = next(r for r in saved["over_seeds"] if r["arm"] == "uniform+ce")
    assert uniform["box_APr"] == pytest.approx(0.075)
    assert saved["leaderboard"][-2]["box_APr"] is None  # the NaN run
    text = long_tail.interval_table(summary, ["box_APr"]).loc["rfs+ce", "box_APr"]
    assert text == "0.200 [-0.048, 0.448]"


def test_end_to_end_trains_evaluates_and_reuses_each_run(toy_root, toy_train, toy_val, tmp_path):
    from lvisnb.engine.config import TrainConfig

    template = TrainConfig(
        train_ann=str(toy_train),
        image_root=str(toy_root),
        device="cpu",
        max_iters=2,
        batch_size=2,
        overrides=SMALL,
    )
    arm_list = [Arm("uniform", "ce"), Arm("rfs", "federated")]
    done = long_tail.run_end_to_end(
        template, arm_list, [0], toy_val, toy_root, tmp_path, val_images=3, progress=False
    )
    board = leaderboard([run.run_dir for run in done])
    assert board[["method", "sampler", "seed", "iterations"]].values.tolist() == [
        ["ce", "uniform", 0, 2],
        ["federated", "rfs", 0, 2],
    ]
    assert board[long_tail.metric_columns("end_to_end")].notna().any(axis=None)
    for run in done:
        assert run.run_dir.parent == tmp_path / "long_tail" / "end_to_end"
        assert (run.run_dir / "checkpoints" / "final.pt").is_file()
        metrics = json.loads((run.run_dir / "metrics.json").read_text())
        assert set(metrics["metrics"]) == {"bbox", "segm"}
        images = {r["image_id"] for r in json.loads((run.run_dir / "results.json").read_text())}
        assert len(images) <= 3
    again = long_tail.run_end_to_end(
        template, arm_list, [0], toy_val, toy_root, tmp_path, val_images=3, progress=False
    )
    assert all(run.reused for run in again)


def _differences(rows) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"arm": a, "metric": "box_APr", "mean": m, "low": lo, "high": hi, "seeds": n}
            for a, m, lo, hi, n in rows
        ]
    )


def test_verdicts_say_which_arm_is_ahead_or_by_how_much_the_interval_misses():
    differences = _differences(
        [
            ("uniform+ce", -0.05, -0.08, -0.02, 3),  # uniform behind rfs: RFS wins
            ("rfs+seesaw", 0.02, -0.01, 0.05, 3),  # holds 0: misses by 0.01
            ("rfs+eqlv2", -0.03, -0.05, -0.01, 3),  # behind rfs+ce
            ("rfs+federated", 0.04, math.nan, math.nan, 1),
        ]
    )
    table = long_tail.verdicts(differences, ["box_APr"]).set_index("question")
    rfs = table.loc["rfs+ce > uniform+ce"]
    assert (rfs["mean"], rfs["low"], rfs["high"]) == pytest.approx((0.05, 0.02, 0.08))
    assert rfs["verdict"].startswith("yes: rfs+ce ahead by 0.050")
    seesaw = table.loc["rfs+seesaw > rfs+ce"]["verdict"]
    assert seesaw.startswith("cannot tell") and "lower end misses 0 by 0.010" in seesaw
    assert table.loc["rfs+eqlv2 > rfs+ce"]["verdict"].startswith("no: rfs+ce ahead by 0.030")
    assert "no interval" in table.loc["rfs+federated > rfs+ce"]["verdict"]
    # exact zeros (APr 0 in both arms on every seed) read as 0, never -0.000
    zeros = _differences([("uniform+ce", -0.0, -0.0, 0.0, 3), ("rfs+eqlv2", 1e-17, -0.0, 0.0, 3)])
    texts = long_tail.verdicts(zeros, ["box_APr"])["verdict"].tolist()
    assert all("-0.000" not in t and t.startswith("cannot tell") for t in texts)
    assert (
        long_tail.difference_table(zeros.assign(per_seed=None)).iloc[1, 0] == "0.000 [0.000, 0.000]"
    )
    undefined = _differences([("rfs+seesaw", math.nan, math.nan, math.nan, 0)])
    assert long_tail.verdicts(undefined, ["box_APr"])["verdict"][0].startswith("undefined")
    assert long_tail.verdicts(differences, ["mask_APr"]).empty


def test_verdicts_from_the_written_summary_match_those_of_the_board(tmp_path):
    from lvisnb.methods.leaderboard import over_seeds

    board = _board()
    differences = long_tail.paired_differences(board, ["box_APr"])
    path = long_tail.write_summary(
        tmp_path, board, over_seeds(board, metrics=["box_APr"]), differences
    )
    again = long_tail.differences_from_summary(json.loads(path.read_text()))
    expected = long_tail.verdicts(differences, ["box_APr"])
    pd.testing.assert_frame_equal(long_tail.verdicts(again, ["box_APr"]), expected)
    # seesaw - ce = 0.10, 0.05, 0.20 over three seeds: the interval holds 0
    assert (
        expected.set_index("question")
        .loc["rfs+seesaw > rfs+ce", "verdict"]
        .startswith("cannot tell")
    )


def test_masks_need_the_model_and_the_val_images(tmp_path):
    data = long_tail.Decoupled(None, None, None, None, tmp_path / "final.pt", 0.0, False)
    with pytest.raises(ValueError, match="masks=False"):
        long_tail.run_decoupled(data, long_tail.arms("ce"), [0], 10, tmp_path)
