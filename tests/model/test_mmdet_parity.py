"""The kit's Mask R-CNN computes what mmdetection 3.3.0's own code computes (issue 23 §2).

For every model zoo row the kit names, mmdetection builds its model from its own config file
with seeded random weights, mmengine saves the checkpoint, the kit loads that file
(:func:`lvisnb.engine.model_source.load_mmdet_model`), and both run the same image: proposals,
boxes, scores, labels and masks agree. Small models (12 classes, 50 detections, images of about
200 px, both orientations, up- and down-scaled) for every row; one full-size case (1203 classes,
300 detections, a 600 x 900 image tested at 800 x 1333). mmdetection's compiled ops are replaced
by torchvision's (tests/model/mmdet_reference.py).

Tolerances: boxes and proposals within 1e-3 px (seen: 6e-5), scores within 1e-5 (seen: 3e-6);
of the masks' pixels at most 1 in 10^5 differs (a probability within float rounding of the 0.5
threshold; seen: 0 or 1 in 2 million).
"""

import pytest

from lvisnb.model.presets import TORCHVISION_OPS
from tests.model.mmdet_reference import MMDET_AVAILABLE, SKIP_REASON, compare_inference

pytestmark = pytest.mark.skipif(not MMDET_AVAILABLE, reason=SKIP_REASON)

ROWS = (
    "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1",
    "mask_rcnn_r101_fpn_sample1e-3_mstrain_1x_lvis_v1",
    "mask_rcnn_x101_32x4d_fpn_sample1e-3_mstrain_1x_lvis_v1",
    "mask_rcnn_x101_64x4d_fpn_sample1e-3_mstrain_1x_lvis_v1",
    "mask_rcnn_r50_fpn_sample1e-3_mstrain_2x_lvis_v0.5",
    "mask_rcnn_r101_fpn_sample1e-3_mstrain_2x_lvis_v0.5",
    "mask_rcnn_x101_32x4d_fpn_sample1e-3_mstrain_2x_lvis_v0.5",
    "mask_rcnn_x101_64x4d_fpn_sample1e-3_mstrain_2x_lvis_v0.5",
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1",
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_normed_mask_mstrain_2x_lvis_v1",
    "mask_rcnn_r50_fpn_random_seesaw_loss_mstrain_2x_lvis_v1",
    "mask_rcnn_r50_fpn_random_seesaw_loss_normed_mask_mstrain_2x_lvis_v1",
)
# (original H, W, test_scale, max_size): landscape and portrait, enlarged and shrunk, a
# longer side that binds (max_size) and one that does not
SMALL_IMAGES = (
    (150, 210, 180, 300),
    (211, 149, 180, 300),
    (170, 233, 200, 260),
    (301, 197, 160, 400),
)


def assert_same(result: dict) -> None:
    assert result["kit_proposals"] == result["proposals"] > 0
    assert result["unmatched_proposals"] == 0
    assert result["proposal_diff"] < 1e-3
    assert result["kit_detections"] == result["detections"] > 0
    assert result["unmatched_detections"] == 0
    assert result["box_diff"] < 1e-3
    assert result["score_diff"] < 1e-5
    assert result["mask_pixels"] <= result["mask_pixel_total"] * 1e-5


@pytest.mark.parametrize("index", range(len(ROWS)), ids=ROWS)
def test_small_model_equals_mmdetection(index, tmp_path):
    height, width, test_scale, max_size = SMALL_IMAGES[index % len(SMALL_IMAGES)]
    result = compare_inference(
        ROWS[index],
        tmp_path,
        num_classes=12,
        original_size=(height, width),
        test_scale=test_scale,
        max_size=max_size,
        max_dets=50,
        seed=index,
    )
    assert_same(result)


@pytest.mark.slow
def test_full_size_r50_equals_mmdetection(tmp_path):
    result = compare_inference(
        ROWS[0],
        tmp_path,
        num_classes=None,  # the row's 1203 classes
        original_size=(600, 900),
        test_scale=800,
        max_size=1333,
        max_dets=300,
    )
    assert result["resized"] == (800, 1200)
    assert_same(result)


def test_torchvisions_ops_are_not_mmdetections(tmp_path):
    """The comparison can fail: the kit with torchvision's values (toy's) differs."""
    result = compare_inference(
        ROWS[0],
        tmp_path,
        num_classes=12,
        original_size=(150, 213),
        test_scale=180,
        max_size=300,
        max_dets=50,
        kit_overrides=TORCHVISION_OPS,
    )
    assert result["resized"] == (180, 255)  # torchvision's floor of 255.6; mmcv's gives 256
    assert result["unmatched_detections"] > 0 or result["mask_pixels"] > 0
