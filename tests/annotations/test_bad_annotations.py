"""Every bad value of an LVIS annotation file is an LVISFormatError from every entry point.

One valid LVIS file (three images with federated label lists, one of them 28 x 28; three
categories; polygon annotations and one compressed RLE) is spoiled one fault at a time, written
to a file and read by each entry point of the kit: ``validate.load_lvis`` (datasets),
``tables.read_tables`` (statistics), ``ground_truth.load_ground_truth`` and ``evaluator.evaluate``
(evaluation), ``scene.load_scene`` (drawing) and ``dataset.LVISDetection`` (training). Each must
raise :class:`lvisnb.annotations.json_file.LVISFormatError` naming the file, ``section[index]`` and
the field; none may crash in pycocotools, hang, or go on with a different number.
"""

import copy
import json

import numpy as np
import pytest
from synthetic import box_mask, rle

from lvisnb.annotations import validate as data
from lvisnb.annotations.json_file import LVISFormatError
from lvisnb.annotations.tables import read_tables
from lvisnb.data.dataset import LVISDetection
from lvisnb.evaluation import evaluator, ground_truth
from lvisnb.viz import scene

SIZES = {1: (48, 64), 2: (40, 50), 3: (28, 28)}  # image id -> (height, width)


def _square(x: float, y: float, side: float) -> list[float]:
    return [x, y, x + side, y, x + side, y + side, x, y + side]


def _valid() -> dict:
    images = [
        {
            "id": image_id,
            "height": h,
            "width": w,
            "coco_url": f"http://x/val2017/{image_id:012d}.jpg",
            "neg_category_ids": [3] if image_id == 1 else [],
            "not_exhaustive_category_ids": [2] if image_id == 2 else [],
        }
        for image_id, (h, w) in SIZES.items()
    ]
    categories = [
        {"id": 1, "name": "apple", "synset": "apple.n.01", "frequency": "f", "image_count": 9},
        {"id": 2, "name": "banana", "synset": "banana.n.02", "frequency": "c", "image_count": 3},
        {"id": 3, "name": "cherry", "synset": "cherry.n.03", "frequency": "r", "image_count": 1},
    ]

    def polygon(ann_id, image_id, category_id, x, y, side):
        return {
            "id": ann_id,
            "image_id": image_id,
            "category_id": category_id,
            "segmentation": [_square(x, y, side)],
            "area": float(side * side),
            "bbox": [x, y, side, side],
        }

    annotations = [
        polygon(1, 1, 1, 10, 10, 20),
        polygon(2, 1, 2, 30, 5, 10),
        polygon(3, 3, 1, 2, 2, 12),
        polygon(4, 2, 2, 5, 5, 8),
        {  # compressed RLE of a 10 x 10 square in the 40 x 50 image 2
            "id": 5,
            "image_id": 2,
            "category_id": 1,
            "segmentation": rle(box_mask(40, 50, 20, 20, 10, 10)),
            "area": 100.0,
            "bbox": [20, 20, 10, 10],
        },
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def _result() -> dict:
    """One legal detection on image 1 (its apple)."""
    mask = box_mask(48, 64, 10, 10, 20, 20)
    return {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9} | {
        "segmentation": rle(mask)
    }


ENTRY_POINTS = {
    "load_lvis": lambda path: data.load_lvis(path),
    "read_tables": lambda path: read_tables(path),
    "load_ground_truth": lambda path: ground_truth.load_ground_truth(path),
    "load_scene": lambda path: scene.load_scene(path, image_root=path.parent),
    "LVISDetection": lambda path: LVISDetection(path, path.parent),
    "evaluate": lambda path: evaluator.evaluate(path, [_result()]),
}


def _set(section: str, index: int, key: str, value):
    def spoil(dataset):
        dataset[section][index][key] = value

    return spoil


def _drop(section: str, index: int, key: str):
    def spoil(dataset):
        del dataset[section][index][key]

    return spoil


def _empty(section: str):
    def spoil(dataset):
        dataset[section] = []

    return spoil


def _segmentation(index: int, value):
    return _set("annotations", index, "segmentation", value)


def _uncut(counts: str) -> str:
    return counts[: len(counts) // 2]


_RLE = rle(box_mask(40, 50, 20, 20, 10, 10))
_OTHER_SIZE = rle(box_mask(30, 50, 20, 20, 10, 10))  # runs of a 30 x 50 image


# fault id -> (spoil the valid dict, section[index] named, field named)
def _file_name(index: int, value: str):
    """Image ``index`` found by ``file_name`` ``value`` alone (no ``coco_url``), as v0.5."""

    def spoil(dataset):
        del dataset["images"][index]["coco_url"]
        dataset["images"][index]["file_name"] = value

    return spoil


FAULTS = {
    # image paths that would read a file outside the image root (issue 24 §3)
    **{
        f"file_name {path}": (_file_name(1, path), "images[1]", "file_name")
        for path in ("../../x.jpg", "../outside/x.jpg", "val2017/../../x.jpg", "/etc/x.jpg")
    },
    "file_name with a Windows drive": (_file_name(2, "C:\\x.jpg"), "images[2]", "file_name"),
    "file_name up with backslashes": (_file_name(2, "..\\x.jpg"), "images[2]", "file_name"),
    "coco_url ending in ..": (
        _set("images", 0, "coco_url", "http://x/val2017/../x.jpg"),
        "images[0]",
        "coco_url",
    ),
    # ids
    "duplicate image id": (_set("images", 1, "id", 1), "images[0]", "id"),
    "duplicate category id": (_set("categories", 2, "id", 2), "categories[1]", "id"),
    "duplicate annotation id": (_set("annotations", 3, "id", 1), "annotations[0]", "id"),
    "annotation id 0": (_set("annotations", 2, "id", 0), "annotations[2]", "id"),
    "image id a string": (_set("images", 2, "id", "3"), "images[2]", "id"),
    "annotation id a float": (_set("annotations", 1, "id", 2.0), "annotations[1]", "id"),
    "category id a boolean": (_set("categories", 0, "id", True), "categories[0]", "id"),
    # references
    "unknown image_id": (_set("annotations", 1, "image_id", 9), "annotations[1]", "image_id"),
    "unknown category_id": (
        _set("annotations", 3, "category_id", 7),
        "annotations[3]",
        "category_id",
    ),
    "image_id a string": (_set("annotations", 0, "image_id", "1"), "annotations[0]", "image_id"),
    "image_id a float": (_set("annotations", 0, "image_id", 1.0), "annotations[0]", "image_id"),
    "image_id a boolean": (
        _set("annotations", 0, "image_id", True),
        "annotations[0]",
        "image_id",
    ),
    "category_id a string": (
        _set("annotations", 2, "category_id", "1"),
        "annotations[2]",
        "category_id",
    ),
    "category_id a float": (
        _set("annotations", 2, "category_id", 1.5),
        "annotations[2]",
        "category_id",
    ),
    # boxes
    "bbox of 3 numbers": (_set("annotations", 1, "bbox", [1, 2, 3]), "annotations[1]", "bbox"),
    "bbox with a string": (
        _set("annotations", 1, "bbox", [1, 2, "3", 4]),
        "annotations[1]",
        "bbox",
    ),
    "bbox negative width": (
        _set("annotations", 1, "bbox", [1, 2, -3, 4]),
        "annotations[1]",
        "bbox",
    ),
    "bbox negative height": (
        _set("annotations", 4, "bbox", [1, 2, 3, -4]),
        "annotations[4]",
        "bbox",
    ),
    "bbox beyond floats": (
        _set("annotations", 2, "bbox", [1, 2, 10**400, 4]),
        "annotations[2]",
        "bbox",
    ),
    "bbox null": (_set("annotations", 2, "bbox", None), "annotations[2]", "bbox"),
    # areas (0 is legal: see test_zero_area_is_legal)
    "area negative": (_set("annotations", 3, "area", -1.0), "annotations[3]", "area"),
    "area a string": (_set("annotations", 3, "area", "64"), "annotations[3]", "area"),
    "area beyond floats": (_set("annotations", 3, "area", 10**400), "annotations[3]", "area"),
    # polygons
    "polygon of 4 numbers": (_segmentation(0, [[1, 2, 3, 4]]), "annotations[0]", "segmentation"),
    "polygon of an odd count": (
        _segmentation(1, [[1, 2, 3, 4, 5, 6, 7]]),
        "annotations[1]",
        "segmentation",
    ),
    "segmentation []": (_segmentation(1, []), "annotations[1]", "segmentation"),
    "segmentation [[]]": (_segmentation(1, [[]]), "annotations[1]", "segmentation"),
    "polygon vertex far outside": (  # segfaults pycocotools on the 28 x 28 image
        _segmentation(2, [[1, 2, 3, 4, 2.08e8, 3.52e8]]),
        "annotations[2]",
        "segmentation",
    ),
    "polygon with a string": (
        _segmentation(3, [[1, 2, 3, "4", 5, 6]]),
        "annotations[3]",
        "segmentation",
    ),
    "polygon with a boolean": (
        _segmentation(3, [[1, 2, 3, True, 5, 6]]),
        "annotations[3]",
        "segmentation",
    ),
    "polygon nested too deep": (
        _segmentation(3, [[[1, 2], [3, 4], [5, 6]]]),
        "annotations[3]",
        "segmentation",
    ),
    "segmentation a string": (_segmentation(0, "abc"), "annotations[0]", "segmentation"),
    "segmentation null": (_segmentation(0, None), "annotations[0]", "segmentation"),
    # RLEs
    "RLE size not the image's": (
        _segmentation(4, {"size": [50, 40], "counts": _RLE["counts"]}),
        "annotations[4]",
        "segmentation",
    ),
    "RLE size missing": (
        _segmentation(4, {"counts": _RLE["counts"]}),
        "annotations[4]",
        "segmentation",
    ),
    "RLE size of floats": (
        _segmentation(4, {"size": [40.0, 50.0], "counts": _RLE["counts"]}),
        "annotations[4]",
        "segmentation",
    ),
    "compressed RLE cut short": (
        _segmentation(4, {"size": [40, 50], "counts": _uncut(_RLE["counts"])}),
        "annotations[4]",
        "segmentation",
    ),
    "compressed RLE garbage": (
        _segmentation(4, {"size": [40, 50], "counts": "~~~{}|"}),
        "annotations[4]",
        "segmentation",
    ),
    "compressed RLE of another size": (
        _segmentation(4, {"size": [40, 50], "counts": _OTHER_SIZE["counts"]}),
        "annotations[4]",
        "segmentation",
    ),
    "uncompressed RLE not covering the image": (
        _segmentation(4, {"size": [40, 50], "counts": [100, 10, 20]}),
        "annotations[4]",
        "segmentation",
    ),
    "uncompressed RLE of the wrong size": (
        _segmentation(4, {"size": [10, 10], "counts": [50, 50]}),
        "annotations[4]",
        "segmentation",
    ),
    "RLE counts a number": (
        _segmentation(4, {"size": [40, 50], "counts": 7}),
        "annotations[4]",
        "segmentation",
    ),
    # images
    "width a string": (_set("images", 1, "width", "50"), "images[1]", "width"),
    "width 0": (_set("images", 1, "width", 0), "images[1]", "width"),
    "height negative": (_set("images", 0, "height", -48), "images[0]", "height"),
    "height a float": (_set("images", 0, "height", 48.0), "images[0]", "height"),
    "neg_category_ids not a list": (
        _set("images", 0, "neg_category_ids", 3),
        "images[0]",
        "neg_category_ids",
    ),
    "neg_category_ids with a string": (
        _set("images", 0, "neg_category_ids", ["3"]),
        "images[0]",
        "neg_category_ids",
    ),
    "not_exhaustive_category_ids with a float": (
        _set("images", 1, "not_exhaustive_category_ids", [2.0]),
        "images[1]",
        "not_exhaustive_category_ids",
    ),
    "not_exhaustive_category_ids null": (
        _set("images", 1, "not_exhaustive_category_ids", None),
        "images[1]",
        "not_exhaustive_category_ids",
    ),
    "coco_url a number": (_set("images", 2, "coco_url", 17), "images[2]", "coco_url"),
    "no file_name nor coco_url": (_drop("images", 2, "coco_url"), "images[2]", "coco_url"),
    # categories
    "frequency not r/c/f": (
        _set("categories", 1, "frequency", "rare"),
        "categories[1]",
        "frequency",
    ),
    "frequency a number": (_set("categories", 1, "frequency", 1), "categories[1]", "frequency"),
    "name not a string": (_set("categories", 2, "name", 3), "categories[2]", "name"),
    "image_count a string": (
        _set("categories", 0, "image_count", "9"),
        "categories[0]",
        "image_count",
    ),
    # missing keys
    "annotation without bbox": (_drop("annotations", 1, "bbox"), "annotations[1]", "bbox"),
    "annotation without segmentation": (
        _drop("annotations", 4, "segmentation"),
        "annotations[4]",
        "segmentation",
    ),
    "image without height": (_drop("images", 2, "height"), "images[2]", "height"),
    "category without frequency": (
        _drop("categories", 0, "frequency"),
        "categories[0]",
        "frequency",
    ),
}

EMPTY = {
    "no images": (_empty("images"), "no images"),
    "no categories": (_empty("categories"), "no categories"),
}

# JSON-level faults (json_file.json_problem): text -> words expected
UNREADABLE = {
    "empty file": (b"", "the file is empty"),
    "truncated": (b'{"images": [{"id": 1', "cut short"),
    "NaN literal": (b'{"images": [{"id": NaN}]}', "NaN at line 1"),
    "byte-order mark": (b'\xef\xbb\xbf{"images": []}', "byte-order mark"),
    "UTF-16": ('{"images": []}'.encode("utf-16"), "UTF-16"),
    "top level a list": (b"[]", "top level must be a JSON object"),
}


def _write(tmp_path, dataset, name="lvis_bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(dataset))
    return path


def _raises_everywhere(path, *expected: str) -> list[str]:
    """The LVISFormatError message of every entry point on ``path`` (each must contain the
    path and every one of ``expected``)."""
    messages = []
    for name, entry_point in ENTRY_POINTS.items():
        with pytest.raises(LVISFormatError) as caught:
            entry_point(path)
        message = str(caught.value)
        assert str(path) in message, (name, message)
        for words in expected:
            assert words in message, (name, words, message)
        messages.append(message)
    return messages


def test_the_valid_file_passes_every_entry_point(tmp_path):
    path = _write(tmp_path, _valid())
    for name, entry_point in ENTRY_POINTS.items():
        assert entry_point(path) is not None, name
    result = ENTRY_POINTS["evaluate"](path)
    assert result.metrics["segm"]["AP"] > 0 and result.metrics["bbox"]["AP"] > 0


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_bad_value_is_named_by_every_entry_point(tmp_path, fault):
    spoil, where, field = FAULTS[fault]
    dataset = _valid()
    spoil(dataset)
    messages = _raises_everywhere(_write(tmp_path, dataset), where, field)
    assert len(set(messages)) == 1, messages  # one check, one message, wherever it is read


@pytest.mark.parametrize("fault", list(EMPTY))
def test_a_missing_section_says_what_is_missing(tmp_path, fault):
    spoil, words = EMPTY[fault]
    dataset = _valid()
    spoil(dataset)
    _raises_everywhere(_write(tmp_path, dataset), words)


def test_no_annotations_is_refused_where_they_are_needed(tmp_path):
    """A file without annotations is legal LVIS (LVISEval scores it, every AP -1), so loading,
    drawing and evaluating accept it; statistics and training need annotations and say so."""
    dataset = _valid()
    dataset["annotations"] = []
    path = _write(tmp_path, dataset)
    for name in ("load_lvis", "load_ground_truth", "load_scene", "LVISDetection", "evaluate"):
        assert ENTRY_POINTS[name](path) is not None, name
    for needs in (read_tables, lambda path: LVISDetection(path, tmp_path, skip_empty=True)):
        with pytest.raises(LVISFormatError, match=rf"{path}: no annotations"):
            needs(path)


def test_a_long_tail_of_one_category_is_named(tmp_path):
    from lvisnb.annotations.statistics import long_tail_report

    dataset = _valid()
    for ann in dataset["annotations"]:
        ann["category_id"] = 1
    path = _write(tmp_path, dataset)
    with pytest.raises(ValueError, match=rf"{path}: 1 category\(ies\) annotated"):
        long_tail_report(read_tables(path))


@pytest.mark.parametrize("fault", list(UNREADABLE))
def test_an_unreadable_file_is_said_in_words_by_every_entry_point(tmp_path, fault):
    text, words = UNREADABLE[fault]
    path = tmp_path / "lvis_bad.json"
    path.write_bytes(text)
    _raises_everywhere(path, words)


def test_a_number_out_of_range_names_its_place(tmp_path):
    """1e999 is valid JSON but no float: every entry point names the record and the field."""
    path = _write(tmp_path, _valid())
    path.write_text(path.read_text().replace('"area": 400.0', '"area": 1e999', 1))
    _raises_everywhere(path, "annotations[0]", "area")
    path.write_text(json.dumps(_valid()).replace("[[10, 10, 30, 10", "[[1e999, 10, 30, 10", 1))
    _raises_everywhere(path, "annotations[0]", "segmentation")


def test_zero_area_and_legal_variants_pass(tmp_path):
    """What LVIS allows stays allowed: area 0 (not evaluated), an uncompressed RLE, polygon
    vertices a little outside the image, several polygon parts, category ids in the label
    lists that are no category of the file (LVISEval only tests membership), v0.5 file names."""
    dataset = _valid()
    dataset["annotations"][0]["area"] = 0
    dataset["annotations"][1]["segmentation"] = [_square(-5, -5, 10), _square(50, 30, 20)]
    mask = box_mask(40, 50, 20, 20, 10, 10).ravel(order="F").astype(np.int64)
    starts = np.flatnonzero(np.diff(np.concatenate([[0], mask, [0]])))
    counts = np.diff(np.concatenate([[0], starts, [mask.size]])).tolist()
    dataset["annotations"][4]["segmentation"] = {"size": [40, 50], "counts": counts}
    dataset["images"][0]["neg_category_ids"] = [3, 999]
    dataset["images"][2] = dataset["images"][2] | {"file_name": "COCO_val2014_3.jpg"}
    del dataset["images"][2]["coco_url"]
    path = _write(tmp_path, dataset)
    for name, entry_point in ENTRY_POINTS.items():
        assert entry_point(path) is not None, name
    assert ground_truth.load_ground_truth(path).ann_evaluated.tolist() == [0, 1, 1, 1, 1]


def test_an_lvis_object_is_checked_once(tmp_path, monkeypatch):
    """load_lvis checks its file; the entry points given its object do not check it again,
    but they do check one that was built without the kit."""
    from lvisnb.annotations.lvis_compat import LVISFromDict

    path = _write(tmp_path, _valid())
    gt = data.load_lvis(path)
    assert data.is_validated(gt)
    calls = []
    checker = data.validate_dataset
    spy = lambda *a: calls.append(a) or checker(*a)  # noqa: E731
    monkeypatch.setattr(data, "validate_dataset", spy)
    monkeypatch.setattr("lvisnb.data.dataset.validate_dataset", spy)
    ground_truth.load_ground_truth(gt)
    scene.load_scene(gt, image_root=tmp_path)
    LVISDetection(gt, tmp_path)
    assert calls == []
    spoiled = _valid()
    spoiled["annotations"][0]["bbox"] = [1, 2, -3, 4]
    for entry_point in (
        ground_truth.load_ground_truth,
        lambda gt: scene.load_scene(gt, image_root=tmp_path),
        lambda gt: LVISDetection(gt, tmp_path),
    ):
        with pytest.raises(LVISFormatError, match=r"annotations\[0\] .*'bbox'"):
            entry_point(LVISFromDict(copy.deepcopy(spoiled)))


def test_real_lvis_v05_and_toy_files_pass(toy_train, toy_val):
    from pathlib import Path

    real = Path(__file__).parents[1] / "fixtures" / "lvis_v0.5_val_100.json"  # see data/README.md
    for path in (toy_train, toy_val, real):
        data.load_lvis(path)
        read_tables(path)
        ground_truth.load_ground_truth(path)
