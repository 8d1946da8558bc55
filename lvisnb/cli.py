"""Command line: ``lvisnb toy``, ``run``, ``train``, ``predict``, ``evaluate``; the Makefile
calls these.

Every subcommand is a dataclass whose fields are its flags, typed by their annotations and
documented by their comments (tyro): ``lvisnb --help`` lists the subcommands, ``lvisnb evaluate
--help`` every flag of one. ``lvisnb train --preset toy --run-dir runs/train --max-iters 300``
takes one ``--field value`` per :class:`lvisnb.engine.config.TrainConfig` field; for several
processes use ``torchrun --nproc_per_node=N -m lvisnb.cli train`` with the same flags.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec

from lvisnb import files as outputs

FLAGS = (tyro.conf.FlagCreatePairsOff,)  # a bool field is one flag: --if-absent, --no-fixed


# ----------------------------------------------------------------------------- toy


@tyro.conf.configure(*FLAGS)
@dataclass
class Toy:
    """Write the toy-LVIS data set (images + LVIS v1 json)."""

    # folder to write toy-LVIS into (images/ and annotations/)
    out_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="OUT_DIR")]
    seed: int = 0  # seed of the images and annotations
    train_images: int | None = None  # training images; None: the kit's size
    val_images: int | None = None  # validation images; None: the kit's size
    if_absent: bool = False  # do nothing if already written
    # write an LVIS-v1-train-sized annotation file (no images) for scale benchmarks
    full_scale: bool = False


def _cmd_toy(args: Toy) -> int:
    from lvisnb.annotations import toy  # shapely, PIL: only for this command

    out_dir = Path(args.out_dir)
    if args.full_scale:
        from lvisnb.annotations import full_scale  # only for --full-scale

        path = full_scale.make_full_scale_lvis(out_dir, seed=args.seed)
        print(f"wrote {path}")
        return 0
    if args.if_absent and toy.is_complete(out_dir):
        print(f"toy-LVIS already at {out_dir}")
        return 0
    paths = toy.make_toy_lvis(
        out_dir,
        seed=args.seed,
        num_train_images=args.train_images,
        num_val_images=args.val_images,
    )
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


# ----------------------------------------------------------------------------- run


@tyro.conf.configure(*FLAGS)
@dataclass
class Run:
    """Execute the notebooks in order with papermill."""

    run_dir: str = "runs/demo"  # the run directory every notebook reads and writes
    notebooks: str | None = None  # folder of NN_*.ipynb; None: the kit's notebooks
    # notebook name prefix, e.g. --only 01 --only 03; none given: every notebook
    only: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    # a notebook parameter, read as the type the notebook declares (str, int, float, bool)
    param: Annotated[
        tuple[str, ...],
        tyro.conf.UseAppendAction,
        tyro.conf.arg(aliases=("-p",), metavar="NAME=VALUE"),
    ] = ()
    html: bool = False  # also render executed notebooks


def _cmd_run(args: Run) -> int:
    from lvisnb import notebook_runner as runner  # papermill: only for this command

    params = dict(_parse_param(p) for p in args.param)
    executed = runner.run_notebooks(
        Path(args.run_dir),
        notebooks_dir=Path(args.notebooks) if args.notebooks else runner.NOTEBOOKS_DIR,
        parameters=params,
        select=list(args.only) or None,
        html=args.html,
    )
    for path in executed:
        print(f"executed {path}")
    return 0


def _parse_param(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (name, value text); the runner reads the text by the type the
    notebook declares for the name."""
    if "=" not in text:
        raise ValueError(f"-p expects NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value


# ----------------------------------------------------------------------------- evaluate


@tyro.conf.configure(*FLAGS)
@dataclass
class Evaluate:
    """Evaluate LVIS results (bbox/segm AP, APr/c/f, AR, AP-fixed, AP-pool)."""

    # LVIS annotation file (e.g. lvis_v1_val.json)
    gt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="GT")]
    # LVIS results JSON (list of detections)
    results: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RESULTS")]
    # "fast" (hotcoco's engine) or "lvis" (the official LVISEval): the same numbers
    backend: Literal["fast", "lvis"] = "fast"
    # what to evaluate: boxes, masks or both
    iou_types: list[Literal["bbox", "segm"]] = field(default_factory=lambda: ["bbox", "segm"])
    out: str = "metrics.json"  # where to write the metrics JSON
    per_category_csv: str | None = None  # also write the per-category table
    # train annotation file whose per-category image counts go into the per-category table;
    # None: LVIS v1 train's, for a whole LVIS category set
    train_ann: str | None = None
    # replace existing --out / --per-category-csv files even if the kit did not write them;
    # inputs are never replaced
    overwrite: bool = False
    no_fixed: bool = False  # skip AP-fixed / AP-pool (one evaluation less)
    # segm size ranges from the mask's area (as detectron2) or from the box's w*h (as raw
    # LVISEval on records that carry a bbox)
    segm_area: Literal["mask", "box"] = "mask"
    # add 95% percentile intervals of AP, APr, APc, APf from B resamples of the images, e.g.
    # 200 (fast backend; reuses the matching, so it costs at most about one more evaluation)
    bootstrap: Annotated[int, tyro.conf.arg(metavar="B")] = 0
    seed: int = 0  # seed of the bootstrap resamples


def _cmd_evaluate(args: Evaluate) -> int:
    from lvisnb.evaluation.evaluator import evaluate  # pandas, hotcoco: only for this command
    from lvisnb.evaluation.report import format_summary, save_metrics, save_per_category  # same

    inputs = [args.gt, args.results, *([args.train_ann] if args.train_ann else [])]
    if args.per_category_csv and outputs.same_file(args.out, args.per_category_csv):
        raise FileExistsError(f"--out and --per-category-csv are the same file: {args.out}")
    for path, owned, what in (
        (args.out, outputs.is_metrics_file, "metrics file"),
        (args.per_category_csv, outputs.is_per_category_csv, "per-category table"),
    ):
        if path:  # refused before the work, not after it
            outputs.check_output(
                path, inputs, written_by_kit=owned, overwrite=args.overwrite, what=what
            )
    evaluation = evaluate(
        args.gt,
        args.results,
        iou_types=args.iou_types,
        backend=args.backend,
        fixed=not args.no_fixed,
        segm_area=args.segm_area,
        train_ann=args.train_ann,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    print(format_summary(evaluation))
    out = save_metrics(args.out, evaluation, overwrite=args.overwrite)
    print(f"wrote {out}")
    if args.per_category_csv:
        csv = save_per_category(args.per_category_csv, evaluation, overwrite=args.overwrite)
        print(f"wrote {csv}")
    return 0


# ----------------------------------------------------------------------------- predict


@tyro.conf.configure(*FLAGS)
@dataclass
class Predict:
    """Run a Mask R-CNN over an LVIS split and write LVIS results that `lvisnb evaluate` reads."""

    # a kit run's checkpoint (checkpoints/final.pt), an mmdetection checkpoint file, or the
    # name of a published model zoo row (downloaded once into torch hub's cache)
    checkpoint: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    ann_file: str  # LVIS annotation file of the images to run on (e.g. lvis_v1_val.json)
    image_root: str  # folder of the images (e.g. the COCO 2017 images LVIS uses)
    out: str = "results.json"  # the LVIS results JSON to write
    # the preset of an mmdetection checkpoint whose file name does not say it
    preset: str | None = None
    # the LVIS ids of an mmdetection model's classes in label order (ascending), for a model
    # of some categories whose file names none (mmdetection 3.x files name them)
    category_ids: tuple[int, ...] | None = None
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    batch_size: int = 2  # images per forward pass
    num_workers: int = 2  # DataLoader processes reading images
    score_thresh: float = 1e-4  # drop detections scoring below this (LVIS: 1e-4)
    # detections kept per image; None: the model's own (300 for the mmdetection rows)
    max_dets: int | None = None
    # replace an existing --out even if the kit did not write it; inputs are never replaced
    overwrite: bool = False


def _check_predict_flags(args: Predict) -> None:
    """``ValueError`` naming, as flags, the numbers of ``lvisnb predict`` out of range."""
    from lvisnb.engine.inference import ARGUMENTS, argument_problems  # torch: this command's

    problems = "; ".join(argument_problems(*(getattr(args, name) for name in ARGUMENTS)))
    for name in ARGUMENTS:
        problems = problems.replace(name, "--" + name.replace("_", "-"))
    if problems:
        raise ValueError(problems)


def _cmd_predict(args: Predict) -> int:
    from lvisnb.data.dataset import LVISDetection  # torch: only for this command
    from lvisnb.engine.device import resolve_device  # same
    from lvisnb.engine.inference import is_saved_results, predict, save_results  # same
    from lvisnb.engine.model_source import load_model  # same

    inputs = [args.ann_file, *([args.checkpoint] if Path(args.checkpoint).exists() else [])]
    outputs.check_output(  # refused before the work, not after it
        args.out,
        inputs,
        written_by_kit=is_saved_results,
        overwrite=args.overwrite,
        what="results file",
    )
    _check_predict_flags(args)  # before the model loads, not in a worker
    if not Path(args.image_root).is_dir():
        raise FileNotFoundError(f"--image-root {args.image_root}: no such folder")
    device = resolve_device(args.device)
    model, mapping = load_model(
        args.checkpoint, args.preset, category_ids=args.category_ids, device=device
    )
    dataset = LVISDetection(args.ann_file, args.image_root, mapping=mapping)
    records = predict(
        model,
        dataset,
        mapping,
        batch_size=args.batch_size,
        device=device,
        score_thresh=args.score_thresh,
        max_dets=args.max_dets,
        num_workers=args.num_workers,
    )
    count = save_results(args.out, records, overwrite=args.overwrite)
    print(f"wrote {count} detections of {len(dataset)} images to {args.out}")
    return 0


# ----------------------------------------------------------------------------- train


def _yaml_mapping(text: str) -> dict:
    """``--overrides`` text -> a dict of Preset fields (YAML, e.g. ``{train_scales: [480]}``)."""
    import yaml  # only to read --overrides

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"--overrides is not valid YAML ({where}): {text!r}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"--overrides must be a mapping such as '{{lr: 0.01}}', got {text!r}")
    return value


def _cli_registry() -> ConstructorRegistry:
    """tyro rules for the one field argparse types cannot express: ``overrides`` (YAML)."""
    registry = ConstructorRegistry()

    @registry.primitive_rule
    def _mapping(type_info):
        if type_info.type is not dict:
            return None
        return PrimitiveConstructorSpec(
            nargs=1,
            metavar="YAML",
            instance_from_str=lambda args: _yaml_mapping(args[0]),
            is_instance=lambda value: isinstance(value, dict),
            str_from_instance=lambda value: [json.dumps(value)],
        )

    return registry


def _train_config() -> type:
    """:class:`lvisnb.engine.config.TrainConfig`, imported when a command line needs it."""
    from lvisnb.engine.config import TrainConfig  # torch: only for train (and --help)

    return TrainConfig


def config_from_args(argv: list[str] | None = None):
    """A :class:`lvisnb.engine.config.TrainConfig` from ``--field value`` flags, typed by the
    dataclass (tyro): each field's comment is its ``--help`` text; ``--lr 1e-3`` is a float,
    ``--run-dir on`` a string, ``--max-iters None`` the preset's value, ``--lr-steps 3 4`` a
    tuple, booleans are flags (``--resume`` / ``--no-progress``), ``--overrides`` YAML
    (``'{train_scales: [480, 512]}'``). A malformed value exits with status 2 and a message
    naming the flag."""
    from lvisnb.engine import trainer  # torch: only for train

    return tyro.cli(
        _train_config(),
        args=argv,
        prog="lvisnb train",
        registry=_cli_registry(),
        description=trainer.__doc__.splitlines()[0],
    )


def _cmd_train(cfg) -> int:
    """``lvisnb train`` / ``torchrun -m lvisnb.cli train``: exit status 0 when training
    finished, 1 when it stopped on non-finite losses or weights (one line naming the last good
    checkpoint), 2 for an input the kit refuses (one line naming file and field);
    ``LVISNB_TRACEBACK=1`` raises instead."""
    import torch.distributed as dist  # torch: only for train

    from lvisnb.annotations.images import ImageReadError  # only on this path
    from lvisnb.engine import trainer as train_mod  # torch: only for train

    rank = int(os.environ.get("RANK", "0"))
    try:
        result = train_mod.train(cfg)
        if rank == 0:
            print(f"checkpoint: {result.checkpoint} ({result.iterations} iterations)")
        return 0
    except (
        FloatingPointError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ImageReadError,
    ) as error:
        if os.environ.get("LVISNB_TRACEBACK"):
            raise
        if rank == 0:
            stopped = isinstance(error, FloatingPointError)
            what = "stopped" if stopped else "error"
            print(f"lvisnb train: {what}: {error_message(error)}", file=sys.stderr)
        return 1 if isinstance(error, FloatingPointError) else 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# ----------------------------------------------------------------------------- dispatch


@dataclass(frozen=True)
class Command:
    """A subcommand: its dataclass of flags (fetched when needed: train's imports torch) and the
    function that runs it, returning the exit status."""

    config: Callable[[], type]
    run: Callable[[Any], int]


COMMANDS = {
    "toy": Command(lambda: Toy, _cmd_toy),
    "run": Command(lambda: Run, _cmd_run),
    "train": Command(_train_config, _cmd_train),
    "predict": Command(lambda: Predict, _cmd_predict),
    "evaluate": Command(lambda: Evaluate, _cmd_evaluate),
}


def parse_args(argv: list[str] | None = None) -> tuple[str, Any]:
    """``(command name, its dataclass filled from argv)``; ``--help`` and malformed flags exit
    (status 0 / 2) with tyro's message.

    ``argv[0]`` names the command, whose own parser alone is built, so that ``lvisnb evaluate``
    does not import torch for train's fields; without a known command (``lvisnb --help``, a
    typo) every subcommand is listed.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    name = argv[0] if argv else None
    if name == "train":
        return name, config_from_args(argv[1:])
    if name in COMMANDS:
        config = COMMANDS[name].config()
        return name, tyro.cli(config, args=argv[1:], prog=f"lvisnb {name}")
    configs = {command: entry.config() for command, entry in COMMANDS.items()}
    parsed = tyro.extras.subcommand_cli_from_dict(
        configs,
        args=argv,
        prog="lvisnb",
        description="lvisnb: make toy-LVIS, run the notebooks, train, run and evaluate LVIS "
        "models. "
        "`lvisnb COMMAND --help` documents every flag of a command.",
        registry=_cli_registry(),
    )
    return next(c for c, t in configs.items() if isinstance(parsed, t)), parsed


def error_message(error: BaseException) -> str:
    """``str(error)``, or for an error a DataLoader worker raised (torch re-raises it wrapped:
    "Caught X in DataLoader worker process N", then the worker's traceback) the original
    message alone, so that a bad image or record is the same one line with or without workers."""
    text = str(error)
    if "\nOriginal Traceback" not in text:
        return text
    kind = type(error)
    heads = (f"{kind.__module__}.{kind.__qualname__}: ", f"{kind.__qualname__}: ")
    lines = text.rstrip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(heads):
            first = lines[index].split(": ", 1)[1]
            return "\n".join([first, *lines[index + 1 :]])
    return lines[-1]


def main(argv: list[str] | None = None) -> int:
    """Run a command; an input the kit refuses (``ValueError``, a missing file, an output that
    would replace an input or a user's file) is printed as one line naming the file, record
    and field, exit status 2 (``LVISNB_TRACEBACK=1``: raise)."""
    from lvisnb.annotations.images import ImageReadError  # kept out of --help start-up
    from lvisnb.model.mmdet_zoo import DownloadError  # same (no torch import there)

    name, args = parse_args(argv)
    refused = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, ImageReadError)
    try:
        return COMMANDS[name].run(args)
    except (*refused, DownloadError) as error:
        if os.environ.get("LVISNB_TRACEBACK"):
            raise
        print(f"lvisnb {name}: error: {error_message(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        from lvisnb.notebook_runner import NotebookFailed  # papermill: only on a failure

        if not isinstance(error, NotebookFailed) or os.environ.get("LVISNB_TRACEBACK"):
            raise
        print(f"lvisnb {name}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
