"""lvisnb.model.roi_heads: each classification loss in the toy Mask R-CNN (train and eval), "ce"
equal to torchvision's heads bit for bit, the cosine predictors, the loss buffers in the
state_dict."""

import copy

import pytest
import torch
import torch.distributed as dist
from synthetic import MASK_RCNN_LOSSES, detection_batch
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads

from lvisnb.model.builder import build_model
from lvisnb.model.losses import CLS_LOSSES
from lvisnb.model.normed_predictor import NormedConv2d, NormedLinear
from lvisnb.model.presets import get_preset
from lvisnb.model.roi_heads import ClsLossRoIHeads, box_predictor, mask_predictor

K = 5
COUNTS = [3, 1, 4, 1, 5]  # train images per class, labels 1..5 (the federated loss's input)
LOSS_NAMES = sorted(CLS_LOSSES)
# small images, few proposals and RoIs: a forward + backward is a fraction of a second
SMALL = {
    "rpn_pre_nms_top_n_train": 100,
    "rpn_post_nms_top_n_train": 50,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 50,
    "box_batch_size_per_image": 32,
}


def _toy(loss, **fields):
    torch.manual_seed(0)
    preset = get_preset("toy", cls_loss=loss, **SMALL, **fields)
    return build_model(preset, num_classes=K, weights=False, class_image_counts=COUNTS)


def test_ce_heads_equal_torchvisions_bit_for_bit():
    model = _toy("ce")
    reference = copy.deepcopy(model)
    reference.roi_heads.__class__ = RoIHeads  # torchvision's forward, loss and softmax scores
    images, targets = detection_batch()
    outputs = {}
    for name, net in (("kit", model), ("torchvision", reference)):
        net.train()
        torch.manual_seed(1)  # the same proposals sampled
        losses = net(images, targets)
        sum(losses.values()).backward()
        grads = [p.grad.clone() for p in net.parameters() if p.grad is not None]
        net.eval()
        with torch.no_grad():
            outputs[name] = (losses, grads, net(images))
    losses, grads, dets = outputs["kit"]
    ref_losses, ref_grads, ref_dets = outputs["torchvision"]
    assert list(losses) == list(ref_losses)
    assert all(torch.equal(losses[k], ref_losses[k]) for k in losses)
    assert len(grads) == len(ref_grads) and all(map(torch.equal, grads, ref_grads))
    for out, ref in zip(dets, ref_dets, strict=True):
        assert out.keys() == ref.keys() and len(out["boxes"]) > 0
        assert all(torch.equal(out[k], ref[k]) for k in out)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_each_loss_trains_and_scores_the_toy_model(loss):
    model = _toy(loss)
    heads = model.roi_heads
    assert isinstance(heads, ClsLossRoIHeads) and heads.cls_loss.name == loss
    assert heads.box_predictor.cls_score.out_features == heads.cls_loss.num_outputs
    assert heads.box_predictor.bbox_pred.out_features == (K + 1) * 4
    images, targets = detection_batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == MASK_RCNN_LOSSES
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    losses["loss_classifier"].backward()
    for layer in (heads.box_predictor.cls_score, heads.box_head.fc7):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert heads._sampled is None  # nothing kept between iterations
    model.eval()
    with torch.no_grad():
        detections = model(images)
    for det in detections:
        assert 0 < len(det["scores"]) <= model.preset.box_detections_per_img
        assert ((det["scores"] >= 0) & (det["scores"] <= 1)).all()
        assert ((det["labels"] >= 1) & (det["labels"] <= K)).all()


def test_the_loss_is_a_submodule_whose_buffers_are_in_the_state_dict():
    buffers = {
        loss: sorted(k for k in _toy(loss).state_dict() if ".cls_loss." in k) for loss in LOSS_NAMES
    }
    assert buffers == {
        "ce": [],  # the state_dict of a "ce" model is the one before losses were pluggable
        "eqlv2": [
            "roi_heads.cls_loss.neg_grad",
            "roi_heads.cls_loss.pos_grad",
            "roi_heads.cls_loss.pos_neg",
        ],
        "federated": ["roi_heads.cls_loss.class_weights"],
        "seesaw": ["roi_heads.cls_loss.cum_samples"],
    }
    federated = _toy("federated").roi_heads.cls_loss
    torch.testing.assert_close(federated.class_weights, torch.tensor(COUNTS).float().sqrt())
    seesaw = _toy("seesaw")
    seesaw.train()
    seesaw(*detection_batch())
    counts = seesaw.roi_heads.cls_loss.cum_samples
    assert counts.sum() == 2 * SMALL["box_batch_size_per_image"]  # every sampled RoI, once
    assert counts[1:].sum() > 0 and counts[4] == 0  # label 4 is in no target


def test_seesaw_uses_a_cosine_classifier_and_normed_mask_is_optional():
    heads = _toy("seesaw").roi_heads
    assert isinstance(heads.box_predictor.cls_score, NormedLinear)
    assert heads.box_predictor.cls_score.temperature == 20.0
    assert heads.box_predictor.cls_score.out_features == K + 2
    assert type(heads.mask_predictor.mask_fcn_logits) is nn.Conv2d
    plain = _toy("seesaw", seesaw_cls_temperature=None).roi_heads.box_predictor.cls_score
    assert type(plain) is nn.Linear and plain.out_features == K + 2
    normed = _toy("eqlv2", normed_mask_temperature=10.0).roi_heads
    assert type(normed.box_predictor.cls_score) is nn.Linear  # the temperature is seesaw's
    assert isinstance(normed.mask_predictor.mask_fcn_logits, NormedConv2d)
    assert normed.mask_predictor.mask_fcn_logits.temperature == 10.0


def test_predictor_builders_keep_torchvisions_layout():
    plain = box_predictor(16, K + 1, K + 1)
    assert type(plain.cls_score) is nn.Linear and plain.cls_score.out_features == K + 1
    wide = box_predictor(16, K + 1, K + 2, temperature=20.0)
    assert isinstance(wide.cls_score, NormedLinear) and wide.bbox_pred.out_features == 4 * (K + 1)
    mask = mask_predictor(8, K + 1)
    assert type(mask.mask_fcn_logits) is nn.Conv2d and mask.mask_fcn_logits.out_channels == K + 1


def test_a_classifier_of_the_wrong_width_is_refused():
    heads = _toy("ce").roi_heads
    seesaw = _toy("seesaw").roi_heads.cls_loss
    with pytest.raises(ValueError, match="6 outputs, the seesaw loss reads 7 .5 classes"):
        ClsLossRoIHeads(heads, seesaw)
    heads.box_predictor.cls_score = nn.Linear(heads.box_predictor.cls_score.in_features, K + 2)
    assert ClsLossRoIHeads(heads, seesaw).cls_loss is seesaw


def test_federated_needs_the_train_image_counts():
    with pytest.raises(ValueError, match="federated loss needs class_image_counts"):
        build_model(get_preset("toy", cls_loss="federated"), num_classes=K, weights=False)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_eqlv2_in_the_model_all_reduces_its_statistics_in_backward(tmp_path, monkeypatch):
    """Under a (one-process) group, the backward pass of the whole model runs EQLv2's
    all_reduce once and gives the statistics a run without a group gives."""
    images, targets = detection_batch()
    stats = {}
    calls = []
    real_all_reduce = dist.all_reduce

    def counting(tensor, *args, **kwargs):
        calls.append(tuple(tensor.shape))
        return real_all_reduce(tensor, *args, **kwargs)

    monkeypatch.setattr(dist, "all_reduce", counting)
    for grouped in (False, True):
        model = _toy("eqlv2")
        model.train()
        if grouped:
            store = f"file://{tmp_path / 'store'}"
            dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
        try:
            torch.manual_seed(1)
            sum(model(images, targets).values()).backward()
        finally:
            if grouped:
                dist.destroy_process_group()
        stats[grouped] = {k: v.clone() for k, v in model.roi_heads.cls_loss.state_dict().items()}
    assert calls == [(2, K)]  # once, in the grouped backward: (positive, negative) x K classes
    assert stats[False]["pos_grad"].abs().sum() > 0
    for name, value in stats[False].items():
        torch.testing.assert_close(stats[True][name], value)
