"""Published numbers of the kit's mmdetection rows: LVIS Mask R-CNN results (context only).

From mmdetection v2's ``configs/lvis/README.md`` ("Results and models of LVIS v0.5 / v1"):
box AP and mask AP in percent on the LVIS val set of the row's version, training memory in
GB per GPU (v1 rows only; "-" there for v0.5). From ``configs/seesaw_loss/README.md``
("Results and models of Seasaw Loss on LVIS v1 dataset"): box AP and mask AP of the R-50-FPN
Mask R-CNN rows (no memory column there). mmdetection publishes no APr/APc/APf for these rows,
so those columns stay empty until the kit's own full-scale runs fill them.
"""

from __future__ import annotations

import pandas as pd

# preset name -> (box AP %, mask AP %, training memory GB or None)
SEED_RESULTS: dict[str, tuple[float, float, float | None]] = {
    "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1": (22.5, 21.7, 9.1),
    "mask_rcnn_r101_fpn_sample1e-3_mstrain_1x_lvis_v1": (24.6, 23.6, 10.8),
    "mask_rcnn_x101_32x4d_fpn_sample1e-3_mstrain_1x_lvis_v1": (26.7, 25.5, 11.8),
    "mask_rcnn_x101_64x4d_fpn_sample1e-3_mstrain_1x_lvis_v1": (27.2, 25.8, 14.6),
    "mask_rcnn_r50_fpn_sample1e-3_mstrain_2x_lvis_v0.5": (26.1, 25.9, None),
    "mask_rcnn_r101_fpn_sample1e-3_mstrain_2x_lvis_v0.5": (27.1, 27.0, None),
    "mask_rcnn_x101_32x4d_fpn_sample1e-3_mstrain_2x_lvis_v0.5": (26.7, 26.9, None),
    "mask_rcnn_x101_64x4d_fpn_sample1e-3_mstrain_2x_lvis_v0.5": (26.4, 26.0, None),
}
# configs/seesaw_loss rows, LVIS v1 val (sample1e-3: RFS; random: none; normed_mask: cosine
# mask logits), same layout
SEESAW_RESULTS: dict[str, tuple[float, float, float | None]] = {
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1": (27.6, 26.4, None),
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (27.6, 26.8, None),
    "mask_rcnn_r50_fpn_random_seesaw_loss_mstrain_2x_lvis_v1": (25.6, 25.0, None),
    "mask_rcnn_r50_fpn_random_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (25.6, 25.4, None),
}


def seed_table() -> pd.DataFrame:
    """The published rows (:data:`SEED_RESULTS`, then :data:`SEESAW_RESULTS`) as a DataFrame
    indexed by preset name; AP columns in [0, 1].

    Columns: ``box AP``, ``mask AP``, ``box APr``/``APc``/``APf`` and ``mask APr``/... (NaN:
    not published), ``mem (GB)``.
    """
    rows = {}
    for name, (box, mask, memory) in {**SEED_RESULTS, **SEESAW_RESULTS}.items():
        rows[name] = {"box AP": box / 100, "mask AP": mask / 100, "mem (GB)": memory}
        for kind in ("box", "mask"):
            for group in ("APr", "APc", "APf"):
                rows[name][f"{kind} {group}"] = float("nan")
    return pd.DataFrame.from_dict(rows, orient="index")


def result_row(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """One row in :func:`seed_table`'s columns from ``evaluate(...).metrics`` (bbox -> box,
    segm -> mask); metrics LVIS marks undefined (-1) become NaN."""
    row = {}
    for kind, iou_type in (("box", "bbox"), ("mask", "segm")):
        values = metrics.get(iou_type, {})
        for name in ("AP", "APr", "APc", "APf"):
            value = values.get(name, float("nan"))
            row[f"{kind} {name}"] = float("nan") if value is None or value < 0 else value
    return row
