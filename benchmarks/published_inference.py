"""Inference speed and peak GPU memory of mmdetection's published LVIS models in the kit.

    python benchmarks/published_inference.py [--models NAME,...] [--checkpoint-dir DIR]
        [--ann-file ANN --image-root ROOT] [--images 20] [--warmup 3] [--amp on,off]
        [--device cuda] [--write]

For each model zoo row the kit names (:data:`lvisnb.model.mmdet_zoo.PUBLISHED`): its checkpoint
is ``DIR/<published file name>`` when ``--checkpoint-dir`` holds it (a machine without network:
copy the files there), else it is downloaded once into torch hub's cache
(:func:`lvisnb.model.mmdet_zoo.published_checkpoint`, hash-checked); a row whose file cannot be
had is reported as such and the next one runs. The model is loaded with
:func:`lvisnb.load_model`, as ``lvisnb predict`` loads it, and timed on ``--images`` images after
``--warmup`` untimed ones, batch 1 at the preset's test scale, ``model.eval()`` under
``torch.inference_mode`` (autocast when AMP is on: :func:`lvisnb.engine.device.autocast_dtype`):
the model alone, as mmdetection's ``Inf time (fps)``, with ``torch.cuda.synchronize`` around each
image. With ``--ann-file`` / ``--image-root`` the images are the file's first ones (LVIS val, as
the model zoo measures); without, seeded noise of 480 x 640 px, on which trained weights find
few objects (so post-processing costs less than on photographs). Reported: images/s, peak
``torch.cuda.max_memory_allocated`` (GiB) and detections per image.

``--write`` puts the table into RESULTS.md's ``published_inference`` section. The numbers the
README quotes for a GPU come from here; ``benchmarks/gpu_run.sh`` runs it after gpu_presets.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import RESULTS, report  # noqa: E402

from lvisnb.data.dataset import LVISDetection  # noqa: E402
from lvisnb.engine.device import autocast_dtype, resolve_device  # noqa: E402
from lvisnb.engine.model_source import load_model  # noqa: E402
from lvisnb.model.mmdet_zoo import PUBLISHED  # noqa: E402
from lvisnb.model.presets import get_preset  # noqa: E402

SECTION = "published_inference"
GIB = 1024**3


def checkpoint_of(name: str, checkpoint_dir: Path | None) -> str | Path:
    """``checkpoint_dir / <published file name>`` when that file exists, else ``name`` (which
    :func:`lvisnb.load_model` downloads)."""
    if checkpoint_dir is not None and (checkpoint_dir / PUBLISHED[name].file_name).is_file():
        return checkpoint_dir / PUBLISHED[name].file_name
    return name


def images_of(args: argparse.Namespace) -> list[torch.Tensor]:
    """``warmup + images`` float RGB images in [0, 1], (3, H, W): the annotation file's first
    ones, or seeded noise of ``args.image_size``."""
    count = args.warmup + args.images
    if args.ann_file is None:
        generator = torch.Generator().manual_seed(0)
        return [torch.rand(3, *args.image_size, generator=generator) for _ in range(count)]
    dataset = LVISDetection(args.ann_file, args.image_root)
    return [dataset[i % len(dataset)][0].float() / 255 for i in range(count)]


def bench_model(
    model: torch.nn.Module, images: list[torch.Tensor], warmup: int, amp: str, device
) -> dict:
    """``{"dtype", "img/s", "GiB", "dets/img"}`` of ``model`` over ``images[warmup:]``."""
    amp_dtype = autocast_dtype(amp == "on", device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, detections = [], []
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    with torch.inference_mode(), autocast:
        for image in images:
            image = image.to(device)
            _sync(device)
            start = time.perf_counter()
            output = model([image])[0]
            _sync(device)
            seconds.append(time.perf_counter() - start)
            detections.append(len(output["boxes"]))
    timed = seconds[warmup:]
    peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None
    return {
        "dtype": str(amp_dtype or torch.float32).removeprefix("torch."),
        "img/s": len(timed) / sum(timed),
        "GiB": peak,
        "dets/img": sum(detections[warmup:]) / len(timed),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """One row per model x AMP setting; a model that cannot be had or run is an error row."""
    images, rows = images_of(args), []
    for name in args.models:
        checkpoint = checkpoint_of(name, args.checkpoint_dir)
        source = "download" if checkpoint == name else str(checkpoint)
        try:
            preset = get_preset(name, **args.preset_overrides)
            model, _ = load_model(checkpoint, preset, device=device, progress=False)
        except Exception as error:  # one missing file must not lose the other rows
            traceback.print_exc()
            rows += [{"model": name, "amp": amp, "error": _first_line(error)} for amp in args.amp]
            continue
        for amp in args.amp:
            row = {"model": name, "amp": amp, "source": source}
            row.update(bench_model(model, images, args.warmup, amp, device))
            rows.append(row)
            print(row, flush=True)
        del model
    return rows


def _first_line(error: Exception) -> str:
    text = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {text[:300]}"


def markdown(rows: list[dict], args: argparse.Namespace, device: torch.device) -> str:
    if device.type == "cuda":
        machine = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    else:
        machine = f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)"
    images = (
        f"the first images of {Path(args.ann_file).name}"
        if args.ann_file
        else f"seeded noise of {args.image_size[0]} x {args.image_size[1]} px"
    )
    lines = [
        "## Published models: inference in the kit (`benchmarks/published_inference.py`)",
        "",
        f"Device: {machine}; torch {torch.__version__}. Each model loaded by `lvisnb.load_model` "
        f"from its published checkpoint; batch 1 at the preset's test scale, {args.warmup} "
        f"untimed then {args.images} timed images ({images}), the model alone.",
        "",
        "| model | AMP | dtype | img/s | peak GiB | detections / image |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        head = f"| `{row['model']}` | {row['amp']} |"
        if "error" in row:
            lines.append(f"{head} {row['error']} | | | |")
            continue
        peak = "-" if row["GiB"] is None else f"{row['GiB']:.2f}"
        lines.append(
            f"{head} {row['dtype']} | {row['img/s']:.2f} | {peak} | {row['dets/img']:.1f} |"
        )
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    height, width = (int(part) for part in text.split(","))
    return height, width


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PUBLISHED), help="comma-separated rows")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="published files")
    parser.add_argument("--ann-file", default=None, help="LVIS file whose first images run")
    parser.add_argument("--image-root", default=None, help="folder of --ann-file's images")
    parser.add_argument("--image-size", type=_size, default=(480, 640), help="noise: H,W")
    parser.add_argument("--images", type=int, default=20, help="timed images")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first images")
    parser.add_argument("--amp", default="on,off", help="'on', 'off' or 'on,off'")
    parser.add_argument("--device", default="auto", help="'auto', 'cuda', 'cpu' ...")
    parser.add_argument("--test-scale", type=int, default=None, help="override (checks only)")
    parser.add_argument("--max-size", type=int, default=None, help="override (checks only)")
    parser.add_argument("--write", action="store_true", help="write the RESULTS.md section")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the file --write writes")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.models if name not in PUBLISHED]
    args.amp = [amp.strip() for amp in args.amp.split(",") if amp.strip()]
    if unknown:
        parser.error(f"not published: {', '.join(unknown)} (published: {', '.join(PUBLISHED)})")
    if not set(args.amp) <= {"on", "off"} or not args.amp:
        parser.error("--amp takes 'on', 'off' or 'on,off'")
    if args.images < 1 or args.warmup < 0:
        parser.error("--images must be >= 1 and --warmup >= 0")
    if (args.ann_file is None) != (args.image_root is None):
        parser.error("--ann-file and --image-root go together")
    sizes = {"test_scale": args.test_scale, "max_size": args.max_size}
    args.preset_overrides = {key: value for key, value in sizes.items() if value is not None}
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    device = resolve_device(args.device)
    rows = run(args, device)
    report(SECTION, markdown(rows, args, device), args.write, args.results)
    return rows


if __name__ == "__main__":
    main()
