import math
from collections import Counter

import numpy as np
import pytest
import torch

from lvisnb.data import sampler as S

# 4 images, hand-countable with threshold t = 0.6:
#   category 1 in 3/4 images -> sqrt(0.6 / 0.75) < 1 -> r = 1
#   category 4 in 2/4 images -> r = sqrt(0.6 / 0.5)
#   category 2 in 1/4 images -> r = sqrt(0.6 / 0.25)
SMALL = [{1, 4}, [1, 2, 4], [1, 1], []]  # image 2 lists category 1 twice: counted once
T = 0.6


def long_tail_sets(num_images=60, num_categories=30, seed=0):
    """Random per-image category sets with Zipf-like category frequencies."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_categories + 1)
    p /= p.sum()
    sets = []
    for _ in range(num_images):
        k = int(rng.integers(0, 4))
        sets.append(set((rng.choice(num_categories, size=k, p=p) + 1).tolist()))
    return sets


LONG = long_tail_sets()


def rank_shards(sets, num_replicas, **kw):
    shards = []
    for rank in range(num_replicas):
        s = S.RepeatFactorSampler(sets, num_replicas=num_replicas, rank=rank, **kw)
        shards.append(list(s))
    return shards


def test_hand_computed_factors():
    cat, img = S.repeat_factors(SMALL, T)
    assert cat == pytest.approx({1: 1.0, 2: math.sqrt(0.6 / 0.25), 4: math.sqrt(0.6 / 0.5)})
    expected_img = [math.sqrt(0.6 / 0.5), math.sqrt(0.6 / 0.25), 1.0, 1.0]
    np.testing.assert_allclose(img, expected_img)
    assert img.dtype == np.float64 and img.shape == (4,)
    assert list(cat) == [1, 2, 4]


def test_sampler_exposes_factors():
    s = S.RepeatFactorSampler(SMALL, threshold=T, num_replicas=1, rank=0)
    assert s.category_repeat_factors[2] == pytest.approx(math.sqrt(0.6 / 0.25))
    expected_sum = 2.0 + math.sqrt(0.6 / 0.5) + math.sqrt(0.6 / 0.25)
    assert s.image_repeat_factors.sum() == pytest.approx(expected_sum)
    assert s.expected_epoch_length == pytest.approx(expected_sum)
    s2 = S.RepeatFactorSampler(SMALL, threshold=T, num_replicas=2, rank=1)
    assert s2.expected_epoch_length == pytest.approx(expected_sum / 2)


def test_image_factor_is_max_over_categories():
    t = 0.2
    cat, img = S.repeat_factors(LONG, t)
    n = len(LONG)
    for c, r in cat.items():
        f = sum(c in cats for cats in LONG) / n
        assert r == pytest.approx(max(1.0, math.sqrt(t / f)))
    for i, cats in enumerate(LONG):
        assert img[i] == pytest.approx(max([cat[c] for c in cats], default=1.0))
    assert img.max() > 1.5  # the case actually exercises repetition


def test_threshold_zero_gives_unit_factors():
    cat, img = S.repeat_factors(LONG, 0.0)
    assert set(cat.values()) == {1.0}
    np.testing.assert_array_equal(img, np.ones(len(LONG)))


def test_counts_are_stochastic_roundings_and_mean_matches_factors():
    s = S.RepeatFactorSampler(LONG, threshold=0.2, seed=3, num_replicas=1, rank=0)
    r = s.image_repeat_factors
    epochs = 400
    lengths, totals = [], np.zeros(len(LONG))
    for epoch in range(epochs):
        s.set_epoch(epoch)
        counts = np.bincount(list(s), minlength=len(LONG))
        assert np.all((counts == np.floor(r)) | (counts == np.floor(r) + 1))
        lengths.append(len(s))
        totals += counts
    assert np.mean(lengths) == pytest.approx(r.sum(), rel=0.01)
    np.testing.assert_allclose(totals / epochs, r, atol=0.1)
    assert len(set(lengths)) > 1  # the length really varies between epochs


def test_deterministic_per_seed_and_epoch():
    def run(seed, epoch):
        s = S.RepeatFactorSampler(LONG, threshold=0.2, seed=seed, num_replicas=1, rank=0)
        s.set_epoch(epoch)
        return list(s)

    assert run(0, 5) == run(0, 5)
    assert run(0, 5) != run(0, 6)
    assert run(0, 5) != run(1, 5)
    assert S.epoch_seed(2, 7) == 2 * 1_000_003 + 7


def test_len_matches_iter_across_epochs_and_ranks():
    for rank in range(3):
        s = S.RepeatFactorSampler(LONG, threshold=0.2, num_replicas=3, rank=rank)
        for epoch in (0, 1, 2, 1):
            s.set_epoch(epoch)
            assert len(s) == len(list(s)) == len(list(s))


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_rank_shards_partition_the_epoch(num_replicas):
    kw = {"threshold": 0.2, "seed": 1}
    full = S.RepeatFactorSampler(LONG, num_replicas=1, rank=0, **kw).epoch_indices().tolist()
    shards = rank_shards(LONG, num_replicas, **kw)
    per_rank = math.ceil(len(full) / num_replicas)
    assert [len(x) for x in shards] == [per_rank] * num_replicas
    padded = [shards[k % num_replicas][k // num_replicas] for k in range(per_rank * num_replicas)]
    pad = len(padded) - len(full)
    assert 0 <= pad < num_replicas
    assert padded[: len(full)] == full  # disjoint positions covering the epoch in order
    assert padded[len(full) :] == full[:pad]  # padding repeats the first elements
    union = Counter(i for shard in shards for i in shard)
    assert union - Counter(full) == Counter(full[:pad])


def test_padding_when_fewer_indices_than_replicas():
    shards = rank_shards([{1}], 3, threshold=0.0)
    assert shards == [[0], [0], [0]]


def test_threshold_zero_is_a_permutation():
    s = S.RepeatFactorSampler(LONG, threshold=0.0, seed=4, num_replicas=1, rank=0)
    out = list(s)
    assert sorted(out) == list(range(len(LONG)))
    assert out != list(range(len(LONG)))


def test_uniform_sampler_is_a_permutation_equal_to_rfs_t0():
    u = S.UniformSampler(LONG, seed=4, num_replicas=1, rank=0)
    out = list(u)
    assert sorted(out) == list(range(len(LONG))) and len(u) == len(LONG)
    assert out != list(range(len(LONG)))
    assert out == list(S.RepeatFactorSampler(LONG, threshold=0, seed=4, num_replicas=1, rank=0))
    u.set_epoch(1)
    assert list(u) != out and sorted(u) == list(range(len(LONG)))
    shards = [list(S.UniformSampler(LONG, seed=4, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(len(LONG)))


def test_shuffle_false_keeps_order():
    s = S.RepeatFactorSampler(LONG, threshold=0.2, shuffle=False, num_replicas=1, rank=0)
    out = list(s)
    assert out == sorted(out) and set(out) == set(range(len(LONG)))
    assert len(out) > len(LONG)
    u = S.UniformSampler(LONG, shuffle=False, num_replicas=1, rank=0)
    assert list(u) == list(range(len(LONG)))


def test_object_with_category_sets_is_accepted():
    class Dataset:
        def category_sets(self):
            return SMALL

    s = S.RepeatFactorSampler(Dataset(), threshold=T, num_replicas=1, rank=0)
    np.testing.assert_allclose(s.image_repeat_factors, S.repeat_factors(SMALL, T)[1])
    assert len(S.UniformSampler(Dataset(), num_replicas=1, rank=0)) == 4


def test_distributed_defaults(monkeypatch):
    s = S.RepeatFactorSampler(SMALL, threshold=T)
    assert (s.num_replicas, s.rank) == (1, 0)
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    s = S.RepeatFactorSampler(SMALL, threshold=T)
    assert (s.num_replicas, s.rank) == (4, 3)


def test_build_sampler():
    rfs = S.build_sampler("rfs", SMALL, T, 0, num_replicas=1, rank=0)
    assert isinstance(rfs, S.RepeatFactorSampler) and rfs.threshold == T
    uni = S.build_sampler("uniform", SMALL, T, 0, num_replicas=1, rank=0)
    assert isinstance(uni, S.UniformSampler) and len(uni) == 4
    with pytest.raises(ValueError, match="'repeat'"):
        S.build_sampler("repeat", SMALL, T, 0)


@pytest.mark.parametrize("threshold", [-1e-3, float("nan"), float("inf")])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        S.RepeatFactorSampler(SMALL, threshold=threshold)
    with pytest.raises(ValueError, match="threshold"):
        S.repeat_factors(SMALL, threshold)


def test_empty_dataset():
    class Empty:
        def category_sets(self):
            return []

    for make in (
        lambda: S.RepeatFactorSampler([]),
        lambda: S.RepeatFactorSampler(Empty()),
        lambda: S.UniformSampler([]),
        lambda: S.repeat_factors([], 1e-3),
    ):
        with pytest.raises(ValueError, match="empty dataset"):
            make()


def test_bad_replicas_rank_and_input_type():
    with pytest.raises(ValueError, match="num_replicas"):
        S.RepeatFactorSampler(SMALL, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="rank"):
        S.RepeatFactorSampler(SMALL, num_replicas=2, rank=2)
    with pytest.raises(TypeError, match="category_sets"):
        S.RepeatFactorSampler(object())


# ----------------------------------------------------------------------------- rounding

# 8 images, hand-countable with threshold t = 0.9 (f = fraction of the 8 images):
#   category 4 in 8/8 -> sqrt(0.9 / 1.0)   = 0.949 -> r = 1
#   category 1 in 6/8 -> sqrt(0.9 / 0.75)  = sqrt(1.2) = 1.0954
#   category 2 in 2/8 -> sqrt(0.9 / 0.25)  = sqrt(3.6) = 1.8974
#   category 3 in 1/8 -> sqrt(0.9 / 0.125) = sqrt(7.2) = 2.6833
# r(i) = max over the image's categories; ceil(r(i)) = 3, 2, 2, 2, 2, 2, 1, 1 (sum 15), while
# sum r(i) = 2.6833 + 1.8974 + 4 x 1.0954 + 2 = 10.96: mmdetection's epoch is 37% longer here.
HAND = [{1, 2, 3, 4}, {1, 2, 4}, {1, 4}, {1, 4}, {1, 4}, {1, 4}, {4}, {4}]
HAND_T = 0.9
HAND_R = [math.sqrt(7.2), math.sqrt(3.6)] + [math.sqrt(1.2)] * 4 + [1.0, 1.0]
HAND_CEIL = [3, 2, 2, 2, 2, 2, 1, 1]


def hand_sampler(**kw):
    kw = {"threshold": HAND_T, "num_replicas": 1, "rank": 0, **kw}
    return S.RepeatFactorSampler(HAND, **kw)


def test_hand_computed_factors_of_the_rounding_case():
    np.testing.assert_allclose(hand_sampler().image_repeat_factors, HAND_R)
    assert np.ceil(HAND_R).tolist() == HAND_CEIL and sum(HAND_CEIL) == 15
    assert sum(HAND_R) == pytest.approx(10.9624, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 7])
def test_ceil_repeats_each_image_exactly_ceil_r_times_every_epoch(seed):
    s = hand_sampler(rounding="ceil", seed=seed)
    assert s.rounding == "ceil"
    assert s.expected_counts.tolist() == HAND_CEIL
    assert s.expected_epoch_length == 15
    orders = set()
    for epoch in range(20):
        s.set_epoch(epoch)
        out = list(s)
        assert len(s) == len(out) == 15  # sum_i ceil(r(i)), not sum_i r(i) = 10.96
        assert np.bincount(out, minlength=8).tolist() == HAND_CEIL
        orders.add(tuple(out))
    assert len(orders) == 20  # the order is reshuffled every epoch, the counts never change


def test_ceil_is_deterministic_per_seed_and_epoch_and_unshuffled_in_order():
    def run(seed, epoch):
        s = hand_sampler(rounding="ceil", seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert run(0, 3) == run(0, 3)
    assert run(0, 3) != run(0, 4) and run(0, 3) != run(1, 3)
    ordered = list(hand_sampler(rounding="ceil", shuffle=False))
    assert ordered == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7]


def test_ceil_keeps_exact_integer_factors():
    # t = 0.5, category 2 in 1/8 of the images: sqrt(0.5 / 0.125) = sqrt(4.0) = 2.0 exactly
    sets = [{1, 2}] + [{1}] * 7
    for rounding in S.ROUNDINGS:
        s = S.RepeatFactorSampler(sets, threshold=0.5, num_replicas=1, rank=0, rounding=rounding)
        assert s.image_repeat_factors[0] == 2.0
        assert np.bincount(list(s), minlength=8).tolist() == [2] + [1] * 7


def test_stochastic_rounding_is_unchanged_and_the_default():
    """detectron2's RepeatFactorTrainingSampler: floor(r) + (U < frac(r)), then randperm."""
    s = S.RepeatFactorSampler(LONG, threshold=0.2, seed=3, num_replicas=1, rank=0)
    explicit = S.RepeatFactorSampler(
        LONG, threshold=0.2, seed=3, num_replicas=1, rank=0, rounding="stochastic"
    )
    assert s.rounding == "stochastic"
    r = torch.from_numpy(s.image_repeat_factors.copy())
    for epoch in (0, 1, 5):
        s.set_epoch(epoch)
        explicit.set_epoch(epoch)
        g = torch.Generator().manual_seed(S.epoch_seed(3, epoch))
        rands = torch.rand(len(r), generator=g, dtype=torch.float64)
        reps = torch.floor(r).long() + (rands < r - torch.floor(r)).long()
        ref = torch.repeat_interleave(torch.arange(len(r)), reps)
        ref = ref[torch.randperm(len(ref), generator=g)]
        assert list(s) == list(explicit) == ref.tolist()
    assert s.expected_epoch_length == pytest.approx(r.sum().item())
    np.testing.assert_array_equal(s.expected_counts, s.image_repeat_factors)


def test_stochastic_mean_length_is_sum_r_and_ceil_is_sum_ceil_r():
    stochastic = hand_sampler(rounding="stochastic", seed=2)
    ceil = hand_sampler(rounding="ceil", seed=2)
    lengths = []
    for epoch in range(400):
        stochastic.set_epoch(epoch)
        ceil.set_epoch(epoch)
        lengths.append(len(stochastic))
        assert len(ceil) == 15
    # sum r = 10.96; the length's sd is sqrt(sum p(1-p)) = 0.81, so the mean's is 0.04
    assert np.mean(lengths) == pytest.approx(sum(HAND_R), abs=0.2)
    assert set(lengths) <= set(range(8, 16)) and len(set(lengths)) > 2


@pytest.mark.parametrize("rounding", S.ROUNDINGS)
@pytest.mark.parametrize("num_replicas", [2, 4])
def test_rank_shards_partition_the_epoch_for_both_roundings(rounding, num_replicas):
    kw = {"rounding": rounding, "seed": 5}
    shards = []
    for rank in range(num_replicas):
        s = hand_sampler(num_replicas=num_replicas, rank=rank, **kw)
        s.set_epoch(3)
        shards.append(list(s))
        assert len(s) == len(shards[-1])
    full_sampler = hand_sampler(**kw)
    full = full_sampler.epoch_indices(3).tolist()
    per_rank = math.ceil(len(full) / num_replicas)
    assert [len(x) for x in shards] == [per_rank] * num_replicas
    padded = [shards[k % num_replicas][k // num_replicas] for k in range(per_rank * num_replicas)]
    assert padded[: len(full)] == full and padded[len(full) :] == full[: len(padded) - len(full)]
    sharded = hand_sampler(num_replicas=num_replicas, rank=0, **kw)
    assert sharded.expected_epoch_length * num_replicas == pytest.approx(
        full_sampler.expected_epoch_length
    )
    if rounding == "ceil":
        assert len(full) == 15 and per_rank == math.ceil(15 / num_replicas)
        assert np.bincount(full, minlength=8).tolist() == HAND_CEIL


def test_threshold_zero_is_a_permutation_under_ceil():
    s = S.RepeatFactorSampler(LONG, threshold=0.0, seed=4, num_replicas=1, rank=0, rounding="ceil")
    out = list(s)
    assert sorted(out) == list(range(len(LONG))) and out != sorted(out)


@pytest.mark.parametrize("bad", ["floor", "round", "CEIL", None])
def test_bad_rounding_names_the_field_and_the_choices(bad):
    message = r"rounding .* is not one of \('ceil', 'stochastic'\)"
    with pytest.raises(ValueError, match=message):
        S.RepeatFactorSampler(SMALL, threshold=T, num_replicas=1, rank=0, rounding=bad)
    with pytest.raises(ValueError, match=message):
        S.build_sampler("rfs", SMALL, T, 0, 1, 0, rounding=bad)
    with pytest.raises(ValueError, match=message):
        S.build_sampler("uniform", SMALL, T, 0, 1, 0, rounding=bad)


def test_build_sampler_passes_the_rounding():
    rfs = S.build_sampler("rfs", HAND, HAND_T, 0, num_replicas=1, rank=0, rounding="ceil")
    assert rfs.rounding == "ceil" and len(rfs) == 15
    assert S.build_sampler("rfs", HAND, HAND_T, 0, 1, 0).rounding == "stochastic"


# ----------------------------------------------------------------------------- what an epoch shows


def test_sampling_composition_weights_occurrences_by_image():
    # (image, category) occurrences: f: 1*1 + 2*1 = 3, c: 2*1 = 2, r: 3*1 = 3, of 8
    share = S.sampling_composition([[1], [1, 2], [3]], {1: "f", 2: "c", 3: "r"}, [1, 2, 3])
    assert share.to_dict() == pytest.approx({"r": 3 / 8, "c": 2 / 8, "f": 3 / 8})


def test_repeat_factor_table_by_group():
    factors = {1: 1.0, 2: 1.5, 3: 3.0, 4: 1.0}
    table = S.repeat_factor_table(factors, {1: "f", 2: "c", 3: "r", 4: "c"})
    assert list(table.index) == ["r", "c", "f"]
    assert table.loc["r"].tolist() == [1, 1, 3.0, 3.0]
    assert table.loc["c"].tolist() == [2, 1, 1.25, 1.5]
    assert table.loc["f"].tolist() == [1, 0, 1.0, 1.0]


def test_repeat_factor_table_keeps_empty_groups():
    table = S.repeat_factor_table({1: 1.0}, {1: "f"})
    assert table.loc["r"].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("rounding", ["ceil", "stochastic"])
def test_rfs_composition_by_hand(rounding):
    # 4 images, category 1 (f) in 3, category 2 (r) in 1; t = 1:
    # r(1) = sqrt(1 / 0.75), r(2) = sqrt(1 / 0.25) = 2
    sets, frequency = [[1], [1], [1], [2]], {1: "f", 2: "r"}
    frame = S.rfs_composition(sets, frequency, 1.0, seed=3, rounding=rounding)
    r1 = math.sqrt(1 / 0.75)
    assert frame["uniform"].to_dict() == pytest.approx({"r": 0.25, "c": 0.0, "f": 0.75})
    expected_r = 2 / (3 * r1 + 2)
    assert frame["RFS expected"]["r"] == pytest.approx(expected_r)
    epoch = S.RepeatFactorSampler(sets, 1.0, seed=3, num_replicas=1, rank=0, rounding=rounding)
    counts = np.bincount(epoch.epoch_indices(0).numpy(), minlength=4)
    assert frame["RFS observed"]["r"] == pytest.approx(counts[3] / counts.sum())
    sizes = frame.attrs["epoch_images"]
    assert sizes["uniform"] == 4
    assert sizes["RFS expected"] == pytest.approx(3 * r1 + 2)
    assert sizes["RFS observed"] == counts.sum()
    if rounding == "ceil":
        assert counts.tolist() == [2, 2, 2, 2]
