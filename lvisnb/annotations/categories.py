"""Real LVIS category metadata, embedded as package data (LVIS is CC BY 4.0).

``categories("v1")`` has the 1,203 LVIS v1 categories, ``categories("v0.5")`` the 1,230 of v0.5.
Frequency groups follow LVIS's rule on the number of *training images* a category is annotated
in: rare ``r`` 1-10, common ``c`` 11-100, frequent ``f`` > 100.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

VERSIONS = ("v1", "v0.5")
FREQUENCY_GROUPS = ("r", "c", "f")
FREQUENCY_NAMES = {"r": "rare", "c": "common", "f": "frequent"}
RARE_MAX_IMAGES = 10  # r: 1..10 training images
COMMON_MAX_IMAGES = 100  # c: 11..100; f: > 100


def frequency_of(image_count: int) -> str:
    """LVIS frequency group of a category annotated in ``image_count`` training images."""
    if image_count <= RARE_MAX_IMAGES:
        return "r"
    if image_count <= COMMON_MAX_IMAGES:
        return "c"
    return "f"


@cache
def _raw(version: str) -> tuple[dict, ...]:
    if version not in VERSIONS:
        raise ValueError(f"unknown LVIS version {version!r}; expected one of {VERSIONS}")
    name = f"lvis_{version}_categories.json"
    text = resources.files("lvisnb.resources").joinpath(name).read_text(encoding="utf-8")
    return tuple(json.loads(text)["categories"])


def categories(version: str = "v1") -> pd.DataFrame:
    """One row per LVIS category of ``version`` ("v1" or "v0.5"), sorted by id.

    Columns: ``id`` (LVIS category id), ``name``, ``synset``, ``synonyms`` (list of str),
    ``def``, ``frequency`` ("r"/"c"/"f", as in the official annotation files) and
    ``v1_train_image_count`` (number of LVIS v1 train images annotated with the category; for
    v0.5 joined from v1 by synset, <NA> where v1 has no such synset).
    """
    rows = [dict(c) for c in _raw(version)]
    frame = pd.DataFrame(rows)
    v1_counts = {c["synset"]: c["train_image_count"] for c in _raw("v1")}
    frame["v1_train_image_count"] = pd.array(
        [v1_counts.get(s) for s in frame["synset"]], dtype="Int64"
    )
    frame = frame.drop(columns=["train_image_count"], errors="ignore")
    frame["frequency"] = pd.Categorical(frame["frequency"], categories=list(FREQUENCY_GROUPS))
    return frame.sort_values("id").reset_index(drop=True)


def group_sizes(version: str = "v1") -> dict[str, int]:
    """Number of categories in each frequency group, e.g. ``{"r": 337, "c": 461, "f": 405}``."""
    counts = categories(version)["frequency"].value_counts()
    return {g: int(counts[g]) for g in FREQUENCY_GROUPS}


def lvis_version_of(category_records: list[dict]) -> str | None:
    """The LVIS version (``"v1"``/``"v0.5"``) whose whole category set ``category_records``
    is (same ids, each with the same synset), else ``None`` (toy-LVIS, subsets, other sets)."""
    given = {int(c["id"]): c.get("synset") for c in category_records}
    for version in VERSIONS:
        known = {c["id"]: c["synset"] for c in _raw(version)}
        if given == known:
            return version
    return None


def describe_version(category_records: list[dict]) -> str:
    """``"LVIS v1 (1203 categories)"``, or what the records are when no whole LVIS set."""
    version = lvis_version_of(category_records)
    if version is None:
        return f"not a whole LVIS category set ({len(category_records)} categories)"
    return f"LVIS {version} ({len(category_records)} categories)"


def check_same_version(version: str | None, category_records: list[dict], what: str) -> None:
    """``ValueError`` when ``category_records`` are a whole LVIS set of a version other than
    ``version`` (``None``: nothing to compare), naming both; ``what`` names the records' file.

    LVIS v1 and v0.5 share most category ids (1,203 of v0.5's 1,230 ids exist in v1, 83 with
    the same synset): results or a model of one version evaluated on the other give silently
    wrong numbers (a perfect v1 result scored bbox AP 0.116 on v0.5 ground truth).
    """
    found = lvis_version_of(category_records)
    if version is not None and found is not None and found != version:
        raise ValueError(
            f"{what} is LVIS {found} ({len(category_records)} categories) but LVIS {version} "
            "is expected: their category ids name different categories"
        )


def other_version_ids(version: str) -> tuple[str, np.ndarray, np.ndarray]:
    """``(other version, ids there, the same categories' ids in version)``, joined by synset:
    how results written with the other LVIS version's ids would read in ``version``."""
    other = next(v for v in VERSIONS if v != version)
    here = {c["synset"]: c["id"] for c in _raw(version)}
    pairs = [(c["id"], here[c["synset"]]) for c in _raw(other) if c["synset"] in here]
    ids = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return other, ids[:, 0], ids[:, 1]


def embedded_train_image_counts(category_records: list[dict]) -> tuple[np.ndarray, str] | None:
    """Real LVIS train image counts of ``category_records`` (int64, their order; -1 where
    unknown) and a label saying what they count, when the records are a whole LVIS category
    set (:func:`lvis_version_of`), else ``None``.

    v1: ``lvis_v1_train.json``'s counts, embedded. v0.5: the same v1 train counts joined by
    synset (the kit embeds no v0.5 train counts; 1,151 of v0.5's 1,230 synsets are in v1, the
    other 79 get -1), so a v0.5 category is placed by how much v1 trains it.
    """
    version = lvis_version_of(category_records)
    if version is None:
        return None
    v1 = {c["synset"]: c["train_image_count"] for c in _raw("v1")}
    counts = np.array([v1.get(c.get("synset"), -1) for c in category_records], dtype=np.int64)
    label = "LVIS v1 train images"
    return counts, label + (" (v0.5 categories by synset)" if version == "v0.5" else "")


def _folded(text: str) -> str:
    """A name as the lookup compares it: case-folded, spaces and underscores alike."""
    return re.sub(r"[\s_]+", "_", str(text).strip().casefold())


def find_category(
    name: str, records: Sequence[Mapping] | str = "v1", source: str | None = None
) -> int:
    """LVIS id of the category called ``name`` among ``records``.

    ``records``: category records (``id``, ``name``, optional ``synonyms`` and ``synset``), or
    a version ("v1", "v0.5") for the embedded ones; ``source`` names them in messages (default:
    the version, or "the categories"). An exact ``name`` wins; otherwise names and LVIS
    synonyms are compared case-folded, with spaces and underscores alike (``"couch"`` ->
    sofa, ``"Cat"`` -> cat, ``"aerosol can"`` -> aerosol_can). A record without
    ``synonyms`` takes those of the embedded category with its synset.

    Raises ``ValueError`` when nothing matches (naming up to 5 close names, ``difflib``) or
    when several categories do (naming them with their ids).
    """
    if isinstance(records, str):
        source = source or f"LVIS {records}"
        records = _raw(records)
    source = source or "the categories"
    embedded = _embedded_synonyms()
    text = str(name).strip()
    exact = [int(c["id"]) for c in records if c["name"] == text]
    if len(exact) == 1:
        return exact[0]
    owners: dict[str, set[int]] = {}  # folded name or synonym -> ids
    names = {int(c["id"]): c["name"] for c in records}
    for c in records:
        synonyms = c.get("synonyms") or embedded.get(c.get("synset"), [])
        for alias in (c["name"], *synonyms):
            owners.setdefault(_folded(alias), set()).add(int(c["id"]))
    found = sorted(owners.get(_folded(text), ()))
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(f"{names[i]} (id {i})" for i in found)
        raise ValueError(
            f"{text!r} names {len(found)} categories in {source}: {listed}; give the id instead"
        )
    close = difflib.get_close_matches(_folded(text), list(owners), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(_alias_of(a, owners[a], names) for a in close)}?"
    raise ValueError(f"no category named {text!r} in {source}" + (hint if close else ""))


def _alias_of(alias: str, ids: set[int], names: Mapping[int, str]) -> str:
    """``"couch (= sofa)"`` for a synonym, ``"sofa"`` for a category's own name."""
    targets = [names[i] for i in sorted(ids)]
    if [_folded(t) for t in targets] == [alias]:
        return targets[0]
    return f"{alias} (= {', '.join(targets)})"


@cache
def _embedded_synonyms() -> dict[str, tuple[str, ...]]:
    """LVIS synonyms by synset, over both versions (v1's where both have the synset)."""
    return {c["synset"]: tuple(c["synonyms"]) for v in reversed(VERSIONS) for c in _raw(v)}


def images_per_category(image_ids, category_ids, categories) -> np.ndarray:
    """The number of images annotated with each of ``categories``: int64 ``(len(categories),)``,
    in their order.

    ``image_ids``, ``category_ids``: one entry per annotation (or per image and category; 1-D,
    equal length). An image counts once per category, however many instances it holds: LVIS's
    ``image_count``, which decides r/c/f on the train split, and the ``n(c)`` of repeat-factor
    sampling's ``f(c) = n(c) / images``. A category without annotations counts 0; an annotation
    of a category outside ``categories`` is not counted. Ids of any sortable kind (LVIS
    category ids, contiguous labels).
    """
    image_ids, category_ids = np.asarray(image_ids), np.asarray(category_ids)
    if image_ids.shape != category_ids.shape or image_ids.ndim != 1:
        raise ValueError(
            f"image_ids and category_ids must be 1-D of equal length, got shapes "
            f"{image_ids.shape} and {category_ids.shape}"
        )
    present, category_index = np.unique(category_ids, return_inverse=True)
    _, image_index = np.unique(image_ids, return_inverse=True)
    pairs = np.unique(np.stack([category_index, image_index]).astype(np.int64), axis=1)
    per_present = np.bincount(pairs[0], minlength=len(present))
    wanted = np.asarray(categories)
    counts = np.zeros(len(wanted), dtype=np.int64)
    if len(present):
        slot = np.searchsorted(present, wanted).clip(max=len(present) - 1)
        found = present[slot] == wanted
        counts[found] = per_present[slot[found]]
    return counts


def category_set_pairs(category_sets: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """``(image_index, category_ids)``, one entry per category of each image's collection in
    ``category_sets`` (image ``i``'s categories, LVIS ids or labels): the input of
    :func:`images_per_category` for data held per image."""
    sizes = [len(categories) for categories in category_sets]
    image_index = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    return image_index, np.asarray([c for categories in category_sets for c in categories])
