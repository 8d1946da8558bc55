"""mmdetection's LVIS Mask R-CNN rows as the model tests expect them (not a test module)."""

ARCHS = {  # name tag -> (BACKBONES key, groups, layer1[0].conv2 out channels, pretrained)
    "r50": ("resnet50", 1, 64, "imagenet"),
    "r101": ("resnet101", 1, 64, "imagenet"),
    "x101_32x4d": ("resnext101_32x4d", 32, 128, "open-mmlab://resnext101_32x4d"),
    "x101_64x4d": ("resnext101_64x4d", 64, 256, "open-mmlab://resnext101_64x4d"),
}
# published parameter counts of the ImageNet classifiers (fc included): torchvision / timm
CLASSIFIER_PARAMS = {
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnext101_32x4d": 44_177_704,
    "resnext101_64x4d": 83_455_272,
}
FC_PARAMS = 2048 * 1000 + 1000


def seed_name(arch: str, dataset: str) -> str:
    tag = "1x" if dataset == "v1" else "2x"
    return f"mask_rcnn_{arch}_fpn_sample1e-3_mstrain_{tag}_lvis_{dataset}"


SEED_NAMES = [seed_name(a, d) for d in ("v1", "v0.5") for a in ARCHS]
# mmdetection v2 configs/seesaw_loss/ Mask R-CNN R-50 rows -> (RFS threshold, normed mask)
SEESAW_NAMES = {
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1": (1e-3, False),
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (1e-3, True),
    "mask_rcnn_r50_fpn_random_seesaw_loss_mstrain_2x_lvis_v1": (None, False),
    "mask_rcnn_r50_fpn_random_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (None, True),
}
