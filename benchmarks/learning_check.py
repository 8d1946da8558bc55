"""End-to-end learning check: what the toy preset trained by `make demo` reaches on toy val.

    make demo                                       # notebooks 01-03 into runs/demo/
    python benchmarks/learning_check.py [--run-dir runs/demo]

Reads the files notebooks 02 and 03 wrote (``training.json``, ``train_log.jsonl``,
``metrics.json``) and writes box and mask AP, APr, APc, APf and the training minutes to
RESULTS.md. Target (issue 4): mask APf >= 0.25 within 20 minutes of training on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402

from lvisnb.engine.run_dir import read_log  # noqa: E402

TARGET_APF = 0.25
TARGET_MINUTES = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/demo")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    training = json.loads((run_dir / "training.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    log = read_log(run_dir)
    train_minutes = sum(record["time"] for record in log) / 60

    names = ("AP", "AP50", "APr", "APc", "APf")
    lines = [
        "## Learning check: the toy preset after `make demo` (`benchmarks/learning_check.py`)",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, CPU only. "
        f"Preset `{training['preset']}`, sampler `{training['sampler']}` "
        f"(t = {training['rfs_threshold']}), {training['iterations']} iterations at batch "
        f"{training['batch_size']}: {train_minutes:.1f} min of training iterations "
        f"({training['minutes']:.1f} min for the whole training cell, model building and "
        f"checkpoints included), {training['images_per_second']:.2f} images/s. "
        "Evaluated on toy-LVIS val (200 images) by notebook 03.",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for label, iou_type in (("box", "bbox"), ("mask", "segm")):
        values = " | ".join(f"{metrics[iou_type][name]:.3f}" for name in names)
        lines.append(f"| {label} | {values} |")
    apf = metrics["segm"]["APf"]
    met = apf >= TARGET_APF and train_minutes <= TARGET_MINUTES
    lines += [
        "",
        f"Target: mask APf >= {TARGET_APF} within {TARGET_MINUTES:.0f} minutes of training on "
        f"2 cores: mask APf {apf:.3f} in {train_minutes:.1f} min, "
        f"{'met' if met else 'NOT met'}.",
    ]
    write_section("learning_check", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
