"""benchmarks/long_tail_table.py: notebook 05's summary as a RESULTS.md section."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from lvisnb.methods import long_tail_summary
from lvisnb.methods.ranking import over_seeds

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SPEC = importlib.util.spec_from_file_location("long_tail_table", BENCHMARKS / "long_tail_table.py")
long_tail_table = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(long_tail_table)  # a script, not a package module: loaded by path
from _results import read_section  # noqa: E402  (on sys.path once the script is loaded)

METRICS = long_tail_summary.metric_columns("end_to_end")


def _summary(run_dir: Path) -> Path:
    """Three arms x three seeds: RFS clearly above uniform on box APr, Seesaw within noise."""
    base = {"uniform+ce": 0.10, "rfs+ce": 0.20, "rfs+seesaw": 0.21}
    noise = [0.0, 0.01, -0.01]
    rows = []
    for arm, value in base.items():
        sampler, method = arm.split("+")
        for seed, shift in enumerate(noise):
            wobble = 0.02 * (seed - 1) if arm == "rfs+seesaw" else 0.0
            metrics = {m: value + shift + wobble for m in METRICS}
            rows.append({"method": method, "sampler": sampler, "seed": seed, **metrics})
    board = pd.DataFrame(rows)
    differences = long_tail_summary.paired_differences(board, METRICS)
    return long_tail_summary.write_summary(
        run_dir,
        board,
        over_seeds(board, metrics=METRICS),
        differences,
        protocol="decoupled",
        metrics=METRICS,
        seeds=[0, 1, 2],
        iterations=1000,
        checkpoint="runs/demo/checkpoints/final.pt",
        preset="toy",
        timings={
            "total_seconds": 300.0,
            "features_seconds": 80.0,
            "features_reused": False,
            "masks_seconds": 90.0,
            "runs_seconds": 150.0,
            "machine": "x86_64, cpu, 2 threads",
        },
    )


def test_the_section_has_every_arm_its_differences_and_the_answers(tmp_path):
    _summary(tmp_path)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    long_tail_table.main(["--run-dir", str(tmp_path), "--results", str(results)])
    text = read_section("long_tail_methods", results)
    assert read_section("other", results) == "kept"  # other sections are left alone
    assert "took 5.0 min, RoI features extracted in 80 s, the one mask pass" in text
    assert "the mask pass included (x86_64, cpu, 2 threads). Intervals" in text
    assert "1000 iterations per run, seeds [0, 1, 2]" in text
    means = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split("|")[1].strip() for line in means[:3]] == [
        "`uniform+ce`",
        "`rfs+ce`",
        "`rfs+seesaw`",
    ]
    # rfs+ce: 0.20, 0.21, 0.19 -> mean 0.200, t-interval 0.200 +- 4.303 * 0.01 / sqrt(3)
    assert "| `rfs+ce` | 3 | 0.200 [0.175, 0.225] |" in text
    answers = {
        (line.split("|")[1].strip(), line.split("|")[2].strip()): line.split("|")[4].strip()
        for line in text.splitlines()
        if line.startswith("| `") and " > " in line
    }
    assert answers[("`rfs+ce > uniform+ce`", "box_APr")].startswith("yes: rfs+ce ahead by 0.100")
    assert answers[("`rfs+seesaw > rfs+ce`", "mask_APr")].startswith("cannot tell")
    assert set(metric for _, metric in answers) == {"box_APr", "mask_APr", "box_AP", "mask_AP"}


def test_a_missing_summary_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        long_tail_table.main(["--run-dir", str(tmp_path), "--results", str(tmp_path / "R.md")])
    assert "run notebook 05" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


def test_the_summary_json_is_read_back_as_written(tmp_path):
    saved = json.loads(_summary(tmp_path).read_text())
    again = long_tail_summary.differences_from_summary(saved)
    assert set(again["arm"]) == {"uniform+ce", "rfs+seesaw"}
    assert set(again["metric"]) == set(METRICS)


def test_box_only_and_untimed_summaries_say_so(tmp_path):
    path = _summary(tmp_path)
    saved = json.loads(path.read_text())
    saved.update(masks=False, timings={})
    text = long_tail_table.section(saved, path)
    assert "box AP only" in text and "mask head" not in text
    assert "took" not in text and "val images: all. Intervals" in text
    assert "nor the features" in text  # decoupled: one model's features for every run
    saved.update(timings={"total_seconds": 60.0, "runs_seconds": 50.0, "masks_seconds": None})
    text = long_tail_table.section(saved, path)
    assert "all runs 50 s (machine not recorded)." in text and "mask pass" not in text
