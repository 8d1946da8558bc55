"""Training loop: schedule, resume = uninterrupted, NaN stop, checkpoints, torchrun DDP."""

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from lvisnb import cli
from lvisnb.data.dataset import LVISDetection
from lvisnb.data.sampler import build_sampler
from lvisnb.engine import setup as setup_mod
from lvisnb.engine.config import TrainConfig, run_preset
from lvisnb.engine.run_dir import read_log
from lvisnb.engine.trainer import train
from lvisnb.model import presets as presets_mod
from lvisnb.model.checkpoint import load_checkpoint, save_checkpoint
from lvisnb.model.presets import SEED_PRESETS, get_preset

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
    assert [r["lr"] for r in cut_log] == [r["lr"] for r in log]  # the scheduler state resumed

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
    real_build = setup_mod.build_model

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

    monkeypatch.setattr(setup_mod, "build_model", build_poisoned)
    with pytest.raises(FloatingPointError, match="iteration 4") as error:
        train(_config(tiny_train, toy_root, tmp_path, checkpoint_every=2))
    last = tmp_path / "checkpoints" / "last.pt"
    assert str(last) in str(error.value) and "loss_mask" in str(error.value)
    assert load_checkpoint(last)["iteration"] == 4
    assert not (tmp_path / "checkpoints" / "final.pt").exists()
    for value in load_checkpoint(last)["model"].values():
        assert torch.isfinite(value.float()).all()


def test_missing_checkpoint_is_named():
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint("nowhere.pt")


LOSS_TERMS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


def _torchrun(run_dir, tiny_train, toy_root, *args, script=None, max_iters=2):
    """Run ``lvisnb train`` (or ``script``) under torchrun: 2 gloo processes on the CPU."""
    target = ["-m", "lvisnb.cli", "train"] if script is None else [str(script)]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        *target,
        "--train-ann",
        str(tiny_train),
        "--image-root",
        str(toy_root),
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--max-iters",
        str(max_iters),
        "--record-samples",
        "--no-progress",
        "--overrides",
        json.dumps(FAST),
        *args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_torchrun_two_gloo_processes_see_disjoint_shards(tiny_train, toy_root, tmp_path):
    run_dir = tmp_path / "ddp"
    done = _torchrun(run_dir, tiny_train, toy_root)
    assert done.returncode == 0, done.stderr[-3000:]
    seen, own = {}, {}
    for rank in (0, 1):
        lines = (run_dir / f"samples_rank{rank}.jsonl").read_text().splitlines()
        seen[rank] = [i for line in lines for i in json.loads(line)["image_ids"]]
        own[rank] = [json.loads(line)["losses"] for line in lines]
        assert len(seen[rank]) == 4  # 2 iterations x batch 2
    # each rank took its own strided shard of the same RFS epoch: disjoint positions
    dataset = LVISDetection(tiny_train, toy_root, skip_empty=True)
    ids = [dataset.image_info(i)["id"] for i in range(len(dataset))]
    preset = get_preset("toy")
    threshold, rounding = preset.rfs_threshold, preset.rfs_rounding
    for rank in (0, 1):
        sampler = build_sampler("rfs", dataset, threshold, 0, 2, rank, rounding)
        sampler.set_epoch(0)
        assert seen[rank] == [ids[i] for i in list(sampler)[:4]]
    epoch = build_sampler("rfs", dataset, threshold, 0, 2, 0, rounding).epoch_indices(0).tolist()
    assert sorted(seen[0] + seen[1]) == sorted(ids[i] for i in epoch[:8])
    # train_log.jsonl (rank 0's file) holds the mean of the two ranks' own losses, every term;
    # the ranks saw different images, so rank 0's own loss alone would not pass
    log = read_log(run_dir)
    assert [r["iter"] for r in log] == [1, 2]
    for record, mine, theirs in zip(log, own[0], own[1], strict=True):
        assert abs(mine["loss"] - theirs["loss"]) > 1e-3 * abs(mine["loss"])
        assert set(mine) == {"loss", *LOSS_TERMS}
        for name in mine:
            assert record[name] == pytest.approx((mine[name] + theirs[name]) / 2, rel=1e-5)
        assert record["loss"] == pytest.approx(sum(record[k] for k in LOSS_TERMS))
    ckpt = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    assert ckpt["config"]["resolved"]["world_size"] == 2
    assert ckpt["config"]["resolved"]["total_batch"] == 4
    assert len(ckpt["rng"]) == 2  # both ranks' RNG states, for resume
    assert "checkpoint:" in done.stdout


def test_lvisnb_train_command(tiny_train, toy_root, tmp_path, capsys):
    from lvisnb import cli

    args = ["train", "--train-ann", str(tiny_train), "--image-root", str(toy_root)]
    args += ["--run-dir", str(tmp_path), "--max-iters", "1", "--no-progress"]
    args += ["--overrides", json.dumps(FAST)]
    assert cli.main(args) == 0
    assert (tmp_path / "checkpoints" / "final.pt").is_file()
    assert "1 iterations" in capsys.readouterr().out


def test_a_training_set_smaller_than_a_batch_is_refused(tiny_train, toy_root, tmp_path):
    with pytest.raises(ValueError, match="fewer than batch_size 64"):
        train(_config(tiny_train, toy_root, tmp_path, batch_size=64))


# the torchrun entry point with rank 1's loss_mask made NaN at its second forward pass; each
# rank records the error it stops with, then both meet at a barrier (a rank left inside a
# collective would never get there: the gloo timeout turns that into a different error)
NAN_ON_RANK_1 = textwrap.dedent(
    """
    import datetime, os, sys
    from pathlib import Path
    import torch.distributed as dist
    from lvisnb import cli
    from lvisnb.engine import setup as setup_mod
    from lvisnb.engine import trainer as train_mod

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, real_build = dist.get_rank(), setup_mod.build_model

    def build_poisoned(*args, **kwargs):
        model = real_build(*args, **kwargs)
        forward, calls = model.forward, [0]

        def poisoned(images, targets=None):
            losses = forward(images, targets)
            calls[0] += 1
            if rank == 1 and calls[0] == 2:
                losses["loss_mask"] = losses["loss_mask"] * float("nan")
            return losses

        model.forward = poisoned
        return model

    setup_mod.build_model = build_poisoned
    try:
        train_mod.train(cli.config_from_args(sys.argv[1:]))
    except FloatingPointError as error:
        Path(os.environ["ERROR_DIR"], f"error_rank{rank}.txt").write_text(str(error))
        dist.barrier()
        sys.exit(3)
    """
)


def test_torchrun_a_nan_on_one_rank_stops_both(tiny_train, toy_root, tmp_path, monkeypatch):
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(NAN_ON_RANK_1)
    monkeypatch.setenv("ERROR_DIR", str(tmp_path))
    run_dir = tmp_path / "ddp"
    done = _torchrun(run_dir, tiny_train, toy_root, script=script, max_iters=4)
    assert done.returncode != 0
    for rank in (0, 1):
        path = tmp_path / f"error_rank{rank}.txt"
        assert path.is_file(), f"rank {rank}: no kit error\n{done.stderr[-3000:]}"
        text = path.read_text()
        assert text.startswith("non-finite loss at iteration 2: {")
        assert text.endswith("no checkpoint was written yet")  # log numbering: line 1 logged
        assert "'loss_mask': nan" in text and "mean over 2 ranks" in text
        assert f"rank {rank}'s own" in text
    own_0 = (tmp_path / "error_rank0.txt").read_text().split("rank 0's own: ")[1]
    assert "nan" not in own_0.split("}")[0]  # rank 0's own loss was finite: the mean stopped it
    assert [r["iter"] for r in read_log(run_dir)] == [1]
    assert not (run_dir / "checkpoints" / "final.pt").exists()


def test_rfs_rounding_is_validated_where_it_is_set():
    choices = r"is not one of \('ceil', 'stochastic'\)"
    with pytest.raises(ValueError, match="rfs_rounding 'floor' " + choices):
        TrainConfig(rfs_rounding="floor")
    with pytest.raises(ValueError, match="rfs_rounding 'round' " + choices):
        get_preset("toy", rfs_rounding="round")
    assert get_preset("toy").rfs_rounding == "stochastic"
    assert {get_preset(n).rfs_rounding for n in SEED_PRESETS} == {"ceil"}
    cfg = cli.config_from_args(["--rfs-rounding", "ceil"])
    assert cfg.rfs_rounding == "ceil"


def test_a_run_records_and_uses_the_configured_rounding(tiny_train, toy_root, tmp_path):
    train(
        _config(tiny_train, toy_root, tmp_path, max_iters=1, rfs_threshold=0.5, rfs_rounding="ceil")
    )
    resolved = json.loads((tmp_path / "config.json").read_text())["resolved"]
    assert (resolved["sampler"], resolved["rfs_rounding"]) == ("rfs", "ceil")
    dataset = LVISDetection(tiny_train, toy_root, skip_empty=True)
    sampler = build_sampler("rfs", dataset, 0.5, 0, 1, 0, "ceil")
    factors = sampler.image_repeat_factors
    assert resolved["epoch_images"] == sum(math.ceil(r) for r in factors) == len(sampler)
    assert factors.max() > 1 and not all(r == math.ceil(r) for r in factors)


# ----------------------------------------------------------------------------- nothing lost


def _short_run(tiny_train, toy_root, run_dir, **changes):
    values = {"max_iters": 4, "checkpoint_every": 2, **changes}
    return train(_config(tiny_train, toy_root, run_dir, **values))


@pytest.fixture(scope="module")
def finished_run(tiny_train, toy_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    _short_run(tiny_train, toy_root, run_dir)
    return run_dir


def _snapshot(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def _copy_run(source, target):
    for name, content in _snapshot(source).items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(content)
    return target


def test_a_run_directory_is_not_started_over_by_accident(finished_run, tiny_train, toy_root):
    before = _snapshot(finished_run)
    with pytest.raises(FileExistsError, match="4 logged iterations.*--resume.*--overwrite"):
        _short_run(tiny_train, toy_root, finished_run)
    assert _snapshot(finished_run) == before
    with pytest.raises(ValueError, match="exclude each other"):
        _short_run(tiny_train, toy_root, finished_run, resume=True, overwrite=True)


def test_overwrite_starts_over_on_purpose(finished_run, tiny_train, toy_root, tmp_path):
    run_dir = _copy_run(finished_run, tmp_path / "again")
    (run_dir / "notes.txt").write_text("mine")
    result = _short_run(tiny_train, toy_root, run_dir, max_iters=2, overwrite=True)
    assert [r["iter"] for r in read_log(run_dir)] == [1, 2] and result.iterations == 2
    assert load_checkpoint(run_dir / "checkpoints" / "final.pt")["iteration"] == 2
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_resume_without_a_checkpoint_is_an_error(tiny_train, toy_root, tmp_path):
    (tmp_path / "train_log.jsonl").write_text('{"iter": 1, "loss": 1.0}\n')
    with pytest.raises(FileNotFoundError, match="last.pt does not exist"):
        _short_run(tiny_train, toy_root, tmp_path, resume=True)
    assert (tmp_path / "train_log.jsonl").read_text() == '{"iter": 1, "loss": 1.0}\n'


def test_a_torn_log_line_is_dropped_on_resume(tiny_train, toy_root, tmp_path):
    def stop_at_3(record):
        if record["iter"] == 3:
            raise _Stop

    with pytest.raises(_Stop):  # last.pt at iteration 2, three log lines
        train(_config(tiny_train, toy_root, tmp_path, max_iters=6, checkpoint_every=2), stop_at_3)
    with open(tmp_path / "train_log.jsonl", "a") as log:
        log.write('{"iter": 4, "epoch": 0, "lo')  # the crash cut this write short
    (tmp_path / "checkpoints" / ".last.pt.tmp-999999").write_bytes(b"half")
    _short_run(tiny_train, toy_root, tmp_path, max_iters=6, resume=True)
    assert [r["iter"] for r in read_log(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert not list((tmp_path / "checkpoints").glob(".*"))


def test_a_bad_line_inside_the_log_is_named(tmp_path):
    (tmp_path / "train_log.jsonl").write_text('{"iter": 1}\nnot json\n{"iter": 3}\n')
    with pytest.raises(ValueError, match=r"train_log.jsonl: line 2"):
        read_log(tmp_path)


def test_a_full_disk_keeps_the_previous_checkpoint(tiny_train, toy_root, tmp_path, monkeypatch):
    import errno

    real_save = torch.save
    calls = {"n": 0}

    def fills_up(obj, f, *args, **kwargs):
        calls["n"] += 1
        real_save(obj, f, *args, **kwargs)
        if calls["n"] == 2:  # the checkpoint at iteration 4
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", fills_up)
    with pytest.raises(OSError, match="last.pt: the disk is full"):
        _short_run(tiny_train, toy_root, tmp_path, max_iters=6)
    monkeypatch.setattr(torch, "save", real_save)
    assert not list((tmp_path / "checkpoints").glob(".*"))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 2
    _short_run(tiny_train, toy_root, tmp_path, max_iters=6, resume=True)
    assert [r["iter"] for r in read_log(tmp_path)] == [1, 2, 3, 4, 5, 6]


def test_weights_that_broke_are_never_saved_as_good(tiny_train, toy_root, tmp_path, monkeypatch):
    """The loss is finite, the update breaks the weights (as --lr 1e6 does): the checkpoint
    is not written and the message names the last good one with the log's numbers."""
    build = setup_mod.build_model

    def build_breaking(*args, **kwargs):
        model = build(*args, **kwargs)
        calls = {"n": 0}

        def poison(grad):  # the 4th backward: a finite loss, a gradient that breaks the weights
            calls["n"] += 1
            return grad * float("nan") if calls["n"] == 4 else grad

        next(model.roi_heads.parameters()).register_hook(poison)
        return model

    monkeypatch.setattr(setup_mod, "build_model", build_breaking)
    with pytest.raises(FloatingPointError) as error:
        _short_run(tiny_train, toy_root, tmp_path, max_iters=6)
    text = str(error.value)
    assert "weights after iteration 4" in text and "(iteration 2) was kept" in text
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["iteration"] == 2
    assert all(torch.isfinite(v.float()).all() for v in last["model"].values())


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"seed": 1}, "train.seed: 0 -> 1"),
        ({"batch_size": 1}, "train.batch_size: 2 -> 1"),
        ({"lr": 0.5}, "resolved.lr"),
        ({"overrides": {**FAST, "train_scales": (96,)}}, "preset.train_scales: [128] -> [96]"),
    ],
)
def test_resume_refuses_another_experiment(
    finished_run, tiny_train, toy_root, tmp_path, changes, named
):
    run_dir = _copy_run(finished_run, tmp_path / "copy")
    with pytest.raises(ValueError, match="resume would change the experiment") as error:
        _short_run(tiny_train, toy_root, run_dir, resume=True, max_iters=6, **changes)
    assert named in str(error.value)
    assert _snapshot(run_dir) == _snapshot(finished_run)


def test_resume_refuses_another_category_set(finished_run, tiny_train, toy_root, tmp_path):
    data = json.loads(tiny_train.read_text())  # the same number of categories, one other
    used = {a["category_id"] for a in data["annotations"]}
    unused = next(i for i, c in enumerate(data["categories"]) if c["id"] not in used)
    data["categories"][unused] = {**data["categories"][unused], "id": 99_999}
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    run_dir = _copy_run(finished_run, tmp_path / "copy")
    with pytest.raises(ValueError, match="resolved.category_ids"):
        _short_run(other, toy_root, run_dir, resume=True, max_iters=6)


def test_a_damaged_checkpoint_is_named_on_resume(finished_run, tiny_train, toy_root, tmp_path):
    run_dir = _copy_run(finished_run, tmp_path / "copy")
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ValueError, match="last.pt is not a usable checkpoint"):
        _short_run(tiny_train, toy_root, run_dir, resume=True, max_iters=6)


def _lvis_file(tmp_path, version):
    """A one-image training file with the whole category set of an LVIS ``version``."""
    from lvisnb.annotations.categories import _raw

    categories = [{k: c[k] for k in ("id", "name", "synset", "frequency")} for c in _raw(version)]
    image = {
        "id": 9,
        "height": 64,
        "width": 64,
        "coco_url": "http://x/train2017/9.jpg",
        "neg_category_ids": [],
        "not_exhaustive_category_ids": [],
    }
    ann = {
        "id": 1,
        "image_id": 9,
        "category_id": 3,
        "bbox": [4, 4, 20, 20],
        "area": 400.0,
        "segmentation": [[4, 4, 24, 4, 24, 24, 4, 24]],
    }
    path = tmp_path / f"lvis_{version}_train.json"
    path.write_text(json.dumps({"images": [image], "annotations": [ann], "categories": categories}))
    return path


def test_a_preset_of_one_lvis_version_refuses_a_file_of_the_other(tmp_path):
    v05_preset = next(name for name in SEED_PRESETS if name.endswith("lvis_v0.5"))
    cfg = TrainConfig(
        preset=v05_preset,
        train_ann=str(_lvis_file(tmp_path, "v1")),
        image_root=str(tmp_path),
        run_dir=str(tmp_path / "run"),
        device="cpu",
        progress=False,
    )
    with pytest.raises(ValueError, match=r"is LVIS v1 \(1203 categories\) but LVIS v0.5"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_model_of_one_version_refuses_to_predict_on_the_other(tmp_path):
    from lvisnb.data.dataset import CategoryMapping
    from lvisnb.engine.inference import predict

    dataset = LVISDetection(_lvis_file(tmp_path, "v0.5"), tmp_path)
    mapping = CategoryMapping(tuple(range(1, 1204)), lvis_version="v1")
    with pytest.raises(ValueError, match=r"lvis_v0.5_train.json is LVIS v0.5 .* but LVIS v1"):
        next(predict(torch.nn.Linear(1, 1), dataset, mapping))


def test_overwrite_deletes_nothing_when_the_new_run_cannot_start(finished_run, toy_root, tmp_path):
    run_dir = _copy_run(finished_run, tmp_path / "copy")
    before = _snapshot(run_dir)
    with pytest.raises(FileNotFoundError):
        _short_run(tmp_path / "missing.json", toy_root, run_dir, overwrite=True)
    assert _snapshot(run_dir) == before


def test_a_users_config_json_counts_as_a_run(tiny_train, toy_root, tmp_path):
    (tmp_path / "config.json").write_text('{"my": "settings"}')
    with pytest.raises(FileExistsError, match="config.json"):
        _short_run(tiny_train, toy_root, tmp_path)
    assert (tmp_path / "config.json").read_text() == '{"my": "settings"}'


def test_a_mapping_of_another_size_is_refused_before_predicting(tmp_path):
    from lvisnb.data.dataset import CategoryMapping
    from lvisnb.engine.inference import predict
    from lvisnb.model.builder import build_model

    model = build_model(get_preset("toy", **FAST), num_classes=3, weights=False)
    dataset = LVISDetection(_lvis_file(tmp_path, "v0.5"), tmp_path)
    with pytest.raises(ValueError, match="the model predicts 3 categories, but the mapping"):
        next(predict(model, dataset, CategoryMapping(tuple(range(1, 1231)))))


@pytest.mark.parametrize("loss", ["seesaw", "federated"])
def test_a_loss_preset_field_trains_checkpoints_and_resumes_exactly(
    loss, tiny_train, toy_root, tmp_path
):
    """The loss's state (Seesaw's class counts; the federated draw, which takes torch's global
    RNG, saved per rank in every checkpoint) resumes exactly; load_trained_model rebuilds it."""
    from lvisnb.engine.model_source import load_trained_model

    overrides = {**FAST, "cls_loss": loss}
    if loss == "federated":  # fewer than toy's 40 classes: every batch draws negatives
        overrides["fed_num_classes"] = 8
    full = train(_config(tiny_train, toy_root, tmp_path / "full", max_iters=6, overrides=overrides))

    def stop_at_5(record):
        if record["iter"] == 5:
            raise _Stop

    cut = tmp_path / "cut"
    with pytest.raises(_Stop):
        train(_config(tiny_train, toy_root, cut, max_iters=6, overrides=overrides), stop_at_5)
    resumed = train(
        _config(tiny_train, toy_root, cut, max_iters=6, overrides=overrides, resume=True)
    )
    assert resumed.losses == pytest.approx(full.losses[3:], rel=1e-5, abs=1e-6)
    final = torch.load(cut / "checkpoints" / "final.pt", weights_only=True)
    reference = load_checkpoint(tmp_path / "full" / "checkpoints" / "final.pt")
    assert final["config"]["preset"]["cls_loss"] == loss
    buffers = [k for k in reference["model"] if k.startswith("roi_heads.cls_loss.")]
    assert buffers == [
        {
            "seesaw": "roi_heads.cls_loss.cum_samples",
            "federated": "roi_heads.cls_loss.class_weights",
        }[loss]
    ]
    for key, value in reference["model"].items():
        torch.testing.assert_close(final["model"][key], value, rtol=1e-4, atol=1e-5)
    dataset = LVISDetection(tiny_train, toy_root, skip_empty=True)
    state = reference["model"][buffers[0]]
    if loss == "seesaw":  # every sampled RoI of 6 iterations x 2 images, background included
        assert int(state.sum()) == 6 * 2 * FAST["box_batch_size_per_image"]
    else:
        expected = torch.from_numpy(setup_mod.class_image_counts(dataset)).float().sqrt()
        torch.testing.assert_close(state, expected)
    model, _ = load_trained_model(cut / "checkpoints" / "final.pt")
    assert model.roi_heads.cls_loss.name == loss
    torch.testing.assert_close(model.state_dict()[buffers[0]], state)


def test_class_image_counts_come_from_the_annotations(tiny_train, toy_root):
    data = json.loads(tiny_train.read_text())
    dataset = LVISDetection(tiny_train, toy_root, skip_empty=True)
    counts = setup_mod.class_image_counts(dataset)
    assert counts.shape == (dataset.mapping.num_classes,) and counts.dtype.kind == "i"
    for label, category_id in enumerate(dataset.mapping.category_ids, start=1):
        images = {a["image_id"] for a in data["annotations"] if a["category_id"] == category_id}
        assert counts[label - 1] == len(images), category_id
    assert counts.sum() > 0


def test_the_loss_is_chosen_from_the_command_line():
    cfg = cli.config_from_args(["--overrides", "{cls_loss: eqlv2, eqlv2_gamma: 6}"])
    preset = run_preset(cfg)
    assert (preset.cls_loss, preset.eqlv2_gamma, preset.eqlv2_mu) == ("eqlv2", 6, 0.8)
    with pytest.raises(ValueError, match="cls_loss 'softmax' is not one of"):
        run_preset(cli.config_from_args(["--overrides", "{cls_loss: softmax}"]))


def test_a_run_of_an_older_kit_resumes_with_what_it_began(
    finished_run, tiny_train, toy_root, tmp_path, monkeypatch
):
    """The kit's preset defaults changed since the run began (here toy's box loss and BN, as
    issue 23 changed mmdetection rows'), and the checkpoint's record lacks a field an older kit
    did not have: the resumed run keeps the values it was trained with."""
    run_dir = _copy_run(finished_run, tmp_path / "copy")
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    del state["config"]["preset"]["box_loss"]  # an older kit's record
    save_checkpoint(last, state)
    toy = presets_mod.PRESETS["toy"]
    changed = dataclasses.replace(toy, box_loss="l1", norm="bn_eval")
    monkeypatch.setitem(presets_mod.PRESETS, "toy", changed)
    _short_run(tiny_train, toy_root, run_dir, resume=True)
    resumed = json.loads((run_dir / "config.json").read_text())["preset"]
    assert (resumed["box_loss"], resumed["norm"]) == ("smooth_l1", toy.norm)
