"""The C column-wise reader of results files (``lvisnb.evaluation.result_columns``) against the
general reader (``result_records.read_results`` + ``result_validation.validate_detections``): the
same values on every file it takes, ``None`` (so the general path decides) on every file it must
not take."""

import json
import math
import os
import shutil
import struct
import sysconfig
import warnings

import msgspec
import numpy as np
import pytest
from lvis_cases import make_case
from test_masks import _rle_strings

from lvisnb.annotations import masks
from lvisnb.annotations.json_file import LVISFormatError
from lvisnb.evaluation import result_columns, result_records, result_validation
from lvisnb.evaluation import results as detections
from lvisnb.evaluation.evaluator import evaluate, load_ground_truth

needs_extension = pytest.mark.skipif(
    not result_columns.AVAILABLE,
    reason="lvisnb.evaluation._results_json was not built (no C compiler at install time)",
)


def test_extension_is_built_where_a_compiler_exists():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the general reader is used")
    assert result_columns.AVAILABLE, (
        "lvisnb.evaluation._results_json is missing although a C compiler exists: "
        "reinstall with `pip install -e .` and read the build log"
    )


def _general(path, truth, boxes=True, masks=True) -> detections.Detections:
    records, source = result_records.read_results(path, boxes=boxes, masks=masks)
    return result_validation.validate_detections(
        records, truth.image_ids, truth.image_sizes, truth.category_ids, boxes, masks, source
    )


def _columns(path, truth, boxes=True, masks=True) -> detections.Detections | None:
    columns = result_columns.read_columns(path, boxes, masks)
    if columns is None:
        return None
    return result_columns.to_detections(
        columns, truth.image_ids, truth.image_sizes, truth.category_ids, boxes, masks
    )


def _assert_same(a: detections.Detections, b: detections.Detections) -> None:
    for name in ("image_id", "category_id", "score", "image_row", "category_col"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if a.bbox is None or b.bbox is None:
        assert a.bbox is None and b.bbox is None
    else:  # bit for bit, -0.0 included
        assert a.bbox.tobytes() == b.bbox.tobytes()
    assert a.score.tobytes() == b.score.tobytes()
    assert (a.segmentation is None) == (b.segmentation is None)
    if a.segmentation is not None:
        everything = np.arange(len(a))
        assert detections.rle_dicts(a, everything) == detections.rle_dicts(b, everything)
        assert _areas_or_error(a, everything) == _areas_or_error(b, everything)
    assert a.source == b.source


def _areas_or_error(det: detections.Detections, indices: np.ndarray) -> list | str:
    try:
        return result_validation.mask_areas(det, indices).tolist()
    except ValueError as error:
        return str(error)


def _styled(records: list[dict], rng) -> bytes:
    """``records`` written as one of the ways detectors and JSON libraries write them, with
    keys reordered, unknown keys and other spellings of the same numbers."""
    out = []
    for record in records:
        items = list(record.items())
        if rng.random() < 0.3:
            items.append(("extra", {"a": [1, -2.5e-3, 'x\u00e9\\"/', None, True, False, []]}))
        if rng.random() < 0.5:
            rng.shuffle(items)
        out.append(dict(items))
    style = int(rng.integers(4))
    if style == 0:
        return json.dumps(out).encode()  # ", " and ": " (json.dump, detectron2, mmdetection)
    if style == 1:
        return json.dumps(out, indent=int(rng.integers(0, 3))).encode()
    if style == 2:
        return msgspec.json.encode(out)
    return ("\r\n\t " + json.dumps(out, separators=(" ,\n", " :\t")) + " \n").encode()


def _respelled(records: list[dict], rng) -> list[dict]:
    """Scores and box values as integers, with 17 digits or in exponent notation."""
    out = []
    for record in records:
        record = dict(record)
        kind = int(rng.integers(4))
        if kind == 0:
            record["score"] = int(rng.integers(0, 2))
        elif kind == 1:
            record["score"] = float(rng.random())  # 17 significant digits
        if "bbox" in record and rng.random() < 0.3:
            record["bbox"] = [float(v) + float(rng.random()) for v in record["bbox"]]
        out.append(record)
    return out


@needs_extension
@pytest.mark.parametrize("seed", range(30))
def test_legal_files_give_what_the_general_reader_gives(seed, tmp_path):
    gt, results = make_case(seed)
    rng = np.random.default_rng(seed)
    truth = load_ground_truth(gt)
    path = tmp_path / "results.json"
    path.write_bytes(_styled(_respelled(results, rng), rng))
    for boxes, with_masks in ((True, True), (True, False), (False, True)):
        fast = _columns(path, truth, boxes, with_masks)
        assert fast is not None, (boxes, with_masks)
        _assert_same(fast, _general(path, truth, boxes, with_masks))


@needs_extension
def test_mask_only_results_give_boxes_from_their_masks(tmp_path):
    gt, results = make_case(3)
    truth = load_ground_truth(gt)
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{k: v for k, v in r.items() if k != "bbox"} for r in results]))
    fast = _columns(path, truth)
    assert fast is not None and fast.bbox is None
    _assert_same(fast, _general(path, truth))
    assert result_columns.read_columns(path, True, False).bbox is None
    assert _columns(path, truth, True, False) is None  # masks not read: the general path


@needs_extension
def test_numbers_are_parsed_to_the_nearest_double(tmp_path):
    rng = np.random.default_rng(0)
    values = [float(v) for v in rng.standard_normal(400) * 10.0 ** rng.integers(-30, 30, 400)]
    values += [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1e22, 1e23]
    texts = [repr(v) for v in values]
    texts += [f"{v:.{int(rng.integers(1, 25))}e}" for v in values]
    texts += [f"{v:.{int(rng.integers(1, 20))}f}" for v in values[:100]]
    texts += [
        "0",
        "-0",
        "-0.0",
        "123456789012345678901234567890",
        "9007199254740993",
        "1E+2",
        "1e-400",
        "0.000000000000000000000000000000001",
        "4.9e-324",
        "2.5e-324",
    ]
    rows = ", ".join(
        f'{{"image_id": 1, "category_id": 1, "score": {t}, "bbox": [{t}, 0, {t}, 1]}}'
        for t in texts
    )
    path = tmp_path / "numbers.json"
    path.write_text(f"[{rows}]")
    columns = result_columns.read_columns(path, True, False)
    # the general reader's values (msgspec's: "-0" is the integer 0, so +0.0)
    expected = np.array([msgspec.json.decode(t.encode(), type=float) for t in texts])
    assert expected.tobytes() != np.array([float(t) for t in texts]).tobytes()  # "-0"
    assert columns.score.tobytes() == expected.tobytes()
    assert columns.bbox[:, 0].tobytes() == expected.tobytes()
    assert columns.bbox[:, 2].tobytes() == expected.tobytes()


@needs_extension
def test_ids_at_the_ends_of_int64(tmp_path):
    path = tmp_path / "ids.json"
    for image_id, taken in ((2**63 - 1, True), (-(2**63), True), (2**63, False)):
        path.write_text(json.dumps([{"image_id": image_id, "category_id": 1, "score": 1}]))
        columns = result_columns.read_columns(path, False, False)
        assert (columns is not None) == taken
        if taken:
            assert columns.image_id.tolist() == [image_id]


GOOD = '{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4], "segmentation": {"size": [4, 5], "counts": "abc"}}'  # noqa: E501
NOT_TAKEN = {  # name: file text (each legal JSON or not, each not a simple results file)
    "bom": "\ufeff[" + GOOD + "]",
    "non-ASCII in counts": "[" + GOOD.replace('"abc"', '"ab\u00e9"') + "]",
    "unicode escape in counts": "[" + GOOD.replace('"abc"', '"ab\\u0041"') + "]",
    "newline escape in counts": "[" + GOOD.replace('"abc"', '"ab\\n"') + "]",
    "polygon": "["
    + GOOD.replace('{"size": [4, 5], "counts": "abc"}', "[[1, 2, 3, 4, 5, 6]]")
    + "]",
    "uncompressed RLE": "[" + GOOD.replace('"abc"', "[1, 19]") + "]",
    "size of three": "[" + GOOD.replace("[4, 5]", "[4, 5, 6]") + "]",
    "float size": "[" + GOOD.replace("[4, 5]", "[4.0, 5]") + "]",
    "no counts": "[" + GOOD.replace(', "counts": "abc"', "") + "]",
    "float id": "[" + GOOD.replace('"image_id": 1', '"image_id": 1.0') + "]",
    "exponent id": "[" + GOOD.replace('"image_id": 1', '"image_id": 1e0') + "]",
    "string id": "[" + GOOD.replace('"image_id": 1', '"image_id": "1"') + "]",
    "bool score": "[" + GOOD.replace("0.5", "true") + "]",
    "string score": "[" + GOOD.replace("0.5", '"0.5"') + "]",
    "null score": "[" + GOOD.replace("0.5", "null") + "]",
    "NaN score": "[" + GOOD.replace("0.5", "NaN") + "]",
    "Infinity score": "[" + GOOD.replace("0.5", "Infinity") + "]",
    "overflowing score": "[" + GOOD.replace("0.5", "1e400") + "]",
    "plus sign": "[" + GOOD.replace("0.5", "+0.5") + "]",
    "leading zero": "[" + GOOD.replace("0.5", "00.5") + "]",
    "bare dot": "[" + GOOD.replace("0.5", ".5") + "]",
    "trailing dot": "[" + GOOD.replace("0.5", "5.") + "]",
    "no score": "[" + GOOD.replace('"score": 0.5, ', "") + "]",
    "three numbers": "[" + GOOD.replace("[1, 2, 3, 4]", "[1, 2, 3]") + "]",
    "five numbers": "[" + GOOD.replace("[1, 2, 3, 4]", "[1, 2, 3, 4, 5]") + "]",
    "null bbox": "[" + GOOD.replace("[1, 2, 3, 4]", "null") + "]",
    "duplicate key": "[" + GOOD.replace('"score": 0.5', '"score": 0.5, "score": 0.7') + "]",
    "escaped key": "[" + GOOD.replace('"score"', '"sc\\u006fre"') + "]",
    "bbox in one record only": "[" + GOOD + ", " + GOOD.replace('"bbox": [1, 2, 3, 4], ', "") + "]",
    "not an object": "[" + GOOD + ", 1]",
    "empty object": "[" + GOOD + ", {}]",
    "nested list": "[[" + GOOD + "]]",
    "object at the top": GOOD,
    "no records": "[]",
    "empty": "",
    "trailing comma": "[" + GOOD + ",]",
    "two documents": "[" + GOOD + "] []",
    "truncated": "[" + GOOD,
    "comment": "[/* x */" + GOOD + "]",
    "control character in a string": "[" + GOOD.replace('"abc"', '"a\tb"') + "]",
    "too deep": "["
    + GOOD.replace('"score": 0.5', '"score": 0.5, "deep": ' + "[" * 100 + "]" * 100)
    + "]",
}


@needs_extension
@pytest.mark.parametrize("name", sorted(NOT_TAKEN))
def test_files_it_must_not_take_go_to_the_general_reader(name, tmp_path):
    path = tmp_path / "results.json"
    path.write_bytes(NOT_TAKEN[name].encode())
    assert result_columns.read_columns(path, True, True) is None


@needs_extension
def test_fields_not_asked_for_are_only_checked(tmp_path):
    path = tmp_path / "results.json"
    polygon = GOOD.replace('{"size": [4, 5], "counts": "abc"}', "[[1, 2, 3, 4, 5, 6]]")
    path.write_text(f"[{polygon}]")
    assert result_columns.read_columns(path, True, False) is not None
    path.write_text(f"[{polygon.replace('6]]', '6]')}]")  # invalid JSON in a skipped field
    assert result_columns.read_columns(path, True, False) is None


@needs_extension
def test_checks_against_the_ground_truth_send_the_file_to_the_general_reader(tmp_path):
    gt, results = make_case(5)
    truth = load_ground_truth(gt)
    path = tmp_path / "results.json"
    for change, expected in (
        ({"image_id": 10**6}, "is not an image of the ground truth"),
        ({"category_id": 10**6}, "is not a category of the ground truth"),
        ({"bbox": [1.0, 2.0, -3.0, 4.0]}, "negative width or height"),
        ({"segmentation": {"size": [1, 1], "counts": "01"}}, "but the image is"),
    ):
        path.write_text(json.dumps([*results[:3], results[3] | change]))
        assert result_columns.read_columns(path, True, True) is not None
        assert _columns(path, truth) is None
        with pytest.raises(ValueError, match=r"results\[3\] .*" + expected):
            evaluate(gt, path, fixed=False)


@needs_extension
@pytest.mark.parametrize("seed", range(4))
def test_evaluation_from_a_file_equals_from_the_list(seed, tmp_path):
    gt, results = make_case(seed)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # more than 300 detections on an image
        from_file = evaluate(gt, path, fixed=False)
        from_list = evaluate(gt, results, fixed=False)
    for iou_type in ("bbox", "segm"):
        for name, value in from_list.metrics[iou_type].items():
            other = from_file.metrics[iou_type][name]
            assert struct.pack("d", value) == struct.pack("d", other) or (
                math.isnan(value) and math.isnan(other)
            ), (iou_type, name)


@needs_extension
@pytest.mark.parametrize("seed", range(3))
def test_rle_areas_from_the_bytes_equal_the_numpy_and_hotcoco_ones(seed):
    counts = _rle_strings(np.random.default_rng(seed), 3000)
    rng = np.random.default_rng(seed + 100)
    total, _ = masks.rle_totals(counts)
    # each string as a 1 x total image (so that most tile it), some as another size
    width = np.maximum(total, 1) + np.where(rng.random(len(counts)) < 0.2, 1, 0)
    sizes = np.stack([np.ones(len(counts), dtype=np.int64), width], axis=1)
    ends = np.cumsum([len(c) for c in counts])
    rles = detections.RLEColumns(sizes, ends, b"".join(counts))
    indices = rng.permutation(len(counts))[: len(counts) - 7]
    expected_area, expected_total, expected_ok = masks.rle_areas(
        sizes[indices], [counts[i] for i in indices]
    )
    area, total, ok = rles.rle_areas(indices)
    assert ok.tolist() == expected_ok.tolist()
    assert 0.2 < ok.mean() < 0.9  # both kinds are exercised
    assert total[ok].tolist() == expected_total[ok].tolist()
    assert area.tolist() == expected_area.tolist()


@needs_extension
def test_rle_columns_give_strings_and_dicts_and_refuse_bad_indices():
    sizes = np.array([[1, 2], [3, 4], [5, 6]])
    rles = detections.RLEColumns(sizes, np.array([2, 2, 5]), b"02abc")
    assert rles.counts(np.array([2, 0, 1])) == ["abc", "02", ""]
    assert rles.dicts(np.array([1, 2])) == [
        {"size": [3, 4], "counts": ""},
        {"size": [5, 6], "counts": "abc"},
    ]
    assert rles[2] == detections.RLE((5, 6), "abc")
    for bad in ([3], [-1]):
        with pytest.raises(IndexError):
            rles.counts(np.array(bad))
        with pytest.raises(IndexError):
            rles.rle_areas(np.array(bad))
    with pytest.raises(UnicodeDecodeError):
        detections.RLEColumns(sizes[:1], np.array([2]), b"0\xff").counts(np.array([0]))


def _mutated(data: bytes, rng) -> bytes:
    """``data`` with a few bytes changed, dropped, repeated or inserted (JSON punctuation,
    digits, letters, escapes, non-ASCII), or cut short."""
    data = bytearray(data)
    pieces = [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b'"',
        b"\\",
        b"-",
        b".",
        b"e",
        b"0",
        b"7",
        b" ",
        b"\n",
        b"null",
        b"true",
        b"\\u00e9",
        b"\xc3\xa9",
        b"\xff",
        b"1e999",
    ]
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.integers(0, len(data) + 1))
        kind = int(rng.integers(0, 5))
        if kind == 0 and at < len(data):
            data[at : at + 1] = pieces[int(rng.integers(len(pieces)))]
        elif kind == 1:
            data[at:at] = pieces[int(rng.integers(len(pieces)))]
        elif kind == 2:
            del data[at : at + int(rng.integers(1, 8))]
        elif kind == 3:
            data[at:at] = data[at : at + int(rng.integers(1, 30))]
        else:
            data = data[:at]
    return bytes(data)


@needs_extension
def test_mutated_files_never_crash_and_never_disagree_with_the_general_reader(tmp_path):
    gt, results = make_case(11)
    truth = load_ground_truth(gt)
    rng = np.random.default_rng(0)
    original = json.dumps(results[:6]).encode()
    path = tmp_path / "results.json"
    taken = 0
    for _ in range(1500):
        path.write_bytes(_mutated(original, rng))
        fast = _columns(path, truth)  # must not crash, hang or raise
        try:
            general = _general(path, truth)
        except ValueError:
            general = None
        if fast is not None:
            taken += 1
            assert general is not None, path.read_bytes()
            _assert_same(fast, general)
    assert taken > 20  # mutations the reader takes (digits, white space) are exercised


@needs_extension
def test_a_subset_keeps_its_strings_and_empties_the_others():
    sizes = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])
    rles = detections.RLEColumns(sizes, np.array([2, 2, 5, 9]), b"02abcWXYZ")
    kept = rles.subset(np.array([0, 2]))
    assert kept.counts(np.arange(4)) == ["02", "", "abc", ""]
    assert bytes(kept.data) == b"02abc"
    assert kept.dicts(np.array([2])) == [{"size": [5, 6], "counts": "abc"}]
    for bad in ([2, 0], [0, 0], [4]):
        with pytest.raises(IndexError):
            rles.subset(np.array(bad))


@needs_extension
def test_integer_minus_zero_reads_as_the_general_reader_reads_it(tmp_path):
    gt, results = make_case(2)
    truth = load_ground_truth(gt)
    record = {k: v for k, v in results[0].items() if k != "segmentation"}
    path = tmp_path / "results.json"
    text = json.dumps([record]).replace(f'"score": {record["score"]}', '"score": -0')
    path.write_text(text.replace('"bbox": [', '"bbox": [-0, 0, 1, 1], "old": ['))
    fast = _columns(path, truth, True, False)
    assert fast is not None
    _assert_same(fast, _general(path, truth, True, False))
    assert math.copysign(1, fast.score[0]) == math.copysign(1, fast.bbox[0, 0]) == 1.0


@needs_extension
def test_a_results_path_that_cannot_be_checked_is_left_to_the_general_path(tmp_path):
    class BytesPath(os.PathLike):
        def __fspath__(self):
            return os.fsencode(tmp_path / "results.json")

    assert result_columns.start_reading(BytesPath(), True, True) is None
    assert result_columns.start_reading("x" * 300 + ".json", True, True) is None
    for results in (BytesPath(), "x" * 300 + ".json"):  # the ground truth's error comes first
        with pytest.raises(LVISFormatError):
            evaluate({"images": "nope"}, results)


@needs_extension
def test_reading_stops_when_the_ground_truth_fails(tmp_path, monkeypatch):
    gt, results = make_case(4)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results * 2000))  # a file that takes a while to read
    cancel = bytearray(1)
    cancel[0] = 1  # stopped before it starts: nothing is read
    assert result_columns.read_columns(path, True, True, cancel) is None
    started = []
    real = result_columns.start_reading

    def spy(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(result_columns, "start_reading", spy)
    with pytest.raises(LVISFormatError):
        evaluate({"images": "nope"}, path)
    assert started[0]._cancel[0] == 1 and started[0].result() is None
