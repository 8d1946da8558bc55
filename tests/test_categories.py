import pytest

from lvisnb import categories as cats


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
