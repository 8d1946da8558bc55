"""The "Presets" page (docs/presets.md), rendered from :mod:`lvisnb.model.presets` so every value
exists once.

The section (between ``<!-- presets:start -->`` and ``<!-- presets:end -->`` in docs/presets.md) is
generated whole, prose included: a table of the rows (:data:`~lvisnb.model.presets.PRESETS`) with
the fields in which mmdetection's rows differ, and a table of every
:class:`~lvisnb.model.presets.Preset` field with its value in the default row ("kit") and in
``toy``, next to what it reproduces in mmdetection v2
(:data:`lvisnb.model.mmdet_config_keys.MMDETECTION`). Values are ``repr`` in backticks.

Adding a field to ``Preset`` takes one more thing: its
:class:`~lvisnb.model.mmdet_config_keys.Entry` in
:data:`~lvisnb.model.mmdet_config_keys.MMDETECTION`
(rendering fails naming any field without one). Then regenerate and commit the page::

    python -m lvisnb.model.preset_table --write docs/presets.md

``tests/model/test_preset_table.py`` fails, with that command, while docs/presets.md differs from
:func:`presets_markdown`. Without ``--write`` the section is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lvisnb.files import write_text_atomic
from lvisnb.model.mmdet_config_keys import MMDETECTION, Entry
from lvisnb.model.presets import PRESETS, TOY, Preset

START, END = "<!-- presets:start -->", "<!-- presets:end -->"
COMMAND = "python -m lvisnb.model.preset_table --write docs/presets.md"


_INTRO = """\
<!-- generated from lvisnb/model/presets.py and lvisnb/model/preset_table.py: edit those, then run
     python -m lvisnb.model.preset_table --write docs/presets.md -->
## Presets

`lvisnb.model.presets.PRESETS` holds mmdetection's LVIS Mask R-CNN rows as frozen `Preset`
dataclasses, named exactly as mmdetection's `configs/lvis/` and `configs/seesaw_loss/` files, plus
`toy` (ResNet-10 + GroupNorm from scratch, small images, trains on a 2-core CPU).
`get_preset(name, **overrides)` returns a validated copy with fields replaced;
`build_model(name_or_preset, num_classes=None)` builds the torchvision `MaskRCNN` (`num_classes`
is required for `toy`, whose classes come from the data). The box classification loss is a
field like the others (`cls_loss`: `'ce'`, `'seesaw'`, `'eqlv2'`, `'federated'`, with its
parameters below; `lvisnb.model.losses`), so every row, `toy` included, trains with any of them:
`get_preset(name, cls_loss='eqlv2')`, `lvisnb train --overrides '{cls_loss: federated}'`.

The rows differ only in these fields (values as `Preset` holds them):
"""

_TOY_SCHEDULE = """\
(`toy` trains by iterations instead: `max_iters={max_iters!r}`, \
`lr_steps_iters={lr_steps_iters!r}`; its other
differences are in the `toy` column below.)
"""

_ROUNDING = """\
**Repeat-factor rounding.** Every row samples images by their repeat factor
`r(i) = max over categories c in i of max(1, sqrt(t / f(c)))` (`t = rfs_threshold`, `f(c)` the
fraction of training images containing `c`), but `r(i)` is fractional and the codebases round it
differently; `rfs_rounding` picks which (`lvisnb.data.sampler.RepeatFactorSampler(rounding=...)`):

- the `mask_rcnn_*` rows use **`'ceil'`**: mmdetection's `ClassBalancedDataset` lists
  image `i` `ceil(r(i))` times, so an epoch is `sum_i ceil(r(i))` images, the same every epoch.
  Their schedules are in epochs (12 or 24), and an epoch's length sets how many iterations they
  train; with stochastic rounding an epoch is only `sum_i r(i)` long on average, which on LVIS v1
  is about 10% shorter than mmdetection's, so a "1x" row would train about 9% fewer iterations
  than the mmdetection config it is named after;
- **`toy`** uses **`'stochastic'`** (detectron2's `RepeatFactorTrainingSampler`): it reproduces
  no mmdetection row and trains a fixed number of iterations, so the epoch length sets nothing,
  while stochastic rounding keeps each image's expected count at exactly `r(i)`. `'ceil'` would
  double the 230 of toy-LVIS's 1,000 train images whose `r(i)` lies in (1, 1.5) and make an
  epoch 20% longer (1,735 images against `sum_i r(i)` = 1,445);
- a detectron2-style preset (a schedule in iterations, as detectron2's LVIS configs) should use
  `'stochastic'`, which is what detectron2 does.

`TrainConfig(rfs_rounding=...)` (`lvisnb train --rfs-rounding stochastic`) overrides the preset's.
With `t = 0` (or the `uniform` sampler) both roundings give a plain shuffled pass over the images.
"""

_FIELDS_INTRO = """\
Every field, its value in the `{kit}` row ("kit") and
in `toy`, and the mmdetection v2 config key and value it reproduces (`model.*` keys are from
`_base_/models/mask_rcnn_r50_fpn.py` with the LVIS configs' overrides, `data.*` from
`_base_/datasets/lvis_v1_instance.py`, `optimizer*`/`lr_config`/`runner` from
`_base_/schedules/schedule_1x.py`). Sizes are pixels, images are RGB scaled to [0, 1].
"""

_DIFFERENCES = """\
**What still differs from mmdetection.** The fields above take mmdetection 3.3.0's value in
every `mask_rcnn_*` row, measured against its own code (`tests/model/test_mmdet_parity.py`,
`tests/model/test_mmdet_training.py`; figures in benchmarks/RESULTS.md, `mmdet_parity`):
boxes within 1.2e-4 px, scores within 7e-6, at most 5 mask pixels of 92 M differing at full
size, losses within 1e-4 and SGD steps within 1e-3 of the step. What remains is no setting:

- the test-time resize: mmdetection resizes the 8-bit image with cv2 and rounds it to 8 bits,
  the kit interpolates floats (same bilinear kernel, same size). The resized images differ by
  under one grey level; through the R-50 on a seeded noise image, detections move by up to
  0.03 px and scores by up to 2e-3, with 2 of 50 detections and 13 of 1,000 proposals replaced;
- the RPN's smallest proposal (width or height above 0 in mmdetection, at least 1e-3 px in
  torchvision), the epsilon of the RoI level mapping, and mmdetection's coordinate-offset NMS
  below 10,000 boxes: each can change a result only at an exact boundary, and none changed one in
  the parity cases, which include all three;
- the parity reference runs mmdetection's model with torchvision's RoIAlign and NMS kernels in
  place of mmcv's compiled ones (`mmcv._ext` is not on the package index), so a difference
  between those kernels would not show there.
"""


def value_cell(value: object) -> str:
    """A field value as the tables show it: its ``repr`` in backticks (``'resnet50'``, ``None``)."""
    return f"`{value!r}`"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("|" + "|".join(f" {c} " if c else " " for c in line) + "|" for line in lines)


def row_fields() -> list[str]:
    """The fields besides ``name`` in which some mmdetection row (``configs/lvis`` or
    ``configs/seesaw_loss``) differs from ``Preset()``'s defaults, in declaration order: the
    columns of :func:`rows_table`."""
    default = Preset()
    rows = [preset for name, preset in PRESETS.items() if name != TOY.name]
    return [
        f.name
        for f in dataclasses.fields(Preset)
        if f.name != "name" and any(getattr(p, f.name) != getattr(default, f.name) for p in rows)
    ]


def rows_table() -> str:
    """One line per preset of ``PRESETS`` (in order) with its values of :func:`row_fields`."""
    fields = row_fields()
    rows = [
        [f"`{name}`", *(value_cell(getattr(preset, f)) for f in fields)]
        for name, preset in PRESETS.items()
    ]
    return _table(["preset", *fields], rows)


def undocumented(
    preset_cls: type = Preset, mmdetection: Mapping[str, Entry] = MMDETECTION
) -> list[str]:
    """The fields of ``preset_cls`` that have no entry in ``mmdetection``, in declaration order."""
    return [f.name for f in dataclasses.fields(preset_cls) if f.name not in mmdetection]


def fields_table(mmdetection: Mapping[str, Entry] = MMDETECTION) -> str:
    """One line per ``Preset`` field: its value in ``Preset()`` and ``TOY``, then its entry.

    Raises ``ValueError`` naming the fields without an entry, or entries for no field.
    """
    missing = undocumented(Preset, mmdetection)
    unknown = sorted(set(mmdetection) - {f.name for f in dataclasses.fields(Preset)})
    problems = [f"no entry for Preset field(s) {missing}"] if missing else []
    problems += [f"entries for no field {unknown}"] if unknown else []
    if problems:
        raise ValueError(f"lvisnb.model.mmdet_config_keys.MMDETECTION: {'; '.join(problems)}")
    default = Preset()
    rows = []
    for f in dataclasses.fields(Preset):
        key, value, note = mmdetection[f.name]
        kit, toy = getattr(default, f.name), getattr(TOY, f.name)
        rows.append([f"`{f.name}`", value_cell(kit), value_cell(toy), key, value, note])
    header = ["field", "kit", "toy", "mmdetection key", "mmdetection value", "note"]
    return _table(header, rows)


def presets_markdown() -> str:
    """The Presets section of a page: everything between its two markers, newlines included."""
    toy_schedule = _TOY_SCHEDULE.format(max_iters=TOY.max_iters, lr_steps_iters=TOY.lr_steps_iters)
    parts = [
        _INTRO,
        rows_table(),
        toy_schedule,
        _ROUNDING,
        _FIELDS_INTRO.format(kit=Preset().name),
        fields_table(),
        _DIFFERENCES,
    ]
    return "\n" + "\n\n".join(part.strip("\n") for part in parts) + "\n"


def split_section(text: str) -> tuple[str, str, str]:
    """``(before START, between the markers, after END)`` of ``text``; ``ValueError`` unless
    each marker occurs once, ``START`` first."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"expected one {START!r} followed by one {END!r}")
    head, rest = text.split(START)
    section, tail = rest.split(END)
    return head, section, tail


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between its markers (:func:`split_section`) set to ``section``."""
    head, _, tail = split_section(text)
    return head + START + section + END + tail


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lvisnb.model.preset_table",
        description="Print the Presets section (docs/presets.md) generated from "
        "lvisnb.model.presets, or "
        "rewrite it in place between its markers.",
    )
    parser.add_argument(
        "--write", metavar="PAGE", type=Path, help="rewrite the section of this file"
    )
    args = parser.parse_args(argv)
    section = presets_markdown()
    if args.write is None:
        sys.stdout.write(section)
        return 0
    text = args.write.read_text(encoding="utf-8")
    try:
        new = replace_section(text, section)
    except ValueError as error:
        parser.error(f"{args.write}: {error}")
    if new == text:
        print(f"{args.write}: Presets section already up to date")
    else:
        write_text_atomic(args.write, new)
        print(f"{args.write}: Presets section rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
