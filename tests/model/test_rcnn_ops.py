"""The parts where torchvision and mmdetection differ, each way, against each library's own code."""

import random

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from lvisnb.model.presets import TORCHVISION_OPS, TOY, Preset, get_preset, preset_from_record
from lvisnb.model.rcnn_ops import (
    AlignedMultiScaleRoIAlign,
    PresetAnchorGenerator,
    eval_resize_size,
    paste_masks_grid_sample,
)
from tests.model.mmdet_reference import MMDET_AVAILABLE, SKIP_REASON, install_mmcv_stand_in

needs_mmdet = pytest.mark.skipif(not MMDET_AVAILABLE, reason=SKIP_REASON)
SIZES = ((32,), (64,), (128,), (256,), (512,))
RATIOS = ((0.5, 1.0, 2.0),) * 5


def _features(height, width):
    """P2-P6 shapes of a padded image (P6 = P5 max-pooled with stride 2, as the FPN does)."""
    shapes = [(-(-height // s), -(-width // s)) for s in (4, 8, 16, 32)]
    shapes.append((-(-shapes[-1][0] // 2), -(-shapes[-1][1] // 2)))
    return [torch.zeros(1, 1, h, w) for h, w in shapes]


def test_torchvision_values_keep_torchvision_anchors():
    ours = PresetAnchorGenerator(SIZES, RATIOS, round_base=True, strides=None)
    theirs = AnchorGenerator(SIZES, RATIOS)
    images = ImageList(torch.zeros(1, 3, 800, 1216), [(800, 1199)])
    features = _features(800, 1216)
    assert torch.equal(ours(images, features)[0], theirs(images, features)[0])


@needs_mmdet
@pytest.mark.parametrize("size", [(800, 1216), (224, 352), (608, 800)])
def test_mmdetection_values_give_mmdetections_anchors(size):
    install_mmcv_stand_in()
    from mmdet.models.task_modules.prior_generators import AnchorGenerator as MMDetAnchors

    reference = MMDetAnchors(strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8])
    ours = PresetAnchorGenerator(SIZES, RATIOS, round_base=False, strides=(4, 8, 16, 32, 64))
    features = _features(*size)
    expected = torch.cat(reference.grid_priors([f.shape[-2:] for f in features], device="cpu"))
    got = ours(ImageList(torch.zeros(1, 3, *size), [size]), features)[0]
    assert torch.equal(got, expected)
    # torchvision's own generator differs there (rounded base anchors; P6 stride 61 at 800 px)
    assert not torch.equal(
        AnchorGenerator(SIZES, RATIOS)(ImageList(torch.zeros(1, 3, *size), [size]), features)[0],
        expected,
    )


def test_unaligned_roi_align_is_torchvisions():
    generator = torch.Generator().manual_seed(0)
    features = {str(i): torch.rand(2, 8, 64 >> i, 96 >> i, generator=generator) for i in range(4)}
    boxes = []
    for _ in range(2):
        xy = torch.rand(30, 2, generator=generator) * 300
        wh = torch.rand(30, 2, generator=generator) * 200 + 1
        boxes.append(torch.cat([xy, xy + wh], 1))
    ours = AlignedMultiScaleRoIAlign(["0", "1", "2", "3"], 7, sampling_ratio=2, aligned=False)
    theirs = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, sampling_ratio=2)
    shapes = [(256, 384), (250, 380)]
    assert torch.equal(ours(features, boxes, shapes), theirs(features, boxes, shapes))
    aligned = AlignedMultiScaleRoIAlign(["0", "1", "2", "3"], 7, sampling_ratio=0, aligned=True)
    assert not torch.allclose(aligned(features, boxes, shapes), theirs(features, boxes, shapes))


def test_floor_rounding_is_torchvisions_resize():
    rng = random.Random(0)
    transform = GeneralizedRCNNTransform(800, 1333, [0.0] * 3, [1.0] * 3).eval()
    for _ in range(40):
        height, width = rng.randint(20, 1500), rng.randint(20, 1500)
        image = torch.zeros(3, height, width)
        resized, _ = transform.resize(image)
        assert eval_resize_size(height, width, 800, 1333, "floor") == tuple(resized.shape[-2:])


@needs_mmdet
def test_round_rounding_is_mmcvs_rescale():
    from mmcv.image.geometric import rescale_size

    rng = random.Random(1)
    for _ in range(500):
        height, width = rng.randint(1, 3000), rng.randint(1, 3000)
        scale, max_size = rng.choice([(800, 1333), (288, 352), (640, 1333)])
        new_width, new_height = rescale_size((width, height), (max_size, scale))
        assert eval_resize_size(height, width, scale, max_size, "round") == (new_height, new_width)


@needs_mmdet
def test_grid_sample_paste_is_mmdetections():
    install_mmcv_stand_in()
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    generator = torch.Generator().manual_seed(3)
    masks = torch.rand(25, 1, 28, 28, generator=generator)
    xy = torch.rand(25, 2, generator=generator) * 150 - 20  # some partly outside the image
    boxes = torch.cat([xy, xy + torch.rand(25, 2, generator=generator) * 120 + 0.3], 1)
    boxes[0] = torch.tensor([10.0, 10.0, 10.0, 40.0])  # zero width
    ours = paste_masks_grid_sample(masks, boxes, (140, 170))[:, 0]
    # mmdetection's CPU path: one mask at a time, sampled over the box and one pixel around
    for index in range(len(masks)):
        part, (rows, cols) = _do_paste_mask(
            masks[index : index + 1], boxes[index : index + 1], 140, 170
        )
        assert torch.allclose(ours[index, rows, cols], part[0], atol=1e-6)
        outside = ours[index].clone()
        outside[rows, cols] = 0
        assert not outside.any()
    # its GPU path samples the whole image: the same binary masks, but for the empty box
    whole, _ = _do_paste_mask(masks[1:], boxes[1:], 140, 170, skip_empty=False)
    assert torch.equal(ours[1:] >= 0.5, whole >= 0.5)


def test_toy_keeps_torchvision_and_rows_take_mmdetection():
    assert all(getattr(TOY, k) == v for k, v in TORCHVISION_OPS.items())
    row = get_preset("mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1")
    assert all(getattr(row, k) == getattr(Preset(), k) for k in TORCHVISION_OPS)
    assert all(getattr(row, k) != v for k, v in TORCHVISION_OPS.items())


def test_a_record_saved_before_the_fields_runs_torchvisions_ops():
    record = {
        k: v
        for k, v in vars(get_preset("mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1")).items()
        if k not in TORCHVISION_OPS
    }
    old = preset_from_record({**record, "no_longer_a_field": 1})
    assert all(getattr(old, k) == v for k, v in TORCHVISION_OPS.items())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("anchor_strides", (4, 8, 16, 32), "anchor_strides needs 5 values"),
        ("anchor_strides", (4, 8, 0, 32, 64), "anchor_strides must be finite and in"),
        ("roi_align_sampling_ratio", -1, "roi_align_sampling_ratio must be"),
        ("roi_align_sampling_ratio", 1.5, "roi_align_sampling_ratio must be an int"),
        ("roi_align_aligned", "yes", "roi_align_aligned must be true or false"),
        ("test_resize_rounding", "ceil", "test_resize_rounding 'ceil' is not one of"),
        ("mask_paste", "cv2", "mask_paste 'cv2' is not one of"),
        ("box_min_size", -0.5, "box_min_size must be"),
    ],
)
def test_bad_values_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        get_preset("toy", **{field: value})


@needs_mmdet
@pytest.mark.parametrize(("high", "low", "min_pos"), [(0.7, 0.3, 0.3), (0.5, 0.5, 0.5)])
def test_max_iou_matcher_is_mmdetections_assigner(high, low, min_pos):
    """500 seeded IoU matrices, quantised so that ties are common, against mmdetection's
    ``MaxIoUAssigner.assign_wrt_overlaps`` (gt index k+1 -> k, 0 -> -1, -1 -> -2)."""
    install_mmcv_stand_in()
    from mmdet.models.task_modules.assigners import MaxIoUAssigner

    from lvisnb.model.train_targets import MaxIoUMatcher

    reference = MaxIoUAssigner(high, low, min_pos_iou=min_pos, match_low_quality=True)
    ours = MaxIoUMatcher(high, low, min_pos)
    generator = torch.Generator().manual_seed(0)
    for _ in range(500):
        gts = int(torch.randint(1, 6, (1,), generator=generator))
        anchors = int(torch.randint(1, 30, (1,), generator=generator))
        iou = (torch.rand(gts, anchors, generator=generator) * 10).floor() / 10
        expected = reference.assign_wrt_overlaps(iou, torch.zeros(gts, dtype=torch.long)).gt_inds
        expected = torch.where(expected > 0, expected - 1, torch.where(expected == 0, -1, -2))
        assert torch.equal(ours(iou), expected), iou
