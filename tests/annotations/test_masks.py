"""Compressed RLE checks and areas (lvisnb.annotations.masks): numpy for the strings, hotcoco for
areas."""

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from synthetic import box_mask

from lvisnb.annotations import masks


def _encoded(mask_list) -> tuple[np.ndarray, list[str]]:
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in mask_list]
    return np.array([r["size"] for r in rles]), [r["counts"].decode("ascii") for r in rles]


def test_rle_areas_are_the_masks_pixel_counts():
    rng = np.random.default_rng(0)
    mask_list = [np.zeros((3, 4)), np.ones((5, 2)), rng.random((40, 30)) < 0.5]
    mask_list += [box_mask(60, 80, *rng.uniform(0, 40, 4)) for _ in range(20)]
    sizes, counts = _encoded(mask_list)
    area, total, ok = masks.rle_areas(sizes, counts)
    assert ok.all()
    assert total.tolist() == [m.size for m in mask_list]
    assert area.tolist() == [int(m.sum()) for m in mask_list]


def test_rle_areas_and_boxes_of_more_than_255_masks():
    # pycocotools 2.0.11's area() raises OverflowError on a list of 256 or more RLEs
    rng = np.random.default_rng(5)
    mask_list = [box_mask(30, 40, *rng.uniform(0, 20, 4)) for _ in range(300)]
    sizes, counts = _encoded(mask_list)
    area, _, ok = masks.rle_areas(sizes, counts)
    assert ok.all() and area.tolist() == [int(m.sum()) for m in mask_list]
    rles = [{"size": s.tolist(), "counts": c} for s, c in zip(sizes, counts, strict=True)]
    boxes = masks.rle_boxes(rles)
    ys, xs = np.nonzero(mask_list[7])
    expected = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert boxes.shape == (300, 4) and boxes[7].tolist() == expected


def test_rle_totals_work_in_chunks(monkeypatch):
    rng = np.random.default_rng(1)
    _, counts = _encoded([rng.random((20, 20)) < 0.3 for _ in range(30)])
    whole = masks.rle_totals(counts)
    monkeypatch.setattr(masks, "_RLE_CHUNK_CHARS", 50)
    for a, b in zip(whole, masks.rle_totals(counts), strict=True):
        assert np.array_equal(a, b)


def _encode_runs(runs) -> bytes:
    """Runs as a compressed RLE string (pycocotools' ``rleToString``, also for negative runs,
    which no library writes)."""
    out = bytearray()
    for m, run in enumerate(runs):
        x = int(run) - (int(runs[m - 2]) if m > 2 else 0)
        more = True
        while more:
            group, x = x & 0x1F, x >> 5
            more = x != (-1 if group & 0x10 else 0)
            out.append(48 + (group | (0x20 if more else 0)))
    return bytes(out)


def _reference_summary(counts: bytes) -> tuple[int, int] | None:
    """``(total, area)`` of one RLE string decoded character by character, None if the kit
    must refuse it (malformed, a negative run, or 2**32 pixels or more)."""
    if any(not 48 <= c <= 111 for c in counts):
        return None
    runs, i = [], 0
    while i < len(counts):
        x, k, more = 0, 0, True
        while more:
            if i == len(counts):
                return None  # ends inside a value
            c = counts[i] - 48
            x |= (c & 0x1F) << (5 * k)
            i, k, more = i + 1, k + 1, bool(c & 0x20)
        if c & 0x10:
            x -= 1 << (5 * k)
        if k > masks.RLE_MAX_CHARS_PER_COUNT:
            return None
        runs.append(x + (runs[-2] if len(runs) > 2 else 0))
    if any(run < 0 for run in runs) or sum(runs) >= 2**32:
        return None
    return sum(runs), sum(runs[1::2])


def _rle_strings(rng, n: int) -> list[bytes]:
    """Valid strings (small to 35-bit runs) and malformed ones of every kind."""
    strings = []
    for _ in range(n):
        scale = 10 ** int(rng.integers(0, 11))
        runs = rng.integers(0, scale + 1, size=int(rng.integers(0, 12)))
        s = bytearray(_encode_runs(runs))
        kind = rng.integers(0, 10)
        if kind == 0 and len(runs):  # a negative run
            runs[rng.integers(0, len(runs))] = -int(rng.integers(1, 100))
            s = bytearray(_encode_runs(runs))
        elif kind == 1 and s:  # truncated
            s = s[: rng.integers(0, len(s))]
        elif kind == 2 and s:  # any character, in or out of '0'..'o'
            s[rng.integers(0, len(s))] = int(rng.integers(0, 256))
        elif kind == 3:  # a run of 1-11 characters inserted
            at = int(rng.integers(0, len(s) + 1))
            s[at:at] = bytes(rng.integers(80, 112, rng.integers(1, 12)).astype(np.uint8))
        elif kind == 4:  # random characters of '0'..'o'
            s = bytearray(rng.integers(48, 112, rng.integers(0, 20)).astype(np.uint8).tobytes())
        strings.append(bytes(s))
    return strings


@pytest.mark.parametrize("chunk_chars", [1, 37, 1 << 17])
def test_rle_checks_match_a_reference_on_valid_and_malformed_strings(monkeypatch, chunk_chars):
    monkeypatch.setattr(masks, "_RLE_CHUNK_CHARS", chunk_chars)
    counts = _rle_strings(np.random.default_rng(3), 3000)
    expected = [_reference_summary(c) for c in counts]
    total, _ = masks.rle_totals(counts)
    # each string as a 1 x total image (the reference's total where it has one)
    width = [e[0] if e else max(int(t), 1) for e, t in zip(expected, total, strict=True)]
    sizes = np.stack([np.ones(len(counts), dtype=np.int64), width], axis=1)
    area, total, ok = masks.rle_areas(sizes, counts)
    legal = ok & (total == sizes[:, 0] * sizes[:, 1])
    assert legal.tolist() == [e is not None for e in expected]
    assert 0.3 < legal.mean() < 0.9  # both kinds are exercised
    valid = [e for e in expected if e is not None]
    assert list(zip(total[legal].tolist(), area[legal].tolist(), strict=True)) == valid


def test_rle_strings_may_be_str_or_bytes_but_only_ascii():
    counts = _rle_strings(np.random.default_rng(4), 200)
    as_str = [c.decode("latin-1") for c in counts]
    mixed = [c if i % 2 else s for i, (c, s) in enumerate(zip(counts, as_str, strict=True))]
    expected = masks.rle_totals(counts)
    for strings in (as_str, mixed):
        for a, b in zip(masks.rle_totals(strings), expected, strict=True):
            np.testing.assert_array_equal(a, b)
    _, counts = _encoded([box_mask(10, 10, 2, 2, 4, 4)] * 2)
    total, ok = masks.rle_totals([counts[0], counts[1][:1] + "\u00e9" + counts[1][2:]])
    assert ok.tolist() == [True, False]  # pycocotools would read 'é' as two UTF-8 bytes
