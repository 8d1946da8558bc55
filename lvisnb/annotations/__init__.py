"""Annotation files: reading and validating LVIS v0.5 / v1 JSON once (errors name the file, the
record and the field), image paths inside the image root, columnar tables, the real LVIS
category metadata, masks, toy-LVIS, and the long-tail statistics of notebook 01.

No torch here. Names are imported on first use (:mod:`lvisnb._lazy`).
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    # reading and validating
    "load_json": "json_file",
    "LVISFormatError": "json_file",
    "validate_dataset": "validate",
    "load_lvis": "validate",
    "read_tables": "tables",
    "LVISTables": "tables",
    # images
    "split_files": "images",
    "image_path": "images",
    "read_pixels": "images",
    "ImageReadError": "images",
    # categories and masks
    "FREQUENCY_GROUPS": "categories",
    "FREQUENCY_NAMES": "categories",
    "frequency_of": "categories",
    "lvis_version_of": "categories",
    "segmentation_rle": "masks",
    "decode_masks": "masks",
    # toy-LVIS and a synthetic file of LVIS's size
    "make_toy_lvis": "toy",
    "ensure_toy_lvis": "toy",
    "make_full_scale_lvis": "full_scale",
    # long-tail statistics (notebook 01)
    "long_tail_report": "statistics",
    "LongTailReport": "statistics",
    "category_counts": "statistics",
    "frequency_groups": "statistics",
    "federated_summary": "statistics",
    "lvis_v1_train_counts": "statistics",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
