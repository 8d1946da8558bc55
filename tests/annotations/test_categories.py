import numpy as np
import pytest

from lvisnb.annotations import categories as cats


@pytest.mark.parametrize(
    ("version", "expected"),
    [("v1", {"r": 337, "c": 461, "f": 405}), ("v0.5", {"r": 454, "c": 461, "f": 315})],
)
def test_group_sizes_match_lvis(version, expected):
    assert cats.group_sizes(version) == expected
    assert len(cats.categories(version)) == sum(expected.values())


def test_v1_frequency_agrees_with_train_image_counts():
    frame = cats.categories("v1")
    recomputed = frame["v1_train_image_count"].map(cats.frequency_of)
    assert (recomputed == frame["frequency"].astype(str)).all()
    assert frame["id"].tolist() == list(range(1, 1204))


def test_v05_joins_v1_counts_by_synset():
    frame = cats.categories("v0.5")
    joined = frame["v1_train_image_count"].notna()
    assert joined.mean() > 0.9
    v1 = cats.categories("v1").set_index("synset")["v1_train_image_count"]
    row = frame[joined].iloc[0]
    assert row["v1_train_image_count"] == v1[row["synset"]]


def test_unknown_version_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown LVIS version"):
        cats.categories("v2")


def _records(version):
    return [dict(c) for c in cats._raw(version)]


def test_a_whole_lvis_category_set_is_recognised():
    assert cats.lvis_version_of(_records("v1")) == "v1"
    assert cats.lvis_version_of(_records("v0.5")) == "v0.5"
    assert cats.lvis_version_of(_records("v1")[:40]) is None  # toy-LVIS: a subset
    changed = _records("v1")
    changed[5]["synset"] = "dog.n.01"
    assert cats.lvis_version_of(changed) is None


def test_embedded_train_counts_only_for_a_whole_set():
    records = _records("v1")
    counts, label = cats.embedded_train_image_counts(records)
    handbag = next(i for i, c in enumerate(records) if c["name"] == "handbag")
    assert counts[handbag] == 1859 and label == "LVIS v1 train images"
    assert (counts > 0).all()
    assert cats.embedded_train_image_counts(records[:40]) is None
    counts, label = cats.embedded_train_image_counts(_records("v0.5"))
    assert "v0.5" in label and (counts == -1).sum() == 79


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("couch", "v1", "sofa"),
        ("Cat", "v1", "cat"),
        ("COUCH", "v0.5", "sofa"),
        ("aerosol can", "v1", "aerosol_can"),
        ("  Spray_Can ", "v1", "aerosol_can"),
    ],
)
def test_names_are_found_in_any_case_and_by_lvis_synonym(name, version, expected):
    frame = cats.categories(version)
    expected_id = int(frame.loc[frame["name"] == expected, "id"].iloc[0])
    assert cats.find_category(name, version) == expected_id


def test_an_unknown_name_lists_close_names_and_synonyms_say_whose():
    with pytest.raises(
        ValueError,
        match=r"no category named 'cuoch' in LVIS v1; did you mean "
        r"couch \(= sofa\)",
    ):
        cats.find_category("cuoch")
    with pytest.raises(ValueError, match=r"'sofaa' in x.json; did you mean sofa,"):
        cats.find_category("sofaa", "v1", source="x.json")


def test_an_ambiguous_name_names_every_category_it_could_be():
    records = [
        {"id": 1, "name": "cat", "synonyms": ["kitty"]},
        {"id": 2, "name": "Cat", "synonyms": []},
        {"id": 7, "name": "dog", "synonyms": ["kitty"]},
    ]
    assert cats.find_category("Cat", records) == 2  # the exact name wins
    with pytest.raises(
        ValueError,
        match=r"'kitty' names 2 categories in f.json: cat \(id 1\), "
        r"dog \(id 7\); give the id",
    ):
        cats.find_category("kitty", records, "f.json")
    with pytest.raises(ValueError, match="'CAT' names 2 categories"):
        cats.find_category("CAT", records, "f.json")


def test_records_without_synonyms_take_the_embedded_ones_by_synset():
    records = [{"id": 5, "name": "sofa", "synset": "sofa.n.01"}]
    assert cats.find_category("lounge", records) == 5


def test_images_per_category_counts_each_image_once():
    # image 10 holds category 5 twice, image 11 once; 6 has no annotation; 9 is not asked for
    counts = cats.images_per_category([10, 10, 11, 12, 12], [5, 5, 5, 7, 9], [5, 6, 7])
    assert counts.tolist() == [2, 0, 1] and counts.dtype == np.int64
    assert cats.images_per_category([], [], [1, 2]).tolist() == [0, 0]
    assert cats.images_per_category([1], [3], []).shape == (0,)
    with pytest.raises(ValueError, match="equal length"):
        cats.images_per_category([1, 2], [3], [3])


def test_images_per_category_of_category_sets():
    sets = [{1, 4}, [1, 2, 4], [1, 1], []]  # image 2 lists category 1 twice: counted once
    image_index, category_ids = cats.category_set_pairs(sets)
    assert image_index.tolist() == [0, 0, 1, 1, 1, 2, 2]
    counts = cats.images_per_category(image_index, category_ids, [1, 2, 3, 4])
    assert counts.tolist() == [3, 1, 0, 2]


def test_images_per_category_equals_distinct_pairs_on_random_annotations():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(0, 300))
        image_ids = rng.integers(0, 40, n) * 1000 + 7  # sparse, COCO-like ids
        category_ids = rng.integers(1, 60, n)
        wanted = rng.permutation(np.arange(-2, 70))[:50]
        pairs = {(int(c), int(i)) for c, i in zip(category_ids, image_ids, strict=True)}
        expected = [sum(1 for c, _ in pairs if c == w) for w in wanted]
        assert cats.images_per_category(image_ids, category_ids, wanted).tolist() == expected
