"""Run-directory summaries: training.json from the log and config."""

import json

import pytest

from lvisnb.engine import run_dir as runs

LOSSES = [4.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def _fake_run(run_dir, losses=LOSSES, first_iter=1, seconds=0.5, total_batch=4, final=True):
    """A run directory as lvisnb.engine.trainer leaves it: config.json, a log line per iteration
    (each ``seconds`` long), and checkpoints/final.pt (an empty stand-in) when ``final``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "train": {"batch_size": total_batch, "seed": 0},
        "preset": {"name": "toy"},
        "resolved": {"sampler": "rfs", "rfs_threshold": 0.1, "total_batch": total_batch},
    }
    (run_dir / runs.CONFIG_FILE).write_text(json.dumps(config))
    lines = [
        json.dumps({"iter": first_iter + i, "loss": loss, "time": seconds})
        for i, loss in enumerate(losses)
    ]
    (run_dir / runs.LOG_FILE).write_text("".join(line + "\n" for line in lines))
    if final:
        (run_dir / runs.CHECKPOINT_DIR).mkdir(exist_ok=True)
        (run_dir / runs.CHECKPOINT_DIR / runs.FINAL).write_bytes(b"")
    return run_dir


@pytest.mark.parametrize(
    ("losses", "window", "expected"),
    [
        (LOSSES, 20, (3.5, 0.5)),  # 8 // 4 = 2: (4 + 3) / 2 and (1 + 0) / 2
        (LOSSES, 1, (4.0, 0.0)),
        ([2.0, 6.0, 9.0], 20, (2.0, 9.0)),  # 3 // 4 = 0, at least 1
        ([5.0], 20, (5.0, 5.0)),
        (list(range(100)), 20, (9.5, 89.5)),  # 20 of 100: mean(0..19), mean(80..99)
    ],
)
def test_loss_windows_average_the_first_and_last_quarter_up_to_the_window(losses, window, expected):
    assert runs.loss_windows(losses, window) == pytest.approx(expected)


def test_loss_windows_of_no_iteration_is_an_error():
    with pytest.raises(ValueError, match="no iteration"):
        runs.loss_windows([])


def test_training_summary_reads_the_run_directory(tmp_path):
    run_dir = _fake_run(tmp_path / "run")
    summary = runs.training_summary(run_dir, wall_seconds=90.0)
    assert summary == {
        "preset": "toy",
        "sampler": "rfs",
        "rfs_threshold": 0.1,
        "iterations": 8,
        "batch_size": 4,
        "train_seconds": pytest.approx(4.0),  # 8 iterations x 0.5 s
        "images_per_second": pytest.approx(8.0),  # 8 x 4 images / 4 s
        "minutes": pytest.approx(1.5),
        "loss_first": pytest.approx(3.5),
        "loss_last": pytest.approx(0.5),
        "loss_window": 2,
        "checkpoint": str(run_dir / "checkpoints" / "final.pt"),
    }


def test_training_summary_of_a_resumed_part_and_without_final(tmp_path):
    # a log that starts at iteration 11 (cut back by a resume) and only last.pt so far
    run_dir = _fake_run(tmp_path, losses=[2.0, 1.0], first_iter=11, seconds=2.0, final=False)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    summary = runs.training_summary(run_dir)
    assert summary["iterations"] == 12 and summary["minutes"] is None
    assert summary["images_per_second"] == pytest.approx(2.0)  # 2 x 4 images / 4 s
    assert summary["checkpoint"] == str(run_dir / "checkpoints" / "last.pt")


def test_training_summary_needs_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no training run"):
        runs.training_summary(tmp_path)
    _fake_run(tmp_path, losses=[])
    with pytest.raises(ValueError, match="no iteration"):
        runs.training_summary(tmp_path)


def test_write_training_summary_adds_extra_and_replaces_its_own_file(tmp_path):
    run_dir = _fake_run(tmp_path)
    path = runs.write_training_summary(run_dir, wall_seconds=60.0, extra={"epoch_images": 7})
    assert path == run_dir / "training.json"
    written = json.loads(path.read_text())
    assert written["epoch_images"] == 7 and written["minutes"] == pytest.approx(1.0)
    assert written["loss_first"] == pytest.approx(3.5)
    runs.write_training_summary(run_dir, wall_seconds=120.0)  # its own file: replaced
    assert json.loads(path.read_text())["minutes"] == pytest.approx(2.0)
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(ValueError, match="replace the summary's own \\['iterations'\\]"):
        runs.write_training_summary(run_dir, extra={"iterations": 1})


def test_a_users_training_json_is_not_replaced(tmp_path):
    run_dir = _fake_run(tmp_path)
    (run_dir / "training.json").write_text('{"my": "notes"}')
    with pytest.raises(FileExistsError, match="not a training summary the kit wrote"):
        runs.write_training_summary(run_dir)
    assert (run_dir / "training.json").read_text() == '{"my": "notes"}'
    runs.write_training_summary(run_dir, overwrite=True)
    assert json.loads((run_dir / "training.json").read_text())["iterations"] == 8


def test_log_lines_must_be_records_and_a_torn_last_line_may_trail_blank_lines(tmp_path):
    from lvisnb.engine.run_dir import LOG_FILE, read_log

    log = tmp_path / LOG_FILE
    log.write_text('{"iter": 1, "loss": 2.0}\n{"iter": 2, "lo\n\n\n')
    assert [r["iter"] for r in read_log(tmp_path)] == [1]  # torn last line, then blank lines
    with pytest.raises(ValueError, match="line 2 is not a log record"):
        read_log(tmp_path, drop_torn=False)
    for bad in ("[1, 2]", '"text"', '{"loss": 2.0}', '{"iter": "2"}'):
        log.write_text(f'{{"iter": 1, "loss": 2.0}}\n{bad}\n{{"iter": 3, "loss": 1.0}}\n')
        with pytest.raises(ValueError, match="line 2 is not a log record"):
            read_log(tmp_path)
