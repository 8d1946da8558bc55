"""Training loop: schedule, resume = uninterrupted, NaN stop, checkpoints, torchrun DDP."""

import json
import os
import subprocess
import sys

import pytest
import torch

from lvisnb import train as train_mod
from lvisnb.dataset import LVISDetection
from lvisnb.sampler import build_sampler
from lvisnb.train import TrainConfig, load_checkpoint, read_log, train

# small images and few proposals: a few tenths of a second per iteration on 2 cores
FAST = {
    "train_scales": (128,),
    "max_size": 160,
    "test_scale": 128,
    "rpn_pre_nms_top_n_train": 200,
    "rpn_post_nms_top_n_train": 100,
    "box_batch_size_per_image": 32,
    "warmup_iters": 3,
}


@pytest.fixture(scope="module")
def tiny_train(toy_train, tmp_path_factory):
    """The first 10 images of the small toy train split (an epoch is a few iterations)."""
    data = json.loads(toy_train.read_text())
    keep = {image["id"] for image in data["images"][:10]}
    data["images"] = [image for image in data["images"] if image["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    path = tmp_path_factory.mktemp("tiny") / "lvis_v1_train.json"
    path.write_text(json.dumps(data))
    return path


def _config(ann, root, run_dir, **changes) -> TrainConfig:
    values = dict(
        preset="toy",
        train_ann=str(ann),
        image_root=str(root),
        run_dir=str(run_dir),
        device="cpu",
        batch_size=2,
        max_iters=8,
        checkpoint_every=3,
        progress=False,
        overrides=dict(FAST),
    )
    values.update(changes)
    return TrainConfig(**values)


class _Stop(Exception):
    pass


def test_resume_gives_the_losses_of_an_uninterrupted_run(tiny_train, toy_root, tmp_path):
    full = train(_config(tiny_train, toy_root, tmp_path / "full"))
    assert full.iterations == 8 and len(full.losses) == 8
    log = read_log(tmp_path / "full")
    assert [r["iter"] for r in log] == list(range(1, 9))
    epochs = {r["epoch"] for r in log}
    assert len(epochs) >= 2, "the run should cross an epoch boundary"
    # lr: linear warm-up over 3 iterations from 0.001 of the base lr, then flat (steps at 8*
    base = json.loads((tmp_path / "full" / "config.json").read_text())["resolved"]["lr"]
    assert log[0]["lr"] == pytest.approx(base * 0.001)
    assert log[1]["lr"] == pytest.approx(base * (1 - (1 - 1 / 3) * 0.999))
    assert log[3]["lr"] == pytest.approx(base)

    def stop_at_5(record):
        if record["iter"] == 5:
            raise _Stop

    with pytest.raises(_Stop):
        train(_config(tiny_train, toy_root, tmp_path / "cut"), callback=stop_at_5)
    last = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert last["iteration"] == 3
    resumed = train(_config(tiny_train, toy_root, tmp_path / "cut", resume=True))
    assert resumed.iterations == 8 and len(resumed.losses) == 5
    assert resumed.losses == pytest.approx(full.losses[3:], rel=1e-5, abs=1e-6)
    cut_log = read_log(tmp_path / "cut")
    assert [r["iter"] for r in cut_log] == list(range(1, 9))  # no duplicated iteration 4, 5
    assert [r["loss"] for r in cut_log] == pytest.approx([r["loss"] for r in log], rel=1e-5)

    final = load_checkpoint(tmp_path / "cut" / "checkpoints" / "final.pt")
    reference = load_checkpoint(tmp_path / "full" / "checkpoints" / "final.pt")
    for key, value in reference["model"].items():
        torch.testing.assert_close(final["model"][key], value, rtol=1e-4, atol=1e-5)


def test_checkpoint_holds_the_training_state(tiny_train, toy_root, tmp_path):
    train(_config(tiny_train, toy_root, tmp_path, max_iters=3))
    ckpt = torch.load(tmp_path / "checkpoints" / "final.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "iteration", "epoch", "rng"} <= set(ckpt)
    assert ckpt["iteration"] == 3
    assert ckpt["config"]["resolved"]["max_iters"] == 3
    data = json.loads(tiny_train.read_text())
    assert ckpt["category_ids"] == sorted(c["id"] for c in data["categories"])
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))  # no temporary file left


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tiny_train, toy_root, tmp_path, monkeypatch
):
    real_build = train_mod.build_model

    def build_poisoned(*args, **kwargs):
        model = real_build(*args, **kwargs)
        forward = model.forward
        calls = {"n": 0}

        def poisoned(images, targets=None):
            losses = forward(images, targets)
            calls["n"] += 1
            if calls["n"] == 5:
                losses["loss_mask"] = losses["loss_mask"] * float("nan")
            return losses

        model.forward = poisoned
        return model

    monkeypatch.setattr(train_mod, "build_model", build_poisoned)
    with pytest.raises(FloatingPointError, match="iteration 4") as error:
        train(_config(tiny_train, toy_root, tmp_path, checkpoint_every=2))
    last = tmp_path / "checkpoints" / "last.pt"
    assert str(last) in str(error.value) and "loss_mask" in str(error.value)
    assert load_checkpoint(last)["iteration"] == 4
    assert not (tmp_path / "checkpoints" / "final.pt").exists()
    for value in load_checkpoint(last)["model"].values():
        assert torch.isfinite(value.float()).all()


def test_command_line_parses_every_field():
    cfg = train_mod.config_from_args(
        ["--max-iters", "5", "--lr-steps", "[3, 4]", "--resume", "--sampler", "uniform"]
    )
    assert cfg.max_iters == 5 and cfg.lr_steps == (3, 4) and cfg.resume is True
    assert cfg.sampler == "uniform" and cfg.preset == "toy"


def test_missing_checkpoint_is_named():
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint("nowhere.pt")


def test_torchrun_two_gloo_processes_see_disjoint_shards(tiny_train, toy_root, tmp_path):
    run_dir = tmp_path / "ddp"
    overrides = json.dumps(FAST)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--standalone", "-m", "lvisnb.train",
        "--train-ann", str(tiny_train), "--image-root", str(toy_root),
        "--run-dir", str(run_dir), "--device", "cpu", "--batch-size", "2",
        "--max-iters", "2", "--record-samples", "true", "--progress", "false",
        "--overrides", overrides,
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = {}
    for rank in (0, 1):
        lines = (run_dir / f"samples_rank{rank}.jsonl").read_text().splitlines()
        seen[rank] = [i for line in lines for i in json.loads(line)["image_ids"]]
        assert len(seen[rank]) == 4  # 2 iterations x batch 2
    # each rank took its own strided shard of the same RFS epoch: disjoint positions
    dataset = LVISDetection(tiny_train, toy_root, skip_empty=True)
    ids = [dataset.image_info(i)["id"] for i in range(len(dataset))]
    threshold = train_mod.get_preset("toy").rfs_threshold
    for rank in (0, 1):
        sampler = build_sampler("rfs", dataset, threshold, 0, 2, rank)
        sampler.set_epoch(0)
        assert seen[rank] == [ids[i] for i in list(sampler)[:4]]
    epoch = build_sampler("rfs", dataset, threshold, 0, 2, 0).epoch_indices(0).tolist()
    assert sorted(seen[0] + seen[1]) == sorted(ids[i] for i in epoch[:8])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    assert ckpt["config"]["resolved"]["world_size"] == 2
    assert ckpt["config"]["resolved"]["total_batch"] == 4
    assert len(ckpt["rng"]) == 2  # both ranks' RNG states, for resume
    assert "checkpoint:" in done.stdout


def test_lvisnb_train_command(tiny_train, toy_root, tmp_path, capsys):
    from lvisnb import cli

    args = ["train", "--train-ann", str(tiny_train), "--image-root", str(toy_root)]
    args += ["--run-dir", str(tmp_path), "--max-iters", "1", "--progress", "false"]
    args += ["--overrides", json.dumps(FAST)]
    assert cli.main(args) == 0
    assert (tmp_path / "checkpoints" / "final.pt").is_file()
    assert "1 iterations" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampler": "balanced"}, "sampler"),
        ({"batch_size": 0}, "batch_size"),
        ({"amp": "x"}, "amp"),
    ],
)
def test_bad_config_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU-only machine")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        train_mod.resolve_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        train_mod.resolve_device("gpu0")
    assert train_mod.resolve_device("auto").type == "cpu"


def test_a_training_set_smaller_than_a_batch_is_refused(tiny_train, toy_root, tmp_path):
    with pytest.raises(ValueError, match="fewer than batch_size 64"):
        train(_config(tiny_train, toy_root, tmp_path, batch_size=64))
