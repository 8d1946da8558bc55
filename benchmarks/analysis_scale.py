"""Load + long-tail analysis of an LVIS-v1-train-sized file, beside ``lvis.LVIS(path)`` alone.

Each measurement runs in its own Python process (so peak RSS is that step's own), wall time from
the child's start of work to its end, peak RSS from ``getrusage(RUSAGE_SELF).ru_maxrss``.

    python benchmarks/analysis_scale.py [--ann FILE] [--repeat N]

Without ``--ann`` it writes (once) toy-LVIS's full-scale file, 100,170 images and 1,270,141
instances over the 1,203 real categories, to ``data/full-scale/``. Figures go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _child(mode: str, path: str) -> dict:
    start = time.perf_counter()
    if mode == "lvis":
        import lvis

        gt = lvis.LVIS(path)
        detail = {"annotations": len(gt.anns)}
    else:
        from lvisnb.annotations.statistics import long_tail_report
        from lvisnb.annotations.tables import read_tables

        report = long_tail_report(read_tables(path))
        detail = {"annotations": report.num_instances, "alpha": report.fit.alpha}
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": mode, "seconds": seconds, "peak_gb": peak_kib / 1024**2, **detail}


def _measure(mode: str, path: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return best | {"runs": [round(r["seconds"], 2) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ann", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return

    path = args.ann
    if path is None:
        from lvisnb.annotations import full_scale

        path = ROOT / "data" / "full-scale" / "annotations" / "lvis_v1_train_full_scale.json"
        if not path.is_file():
            start = time.perf_counter()
            full_scale.make_full_scale_lvis(path.parents[1])
            print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    size_mb = path.stat().st_size / 1e6
    lvis_run = _measure("lvis", path, args.repeat)
    kit_run = _measure("kit", path, args.repeat)
    assert lvis_run["annotations"] == kit_run["annotations"]
    speedup = lvis_run["seconds"] / kit_run["seconds"]
    memory = kit_run["peak_gb"] / lvis_run["peak_gb"]
    from _results import write_section

    kit_s, kit_gb = kit_run["seconds"], kit_run["peak_gb"]

    write_section(
        "analysis_scale",
        f"""
## Long-tail analysis at LVIS v1 train scale (`benchmarks/analysis_scale.py`)

File: `{path.name}`, {size_mb:.0f} MB, {kit_run["annotations"]:,} instances.
Machine: {platform.machine()}, {platform.processor() or "cpu"}, Python {platform.python_version()}.
Best of {args.repeat} runs, each in a fresh process.

| step | wall time (s) | peak RSS (GB) |
| --- | ---: | ---: |
| `lvis.LVIS(path)` (load only) | {lvis_run["seconds"]:.1f} | {lvis_run["peak_gb"]:.2f} |
| `read_tables` + `long_tail_report` (load + analysis) | {kit_s:.1f} | {kit_gb:.2f} |

Speed-up {speedup:.1f}x (target >= 5x); peak memory {memory:.2f} of `lvis.LVIS` (target <= 0.5).
""",
    )
    print(
        f"lvis.LVIS {lvis_run}\nkit {kit_run}\nspeed-up {speedup:.1f}x, memory ratio {memory:.2f}"
    )


if __name__ == "__main__":
    main()
