"""Decoupled retraining, step 1: RoI features of a trained model, and their cache."""

from pathlib import Path

import torch
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import box_iou

from lvisnb.methods import decoupled_features


def test_train_rois_have_box_head_features_and_sampled_labels(model, train_set, train_rois):
    net, mapping = model
    per_image = torch.bincount(train_rois.image_index, minlength=4)
    assert train_rois.features.shape == (int(per_image.sum()), net.preset.box_head_dim)
    assert train_rois.features.dtype == torch.float16
    assert train_rois.image_ids.tolist() == train_set.image_ids
    assert (per_image > 0).all() and (per_image <= net.preset.box_batch_size_per_image).all()
    assert train_rois.labels.min() >= 0 and train_rois.labels.max() <= mapping.num_classes
    # at most a quarter foreground (positive_fraction 0.25), and every image has some
    foreground = torch.bincount(train_rois.image_index[train_rois.labels > 0], minlength=4)
    assert (foreground >= 1).all()
    assert (foreground <= net.preset.box_batch_size_per_image // 4).all()
    assert train_rois.category_sets() == [
        set(mapping.to_labels(list(s)).tolist()) for s in train_set.category_sets()
    ]


def test_train_labels_are_the_ground_truth_matched_at_iou_one_half(train_set, train_rois):
    """Each RoI's label is that of the ground-truth box it overlaps most if IoU >= 0.5, else 0
    (torchvision's proposal matcher, no low-quality matches)."""
    offsets = train_rois.roi_offsets()
    for i in range(train_rois.num_images):
        target = train_set.target(i)
        boxes = resize_boxes(
            target["boxes"].as_subclass(torch.Tensor),
            train_rois.original_sizes[i].tolist(),
            train_rois.image_sizes[i].tolist(),
        )
        rois = train_rois.boxes[offsets[i] : offsets[i + 1]]
        best, index = box_iou(rois, boxes).max(dim=1)
        expected = torch.where(best >= 0.5, target["labels"][index], 0)
        assert torch.equal(train_rois.labels[offsets[i] : offsets[i + 1]], expected)
        # the ground-truth boxes are proposals too: an exact match is always a candidate
        assert (best >= 0.999).any()


def test_val_rois_keep_every_proposal_with_its_box_regression(model, val_rois):
    net, mapping = model
    rows = len(val_rois.features)
    assert val_rois.labels is None and val_rois.features.dtype == torch.float32
    assert val_rois.boxes.shape == (rows, 4)
    assert val_rois.deltas.shape == (rows, (mapping.num_classes + 1) * 4)
    per_image = torch.bincount(val_rois.image_index, minlength=val_rois.num_images)
    assert (per_image <= net.preset.rpn_post_nms_top_n_test).all()
    # resized as the model tests: shorter side test_scale, unless the longer would pass max_size
    shorter, longer = val_rois.image_sizes.min(dim=1).values, val_rois.image_sizes.max(dim=1).values
    scaled = (shorter - net.preset.test_scale).abs() <= 1  # torchvision floors the size
    assert (scaled | ((longer - net.preset.max_size).abs() <= 1)).all()
    assert val_rois.meta["detections_per_img"] == net.preset.box_detections_per_img


def test_the_cache_is_reused_for_the_same_checkpoint_only(model, train_set, checkpoint, tmp_path):
    path = tmp_path / "rois.pt"
    first, reused = decoupled_features.cached_roi_features(
        path, model[0], train_set, checkpoint, train=True, progress=False
    )
    assert not reused and path.is_file()
    again, reused = decoupled_features.cached_roi_features(
        path, model[0], train_set, checkpoint, train=True, progress=False
    )
    assert reused and torch.equal(again.features, first.features)
    payload = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert payload["meta"]["checkpoint_digest"] == decoupled_features.file_digest(checkpoint)
    other = tmp_path / "other.pt"  # other bytes: another model, the cache is rebuilt
    other.write_bytes(Path(checkpoint).read_bytes() + b"\0")
    _, reused = decoupled_features.cached_roi_features(
        path, model[0], train_set, other, train=True, progress=False
    )
    assert not reused
    assert not list(tmp_path.glob(".*tmp-*")), "no temporary file left behind"
