"""Each notebook runs headless through papermill with small parameters and writes its files."""

import json
from pathlib import Path

import nbformat
import pytest

from lvisnb import notebook_runner as runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _png_ok(path: Path) -> bool:
    return (
        path.is_file()
        and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        and path.stat().st_size > 5000
    )


def check_01(run_dir: Path, toy_train: Path) -> None:
    stats = json.loads((run_dir / "stats.json").read_text())
    raw = json.loads(toy_train.read_text())
    assert stats["ann_file"] == str(toy_train)
    assert stats["images"] == len(raw["images"])
    assert stats["instances"] == len(raw["annotations"])
    for group in "rcf":
        expected = sum(c["frequency"] == group for c in raw["categories"])
        assert stats["groups"][group]["categories"] == expected
        instances = sum(
            1
            for a in raw["annotations"]
            if next(c for c in raw["categories"] if c["id"] == a["category_id"])["frequency"]
            == group
        )
        assert stats["groups"][group]["instances"] == instances
    assert stats["groups"]["r"]["instance_share"] < stats["groups"]["f"]["instance_share"]
    assert stats["rank_frequency_fit"]["alpha"] > 0.5
    assert sum(stats["sizes"].values()) == pytest.approx(1.0)
    for name in ("groups", "rank_frequency", "federated", "sizes", "instances_per_image"):
        assert _png_ok(run_dir / f"long_tail_{name}.png"), name


def check_02(run_dir: Path, toy_train: Path) -> None:
    import torch

    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["iterations"] == 3 and summary["sampler"] == "rfs"
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log] == [1, 2, 3]
    assert all(0 < r["loss"] < 100 for r in log)
    # rfs_threshold=none: the preset's; 3 iterations compare the first and the last one
    assert summary["preset"] == "toy" and summary["rfs_threshold"] == 0.1
    assert summary["loss_window"] == 1
    assert (summary["loss_first"], summary["loss_last"]) == (log[0]["loss"], log[-1]["loss"])
    assert summary["batch_size"] == 2 and summary["minutes"] > 0
    seconds = sum(r["time"] for r in log)
    assert summary["images_per_second"] == pytest.approx(3 * 2 / seconds)
    assert summary["checkpoint"] == str(run_dir / "checkpoints" / "final.pt")
    checkpoint = torch.load(run_dir / "checkpoints" / "final.pt", weights_only=True)
    assert checkpoint["iteration"] == 3
    raw = json.loads(toy_train.read_text())
    assert checkpoint["category_ids"] == sorted(c["id"] for c in raw["categories"])
    shares = summary["composition"]
    for column in ("uniform", "RFS expected", "RFS observed"):
        assert sum(shares[column].values()) == pytest.approx(1.0)
    # RFS shows rare categories more often than uniform sampling, and the sampled epoch
    # follows the expectation
    assert shares["RFS expected"]["r"] > 1.5 * shares["uniform"]["r"]
    assert shares["RFS observed"]["r"] == pytest.approx(shares["RFS expected"]["r"], rel=0.5)
    assert summary["epoch_images"]["RFS expected"] > summary["epoch_images"]["uniform"]
    factors = summary["repeat_factors"]
    assert factors["r"]["mean r(c)"] > factors["f"]["mean r(c)"] == pytest.approx(1.0)
    for name in ("repeat_factors", "epoch_composition", "loss"):
        assert _png_ok(run_dir / f"training_{name}.png"), name


def params_03(toy: dict) -> dict:
    """A 2-iteration checkpoint at small scale, so that inference over toy val is quick."""
    from lvisnb.engine.config import TrainConfig
    from lvisnb.engine.trainer import train

    overrides = {"train_scales": (160,), "test_scale": 160, "max_size": 200}
    run = train(
        TrainConfig(
            train_ann=str(toy["train"]),
            image_root=str(toy["root"]),
            run_dir=str(toy["scratch"] / "train"),
            device="cpu",
            max_iters=2,
            progress=False,
            overrides=overrides,
        )
    )
    return {
        "ann_file": str(toy["val"]),
        "train_ann_file": str(toy["train"]),
        "checkpoint": str(run.checkpoint),
        "max_dets": 20,
    }


def check_03(run_dir: Path, toy_train: Path) -> None:
    from lvisnb.evaluation.evaluator import evaluate
    from lvisnb.evaluation.metrics import metric_names

    results = json.loads((run_dir / "results.json").read_text())
    per_image = {}
    for record in results:
        per_image[record["image_id"]] = per_image.get(record["image_id"], 0) + 1
    assert results and max(per_image.values()) <= 20
    saved = json.loads((run_dir / "metrics.json").read_text())
    val = Path(saved["info"]["gt"])
    assert set(saved["metrics"]) == {"bbox", "segm"}
    # the notebook's numbers are the official LVISEval's, recomputed here from its results
    official = evaluate(val, run_dir / "results.json", backend="lvis", fixed=False)
    for iou_type in ("bbox", "segm"):
        assert set(metric_names()) <= set(saved["metrics"][iou_type])
        for name, value in official.metrics[iou_type].items():
            assert saved["metrics"][iou_type][name] == pytest.approx(value, abs=1e-4), name
    categories = json.loads(val.read_text())["categories"]
    assert len(saved["per_category"]) == len(categories)
    # AP is plotted against the train file's counts, not the val file's own image_count
    assert saved["info"]["train_count_source"] == "training images (lvis_v1_train.json)"
    train = json.loads(toy_train.read_text())
    train_counts = {c["id"]: c["image_count"] for c in train["categories"]}
    for row in saved["per_category"]:
        assert row["train_image_count"] == train_counts[row["id"]]
    for name in ("ap_by_group", "ap_vs_train_images"):
        assert _png_ok(run_dir / f"eval_{name}.png"), name
    # evaluation.json: what was evaluated, how long inference took, the headline metrics
    summary = json.loads((run_dir / "evaluation.json").read_text())
    assert summary["ann_file"] == saved["info"]["gt"] == str(val)
    assert summary["results_file"] == str(run_dir / "results.json")
    assert summary["backend"] == "fast" and summary["inference_seconds"] > 0
    for name, iou_type in (("box", "bbox"), ("mask", "segm")):
        expected = {k: saved["metrics"][iou_type][k] for k in ("AP", "APr", "APc", "APf")}
        assert summary[name] == expected, name


def params_04(toy: dict) -> dict:
    """Synthetic results (perturbed toy val plus false positives) stand in for notebook 03's."""
    from synthetic import toy_detections

    results = toy["scratch"] / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(toy_detections(json.loads(toy["val"].read_text()), seed=2)))
    return {
        "ann_file": str(toy["val"]),
        "results_file": str(results),
        "n_images": 2,
        "score_thr": 0.4,
    }


def check_04(run_dir: Path, toy_train: Path) -> None:
    from lvisnb.viz import verdicts as federated
    from lvisnb.viz.scene import load_scene

    summary = json.loads((run_dir / "visualisation.json").read_text())
    assert summary["interactive"] is False  # papermill: the static grid stands in
    assert set(summary["figures"]) == {
        "grid",
        "federated",
        "gallery_gt",
        "gallery_predictions",
        "browser_static",
    }
    for name, path in summary["figures"].items():
        assert _png_ok(Path(path)) and Path(path).parent == run_dir, name
    scene = load_scene(summary["ann_file"], results=summary["results_file"])
    assert summary["image_ids"] == scene.showcase(2) and len(summary["image_ids"]) == 2
    shown = scene.ground_truth(summary["image_ids"][0])
    assert any(scene.frequency[a["category_id"]] != "f" for a in shown)
    # the verdict table counts every prediction above the threshold once
    verdicts = summary["verdicts"]
    above = sum(len(scene.predictions(i, 0.4)) for i in scene.image_ids)
    assert sum(verdicts["total"][s] for s in federated.PREDICTION_STATUSES) == above
    assert verdicts["total"][federated.IGNORED_UNVERIFIED] > 0
    # the gallery shows the rarest category that was predicted: rarest group, then fewest images
    predicted = {r["category_id"] for recs in scene.results.values() for r in recs}
    annotated = {a["category_id"] for anns in scene.instances.values() for a in anns}
    group = {c: "rcf".index(scene.frequency[c]) for c in predicted & annotated}
    chosen = summary["gallery_category"]
    assert group[chosen] == min(group.values())
    images = {
        c: sum(c in {a["category_id"] for a in anns} for anns in scene.instances.values())
        for c in group
        if group[c] == group[chosen]
    }
    assert images[chosen] == min(images.values())


def params_05(toy: dict) -> dict:
    """Notebook 03's 2-iteration checkpoint; a few images, 2 seeds, a short retraining."""
    return {
        "checkpoint": params_03(toy)["checkpoint"],
        "train_ann": str(toy["train"]),
        "val_ann": str(toy["val"]),
        "image_root": str(toy["root"]),
        "train_images": 6,
        "val_images": 6,
        "seeds": 2,
        "iterations": 150,
    }


def check_05(run_dir: Path, toy_train: Path) -> None:
    summary = json.loads((run_dir / "long_tail_methods.json").read_text())
    assert summary["protocol"] == "decoupled" and summary["seeds"] == [0, 1]
    arms = ["uniform+ce", "rfs+ce", "rfs+seesaw", "rfs+eqlv2", "rfs+federated"]
    assert summary["arms"] == arms and summary["baseline"] == "rfs+ce"
    # one leaderboard row per method and seed, read from its own run directory
    rows = summary["leaderboard"]
    assert sorted((r["arm"], r["seed"]) for r in rows) == sorted(
        (arm, seed) for arm in arms for seed in (0, 1)
    )
    for row in rows:
        assert row["iterations"] == 150 and row["arm"] == f"{row['sampler']}+{row['method']}"
        assert 0 <= row["box_AP"] <= 1 and 0 <= row["mask_AP"] <= 1  # masks by default
        metrics = json.loads((Path(row["run"]) / "metrics.json").read_text())
        assert set(metrics["metrics"]) == {"bbox", "segm"}
        assert metrics["info"]["num_detections"] > 0
    # means over the two seeds with their intervals, one row per arm
    assert [r["arm"] for r in summary["over_seeds"]] == arms
    for row in summary["over_seeds"]:
        assert row["seeds"] == 2 and row["box_AP_low"] <= row["box_AP"] <= row["box_AP_high"]
    # paired differences against rfs+ce, keyed by arm then metric
    metrics_names = ("AP", "APr", "APc", "APf")
    assert summary["masks"] and summary["metrics"][4:] == [f"mask_{m}" for m in metrics_names]
    assert set(summary["differences"]) == set(arms) - {"rfs+ce"}
    for arm, by_metric in summary["differences"].items():
        assert set(by_metric) == {f"{t}_{m}" for t in ("box", "mask") for m in metrics_names}
        ap = by_metric["box_AP"]
        assert ap["seeds"] == 2 and ap["low"] <= ap["mean"] <= ap["high"], arm
        assert sorted(ap["per_seed"]) == ["0", "1"]
    timings = summary["timings"]
    assert timings["total_seconds"] >= timings["runs_seconds"] > timings["masks_seconds"] > 0
    assert timings["features_reused"] is False and timings["machine"].endswith("threads")
    cache = run_dir / "long_tail" / "decoupled"
    assert {p.name for p in cache.glob("*.pt")} == {"roi_features_train.pt", "roi_features_val.pt"}
    for name in ("ap_by_group", "differences"):
        assert _png_ok(run_dir / f"long_tail_{name}.png"), name


CASES = {
    "01_long_tail_analysis.ipynb": (lambda toy: {"ann_file": str(toy["train"])}, check_01),
    "02_training.ipynb": (
        # text, as `lvisnb run -p max_iters=3 -p rfs_threshold=none` passes them
        lambda toy: {
            "train_ann": str(toy["train"]),
            "max_iters": "3",
            "batch_size": 2,
            "rfs_threshold": "none",
        },
        check_02,
    ),
    "03_per_frequency_ap.ipynb": (params_03, check_03),
    "04_mask_visualisation.ipynb": (params_04, check_04),
    "05_long_tail_methods.ipynb": (params_05, check_05),
}


def test_every_notebook_has_a_test_case():
    assert NOTEBOOKS, "no notebooks found"
    assert {p.name for p in NOTEBOOKS} <= set(CASES)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_writes_its_outputs(
    notebook, tmp_path, toy_root, toy_train, toy_val, monkeypatch
):
    monkeypatch.setenv("LVISNB_TOY_ROOT", str(toy_root))
    make_params, check = CASES[notebook.name]
    toy = {"root": toy_root, "train": toy_train, "val": toy_val, "scratch": tmp_path / "scratch"}
    params = make_params(toy)
    executed = runner.run_notebooks(
        tmp_path,
        notebooks_dir=notebook.parent,
        select=[notebook.name],
        parameters=params,
        html=True,
    )
    assert executed == [tmp_path / notebook.name]
    nb = nbformat.read(executed[0], as_version=4)
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    assert (tmp_path / notebook.with_suffix(".html").name).stat().st_size > 10_000
    check(tmp_path, toy_train)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "first code cell is the one parameters cell"
    declared = runner.declared_parameters(notebook)
    assert "run_dir" in declared
    assert all(p["help"] for p in declared.values()), "every parameter has a trailing comment"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
