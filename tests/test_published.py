import math

from lvisnb import published
from lvisnb.model import SEED_PRESETS


def test_every_seed_preset_has_its_published_row():
    table = published.seed_table()
    assert list(table.index) == list(SEED_PRESETS)
    assert table.loc["mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1", "mask AP"] == 0.217
    assert table["box AP"].between(0.2, 0.3).all()
    assert table["mem (GB)"].notna().sum() == 4  # published for the v1 rows only


def test_result_row_reads_evaluate_metrics():
    metrics = {
        "bbox": {"AP": 0.3, "APr": -1.0, "APc": 0.2, "APf": 0.4},
        "segm": {"AP": 0.25, "APr": 0.1, "APc": 0.2, "APf": 0.3},
    }
    row = published.result_row(metrics)
    assert row["box AP"] == 0.3 and row["mask APf"] == 0.3
    assert math.isnan(row["box APr"])  # LVIS's -1 (undefined) is not a score of -1
    assert set(row) <= set(published.seed_table().columns)
