"""LVIS evaluation at LVIS v1 val scale: the kit's ``evaluate`` beside the official ``LVISEval``.

    python benchmarks/eval_scale.py [--images 19809] [--dets 300] [--repeat 1] [--kit-repeat N]
        [--skip-lvis] [--iou-types bbox segm] [--peers [TOOL ...]] [--peer-repeat [TOOL=]N ...]
        [--stat best|median] [--max-rss-gb GB] [--mem-limit-gb GB]
        [--out-section eval_scale] [--no-write]
    python benchmarks/eval_scale.py --summary eval_scale_5k eval_scale_10k eval_scale

A synthetic case the size of LVIS v1 val, generated once and cached under ``data/eval-scale/``:

- Ground truth (``lvisnb.annotations.full_scale.make_full_scale_lvis``, no images): ``--images``
  images (19,809 as val) of 400-640 x 300-480 px, the 1,203 real LVIS v1 categories with their real
  r/c/f groups, each annotated in ``round(real train image count * images / 100,170)``
  images (at least 1, so every category has GT), ``round(244,707 * images / 19,809)``
  instances (LVIS v1 val's 12.35 per image), 16-vertex polygons whose ``bbox`` is their
  extent, federated labels: 0-8 ``neg_category_ids`` per image, ~10% of an image's present
  categories ``not_exhaustive``.
- Results: exactly ``--dets`` detections per image (so ``LVISResults``' per-image cut drops
  nothing). Per GT instance: 90% get a true positive, its polygon scaled and shifted by a
  random 2-30% of its size (IoU spread from ~0.95 to ~0.3), 15% a duplicate, 20% a copy with
  a wrong category (a negative one half the time when the image has one); per present
  category Poisson(1) false positives, per negative category Poisson(1.5); the rest random
  polygons on random categories (mostly unverified, which LVIS ignores). Random polygons have
  GT-like sizes. Scores random (Beta(5, 2) for true positives, Beta(2, 5) otherwise, 6
  decimals). ``bbox`` XYWH is the polygon's extent; ``segmentation`` the polygon as a
  compressed RLE (``pycocotools.mask.frPyObjects``).

Each measurement runs in its own Python process (peak RSS ``ru_maxrss`` is that step's own,
imports included); the wall time runs from before reading the JSON files to the metrics
(imports excluded), for one IoU type per process:

- kit: ``lvisnb.evaluation.evaluator.evaluate(gt, results, iou_types=(T,), backend="fast",
  fixed=False)``.
- LVISEval: ``lvis.LVIS(gt)``, ``lvis.LVISResults(gt, results)``,
  ``lvisnb.annotations.lvis_compat.LVISEval(gt, dt, T).run()`` (the official code; ``lvis_api`` only
  makes its ``np.float`` work with numpy 2). The results file is read with ``json.load`` (as
  ``LVISResults(gt, path)`` would) and, for segm only, the records' ``bbox`` dropped before
  ``LVISResults``, so that it takes areas from the masks as the kit does for segm (detectron2
  does the same before calling ``LVISEval``). The official code runs as it is, with Python's
  garbage collector on (the kit pauses it during ``evaluate``).

- peers (``--peers``, default all of hotcoco, vernier, ultrafast-pycocotools,
  faster-coco-eval): each tool's own LVIS mode as its users run it from the two file paths
  (the ``_run_*`` functions say how); a tool that raises is reported with its error. Their
  metrics are compared with LVISEval's when it ran, else with the kit's. faster-coco-eval
  holds every detection as a Python dict (about 8 GB peak at 5,000 images, growing with the
  detections): at val scale guard it with ``--max-rss-gb`` or leave it out.

``--repeat`` / ``--kit-repeat`` / ``--peer-repeat`` fresh processes per tool and IoU type;
``--stat`` picks the fastest (default) or the median run.

Memory guards, per measured process: ``--max-rss-gb`` (a watchdog: the parent reads the
child's resident set size from ``/proc`` every 0.1 s and kills it above the limit; what the
machine actually feels) or ``--mem-limit-gb`` (``RLIMIT_AS``, an address-space limit: the
child gets ``MemoryError``; it also counts reserved, never-touched virtual memory, so it stops
numpy-heavy processes well below that much RSS).

Figures go to the ``eval_scale`` section of RESULTS.md (``--out-section``, ``--no-write``),
with the measurements as JSON in an HTML comment. ``--summary SECTION ...`` reads those
back and writes ``eval_scale_summary``: every size side by side, how the speed-up and
LVISEval's memory grow with size, and LVISEval's peak extrapolated to val's size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

LVIS_V1_VAL_IMAGES = 19_809
LVIS_V1_VAL_INSTANCES = 244_707
IOU_TYPES = ("bbox", "segm")
GENERATOR = "v1"  # bump when the generated files change
VERTICES = 16  # polygon vertices of GT (make_full_scale_lvis) and of detections
TARGET_SPEEDUP = 10.0
TARGET_DIFF = 1e-4
RSS_POLL_SECONDS = 0.1  # --max-rss-gb watchdog period
DATA_TAG = "eval_scale_data"  # HTML comment holding a section's measurements as JSON
PEERS = ("hotcoco", "vernier", "ultrafast", "faster-coco-eval")  # --peers: other tools' LVIS modes
LVIS_METRICS = (
    *("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"),
    *("AR@300", "ARs@300", "ARm@300", "ARl@300"),
)
FASTER_COCO_EVAL_NAMES = {  # LVIS name -> faster-coco-eval's stats_as_dict key
    "AP": "AP_all",
    "AP50": "AP_50",
    "AP75": "AP_75",
    "APs": "AP_small",
    "APm": "AP_medium",
    "APl": "AP_large",
    "APr": "APr",
    "APc": "APc",
    "APf": "APf",
    "AR@300": "AR_all",
    "ARs@300": "AR_small",
    "ARm@300": "AR_medium",
    "ARl@300": "AR_large",
}


# ----------------------------------------------------------------------------- data


def make_gt(path: Path, images: int, seed: int) -> None:
    """The val-sized GT file (``full_scale.make_full_scale_lvis`` with val's sizes) at ``path``."""
    from lvisnb.annotations import full_scale

    work = path.parent / f"{path.stem}.work"
    instances = round(LVIS_V1_VAL_INSTANCES * images / LVIS_V1_VAL_IMAGES)
    written = full_scale.make_full_scale_lvis(
        work, seed=seed, num_images=images, num_instances=instances
    )
    os.replace(written, path)
    written.parent.rmdir()
    work.rmdir()


def _random_polygons(rng, n: int, w: float, h: float):
    """(n, VERTICES) xs and ys of GT-like polygons (as ``make_full_scale_lvis``), w x h image."""
    import numpy as np

    angles = np.linspace(0, 2 * np.pi, VERTICES, endpoint=False)
    radius = np.exp(rng.uniform(np.log(3), np.log(0.3 * min(w, h)), size=n))
    cx = rng.uniform(radius, w - radius)
    cy = rng.uniform(radius, h - radius)
    wobble = rng.uniform(0.7, 1.0, size=(n, VERTICES))
    return (
        cx[:, None] + radius[:, None] * wobble * np.cos(angles),
        cy[:, None] + radius[:, None] * wobble * np.sin(angles),
    )


def _perturbed(rng, polygons, boxes):
    """GT polygons (m, 2 * VERTICES) scaled and shifted by a random 2-30% of their box."""
    import numpy as np

    m = len(polygons)
    xs, ys = polygons[:, 0::2], polygons[:, 1::2]
    bw, bh = np.maximum(boxes[:, 2], 1.0), np.maximum(boxes[:, 3], 1.0)
    cx, cy = boxes[:, 0] + bw / 2, boxes[:, 1] + bh / 2
    sigma = rng.uniform(0.02, 0.3, size=m)
    sx, sy = np.exp(rng.normal(0, sigma)), np.exp(rng.normal(0, sigma))
    dx = np.clip(rng.normal(0, sigma), -0.45, 0.45) * bw  # the centre stays inside the box
    dy = np.clip(rng.normal(0, sigma), -0.45, 0.45) * bh
    return (
        (xs - cx[:, None]) * sx[:, None] + (cx + dx)[:, None],
        (ys - cy[:, None]) * sy[:, None] + (cy + dy)[:, None],
    )


def _image_detections(rng, image: dict, anns: list[dict], cat_ids, dets: int) -> list[dict]:
    """``dets`` detection records for one image (see the module docstring)."""
    import numpy as np
    import pycocotools.mask as mask_utils

    w, h = image["width"], image["height"]
    neg = np.asarray(image["neg_category_ids"], dtype=np.int64)
    gt_cat = np.array([a["category_id"] for a in anns], dtype=np.int64)
    gt_poly = np.array([a["segmentation"][0] for a in anns], dtype=np.float64)
    gt_box = np.array([a["bbox"] for a in anns], dtype=np.float64)
    present = np.unique(gt_cat)
    parts_x, parts_y, parts_cat, parts_tp = [], [], [], []

    def add(xs, ys, cats, tp: bool) -> None:
        parts_x.append(xs)
        parts_y.append(ys)
        parts_cat.append(np.asarray(cats, dtype=np.int64))
        parts_tp.append(np.full(len(cats), tp))

    if len(anns):
        gt_poly = gt_poly.reshape(len(anns), 2 * VERTICES)
        for prob, tp in ((0.9, True), (0.15, True), (0.2, False)):
            pick = np.flatnonzero(rng.random(len(anns)) < prob)
            xs, ys = _perturbed(rng, gt_poly[pick], gt_box[pick])
            if tp:
                cats = gt_cat[pick]
            else:  # confusion: a negative category half the time, else any category
                cats = rng.choice(cat_ids, size=len(pick))
                if len(neg):
                    to_neg = rng.random(len(pick)) < 0.5
                    cats[to_neg] = rng.choice(neg, size=int(to_neg.sum()))
            add(xs, ys, cats, tp)
    for cats, rate in ((present, 1.0), (neg, 1.5)):
        repeated = np.repeat(cats, rng.poisson(rate, size=len(cats)))
        add(*_random_polygons(rng, len(repeated), w, h), repeated, False)
    count = sum(map(len, parts_cat))
    if count > dets:  # more than the budget on verified categories: a random subset
        keep = np.sort(rng.choice(count, size=dets, replace=False))
    else:  # the rest on random categories, mostly unverified
        fill = dets - count
        add(*_random_polygons(rng, fill, w, h), rng.choice(cat_ids, size=fill), False)
        keep = np.arange(dets)
    xs = np.concatenate(parts_x)[keep].clip(0, w).round(2)
    ys = np.concatenate(parts_y)[keep].clip(0, h).round(2)
    cats = np.concatenate(parts_cat)[keep]
    tp = np.concatenate(parts_tp)[keep]
    order = rng.permutation(dets)
    xs, ys, cats, tp = xs[order], ys[order], cats[order], tp[order]
    scores = np.where(tp, rng.beta(5, 2, size=dets), rng.beta(2, 5, size=dets)).round(6)
    x0, y0 = xs.min(1), ys.min(1)
    boxes = np.stack([x0, y0, xs.max(1) - x0, ys.max(1) - y0], axis=1).round(2).tolist()
    polygons = np.stack([xs, ys], axis=2).reshape(dets, 2 * VERTICES).tolist()
    rles = mask_utils.frPyObjects(polygons, h, w)
    size = [h, w]
    image_id = image["id"]
    return [
        {
            "image_id": image_id,
            "category_id": c,
            "bbox": b,
            "score": s,
            "segmentation": {"size": size, "counts": r["counts"].decode("ascii")},
        }
        for c, b, s, r in zip(cats.tolist(), boxes, scores.tolist(), rles, strict=True)
    ]


def make_results(gt_path: Path, path: Path, dets: int, seed: int) -> None:
    """Write the results file (a JSON list, streamed image by image) for ``gt_path``."""
    from collections import defaultdict

    import msgspec
    import numpy as np

    gt = msgspec.json.decode(gt_path.read_bytes())
    cat_ids = np.array(sorted(c["id"] for c in gt["categories"]), dtype=np.int64)
    by_image = defaultdict(list)
    for ann in gt["annotations"]:
        by_image[ann["image_id"]].append(ann)
    rng = np.random.default_rng([seed, 1])
    encoder = msgspec.json.Encoder()
    tmp = path.with_name(path.name + ".tmp")
    images = sorted(gt["images"], key=lambda i: i["id"])
    with open(tmp, "wb") as out:
        out.write(b"[")
        for index, image in enumerate(images):
            records = _image_detections(rng, image, by_image[image["id"]], cat_ids, dets)
            if index:
                out.write(b",")
            out.write(encoder.encode(records)[1:-1])
        out.write(b"]")
    os.replace(tmp, path)


def ensure_data(images: int, dets: int, seed: int) -> tuple[Path, Path]:
    folder = ROOT / "data" / "eval-scale"
    folder.mkdir(parents=True, exist_ok=True)
    gt_path = folder / f"lvis_v1_val_scale_{GENERATOR}_{images}img_seed{seed}.json"
    results_path = gt_path.with_name(f"{gt_path.stem}_results_{dets}dets.json")
    if not gt_path.is_file():
        start = time.perf_counter()
        make_gt(gt_path, images, seed)
        print(f"wrote {gt_path} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if not results_path.is_file():
        start = time.perf_counter()
        make_results(gt_path, results_path, dets, seed)
        print(f"wrote {results_path} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return gt_path, results_path


# ----------------------------------------------------------------------------- measuring


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_kit(iou_type: str, gt_path: str, results_path: str) -> tuple[dict, dict]:
    """The kit: ``evaluate(..., backend="fast", fixed=False)``; returns ``(metrics, detail)``."""
    from lvisnb.evaluation.evaluator import evaluate

    evaluation = evaluate(gt_path, results_path, iou_types=(iou_type,), backend="fast", fixed=False)
    detail = {
        "stages": evaluation.info["seconds"],
        "num_detections": evaluation.info["num_detections"],
        "num_verified_detections": evaluation.info["num_verified_detections"],
    }
    return evaluation.metrics[iou_type], detail


def _run_lvis(iou_type: str, gt_path: str, results_path: str) -> tuple[dict, dict]:
    """The official ``LVISEval`` (see the module docstring); returns ``(metrics, detail)``."""
    import lvis

    from lvisnb.annotations.lvis_compat import LVISEval

    stages, start = {}, time.perf_counter()
    gt = lvis.LVIS(gt_path)
    with open(results_path) as file:  # as LVISResults(gt, path) reads it
        results = json.load(file)
    if iou_type == "segm":  # areas from the masks, as the kit: drop the boxes
        for record in results:
            record.pop("bbox", None)
    stages["load"] = time.perf_counter() - start
    dt = lvis.LVISResults(gt, results, max_dets=300)
    del results
    stages["results"] = time.perf_counter() - start - stages["load"]
    ev = LVISEval(gt, dt, iou_type)
    ev.run()
    metrics = {name: float(value) for name, value in ev.get_results().items()}
    stages["eval"] = time.perf_counter() - start - stages["load"] - stages["results"]
    return metrics, {"stages": {k: round(v, 3) for k, v in stages.items()}}


def _lap(stages: dict, name: str, start: float) -> float:
    """Record ``stages[name]`` as the seconds since ``start``; returns now."""
    now = time.perf_counter()
    stages[name] = round(now - start, 3)
    return now


def _run_hotcoco(iou_type: str, gt_path: str, results_path: str) -> tuple[dict, dict]:
    """hotcoco's LVIS mode: ``COCO(path)``, ``gt.load_res(path)``, ``LVISeval(...).run()``
    (the 300-per-image cap applied by ``LVISeval`` itself)."""
    import hotcoco

    stages, start = {}, time.perf_counter()
    gt = hotcoco.COCO(gt_path)
    start = _lap(stages, "load gt", start)
    dt = gt.load_res(results_path)
    start = _lap(stages, "load results", start)
    ev = hotcoco.LVISeval(gt, dt, iou_type)
    ev.run()
    metrics = ev.get_results()
    _lap(stages, "eval", start)
    return metrics, {"stages": stages}


def _run_vernier(iou_type: str, gt_path: str, results_path: str) -> tuple[dict, dict]:
    """vernier's LVIS mode: ``CocoDataset.from_lvis_json(bytes)``, the grid
    ``evaluate_{bbox,segm}_grid(parity_mode="strict", max_dets_per_image=300)``,
    ``accumulate([300])``, ``summarize_lvis``. (vernier 0.5.4's documented
    ``Evaluator(max_dets=(300,)).evaluate(dataset, bytes)`` raises ``ValueError``, and with
    other ``max_dets`` gives the COCO 12-stat plan, not LVIS's 13 metrics.)"""
    from vernier import instance

    stages, start = {}, time.perf_counter()
    with open(gt_path, "rb") as file:
        dataset = instance.CocoDataset.from_lvis_json(file.read())
    start = _lap(stages, "load gt", start)
    with open(results_path, "rb") as file:
        results = file.read()
    start = _lap(stages, "read results", start)
    grid = getattr(instance, f"evaluate_{iou_type}_grid")
    cells = grid(dataset, results, parity_mode="strict", max_dets_per_image=300, use_cats=True)
    start = _lap(stages, "eval", start)
    stats = cells.accumulate([300]).summarize_lvis(dataset, [300]).stats
    _lap(stages, "accumulate", start)
    return dict(zip(LVIS_METRICS, stats, strict=True)), {"stages": stages}


def _run_ultrafast(iou_type: str, gt_path: str, results_path: str) -> tuple[dict, dict]:
    """ultrafast-pycocotools' LVIS mode: ``COCO(path)``, ``gt.loadRes(path)``,
    ``COCOeval(..., lvis_style=True).run()`` (``lvis_protocol="official"``, maxDets [300])."""
    from ultrafast_pycocotools import COCO, COCOeval

    stages, start = {}, time.perf_counter()
    gt = COCO(gt_path, verbose=False)
    start = _lap(stages, "load gt", start)
    dt = gt.loadRes(results_path)
    start = _lap(stages, "load results", start)
    ev = COCOeval(gt, dt, iou_type, lvis_style=True, print_function=lambda *_: None)
    ev.run()
    _lap(stages, "eval", start)
    return {name: ev.stats_as_dict[name] for name in LVIS_METRICS}, {"stages": stages}


def _run_faster_coco_eval(iou_type: str, gt_path: str, results_path: str) -> tuple[dict, dict]:
    """faster-coco-eval's LVIS mode, as its docs show it: ``COCO(path)``, ``gt.loadRes(path)``,
    ``COCOeval_faster(..., lvis_style=True)`` with ``params.maxDets = [300]`` (a COCO-style
    cap per image and category, not LVIS's per image)."""
    from faster_coco_eval import COCO, COCOeval_faster

    stages, start = {}, time.perf_counter()
    gt = COCO(gt_path)
    start = _lap(stages, "load gt", start)
    dt = gt.loadRes(results_path)
    start = _lap(stages, "load results", start)
    ev = COCOeval_faster(gt, dt, iou_type, lvis_style=True, print_function=lambda *_: None)
    ev.params.maxDets = [300]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    _lap(stages, "eval", start)
    stats = ev.stats_as_dict
    return {name: stats[key] for name, key in FASTER_COCO_EVAL_NAMES.items()}, {"stages": stages}


RUNNERS = {
    "kit": _run_kit,
    "lvis": _run_lvis,
    "hotcoco": _run_hotcoco,
    "vernier": _run_vernier,
    "ultrafast": _run_ultrafast,
    "faster-coco-eval": _run_faster_coco_eval,
}
CHILD_IMPORTS = {  # imported before the clock starts
    "kit": ("lvisnb.evaluation.evaluator",),
    "lvis": ("lvis", "lvisnb.annotations.lvis_compat"),
    "hotcoco": ("hotcoco",),
    "vernier": ("vernier",),
    "ultrafast": ("ultrafast_pycocotools",),
    "faster-coco-eval": ("faster_coco_eval",),
}


def _child(mode: str, iou_type: str, gt_path: str, results_path: str) -> dict:
    """One evaluation in this process; wall time from reading the files to the metrics.

    A peer tool that raises gives ``{"error": its first line}`` (the kit and LVISEval exit
    with the error instead).
    """
    import importlib
    import logging
    import warnings

    logging.getLogger("lvis.results").setLevel(logging.ERROR)  # "Assuming user provided..."
    warnings.simplefilter("ignore", DeprecationWarning)  # LVISResults' logger.warn
    try:
        for module in CHILD_IMPORTS[mode]:
            importlib.import_module(module)
        cpu_start = _cpu_seconds()
        start = time.perf_counter()
        metrics, detail = RUNNERS[mode](iou_type, gt_path, results_path)
    except Exception as error:
        if mode not in PEERS:
            raise
        first = (str(error).strip().splitlines() or [""])[0]
        return {"mode": mode, "iou_type": iou_type, "error": f"{type(error).__name__}: {first}"}
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "mode": mode,
        "iou_type": iou_type,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_start,
        "peak_gb": usage.ru_maxrss / 1024**2,
        "metrics": {name: float(value) for name, value in metrics.items()},
        **detail,
    }


def _rss_gb(pid: int) -> float:
    """Resident set size (GB) of process ``pid`` (``VmRSS`` of ``/proc/PID/status``, Linux);
    0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024**2  # kB
    except OSError:
        pass
    return 0.0


def _run_child(
    command: list[str], mem_limit_gb: float | None, max_rss_gb: float | None
) -> tuple[int, str, str | None]:
    """Run ``command``; returns ``(exit code, stdout, why it was stopped or None)``.

    ``mem_limit_gb``: ``RLIMIT_AS`` of the child (address space, in GB). ``max_rss_gb``: the
    child's RSS is polled every ``RSS_POLL_SECONDS`` and the child killed (SIGKILL) above it.
    """

    def limit_memory() -> None:
        if mem_limit_gb:
            size = int(mem_limit_gb * 1024**3)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    stopped = None
    with tempfile.TemporaryFile(mode="w+") as out:  # a file: a full pipe cannot block it
        child = subprocess.Popen(command, stdout=out, text=True, preexec_fn=limit_memory)
        if max_rss_gb is None:
            child.wait()
        while child.poll() is None:
            rss = _rss_gb(child.pid)
            if rss > max_rss_gb:
                child.kill()
                child.wait()
                stopped = f"RSS watchdog at {rss:.2f} GB > {max_rss_gb:g} GB"
                break
            time.sleep(RSS_POLL_SECONDS)
        out.seek(0)
        return child.returncode, out.read(), stopped


def _measure(
    mode: str,
    iou_type: str,
    gt_path: Path,
    results_path: Path,
    repeat: int,
    mem_limit_gb: float | None = None,
    max_rss_gb: float | None = None,
    stat: str = "best",
) -> dict:
    """The best (fastest) or median (``stat``) of ``repeat`` fresh processes; ``peak_gb`` is
    the largest of them.

    A process that fails (killed by the ``max_rss_gb`` watchdog or a signal, a
    ``MemoryError`` under ``mem_limit_gb``, or a peer tool that raised) gives
    ``{"failed": reason, "seconds": ...}``.
    """
    runs = []
    command = [sys.executable, __file__, "--child", mode, iou_type, str(gt_path), str(results_path)]
    for _ in range(repeat):
        start = time.perf_counter()
        code, stdout, stopped = _run_child(command, mem_limit_gb, max_rss_gb)
        run = None if code else json.loads(stdout.strip().splitlines()[-1])
        if code or "error" in run:
            reason = _failure(code, stopped, mem_limit_gb) if code else run["error"]
            print(f"{mode:4s} {iou_type}: FAILED ({reason})", file=sys.stderr)
            return {"failed": reason, "seconds": time.perf_counter() - start}
        print(
            f"{mode:4s} {iou_type}: {run['seconds']:.1f} s (cpu {run['cpu_seconds']:.1f} s), "
            f"{run['peak_gb']:.2f} GB, AP {run['metrics']['AP']:.4f}, stages {run['stages']}",
            file=sys.stderr,
        )
        runs.append(run)
    ordered = sorted(runs, key=lambda r: r["seconds"])
    chosen = ordered[0] if stat == "best" else ordered[(len(ordered) - 1) // 2]
    return chosen | {
        "peak_gb": max(r["peak_gb"] for r in runs),
        "runs": [round(r["seconds"], 2) for r in runs],
    }


def _failure(code: int, stopped: str | None, mem_limit_gb: float | None) -> str:
    """Why a measured process exited with ``code`` (non-zero)."""
    reason = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    if stopped:
        return f"killed by the {stopped}"
    if mem_limit_gb:
        reason += f", address-space limit {mem_limit_gb:g} GB"
    return reason


def _max_diff(a: dict, b: dict) -> tuple[float, str]:
    shared = [name for name in a if name in b]
    diffs = {name: abs(a[name] - b[name]) for name in shared}
    name = max(diffs, key=diffs.get)
    return diffs[name], name


def _ran(run: dict | None) -> bool:
    return run is not None and "failed" not in run


def _cells(run: dict | None) -> str:
    if run is None:
        return "- | -"
    if "failed" in run:
        return f"failed ({run['failed']}) after {run['seconds']:.0f} s | -"
    return f"{run['seconds']:.1f} | {run['peak_gb']:.2f}"


def _machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GB RAM, "
        f"{platform.platform()}, Python {platform.python_version()}"
    )


def _guards(args) -> str:
    guards = []
    if args.max_rss_gb:
        guards.append(f"RSS watchdog at {args.max_rss_gb:g} GB")
    if args.mem_limit_gb:
        guards.append(f"address-space limit (`RLIMIT_AS`) {args.mem_limit_gb:g} GB")
    return f" Memory guard per process: {', '.join(guards)}." if guards else ""


def _scale(images: int) -> str:
    if images == LVIS_V1_VAL_IMAGES:
        return "LVIS v1 val scale"
    return f"{images:,} images, {images / LVIS_V1_VAL_IMAGES:.0%} of LVIS v1 val"


def _section(args, sizes: dict, rows: list[dict]) -> str:
    stat = args.stat.capitalize()
    if args.skip_lvis or args.kit_repeat == args.repeat:
        repeats = f"{stat} of {args.kit_repeat} run(s)"
    else:
        repeats = f"{stat} of {args.repeat} LVISEval / {args.kit_repeat} kit run(s)"
    lines = [
        f"## LVIS evaluation at {_scale(args.images)} (`benchmarks/eval_scale.py`)",
        "",
        f"Synthetic case: {sizes['images']:,} images, {sizes['categories']:,} categories "
        f"(LVIS v1's, r/c/f {sizes['groups']}), {sizes['instances']:,} GT instances "
        f"({sizes['instances'] / sizes['images']:.2f} per image, 16-vertex polygons), "
        f"{sizes['neg']:.1f} negative and {sizes['not_exhaustive']:.2f} not-exhaustive "
        f"categories per image; {sizes['detections']:,} detections ({args.dets} per image"
        + (f", {sizes['verified']:,} on verified categories" if sizes["verified"] else "")
        + f"), bbox + compressed-RLE masks. Files: GT {sizes['gt_mb']:.0f} MB, results "
        f"{sizes['results_mb']:.0f} MB (seed {args.seed}).",
        f"Machine: {_machine()}.",
        f"{repeats}, each in a fresh process; wall time from reading the JSON "
        "files to the metrics (imports excluded), peak RSS (`ru_maxrss`) of the process. "
        'Kit: `evaluate(gt, results, iou_types=(T,), backend="fast", fixed=False)`. '
        "LVISEval: `lvis.LVIS` + `lvis.LVISResults` + `LVISEval(...).run()` (official code); "
        "for segm the result records' `bbox` is dropped before `LVISResults` so that areas "
        "come from the masks, as the kit does for segm. Stages: kit as `Evaluation.info`; "
        "LVISEval load = `LVIS(gt)` + `json.load(results)`, results = `LVISResults`, "
        "eval = `run()` + `get_results()`." + _guards(args),
        "",
        "| IoU type | LVISEval (s) | LVISEval peak (GB) | kit (s) | kit peak (GB) | speed-up "
        "| max abs metric diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        compared = "speedup" in row
        tail = (
            f"{row['speedup']:.1f}x | {row['diff']:.1e} ({row['diff_name']})"
            if compared
            else "- | -"
        )
        lines.append(
            f"| {row['iou_type']} | {_cells(row['lvis'])} | {_cells(row['kit'])} | {tail} |"
        )
    lines.append("")
    compared = [row for row in rows if "speedup" in row]
    missing = [row["iou_type"] for row in rows if "speedup" not in row]
    if args.skip_lvis:
        lines.append(
            "LVISEval was skipped (`--skip-lvis`): no comparison here, targets not assessed "
            "(see the size summary, `eval_scale_summary`)."
        )
    elif compared:
        lines.append(_verdict(compared))
    if missing and not args.skip_lvis:
        lines.append(f"Not compared ({', '.join(missing)}): a run failed, see the table.")
    if args.images != LVIS_V1_VAL_IMAGES:
        lines.append(
            f"(At {args.images:,} images, not val's {LVIS_V1_VAL_IMAGES:,}: the targets are "
            "about val scale.)"
        )
    lines.append("")
    for row in rows:
        parts = [
            f"{label} {_stages(row[key])}"
            for key, label in (("kit", "kit"), ("lvis", "LVISEval"))
            if _ran(row[key])
        ]
        lines.append(f"Stages, {row['iou_type']} (s): {'; '.join(parts)}.  ")
    if args.peers:
        lines += ["", *_peer_lines(args, rows)]
    lines += ["", _data_comment(args, sizes, rows)]
    return "\n".join(lines)


def _verdict(compared: list[dict]) -> str:
    """The targets line for rows where both ran (``speedup``, ``diff``, ``kit``, ``lvis``)."""
    verdict = {True: "met", False: "**not met**"}
    speed = verdict[all(row["speedup"] >= TARGET_SPEEDUP for row in compared)]
    diff = verdict[all(row["diff"] <= TARGET_DIFF for row in compared)]
    memory = verdict[all(row["kit"]["peak_gb"] <= row["lvis"]["peak_gb"] for row in compared)]
    over = ", ".join(row["iou_type"] for row in compared)
    return (
        f"Targets ({over}): speed-up >= {TARGET_SPEEDUP:.0f}x: {speed}; metrics equal to "
        f"{TARGET_DIFF:.0e}: {diff}; peak memory no higher than LVISEval's: {memory}."
    )


PEER_CALLS = {  # how each tool is run (the ``_run_*`` functions), for the section's text
    "hotcoco": "`COCO(gt)`, `gt.load_res(results)`, `LVISeval(gt, dt, T).run()`",
    "vernier": "`CocoDataset.from_lvis_json(bytes)`, `evaluate_T_grid(..., "
    'parity_mode="strict", max_dets_per_image=300)`, `accumulate([300])`, `summarize_lvis` '
    "(the documented `Evaluator(max_dets=(300,)).evaluate` raises in 0.5.4)",
    "ultrafast": "ultrafast-pycocotools `COCO(gt)`, `gt.loadRes(results)`, "
    "`COCOeval(gt, dt, T, lvis_style=True).run()`",
    "faster-coco-eval": "`COCO(gt)`, `gt.loadRes(results)`, `COCOeval_faster(gt, dt, T, "
    "lvis_style=True)` with `params.maxDets = [300]` (its cap is per image and category)",
}
PEER_DISTRIBUTIONS = {"ultrafast": "ultrafast-pycocotools"}


def _peer_version(tool: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PEER_DISTRIBUTIONS.get(tool, tool))
    except PackageNotFoundError:
        return "not installed"


def _peer_repeats(entries: list[str], tools: list[str]) -> dict[str, int]:
    """``--peer-repeat`` entries (``N`` for every tool, ``TOOL=N`` for one) as runs per tool."""
    repeats = dict.fromkeys(tools, 1)
    for entry in entries:
        tool, _, count = entry.rpartition("=")
        if tool and tool not in PEERS:
            raise SystemExit(f"--peer-repeat: unknown tool {tool!r} (one of {', '.join(PEERS)})")
        for name in [tool] if tool else tools:
            repeats[name] = int(count)
    return {tool: repeats[tool] for tool in tools}


def _measure_peers(args, iou_type: str, row: dict, gt_path: Path, results_path: Path) -> None:
    """``row["peers"]``: each ``--peers`` tool's run, its max metric diff against LVISEval
    when that ran, else against the kit (``diff``, ``diff_name``, ``diff_vs``)."""
    guards = {"mem_limit_gb": args.mem_limit_gb, "max_rss_gb": args.max_rss_gb, "stat": args.stat}
    reference, against = (row["lvis"], "LVISEval") if _ran(row["lvis"]) else (row["kit"], "kit")
    row["peers"] = {}
    for tool, repeat in _peer_repeats(args.peer_repeat, args.peers).items():
        run = _measure(tool, iou_type, gt_path, results_path, repeat, **guards)
        if _ran(run) and _ran(reference):
            run["diff"], run["diff_name"] = _max_diff(run["metrics"], reference["metrics"])
            run["diff_vs"] = against
        row["peers"][tool] = run


def _peer_lines(args, rows: list[dict]) -> list[str]:
    """The peers' paragraph and tables: time, memory and metric diff per tool; the metrics."""
    tools = ", ".join(f"{tool} {_peer_version(tool)}: {PEER_CALLS[tool]}" for tool in args.peers)
    repeats = ", ".join(
        f"{tool} {n}" for tool, n in _peer_repeats(args.peer_repeat, args.peers).items()
    )
    lines = [
        f"Other tools' LVIS modes, each as its users run it from the two file paths, in a "
        f"fresh process timed as above ({args.stat} of runs: {repeats}). {tools}. "
        "They take detection areas as `loadRes` does, from the `bbox` when a record has one, "
        "so for segm their APs/APm/APl may differ from the kit's and LVISEval's here (mask "
        "areas; a detection's area only decides whether an unmatched one is ignored outside "
        "an area range, so the other metrics do not move). Diff: max abs over the 13 metrics "
        "against LVISEval when it ran, else against the kit.",
        "",
        "| IoU type | tool | wall (s) | cpu (s) | peak (GB) | time / kit's | max abs metric diff |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        kit = row["kit"]
        runs = {"kit": kit, "LVISEval": row["lvis"]} | row["peers"]
        for tool, run in runs.items():
            if run is not None:
                lines.append(f"| {row['iou_type']} | {tool} | {_peer_cells(run, kit)} |")
    lines += ["", *_peer_verdicts(rows), "", *_metric_table(rows)]
    return lines


def _peer_verdicts(rows: list[dict]) -> list[str]:
    """Per IoU type, whether the kit is at least as fast as the fastest peer that ran, at no
    more peak memory than that peer (issue 10's goal)."""
    verdict = {True: "met", False: "**not met**"}
    lines = []
    for row in rows:
        ran = {tool: run for tool, run in row["peers"].items() if _ran(run)}
        if not ran or not _ran(row["kit"]):
            continue
        tool = min(ran, key=lambda name: ran[name]["seconds"])
        kit, peer = row["kit"], ran[tool]
        lines.append(
            f"Ahead of every peer, {row['iou_type']}: the fastest other tool is {tool} "
            f"({peer['seconds']:.1f} s, {peer['peak_gb']:.2f} GB); the kit "
            f"{kit['seconds']:.1f} s, {kit['peak_gb']:.2f} GB: at least as fast: "
            f"{verdict[kit['seconds'] <= peer['seconds']]}; no more memory: "
            f"{verdict[kit['peak_gb'] <= peer['peak_gb']]}.  "
        )
    return lines


def _peer_cells(run: dict, kit: dict) -> str:
    """``wall | cpu | peak | time / kit's | diff`` cells of one tool's run."""
    if "failed" in run:
        return f"failed: {run['failed']} | - | - | - | -"
    speedup = f"{run['seconds'] / kit['seconds']:.2f}" if _ran(kit) else "-"
    diff = f"{run['diff']:.1e} ({run['diff_name']}, vs {run['diff_vs']})" if "diff" in run else "-"
    return (
        f"{run['seconds']:.1f} | {run['cpu_seconds']:.1f} | {run['peak_gb']:.2f} | "
        f"{speedup} | {diff}"
    )


def _metric_table(rows: list[dict]) -> list[str]:
    """The 13 metrics, a column per tool (LVISEval's when it ran), a row per IoU type and metric."""
    reference = ["LVISEval"] if any(_ran(row["lvis"]) for row in rows) else []
    tools = ["kit", *reference, *rows[0]["peers"]]
    lines = [
        "| IoU type | metric | " + " | ".join(tools) + " |",
        "| --- | --- |" + " ---: |" * len(tools),
    ]
    for row in rows:
        runs = {"kit": row["kit"], "LVISEval": row["lvis"]} | row["peers"]
        for name in LVIS_METRICS:
            cells = [
                f"{runs[tool]['metrics'][name]:.6f}" if _ran(runs[tool]) else "-" for tool in tools
            ]
            lines.append(f"| {row['iou_type']} | {name} | " + " | ".join(cells) + " |")
    return lines


def _data_comment(args, sizes: dict, rows: list[dict]) -> str:
    """The section's measurements as JSON in an HTML comment, for ``--summary``."""

    def run(r: dict | None) -> dict | None:
        if r is None:
            return None
        keys = ("failed", "seconds") if "failed" in r else ("seconds", "cpu_seconds", "peak_gb")
        return {k: round(r[k], 3) if isinstance(r[k], float) else r[k] for k in keys}

    def peers(row: dict) -> dict:
        diffs = ("diff", "diff_name", "diff_vs")
        return {
            "peers": {
                tool: run(r) | {k: r[k] for k in diffs if k in r}
                for tool, r in row.get("peers", {}).items()
            }
        }

    data = {
        "images": sizes["images"],
        "dets": args.dets,
        "seed": args.seed,
        "generator": GENERATOR,
        "rows": [
            {"iou_type": row["iou_type"], "kit": run(row["kit"]), "lvis": run(row["lvis"])}
            | ({"diff": row["diff"], "diff_name": row["diff_name"]} if "diff" in row else {})
            | (peers(row) if row.get("peers") else {})
            for row in rows
        ],
    }
    return f"<!-- {DATA_TAG} {json.dumps(data)} -->"


def _stages(run: dict) -> str:
    stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run["stages"].items())
    return f"cpu {run['cpu_seconds']:.1f} ({stages})"


def _sizes(gt_path: Path, results_path: Path, dets: int, rows: list[dict]) -> dict:
    import msgspec

    gt = msgspec.json.decode(gt_path.read_bytes())
    groups = {g: 0 for g in "rcf"}
    for cat in gt["categories"]:
        groups[cat["frequency"]] += 1
    images = gt["images"]
    kit = next((row["kit"] for row in rows if _ran(row["kit"])), {})
    return {
        "images": len(images),
        "categories": len(gt["categories"]),
        "groups": "/".join(str(groups[g]) for g in "rcf"),
        "instances": len(gt["annotations"]),
        "neg": sum(len(i["neg_category_ids"]) for i in images) / len(images),
        "not_exhaustive": sum(len(i["not_exhaustive_category_ids"]) for i in images) / len(images),
        "detections": len(images) * dets,
        "verified": kit.get("num_verified_detections"),
        "gt_mb": gt_path.stat().st_size / 1e6,
        "results_mb": results_path.stat().st_size / 1e6,
    }


# ----------------------------------------------------------------------------- summary


def _read_data(section: str) -> dict:
    from _results import read_section

    text = read_section(section)
    if text is None:
        raise SystemExit(f"RESULTS.md has no section {section!r}")
    match = re.search(rf"<!-- {DATA_TAG} (.*?) -->", text)
    if match is None:
        raise SystemExit(f"section {section!r} holds no measurements: rerun it with this script")
    return json.loads(match.group(1))


def _fit(xs: list[float], ys: list[float], at: float) -> float:
    """``y`` at ``at`` on the least-squares line through ``(xs, ys)`` (two points or more)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my + slope * (at - mx)


def summary(sections: list[str]) -> str:
    """``eval_scale_summary``: the sections' measurements side by side and the trends."""
    data = sorted(
        (_read_data(name) | {"section": name} for name in sections), key=lambda d: d["images"]
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    lines = [
        "## LVIS evaluation by size: kit vs LVISEval (`benchmarks/eval_scale.py --summary`)",
        "",
        "From the sections "
        + ", ".join(f"`{d['section']}`" for d in data)
        + f" (same synthetic generator, {data[0]['dets']} detections per image, seed "
        f"{data[0]['seed']}); one process per IoU type and tool. Machine: {_machine()}.",
        "",
        "| images | IoU type | LVISEval (s) | LVISEval peak (GB) | kit (s) | kit peak (GB) "
        "| speed-up | max abs metric diff |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    compared = {}  # iou_type -> [(images, row)]
    for d in data:
        for row in d["rows"]:
            kit, ref = row["kit"], row["lvis"]
            both = _ran(kit) and _ran(ref)
            if both:
                row["speedup"] = ref["seconds"] / kit["seconds"]
                compared.setdefault(row["iou_type"], []).append((d["images"], row))
            ref_cells = "not run | -" if ref is None else _cells(ref)
            tail = (
                f"{row['speedup']:.1f}x | {row['diff']:.1e} ({row['diff_name']})"
                if both
                else "- | -"
            )
            lines.append(
                f"| {d['images']:,} | {row['iou_type']} | {ref_cells} | {_cells(kit)} | {tail} |"
            )
    lines.append("")
    val = LVIS_V1_VAL_IMAGES
    full = {
        row["iou_type"]: row["kit"]
        for d in data
        if d["images"] == val
        for row in d["rows"]
        if _ran(row["kit"])
    }
    for iou_type, points in compared.items():
        sizes = [images for images, _ in points]
        trend = " -> ".join(f"{row['speedup']:.1f}x" for _, row in points)
        at = ", ".join(f"{images:,}" for images in sizes)
        text = f"**{iou_type}**: speed-up {trend} at {at} images"
        if len(points) >= 2:
            (a, first), (b, last) = points[0], points[-1]
            growth = {
                tool: last[tool]["seconds"] / first[tool]["seconds"] for tool in ("lvis", "kit")
            }
            text += (
                f" (from {a:,} to {b:,} images, x{b / a:.1f}: LVISEval's time x"
                f"{growth['lvis']:.2f}, the kit's x{growth['kit']:.2f})"
            )
            peak = _fit(sizes, [row["lvis"]["peak_gb"] for _, row in points], val)
            seconds = _fit(sizes, [row["lvis"]["seconds"] for _, row in points], val)
            text += (
                f". LVISEval extrapolated linearly to val's {val:,} images: about {peak:.0f} GB "
                f"peak RSS (this machine has {memory:.0f} GB, shared) and {seconds:.0f} s"
            )
            if iou_type in full:
                kit = full[iou_type]
                text += (
                    f", against the kit's measured {kit['seconds']:.1f} s and "
                    f"{kit['peak_gb']:.2f} GB there (about {seconds / kit['seconds']:.0f}x)"
                )
        lines.append(text + ".  ")
    largest = [points[-1][1] for points in compared.values()]
    if largest:
        lines += ["", f"At the largest compared size: {_verdict(largest)}"]
    at_val = [d for d in data if d["images"] == val]
    if at_val and not any(_ran(row["lvis"]) for d in at_val for row in d["rows"]):
        sizes = sorted({images for points in compared.values() for images, _ in points})
        lines += [
            "",
            f"LVISEval is not run at val's {val:,} images: extrapolated above, it needs about "
            f"as much memory as this {memory:.0f} GB machine has (shared with other work), so "
            f"the {TARGET_SPEEDUP:.0f}x target is shown at "
            + " and ".join(f"{images:,}" for images in sizes)
            + " images, with the kit's full-scale time and memory beside them.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=LVIS_V1_VAL_IMAGES)
    parser.add_argument("--dets", type=int, default=300, help="detections per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--kit-repeat", type=int, default=None, help="runs of the kit (default: --repeat)"
    )
    parser.add_argument("--iou-types", nargs="+", choices=IOU_TYPES, default=list(IOU_TYPES))
    parser.add_argument("--skip-lvis", action="store_true", help="leave LVISEval out")
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=PEERS,
        default=list(PEERS),
        help="other tools whose LVIS mode is timed too (default: all; none: --peers alone)",
    )
    parser.add_argument(
        "--peer-repeat",
        nargs="+",
        default=["1"],
        metavar="[TOOL=]N",
        help="runs per peer tool: N for all, TOOL=N for one (default 1)",
    )
    parser.add_argument(
        "--stat",
        choices=("best", "median"),
        default="best",
        help="which of a tool's repeated runs is reported (peak memory: the largest)",
    )
    parser.add_argument(
        "--max-rss-gb",
        type=float,
        default=None,
        help="RSS watchdog: kill a measured process whose resident memory exceeds this (GB); "
        "reported as failed",
    )
    parser.add_argument(
        "--mem-limit-gb",
        type=float,
        default=None,
        help="address-space limit (RLIMIT_AS) of each measured process: a run that needs more "
        "fails with MemoryError (reported); it counts untouched virtual memory too, so "
        "--max-rss-gb is the closer guard",
    )
    parser.add_argument(
        "--summary",
        nargs="+",
        metavar="SECTION",
        help="write the size summary from these RESULTS.md sections (no measuring)",
    )
    parser.add_argument(
        "--out-section",
        default=None,
        help="RESULTS.md section name (eval_scale, or eval_scale_summary with --summary)",
    )
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument(
        "--child", nargs=4, metavar=("MODE", "IOU", "GT", "RES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    if args.summary:
        section, name = summary(args.summary), args.out_section or "eval_scale_summary"
    else:
        section, name = _run(args), args.out_section or "eval_scale"
    print(section)
    if not args.no_write:
        from _results import write_section

        write_section(name, section)


def _run(args) -> str:
    """Measure as the options say; returns the section's markdown."""
    if args.kit_repeat is None:
        args.kit_repeat = args.repeat
    gt_path, results_path = ensure_data(args.images, args.dets, args.seed)
    guards = {"mem_limit_gb": args.mem_limit_gb, "max_rss_gb": args.max_rss_gb, "stat": args.stat}
    _peer_repeats(args.peer_repeat, args.peers)  # a bad --peer-repeat fails before measuring
    rows = []
    for iou_type in args.iou_types:
        ref = None
        if not args.skip_lvis:
            ref = _measure("lvis", iou_type, gt_path, results_path, args.repeat, **guards)
        kit = _measure("kit", iou_type, gt_path, results_path, args.kit_repeat, **guards)
        row = {"iou_type": iou_type, "kit": kit, "lvis": ref, "peers": {}}
        if _ran(ref) and _ran(kit):
            row["speedup"] = ref["seconds"] / kit["seconds"]
            row["diff"], row["diff_name"] = _max_diff(kit["metrics"], ref["metrics"])
        if args.peers:
            _measure_peers(args, iou_type, row, gt_path, results_path)
        rows.append(row)
    return _section(args, _sizes(gt_path, results_path, args.dets, rows), rows)


if __name__ == "__main__":
    main()
