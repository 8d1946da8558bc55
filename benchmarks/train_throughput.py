"""Training throughput of the kit's loop beside a bare PyTorch loop, and of the data pipeline.

    python benchmarks/train_throughput.py [--preset toy] [--iters 40] [--warmup 8] [--rounds 2]

Training: the same torchvision Mask R-CNN (built by ``lvisnb.model.builder.build_model`` with the
same seed), the same toy-LVIS data, transforms, RFS sampler, batch and optimiser (SGD with the
preset's momentum, weight decay and gradient clipping) run through

- ``kit``: :func:`lvisnb.engine.trainer.train` (schedule, per-iteration JSON log, progress bar off,
  non-finite check, checkpoint only at the end), timed between its per-iteration callbacks;
- ``bare``: ``for images, targets in loader: loss = sum(model(images, targets).values());
  zero_grad; backward; clip; step``, timed around each iteration.

Both time iterations after the first ``--warmup`` ones, alternate ``--rounds`` times (bare, kit,
bare, kit, ...) so that machine noise hits both, and report the median images/s; target: kit
>= 0.95 x bare. Data pipeline: images/s of decode + mask decoding + the training transforms
through a ``DataLoader`` with 0, 1 and 2 workers. Figures go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402

from lvisnb.annotations import toy  # noqa: E402
from lvisnb.data.dataset import LVISDetection, collate  # noqa: E402
from lvisnb.data.sampler import build_sampler  # noqa: E402
from lvisnb.data.transforms import train_transforms  # noqa: E402
from lvisnb.engine.config import TrainConfig  # noqa: E402
from lvisnb.engine.run_dir import read_log  # noqa: E402
from lvisnb.engine.schedule import scaled_lr  # noqa: E402
from lvisnb.engine.trainer import train  # noqa: E402
from lvisnb.model.builder import build_model  # noqa: E402
from lvisnb.model.presets import get_preset  # noqa: E402


def _train_dataset(preset_name: str, paths: dict) -> LVISDetection:
    """toy-LVIS train with the preset's training transforms, as the kit's loop builds it."""
    preset = get_preset(preset_name)
    return LVISDetection(
        paths["train"],
        paths["root"],
        transforms=train_transforms(preset.train_scales, preset.max_size, preset.flip_prob),
        skip_empty=True,
    )


def bare_loop(preset_name: str, paths: dict, batch: int, iters: int, warmup: int) -> float:
    """Images/s of a plain loop over the kit's model, data and optimiser settings."""
    preset = get_preset(preset_name)
    dataset = _train_dataset(preset_name, paths)
    sampler = build_sampler("rfs", dataset, preset.rfs_threshold, 0, 1, 0)
    torch.manual_seed(0)
    model = build_model(preset, num_classes=dataset.mapping.num_classes)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params,
        lr=scaled_lr(preset, batch),
        momentum=preset.momentum,
        weight_decay=preset.weight_decay,
    )
    loader = DataLoader(
        dataset, batch_size=batch, sampler=sampler, collate_fn=collate, drop_last=True
    )
    model.train()
    times = []
    tic = time.perf_counter()
    for step, (images, targets) in enumerate(loader):
        loss = sum(model(list(images), list(targets)).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if preset.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, preset.grad_clip)
        optimizer.step()
        now = time.perf_counter()
        times.append(now - tic)
        tic = now
        if step + 1 >= iters:
            break
    return batch * len(times[warmup:]) / sum(times[warmup:])


def kit_loop(preset_name: str, paths: dict, batch: int, iters: int, warmup: int) -> float:
    """Images/s of :func:`lvisnb.engine.trainer.train`: the intervals between its per-iteration
    callbacks, so logging, the progress bar and checks are all inside the timed span."""
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as run_dir:
        train(
            TrainConfig(
                preset=preset_name,
                train_ann=str(paths["train"]),
                image_root=str(paths["root"]),
                run_dir=run_dir,
                device="cpu",
                batch_size=batch,
                max_iters=iters,
                checkpoint_every=10 * iters,
                progress=False,
            ),
            callback=lambda record: stamps.append(time.perf_counter()),
        )
        assert len(read_log(run_dir)) == iters
    times = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]  # iterations 2..iters
    return batch * len(times[warmup - 1 :]) / sum(times[warmup - 1 :])


def data_pipeline(preset_name: str, paths: dict, images: int, workers: int) -> float:
    """Images/s through decode + masks + training transforms with ``workers`` workers."""
    dataset = _train_dataset(preset_name, paths)
    subset = torch.utils.data.Subset(dataset, range(min(images, len(dataset))))
    loader = DataLoader(subset, batch_size=4, collate_fn=collate, num_workers=workers)
    tic = time.perf_counter()
    count = sum(len(images) for images, _ in loader)
    return count / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="toy")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pipeline-images", type=int, default=400)
    args = parser.parse_args()

    paths = toy.ensure_toy_lvis()
    runs = {"bare": [], "kit": []}
    for round_index in range(args.rounds):
        for name, loop in (("bare", bare_loop), ("kit", kit_loop)):
            rate = loop(args.preset, paths, args.batch, args.iters, args.warmup)
            runs[name].append(rate)
            print(f"round {round_index + 1} {name}: {rate:.2f} images/s", flush=True)
    bare, kit = statistics.median(runs["bare"]), statistics.median(runs["kit"])
    pipeline = {w: data_pipeline(args.preset, paths, args.pipeline_images, w) for w in (0, 1, 2)}
    print(json.dumps({"bare": bare, "kit": kit, "pipeline": pipeline}))

    threads = torch.get_num_threads()
    lines = [
        "## Training throughput, toy preset on the CPU (`benchmarks/train_throughput.py`)",
        "",
        f"Machine: {platform.machine()}, {threads} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}. Preset `{args.preset}`, batch {args.batch}, "
        f"{args.iters} iterations per run of which the first {args.warmup} are not timed; "
        f"{args.rounds} alternating rounds, median shown.",
        "",
        "| loop | images/s | s/iteration | runs (images/s) |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, rate in (("bare PyTorch loop", bare), ("`lvisnb.engine.trainer.train`", kit)):
        key = "bare" if name.startswith("bare") else "kit"
        rates = ", ".join(f"{r:.2f}" for r in runs[key])
        lines.append(f"| {name} | {rate:.2f} | {args.batch / rate:.2f} | {rates} |")
    verdict = "met" if kit >= 0.95 * bare else "NOT met"
    lines += [
        "",
        f"Kit / bare = {kit / bare:.3f} (target >= 0.95: {verdict}).",
        "",
        "Data pipeline (JPEG decode + polygon-to-mask decoding + multi-scale resize, flip, "
        f"to float; {args.pipeline_images} toy-LVIS train images, batch 4):",
        "",
        "| DataLoader workers | images/s |",
        "| ---: | ---: |",
        *[f"| {w} | {rate:.1f} |" for w, rate in pipeline.items()],
    ]
    write_section("train_throughput", "\n".join(lines))


if __name__ == "__main__":
    main()
