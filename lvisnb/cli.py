"""Command line: ``lvisnb toy``, ``run``, ``train``, ``evaluate``; the Makefile calls these.

``lvisnb train --preset toy --run-dir runs/train --max-iters 300`` takes one ``--field value``
per :class:`lvisnb.engine.train.TrainConfig` field (``lvisnb train --help`` lists them); for several
processes use ``torchrun --nproc_per_node=N -m lvisnb.engine.train`` with the same flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _cmd_toy(args: argparse.Namespace) -> int:
    from lvisnb.annotations import toy

    out_dir = Path(args.out_dir)
    if args.full_scale:
        from lvisnb.annotations import full_scale

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


def _cmd_run(args: argparse.Namespace) -> int:
    from lvisnb import notebook_runner as runner

    params = dict(_parse_param(p) for p in args.param)
    executed = runner.run_notebooks(
        Path(args.run_dir),
        notebooks_dir=Path(args.notebooks) if args.notebooks else runner.NOTEBOOKS_DIR,
        parameters=params,
        select=args.only,
        html=args.html,
    )
    for path in executed:
        print(f"executed {path}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from lvisnb.engine import train

    return train.main(args.train_args)


def _parse_param(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (name, value text); the runner reads the text by the type the
    notebook declares for the name."""
    if "=" not in text:
        raise ValueError(f"-p expects NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvisnb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    toy_p = sub.add_parser("toy", help="write the toy-LVIS data set (images + LVIS v1 json)")
    toy_p.add_argument("out_dir")
    toy_p.add_argument("--seed", type=int, default=0)
    toy_p.add_argument("--train-images", type=int, default=None, help="default: the kit's size")
    toy_p.add_argument("--val-images", type=int, default=None, help="default: the kit's size")
    toy_p.add_argument("--if-absent", action="store_true", help="do nothing if already written")
    toy_p.add_argument(
        "--full-scale",
        action="store_true",
        help="write an LVIS-v1-train-sized annotation file (no images) for scale benchmarks",
    )
    toy_p.set_defaults(func=_cmd_toy)

    run_p = sub.add_parser("run", help="execute the notebooks in order with papermill")
    run_p.add_argument("--run-dir", default="runs/demo")
    run_p.add_argument(
        "--notebooks", default=None, help="folder of NN_*.ipynb (default: the kit's notebooks)"
    )
    run_p.add_argument("--only", action="append", default=None, help="notebook name prefix")
    run_p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        help="NAME=VALUE, read as the type the notebook declares (str, int, float, bool)",
    )
    run_p.add_argument("--html", action="store_true", help="also render executed notebooks")
    run_p.set_defaults(func=_cmd_run)

    train_p = sub.add_parser(
        "train",
        help="train a preset (flags: lvisnb train --help)",
        add_help=False,
        prefix_chars="\0",  # every flag goes on to lvisnb.engine.train's own parser
    )
    train_p.add_argument("train_args", nargs=argparse.REMAINDER)
    train_p.set_defaults(func=_cmd_train)

    from lvisnb.evaluation.evaluate import add_evaluate_parser

    add_evaluate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; an input the kit refuses (``ValueError``, a missing file, an output that
    would replace an input or a user's file) is printed as one line naming the file, record
    and field, exit status 2 (``LVISNB_TRACEBACK=1``: raise)."""
    from lvisnb.annotations.images import ImageReadError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, ImageReadError) as error:
        if os.environ.get("LVISNB_TRACEBACK"):
            raise
        print(f"lvisnb {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from lvisnb.notebook_runner import NotebookFailed

        if not isinstance(error, NotebookFailed) or os.environ.get("LVISNB_TRACEBACK"):
            raise
        print(f"lvisnb {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
