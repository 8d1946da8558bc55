"""lvisnb.model.backbone_weights: loading ImageNet-style weights into a Mask R-CNN's ResNet trunk
(local files and state_dicts; downloads are refused, never made) and never unpickling code."""

import re
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from mmdet_rows import SEED_NAMES
from torch import nn

from lvisnb.model import backbone_weights as W
from lvisnb.model.backbone_weights import load_backbone_weights
from lvisnb.model.builder import build_model, build_resnet


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    return build_model("toy", num_classes=5, weights=False)


def test_load_backbone_weights_from_a_local_wrapped_checkpoint(tmp_path, toy_model):
    torch.manual_seed(1)
    source = build_resnet("resnet10", "gn", 16).state_dict()
    assert "fc.weight" in source
    path = tmp_path / "resnet10_gn.pth"
    torch.save({"state_dict": {"backbone.body." + k: v for k, v in source.items()}}, path)

    model = build_model("toy", num_classes=5, weights=False)
    body = model.backbone.body
    assert not torch.equal(body.conv1.weight, source["conv1.weight"])
    loaded = load_backbone_weights(model, path)
    trunk = body.state_dict()
    assert loaded == len(trunk) == len(source) - 2  # everything but fc.weight / fc.bias
    assert all(torch.equal(trunk[k], source[k]) for k in trunk)
    # the same through the str path, the BackboneWithFPN and an in-memory mapping
    assert load_backbone_weights(model.backbone, str(path)) == loaded
    assert load_backbone_weights(body, source) == loaded


def test_load_backbone_weights_into_a_plain_resnet_keeps_its_fc():
    torch.manual_seed(2)
    source = build_resnet("resnet10", "gn", 16).state_dict()
    target = build_resnet("resnet10", "gn", 16)
    fc_before = target.fc.weight.clone()
    assert load_backbone_weights(target, {"module." + k: v for k, v in source.items()}) == (
        len(source) - 2
    )
    assert torch.equal(target.layer4[0].conv1.weight, source["layer4.0.conv1.weight"])
    assert torch.equal(target.fc.weight, fc_before)


def test_load_backbone_weights_tolerates_missing_num_batches_tracked():
    frozen = build_resnet("resnet10", "frozen_bn").state_dict()  # no num_batches_tracked
    target = build_resnet("resnet10", "bn")
    assert load_backbone_weights(target, frozen) == len(frozen) - 2
    assert torch.equal(target.bn1.running_var, frozen["bn1.running_var"])


def test_load_backbone_weights_refuses_mismatched_trunks(tmp_path, toy_model):
    bn_state = build_resnet("resnet10", "bn").state_dict()
    with pytest.raises(ValueError, match=r"resnet10 trunk.*missing.*unexpected.*running_mean"):
        load_backbone_weights(toy_model, bn_state)
    r18 = build_resnet("resnet18", "gn", 16).state_dict()
    with pytest.raises(ValueError, match=r"unexpected.*layer1\.1\."):
        load_backbone_weights(toy_model, r18)
    wide = dict(build_resnet("resnet10", "gn", 16).state_dict())
    wide["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_backbone_weights(toy_model, wide)
    with pytest.raises(TypeError, match="expected a MaskRCNN"):
        load_backbone_weights(nn.Linear(2, 2), wide)


def test_load_backbone_weights_missing_file_names_the_path(tmp_path, toy_model):
    missing = tmp_path / "nowhere" / "resnet10.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_backbone_weights(toy_model, missing)


def test_imagenet_download_failure_explains_the_offline_alternative(monkeypatch):
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # torchvision's WeightsEnum.get_state_dict and model.py's open-mmlab path
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    model = build_model(SEED_NAMES[0], weights=False)  # real CPU r50 with random weights
    before = model.backbone.body.conv1.weight.clone()
    with pytest.raises(RuntimeError) as info:
        load_backbone_weights(model, "imagenet")
    text = str(info.value)
    assert "ResNet50_Weights.IMAGENET1K_V1" in text
    assert "network" in text and "local state_dict path" in text and "offline" in text
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert calls and calls[0].startswith("https://download.pytorch.org/models/resnet50")
    assert torch.equal(model.backbone.body.conv1.weight, before)

    # build_model(weights=True) goes the same way
    with pytest.raises(RuntimeError, match="local state_dict path"):
        build_model(SEED_NAMES[0])

    with pytest.raises(RuntimeError, match="local state_dict path"):
        load_backbone_weights(build_resnet("resnext101_32x4d"), "open-mmlab://resnext101_32x4d")
    assert calls[-1] == W.OPENMMLAB_WEIGHTS["resnext101_32x4d"]


def test_weight_specs_that_cannot_work_are_refused_before_any_download(toy_model):
    with pytest.raises(ValueError, match="no ImageNet weights for resnet10"):
        load_backbone_weights(toy_model, "imagenet")
    with torch.device("meta"):
        x101 = build_resnet("resnext101_32x4d")
    with pytest.raises(ValueError, match="open-mmlab://resnext101_32x4d"):
        load_backbone_weights(x101, "imagenet")
    with pytest.raises(ValueError, match="unknown open-mmlab://resnet7"):
        load_backbone_weights(toy_model, "open-mmlab://resnet7")


class _Payload:
    """Unpickling this runs ``os.makedirs(marker)``: a stand-in for a malicious pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.marker,))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv1.weight": _Payload(marker)}, path)


def test_planted_hub_files_and_weights_files_are_never_unpickled(tmp_path, monkeypatch):
    """Every path that loads weights (torchvision's weights API, open-mmlab URLs, a local
    file) uses ``weights_only=True``: a pickle planted in the torch hub cache does not run."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    marker = tmp_path / "payload-ran"
    resnet18 = build_resnet("resnet18")
    url = torchvision.models.get_weight(W.TORCHVISION_WEIGHTS["resnet18"]).url
    planted = tmp_path / "hub" / "checkpoints" / Path(url).name
    _plant(planted, marker)
    for spec in ("imagenet", W.TORCHVISION_WEIGHTS["resnet18"]):
        with pytest.raises(ValueError, match=re.escape(str(planted)) + ".*not a plain weights"):
            load_backbone_weights(resnet18, spec)
    with torch.device("meta"):
        x101 = build_resnet("resnext101_32x4d")
    mmlab = tmp_path / "hub" / "checkpoints" / Path(W.OPENMMLAB_WEIGHTS["resnext101_32x4d"]).name
    _plant(mmlab, marker)
    with pytest.raises(ValueError, match="not a plain weights"):
        load_backbone_weights(x101, "open-mmlab://resnext101_32x4d")
    local = tmp_path / "weights.pth"
    _plant(local, marker)
    with pytest.raises(ValueError, match=re.escape(str(local))):
        load_backbone_weights(resnet18, local)
    assert not marker.exists()
    torch.load(local, weights_only=False)  # the payload is real: without weights_only it runs
    assert marker.exists()
