import dataclasses
import inspect
import json

import pandas as pd
import pytest
import torch
from tiny_lvis import ann as _ann
from tiny_lvis import good as _good
from tiny_lvis import tiny_gt as _tiny_gt

from lvisnb import cli
from lvisnb.annotations import full_scale, toy
from lvisnb.annotations.images import ImageReadError
from lvisnb.engine import trainer as train_mod


def test_toy_command_writes_and_is_idempotent(tmp_path, capsys):
    out = tmp_path / "toy"
    args = ["toy", str(out), "--train-images", "120", "--val-images", "30"]
    assert cli.main(args) == 0
    assert toy.is_complete(out)
    meta = json.loads((out / toy.META_FILE).read_text())
    assert meta["settings"]["num_train_images"] == 120
    before = (out / toy.TRAIN_FILE).stat().st_mtime_ns
    assert cli.main([*args, "--if-absent"]) == 0
    assert (out / toy.TRAIN_FILE).stat().st_mtime_ns == before
    assert "already" in capsys.readouterr().out


def test_full_scale_small(tmp_path):
    from lvisnb.annotations.tables import read_tables
    from lvisnb.annotations.validate import load_lvis

    path = full_scale.make_full_scale_lvis(tmp_path, num_images=2000, num_instances=30000)
    tables = read_tables(path)
    assert len(tables.images) == 2000
    assert len(tables.annotations) >= 30000
    assert len(tables.categories) == 1203
    gt = load_lvis(path)
    assert len(gt.anns) == len(tables.annotations)


def test_every_subcommand_is_registered():
    name, _ = cli.parse_args(["evaluate", "gt.json", "r.json"])
    assert cli.COMMANDS[name].run is cli._cmd_evaluate
    name, train_args = cli.parse_args(["train", "--max-iters", "3", "--resume"])
    assert cli.COMMANDS[name].run is cli._cmd_train
    assert (train_args.max_iters, train_args.resume) == (3, True)  # parsed by TrainConfig
    name, _ = cli.parse_args(["run"])
    assert cli.COMMANDS[name].run is cli._cmd_run


def test_help_lists_every_subcommand_and_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--help"])
    assert stopped.value.code == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in cli.COMMANDS)
    for name, command in cli.COMMANDS.items():
        config = command.config()
        source = inspect.getsource(config).splitlines()
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        text = capsys.readouterr().out
        for field in dataclasses.fields(config):
            at = next(i for i, line in enumerate(source) if line.lstrip().startswith(field.name))
            assert "#" in source[at] or source[at - 1].strip().startswith("#"), (name, field.name)
            flag = field.name.replace("_", "-")
            assert f"--{flag}" in text or field.name.upper() in text, (name, field.name)


def test_run_flags_repeat_and_a_malformed_param_is_one_line(capsys):
    _, args = cli.parse_args(["run", "--only", "01", "--only", "03", "-p", "a=1", "--param", "b=x"])
    assert (args.only, args.param) == (("01", "03"), ("a=1", "b=x"))
    assert cli.main(["run", "-p", "novalue"]) == 2
    assert capsys.readouterr().err.startswith("lvisnb run: error: -p expects NAME=VALUE")


# ----------------------------------------------------------------------------- evaluate


def test_cli_prints_the_table_and_writes_metrics_json(tmp_path, capsys):
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_tiny_gt()))
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps([_good()]))
    out = tmp_path / "out" / "metrics.json"
    csv = tmp_path / "per_category.csv"
    argv = [str(gt_path), str(results_path), "--backend", "lvis", "--iou-types", "segm"]
    assert cli.main(["evaluate"] + argv + ["--out", str(out), "--per-category-csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "APfixed" in printed and "segm" in printed and str(out) in printed
    assert "-1.0000" not in printed and "no ground truth in the group" in printed  # APc, APf
    saved = json.loads(out.read_text())
    assert saved["metrics"]["segm"]["AP"] == pytest.approx(1.0)
    assert saved["info"]["backend"] == "lvis"
    assert saved["per_category"][1]["AP_segm"] is None  # banana: no GT
    assert csv.read_text().startswith("id,name,frequency,train_image_count,val_images,AP_segm")
    assert saved["info"]["segm_area"] == "mask" and "areas from the masks" in printed
    assert cli.main(["evaluate"] + argv + ["--out", str(out), "--segm-area", "box"]) == 0
    assert json.loads(out.read_text())["info"]["segm_area"] == "box"
    assert "as raw LVISEval" in capsys.readouterr().out
    # --train-ann: the train file's image counts (category 1 on both images, 2 on none)
    train = _tiny_gt()
    train["annotations"].append(_ann(2, 7, 1, 1, 1, 5, 5))
    train_path = tmp_path / "train.json"
    train_path.write_text(json.dumps(train))
    argv += ["--out", str(out), "--per-category-csv", str(csv), "--train-ann", str(train_path)]
    assert cli.main(["evaluate"] + argv) == 0
    table = pd.read_csv(csv)
    assert table["train_image_count"].tolist()[:2] == [2, 0]
    assert table["val_images"].tolist()[:2] == [1, 0]
    assert json.loads(out.read_text())["info"]["train_count_source"] == (
        "training images (train.json)"
    )


def test_evaluate_parser_registers_as_a_subcommand():
    name, args = cli.parse_args(["evaluate", "gt.json", "res.json", "--iou-types", "bbox"])
    assert cli.COMMANDS[name].run is cli._cmd_evaluate
    assert (args.backend, args.iou_types, args.out) == ("fast", ["bbox"], "metrics.json")


def test_cli_reports_refused_input_in_one_line(tmp_path, capsys):
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_tiny_gt()))
    results_path = tmp_path / "results.json"
    results_path.write_text('[{"image_id": 1, "category_id": 1, "score": NaN}]')
    assert cli.main(["evaluate", str(gt_path), str(results_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("lvisnb evaluate: error: ") and "NaN at line 1" in error
    assert "Traceback" not in error
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    assert cli.main(["evaluate", str(gt_path), str(deep)]) == 2
    assert "nested too deeply" in capsys.readouterr().err


# ----------------------------------------------------------------------------- train


def test_command_line_parses_every_field():
    cfg = cli.config_from_args(
        ["--max-iters", "5", "--lr-steps", "3", "4", "--resume", "--sampler", "uniform"]
    )
    assert cfg.max_iters == 5 and cfg.lr_steps == (3, 4) and cfg.resume is True
    assert cfg.sampler == "uniform" and cfg.preset == "toy"


def test_command_line_values_are_typed_by_the_config(capsys):
    """Not YAML: 'on' stays a string, 0123 keeps its zero, 1e-3 is a float."""
    cfg = cli.config_from_args(
        [
            "--run-dir",
            "on",
            "--train-ann",
            "0123",
            "--lr",
            "1e-3",
            "--no-progress",
            "--overrides",
            "{train_scales: [480, 512]}",
            "--max-iters",
            "None",
        ]
    )
    assert cfg.run_dir == "on" and cfg.train_ann == "0123" and cfg.lr == 0.001
    assert cfg.progress is False and cfg.max_iters is None
    assert cfg.overrides == {"train_scales": [480, 512]}
    for bad in (["--lr", "fast"], ["--batch-size", "2.5"], ["--overrides", "[1, 2]"]):
        with pytest.raises(SystemExit) as exit_:
            cli.config_from_args(bad)
        assert exit_.value.code == 2
    assert "--lr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.config_from_args(["--help"])
    assert "DataLoader workers per process" in capsys.readouterr().out  # the field's comment


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (FloatingPointError("non-finite loss at iteration 2"), 1, "stopped: non-finite loss"),
        (ValueError("lr must be a finite number"), 2, "error: lr must be"),
    ],
)
def test_the_command_line_stops_with_one_line(monkeypatch, capsys, error, status, line):
    def fail(cfg):
        raise error

    monkeypatch.setattr(train_mod, "train", fail)
    monkeypatch.delenv("LVISNB_TRACEBACK", raising=False)
    assert cli.main(["train", "--preset", "toy"]) == status
    err = capsys.readouterr().err
    assert err.startswith(f"lvisnb train: {line}") and err.count("\n") == 1
    assert "Traceback" not in err
    monkeypatch.setenv("LVISNB_TRACEBACK", "1")
    with pytest.raises(type(error)):
        cli.main(["train", "--preset", "toy"])


def test_malformed_overrides_yaml_is_one_error(capsys):
    with pytest.raises(SystemExit) as stopped:  # tyro reports the kit's ValueError, exit 2
        cli.config_from_args(["--overrides", "{cls_loss: "])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--overrides is not valid YAML" in err and "Traceback" not in err


def test_predict_reports_a_failed_download_in_one_line(monkeypatch, capsys, tmp_path):
    """A published name offline: the kit's DownloadError, one line, status 2."""
    from lvisnb.engine import model_source
    from lvisnb.model.mmdet_zoo import DownloadError

    def offline(name, progress):
        raise DownloadError(f"https://example.invalid/{name}.pth: download failed (offline)")

    monkeypatch.setattr(model_source, "published_checkpoint", offline)
    name = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
    ann = tmp_path / "val.json"
    ann.write_text("{}")
    argv = ["predict", name, "--ann-file", str(ann), "--image-root", str(tmp_path)]
    assert cli.main([*argv, "--out", str(tmp_path / "r.json"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lvisnb predict: error: https://example.invalid/{name}.pth: download failed (offline)"
    ]


def _predict_argv(tmp_path, checkpoint, image_root):
    ann = tmp_path / "val.json"
    ann.write_text("{}")
    return ["predict", str(checkpoint), "--ann-file", str(ann), "--image-root", str(image_root)]


def test_predict_refuses_a_folder_as_checkpoint_in_one_line(capsys, tmp_path):
    argv = _predict_argv(tmp_path, tmp_path, tmp_path)
    assert cli.main([*argv, "--out", str(tmp_path / "r.json"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lvisnb predict: error: {tmp_path}: a folder, not a checkpoint file"]


def test_predict_refuses_a_missing_image_root_before_loading(monkeypatch, capsys, tmp_path):
    from lvisnb.engine import model_source

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the image root was checked")

    monkeypatch.setattr(model_source, "load_model", never)
    argv = _predict_argv(tmp_path, "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1", "nowhere")
    assert cli.main([*argv, "--out", str(tmp_path / "r.json"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lvisnb predict: error: --image-root nowhere: no such folder"]


class _FailingImages(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise ImageReadError("val.json: image 7: x.jpg: no such file\nsecond line")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_worker_error_is_the_same_message_as_without_workers(workers):
    """torch wraps an error raised in a DataLoader worker with the worker's traceback; the
    command line prints the original message, as without workers."""
    loader = torch.utils.data.DataLoader(_FailingImages(), num_workers=workers)
    with pytest.raises(ImageReadError) as caught:
        next(iter(loader))
    assert cli.error_message(caught.value) == "val.json: image 7: x.jpg: no such file\nsecond line"
    assert cli.error_message(ValueError("plain")) == "plain"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--score-thresh", "2"], "--score-thresh must be a number in [0, 1], got 2.0"),
        (["--score-thresh", "nan"], "--score-thresh must be a number in [0, 1], got nan"),
        (["--max-dets", "0"], "--max-dets must be None or an integer >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--num-workers", "-1"], "--num-workers must be an integer >= 0, got -1"),
    ],
)
def test_predict_refuses_numbers_out_of_range_before_loading(
    monkeypatch, capsys, tmp_path, flags, message
):
    from lvisnb.engine import model_source

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the flags were checked")

    monkeypatch.setattr(model_source, "load_model", never)
    argv = _predict_argv(tmp_path, "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1", tmp_path)
    assert cli.main([*argv, "--out", str(tmp_path / "r.json"), *flags]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"lvisnb predict: error: {message}"]
