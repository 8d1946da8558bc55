"""The runs of notebook 05's comparison: arms, both protocols, what they refuse."""

import json
from pathlib import Path

import pytest

from lvisnb.methods import long_tail_runs
from lvisnb.methods.long_tail_summary import Arm, metric_columns
from lvisnb.methods.ranking import leaderboard

SMALL = {"train_scales": (160,), "test_scale": 160, "max_size": 200}


def test_arms_put_uniform_first_then_rfs_with_each_loss():
    names = [a.name for a in long_tail_runs.arms("ce, seesaw,eqlv2,federated")]
    assert names == ["uniform+ce", "rfs+ce", "rfs+seesaw", "rfs+eqlv2", "rfs+federated"]
    assert [a.name for a in long_tail_runs.arms(["ce", "eqlv2"], uniform=False)] == [
        "rfs+ce",
        "rfs+eqlv2",
    ]
    assert Arm("rfs", "seesaw").run_name(2) == "rfs_seesaw_seed2"
    with pytest.raises(ValueError, match="focal"):
        long_tail_runs.arms("ce,focal")
    # refused before any run trains: no baseline to compare with, or nothing to compare
    with pytest.raises(ValueError, match="must include 'ce'"):
        long_tail_runs.arms("seesaw")
    with pytest.raises(ValueError, match="one more arm"):
        long_tail_runs.arms("ce", uniform=False)


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
    done = long_tail_runs.run_end_to_end(
        template, arm_list, [0], toy_val, toy_root, tmp_path, val_images=3, progress=False
    )
    board = leaderboard([run.run_dir for run in done])
    assert board[["method", "sampler", "seed", "iterations"]].values.tolist() == [
        ["ce", "uniform", 0, 2],
        ["federated", "rfs", 0, 2],
    ]
    assert board[metric_columns("end_to_end")].notna().any(axis=None)
    for run in done:
        assert run.run_dir.parent == tmp_path / "long_tail" / "end_to_end"
        assert (run.run_dir / "checkpoints" / "final.pt").is_file()
        metrics = json.loads((run.run_dir / "metrics.json").read_text())
        assert set(metrics["metrics"]) == {"bbox", "segm"}
        images = {r["image_id"] for r in json.loads((run.run_dir / "results.json").read_text())}
        assert len(images) <= 3
    again = long_tail_runs.run_end_to_end(
        template, arm_list, [0], toy_val, toy_root, tmp_path, val_images=3, progress=False
    )
    assert all(run.reused for run in again)


def test_masks_need_the_model_and_the_val_images(tmp_path):
    data = long_tail_runs.Decoupled(None, None, None, None, tmp_path / "final.pt", 0.0, False)
    with pytest.raises(ValueError, match="masks=False"):
        long_tail_runs.run_decoupled(data, long_tail_runs.arms("ce"), [0], 10, tmp_path)


def test_val_images_without_annotations_are_refused_before_any_extraction(
    checkpoint, toy_root, toy_train, toy_val, tmp_path
):
    data = json.loads(Path(toy_val).read_text())
    first = sorted(i["id"] for i in data["images"])[:2]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in first]
    val_ann = tmp_path / "val_unannotated.json"
    val_ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="have no annotations"):
        long_tail_runs.prepare_decoupled(
            tmp_path, checkpoint, toy_train, val_ann, toy_root, toy_root, val_images=2
        )
    assert not (tmp_path / "long_tail").exists()  # nothing was extracted
