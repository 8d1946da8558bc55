"""Speed and peak GPU memory of the seed presets with every classification loss, AMP on and off.

    python benchmarks/gpu_presets.py [--presets NAME,...] [--losses ce,seesaw,eqlv2,federated]
        [--amp on,off] [--iters 10] [--warmup 3] [--device cuda] [--budget-s 0] [--write]
    python benchmarks/gpu_presets.py --tiny [--write]    # the same code on the CPU, in seconds

For each preset x ``cls_loss`` x AMP setting (``get_preset(name, cls_loss=loss)``, built by
``lvisnb.model.builder.build_model(weights=False)`` on the device, so nothing is downloaded):

- training: ``--warmup`` untimed then ``--iters`` timed iterations of
  :func:`lvisnb.engine.loop.train_step` (autocast forward, the rank-averaged loss check, backward,
  clipping when the preset clips, SGD step) on one synthetic batch of ``samples_per_gpu``
  images of ``max(train_scales)`` x ``max_size`` px (800 x 1333 for the seed rows: the largest
  batch multi-scale training can draw), ``--instances`` LVIS-like objects each (boxes XYXY,
  labels 1..K drawn in proportion to the LVIS v1 train image counts, full-size uint8 masks);
  ``torch.cuda.synchronize`` around every iteration. Reported: s/iteration, images/s and
  ``torch.cuda.max_memory_allocated`` in GiB (reset per case; mmdetection's ``Mem (GB)`` is
  the same counter, over a real run of mostly 4:3 images, so the synthetic worst case reads
  somewhat higher);
- inference: ``model.eval()``, ``torch.inference_mode``, batch 1 at ``test_scale`` /
  ``max_size``, as :func:`lvisnb.engine.inference.predict` runs it; images/s over ``--iters`` images
  after ``--warmup`` ones (mmdetection's ``Inf time (fps)``: batch 1, model only). Random
  weights score every class of every proposal above ``box_score_thresh``, so NMS sees ~1000 x
  K candidates and 300 masks are pasted per image: a worst case for the post-processing.

AMP "on" is ``lvisnb.engine.device.autocast_dtype("auto", device)``: bfloat16 on a GPU that has it,
float16 (with a ``GradScaler``) otherwise, and float32 on the CPU, where the kit does not use
autocast; the table's ``dtype`` column says which ran. The learning rate is the preset's first
warm-up one (``scaled_lr * warmup_ratio``), as at the start of a real run: randomly initialised
weights stay finite. A case that fails (out of memory, a non-finite loss, any error) is reported
as such, its traceback printed, and the next one runs; with ``--budget-s``, no new case starts
after that many seconds.

Published context (:mod:`lvisnb.methods.published`): mmdetection's training memory per GPU for the
v1 rows; mmdetection's LVIS tables publish no inference speed ("-"). ``--write`` puts the table,
with the device name and torch version, into RESULTS.md's ``gpu_presets`` section.

``--tiny``: the ``mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1`` row (unless ``--presets``)
at 32 x 64 px, 8 classes, 1 image of 3 objects, few RoIs (:data:`TINY_OVERRIDES`), 1 timed
iteration after 1, on the CPU: every loss and code path in seconds (``tests/test_gpu_presets.py``;
on a busy 2-core machine ``torch.set_num_threads(1)`` is several times faster than 2).
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import RESULTS, report  # noqa: E402

from lvisnb.annotations.categories import categories  # noqa: E402
from lvisnb.engine.config import TrainConfig  # noqa: E402
from lvisnb.engine.device import autocast_dtype, resolve_device  # noqa: E402
from lvisnb.engine.loop import train_step  # noqa: E402
from lvisnb.engine.run_state import Progress, TrainSetup  # noqa: E402
from lvisnb.engine.schedule import scaled_lr  # noqa: E402
from lvisnb.methods.published import SEED_RESULTS, SEESAW_RESULTS  # noqa: E402
from lvisnb.model.builder import build_model  # noqa: E402
from lvisnb.model.losses import CLS_LOSSES  # noqa: E402
from lvisnb.model.presets import PRESETS, SEED_PRESETS, Preset, get_preset  # noqa: E402

SECTION = "gpu_presets"
TINY_PRESET = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
# --tiny: preset fields and run sizes small enough for a 2-core CPU
TINY_OVERRIDES = {
    **{"train_scales": (32,), "max_size": 64, "test_scale": 32, "samples_per_gpu": 1},
    "num_classes": 8,
    # few RoIs: at 256 channels the mask head costs ~0.5 GFLOP per RoI, which at the preset's
    # 512 sampled RoIs and 300 detections would take most of a minute per case on 2 cores
    **{"rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100},
    **{"rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50},
    **{"box_batch_size_per_image": 16, "box_detections_per_img": 5},
}
TINY_RUN = {"iters": 1, "warmup": 1, "instances": 3, "device": "cpu"}
GIB = 1024**3


@functools.cache
def _image_counts(dataset: str) -> np.ndarray:
    counts = categories(dataset)["v1_train_image_count"].fillna(1).to_numpy(np.int64)
    return np.maximum(counts, 1)


def class_counts(preset: Preset) -> np.ndarray:
    """``(K,)`` training images per class for labels ``1..K``: LVIS v1 train's real counts in
    category-id order (of the v0.5 categories for a v0.5 preset; 1 where v1 has none), cut
    to the preset's ``K``. The federated loss draws negatives with them; labels follow them."""
    return _image_counts(preset.dataset)[: preset.num_classes].copy()


def synthetic_batch(
    preset: Preset, instances: int, generator: torch.Generator
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``samples_per_gpu`` images of ``max(train_scales)`` x ``max_size`` px and their targets.

    Images: float ``(3, H, W)`` in ``[0, 1]``. Targets: ``instances`` objects per image with
    ``boxes`` ``(N, 4)`` float XYXY pixels (sides 2-50% of the image, log-uniform, as LVIS's
    many small objects), ``labels`` ``(N,)`` int64 in ``1..K`` drawn in proportion to
    :func:`class_counts`, ``masks`` ``(N, H, W)`` uint8 filling each box.
    """
    height, width = max(preset.train_scales), preset.max_size
    weights = torch.as_tensor(class_counts(preset), dtype=torch.float64)
    images, targets = [], []
    for _ in range(preset.samples_per_gpu):
        images.append(torch.rand(3, height, width, generator=generator))
        sides = torch.exp(
            torch.empty(instances, 2).uniform_(math.log(0.02), math.log(0.5), generator=generator)
        )
        sizes = sides * torch.tensor([width, height])
        corner = torch.rand(instances, 2, generator=generator) * (
            torch.tensor([width, height]) - sizes
        )
        boxes = torch.cat([corner, corner + sizes], dim=1).floor().clamp(min=0)
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        masks = torch.zeros(instances, height, width, dtype=torch.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist(), strict=True):
            mask[y0:y1, x0:x1] = 1
        labels = torch.multinomial(weights, instances, replacement=True, generator=generator) + 1
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
    return images, targets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else math.nan


def _reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def bench_case(
    preset: Preset, amp: str, device: torch.device, iters: int, warmup: int, instances: int
) -> dict:
    """One row: training s/iteration, images/s and peak GiB; inference images/s and peak GiB.

    ``amp``: ``"on"`` (:func:`lvisnb.engine.device.autocast_dtype` ``"auto"``) or ``"off"``."""
    amp_dtype = autocast_dtype(amp == "on", device)
    row = {
        "preset": preset.name,
        "loss": preset.cls_loss,
        "amp": amp,
        "dtype": str(amp_dtype or torch.float32).removeprefix("torch."),
    }
    _reset_peak(device)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images, targets = synthetic_batch(preset, instances, generator)
    images = [image.to(device) for image in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    counts = class_counts(preset) if preset.cls_loss == "federated" else None
    model = build_model(preset, weights=False, device=device, class_image_counts=counts)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params,
        lr=scaled_lr(preset, preset.samples_per_gpu) * preset.warmup_ratio,
        momentum=preset.momentum,
        weight_decay=preset.weight_decay,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    cfg = TrainConfig(
        preset=preset.name,
        device=str(device),
        amp="auto" if amp == "on" else "off",
        batch_size=preset.samples_per_gpu,
        progress=False,
    )
    setup = TrainSetup(  # what train_step reads; no data, sampler or scheduler needed
        cfg=cfg,
        preset=preset,
        device=device,
        world=1,
        rank=0,
        dataset=None,
        sampler=None,
        model=model,
        optimizer=optimizer,
        scheduler=None,
        scaler=scaler,
        amp_dtype=amp_dtype,
        max_iters=warmup + iters,
        config={},
    )
    progress = Progress()
    model.train()
    times = []
    for step in range(warmup + iters):
        _sync(device)
        tic = time.perf_counter()
        train_step(setup, progress, images, targets)
        _sync(device)
        times.append(time.perf_counter() - tic)
        progress.iteration = step + 1
    seconds = sum(times[warmup:]) / iters
    row.update(
        {
            "s/iter": seconds,
            "train img/s": preset.samples_per_gpu / seconds,
            "train GiB": _peak_gib(device),
        }
    )

    optimizer.zero_grad(set_to_none=True)  # inference memory without training's leftovers
    del optimizer, setup, scaler, images, targets
    _reset_peak(device)
    model.eval()
    height, width = preset.test_scale, preset.max_size
    image = torch.rand(3, height, width, generator=generator).to(device)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    times = []
    with torch.inference_mode(), autocast:
        for _ in range(warmup + iters):
            _sync(device)
            tic = time.perf_counter()
            model([image])
            _sync(device)
            times.append(time.perf_counter() - tic)
    row.update({"infer img/s": iters / sum(times[warmup:]), "infer GiB": _peak_gib(device)})
    return row


def run(
    presets: list[str],
    losses: list[str],
    amps: list[str],
    device: torch.device,
    iters: int,
    warmup: int,
    instances: int,
    overrides: dict | None = None,
    budget_s: float = 0.0,
) -> list[dict]:
    """Every ``preset x loss x amp`` row of :func:`bench_case`, printed as it finishes. A case
    that fails (out of memory, non-finite loss, any error) or is skipped (``budget_s`` > 0
    seconds spent before it) gets an ``error`` entry instead of figures."""
    rows, start = [], time.perf_counter()
    for name in presets:
        for loss in losses:
            preset = get_preset(name, cls_loss=loss, **(overrides or {}))
            for amp in amps:
                if budget_s and time.perf_counter() - start > budget_s:
                    row = {"preset": name, "loss": loss, "amp": amp, "error": "skipped: budget"}
                else:
                    try:
                        row = bench_case(preset, amp, device, iters, warmup, instances)
                    except Exception as error:  # one failed case must not lose the others
                        traceback.print_exc()
                        first = (str(error).splitlines() or [""])[0][:120]
                        row = {
                            "preset": name,
                            "loss": loss,
                            "amp": amp,
                            "error": f"{type(error).__name__}: {first}",
                        }
                    _reset_peak(device)
                rows.append(row)
                print(_row_line(row), flush=True)
    return rows


def _row_line(row: dict) -> str:
    head = f"{row['preset']} {row['loss']:>9} amp {row['amp']:>3}"
    if "error" in row:
        return f"{head}: {row['error']}"
    return (
        f"{head} ({row['dtype']}): {row['s/iter']:.3f} s/iter, "
        f"{row['train img/s']:.2f} img/s, {_number(row['train GiB'], 2)} GiB; "
        f"inference {row['infer img/s']:.2f} img/s, {_number(row['infer GiB'], 2)} GiB"
    )


def _published_mem(name: str) -> str:
    entry = {**SEED_RESULTS, **SEESAW_RESULTS}.get(name)
    return "-" if entry is None or entry[2] is None else f"{entry[2]:.1f}"


def _number(value: float, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown(rows: list[dict], args: argparse.Namespace, device: torch.device) -> str:
    """RESULTS.md's ``gpu_presets`` section for ``rows``."""
    if device.type == "cuda":
        machine = (
            f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, TF32 in cuDNN "
            f"convolutions {torch.backends.cudnn.allow_tf32}, in matmuls "
            f"{torch.backends.cuda.matmul.allow_tf32}"
        )
    else:
        machine = f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)"
    mode = ", `--tiny` (32 x 64 px, 8 classes, few RoIs: checks the code)" if args.tiny else ""
    lines = [
        f"## Seed presets x losses, speed and memory (`benchmarks/gpu_presets.py`{mode})",
        "",
        f"Device: {machine}; torch {torch.__version__}, Python {platform.python_version()}. "
        f"Synthetic batch per iteration: `samples_per_gpu` images at max(`train_scales`) x "
        f"`max_size` px, {args.instances} objects each; {args.warmup} untimed then "
        f"{args.iters} timed iteration(s) of `lvisnb.engine.loop.train_step`; inference batch 1 "
        f"at `test_scale`, as many images. Random weights, the first warm-up learning rate. "
        "Memory: "
        "`torch.cuda.max_memory_allocated` in GiB (the counter behind mmdetection's Mem); "
        "published Mem: mmdetection's configs/lvis README (v1 rows), which leaves "
        'Inf time (fps) as "-" for these rows. Inference with random weights is a worst case '
        "for post-processing: every class of every proposal scores above `box_score_thresh`, "
        "so NMS sees ~1000 x K candidates and `box_detections_per_img` (300) masks are pasted.",
        "",
        "| preset | loss | AMP | dtype | s/iter | train img/s | train GiB | published Mem (GB) "
        "| infer img/s | infer GiB | published fps |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        head = f"| `{row['preset']}` | {row['loss']} | {row['amp']} |"
        if "error" in row:
            mem = _published_mem(row["preset"])
            lines.append(f"{head} {row['error']} | | | | {mem} | | | - |")
            continue
        lines.append(
            f"{head} {row['dtype']} | {row['s/iter']:.3f} | {row['train img/s']:.2f} | "
            f"{_number(row['train GiB'], 2)} | {_published_mem(row['preset'])} | "
            f"{row['infer img/s']:.2f} | {_number(row['infer GiB'], 2)} | - |"
        )
    return "\n".join(lines)


def _names(text: str, valid, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise SystemExit(f"unknown {what} {unknown or text!r}; valid: {', '.join(valid)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets",
        default=None,
        help="comma-separated preset names; default: every seed row (--tiny: the r50 v1 row)",
    )
    parser.add_argument(
        "--losses", default=",".join(CLS_LOSSES), help="comma-separated cls_loss names"
    )
    parser.add_argument("--amp", default="on,off", help="'on', 'off' or 'on,off'")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations (10; tiny 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first ones (3; tiny 1)")
    parser.add_argument(
        "--instances",
        type=int,
        default=None,
        help="objects per image (12, about LVIS v1's mean; tiny 3)",
    )
    parser.add_argument("--device", default=None, help="'auto' (default), 'cuda', 'cpu' ...")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="start no new case after this many seconds; 0 = no limit",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="32 x 64 px, 8 classes, 1 image, on the CPU: checks the code",
    )
    parser.add_argument("--write", action="store_true", help="write the RESULTS.md section")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the file --write writes")
    args = parser.parse_args(argv)
    defaults = (
        TINY_RUN if args.tiny else {"iters": 10, "warmup": 3, "instances": 12, "device": "auto"}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.iters < 1 or args.warmup < 0 or args.instances < 1:
        parser.error("--iters and --instances must be >= 1, --warmup >= 0")
    default_presets = TINY_PRESET if args.tiny else ",".join(SEED_PRESETS)
    sized = [name for name, preset in PRESETS.items() if preset.num_classes is not None]
    args.presets = _names(args.presets or default_presets, sized, "preset")
    args.losses = _names(args.losses, list(CLS_LOSSES), "loss")
    args.amp = _names(args.amp, ["on", "off"], "amp setting")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    device = resolve_device(args.device)
    rows = run(
        args.presets,
        args.losses,
        args.amp,
        device,
        args.iters,
        args.warmup,
        args.instances,
        TINY_OVERRIDES if args.tiny else None,
        args.budget_s,
    )
    report(SECTION, markdown(rows, args, device), args.write, args.results)
    return rows


if __name__ == "__main__":
    main()
