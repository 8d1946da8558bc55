"""mmdetection checkpoints in the kit: read with weights_only, converted, refused with reasons.

The files are written by mmengine's own ``save_checkpoint`` from mmdetection's own models
(tests/model/mmdet_reference.py), small (12 classes) except where the class count is the point.
"""

import argparse

import pytest
import torch

from lvisnb.engine.model_source import load_mmdet_model
from lvisnb.model.mmdet_weights import (
    MMDetCheckpointError,
    infer_preset_name,
    read_mmdet_state_dict,
)
from lvisnb.model.mmdet_zoo import PUBLISHED
from lvisnb.model.presets import get_preset
from tests.model.mmdet_reference import (
    MMDET_AVAILABLE,
    SKIP_REASON,
    build_reference,
    save_reference_checkpoint,
    small_reference_file,
)

R50 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
R101 = "mask_rcnn_r101_fpn_sample1e-3_mstrain_1x_lvis_v1"
SEESAW = "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1"
needs_mmdet = pytest.mark.skipif(not MMDET_AVAILABLE, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def r50_file(tmp_path_factory):
    if not MMDET_AVAILABLE:
        pytest.skip(SKIP_REASON)
    path = small_reference_file(tmp_path_factory.mktemp("mmdet"), R50, 1, "r50_12_classes.pth")
    return path, read_mmdet_state_dict(path)[0]


@needs_mmdet
def test_weights_land_where_the_table_says(r50_file):
    path, reference = r50_file
    kit = load_mmdet_model(path, get_preset(R50, num_classes=12)).state_dict()
    fc_cls = reference["roi_head.bbox_head.fc_cls.weight"]  # (13, 1024), background last
    assert torch.equal(kit["roi_heads.box_predictor.cls_score.weight"][0], fc_cls[12])
    assert torch.equal(kit["roi_heads.box_predictor.cls_score.weight"][1:], fc_cls[:12])
    bbox = kit["roi_heads.box_predictor.bbox_pred.weight"]  # (52, 1024)
    assert torch.equal(bbox[:4], torch.zeros_like(bbox[:4]))
    assert torch.equal(bbox[4:], reference["roi_head.bbox_head.fc_reg.weight"])
    logits = kit["roi_heads.mask_predictor.mask_fcn_logits.weight"]  # (13, 256, 1, 1)
    assert torch.equal(logits[1:], reference["roi_head.mask_head.conv_logits.weight"])
    assert torch.equal(
        kit["backbone.fpn.inner_blocks.3.0.weight"], reference["neck.lateral_convs.3.conv.weight"]
    )
    assert torch.equal(
        kit["backbone.body.layer3.5.bn2.running_var"],
        reference["backbone.layer3.5.bn2.running_var"],
    )


@needs_mmdet
def test_seesaw_classifier_columns(tmp_path):
    model, _ = build_reference(SEESAW, seed=2, num_classes=12)
    path = save_reference_checkpoint(model, tmp_path / "seesaw.pth")
    kit = load_mmdet_model(path, get_preset(SEESAW, num_classes=12)).state_dict()
    mmdet = model.state_dict()["roi_head.bbox_head.fc_cls.weight"]  # classes, object, background
    ours = kit["roi_heads.box_predictor.cls_score.weight"]  # background, classes, object
    assert torch.equal(ours[0], mmdet[13])
    assert torch.equal(ours[1:13], mmdet[:12])
    assert torch.equal(ours[13], mmdet[12])


@needs_mmdet
def test_bare_and_ddp_state_dicts_load_the_same(r50_file, tmp_path):
    path, reference = r50_file
    preset = get_preset(R50, num_classes=12)
    expected = load_mmdet_model(path, preset).state_dict()
    bare = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in reference.items()}, bare)
    loaded = load_mmdet_model(bare, preset).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


@needs_mmdet
def test_another_class_count_is_refused(r50_file):
    path, _ = r50_file
    with pytest.raises(MMDetCheckpointError, match=r"r50_12_classes.pth.*12 classes.*1203"):
        load_mmdet_model(path, R50)


@needs_mmdet
def test_another_backbone_is_refused_naming_the_keys(r50_file):
    path, _ = r50_file
    with pytest.raises(
        MMDetCheckpointError, match=r"missing from the file \(backbone.layer3.6.bn1.bias"
    ):
        load_mmdet_model(path, get_preset(R101, num_classes=12))


@needs_mmdet
def test_softmax_file_into_seesaw_preset_names_the_shape(r50_file):
    path, _ = r50_file
    with pytest.raises(
        MMDetCheckpointError,
        match=r"roi_head.bbox_head.fc_cls.weight: file \(13, 1024\), preset \(14",
    ):
        load_mmdet_model(path, get_preset(SEESAW, num_classes=12))


@pytest.mark.parametrize("text", ["not a checkpoint", "hello", "", '{"state_dict": {}}'])
def test_a_text_file_is_refused(tmp_path, text):
    path = tmp_path / "model.pth"
    path.write_text(text)
    with pytest.raises(MMDetCheckpointError, match="model.pth: not a readable torch checkpoint"):
        read_mmdet_state_dict(path)


def test_objects_weights_only_refuses_are_refused(tmp_path):
    path = tmp_path / "training.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "message_hub": argparse.Namespace()}, path)
    with pytest.raises(MMDetCheckpointError, match="training.pth: holds objects.*publish_model"):
        read_mmdet_state_dict(path)


def test_missing_file_and_no_weights(tmp_path):
    with pytest.raises(MMDetCheckpointError, match="absent.pth: no such checkpoint file"):
        read_mmdet_state_dict(tmp_path / "absent.pth")
    torch.save({"meta": {}, "state_dict": {}}, tmp_path / "empty.pth")
    with pytest.raises(MMDetCheckpointError, match="empty.pth: holds no weights"):
        read_mmdet_state_dict(tmp_path / "empty.pth")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_file_names_give_their_preset(name):
    assert infer_preset_name(PUBLISHED[name].file_name, {}, {}) == name


@needs_mmdet
def test_preset_from_the_weights_when_the_name_does_not_say(r50_file, tmp_path):
    _, reference = r50_file
    full = dict(reference)
    full["roi_head.mask_head.conv_logits.weight"] = torch.zeros(1203, 256, 1, 1)
    assert infer_preset_name(tmp_path / "x.pth", full, {}) == R50
    full["roi_head.bbox_head.fc_cls.weight"] = torch.zeros(1205, 1024)  # Seesaw's C + 2
    with pytest.raises(MMDetCheckpointError, match="--preset.*seesaw_loss_mstrain.*normed_mask"):
        infer_preset_name(tmp_path / "x.pth", full, {})


@needs_mmdet
def test_errors_name_the_files_keys_and_shapes(r50_file, tmp_path):
    """Missing keys, left-over keys and shapes are named as mmdetection's file names them,
    with the file's layout of the shapes (4C box regression, C mask logits)."""
    _, reference = r50_file
    state = dict(reference)
    del state["neck.fpn_convs.2.conv.weight"], state["roi_head.mask_head.convs.1.conv.bias"]
    state["roi_head.bbox_head.fc_reg.weight"] = torch.zeros(40, 1024)
    torch.save({"state_dict": state}, tmp_path / "edited.pth")
    with pytest.raises(MMDetCheckpointError) as caught:
        load_mmdet_model(tmp_path / "edited.pth", get_preset(R50, num_classes=12))
    message = str(caught.value)
    assert "(neck.fpn_convs.2.conv.weight, roi_head.mask_head.convs.1.conv.bias)" in message
    assert "roi_head.bbox_head.fc_reg.weight: file (40, 1024), preset (48, 1024)" in message
    assert "roi_heads." not in message and "backbone.fpn" not in message


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(MMDetCheckpointError, match="a folder, not a checkpoint file"):
        read_mmdet_state_dict(tmp_path)


def test_an_unknown_pickle_protocol_gives_no_warning(tmp_path, recwarn):
    path = tmp_path / "foreign.pth"
    path.write_bytes(b"\x80\x09garbage")
    with pytest.raises(MMDetCheckpointError, match="foreign.pth: not a readable torch checkpoint"):
        read_mmdet_state_dict(path)
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_weights_of_no_mask_rcnn_are_named(tmp_path):
    """A file that holds weights, but not a kit backbone's Mask R-CNN, says what it lacks."""
    state = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)}
    path = tmp_path / "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1_fake.pth"
    with pytest.raises(MMDetCheckpointError) as caught:
        infer_preset_name(path, state, {})
    message = str(caught.value)
    assert "_fake.pth: not an mmdetection Mask R-CNN of a kit backbone" in message
    assert "no roi_head.mask_head.conv_logits.weight" in message
    assert "backbone.layer3 of 0 blocks" in message and "None" not in message.split("(", 1)[0]


@needs_mmdet
def test_the_file_name_chooses_between_seesaw_candidates(r50_file, tmp_path):
    _, reference = r50_file
    state = dict(reference)
    state["roi_head.mask_head.conv_logits.weight"] = torch.zeros(1203, 256, 1, 1)
    state["roi_head.bbox_head.fc_cls.weight"] = torch.zeros(1205, 1024)
    named = tmp_path / f"{SEESAW}_finetuned.pth"
    assert infer_preset_name(named, state, {}) == SEESAW
    normed = SEESAW.replace("seesaw_loss", "seesaw_loss_normed_mask")
    assert infer_preset_name(tmp_path / f"{normed}_x.pth", state, {}) == normed
    for name in (SEESAW.replace("sample1e-3", "random"), normed.replace("sample1e-3", "random")):
        assert infer_preset_name(tmp_path / f"{name}_finetuned.pth", state, {}) == name
