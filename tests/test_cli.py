import json

from lvisnb import cli
from lvisnb.annotations import full_scale, toy


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
    from lvisnb.evaluation import evaluate

    parser = cli.build_parser()
    assert parser.parse_args(["evaluate", "gt.json", "r.json"]).func is evaluate._cmd_evaluate
    train_args = parser.parse_args(["train", "--max-iters", "3", "--resume"])
    assert train_args.train_args == ["--max-iters", "3", "--resume"]
    assert parser.parse_args(["run"]).func is cli._cmd_run
