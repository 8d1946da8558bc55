import math

import pytest

from lvisnb.methods import published
from lvisnb.model.presets import SEED_PRESETS, SEESAW_PRESETS


def test_every_seed_preset_has_its_published_row():
    table = published.seed_table()
    assert list(table.index) == [*SEED_PRESETS, *SEESAW_PRESETS]
    assert table.loc["mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1", "mask AP"] == 0.217
    assert table["box AP"].between(0.2, 0.3).all()
    assert table["mem (GB)"].notna().sum() == 4  # published for the v1 lvis rows only


def test_seesaw_rows_are_mmdetections_seesaw_readme():
    """configs/seesaw_loss/README.md, Mask R-CNN R-50-FPN 2x rows: box AP / mask AP."""
    table = published.seed_table()
    expected = {
        "mask_rcnn_r50_fpn_random_seesaw_loss_mstrain_2x_lvis_v1": (0.256, 0.250),
        "mask_rcnn_r50_fpn_random_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (0.256, 0.254),
        "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1": (0.276, 0.264),
        "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (0.276, 0.268),
    }
    for name, (box, mask) in expected.items():
        assert table.loc[name, ["box AP", "mask AP"]].tolist() == pytest.approx([box, mask])
        assert math.isnan(table.loc[name, "mem (GB)"])


def test_result_row_reads_evaluate_metrics():
    metrics = {
        "bbox": {"AP": 0.3, "APr": -1.0, "APc": 0.2, "APf": 0.4},
        "segm": {"AP": 0.25, "APr": 0.1, "APc": 0.2, "APf": 0.3},
    }
    row = published.result_row(metrics)
    assert row["box AP"] == 0.3 and row["mask APf"] == 0.3
    assert math.isnan(row["box APr"])  # LVIS's -1 (undefined) is not a score of -1
    assert set(row) <= set(published.seed_table().columns)
