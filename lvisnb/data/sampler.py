"""Repeat-factor sampling (RFS) for LVIS training, and the uniform baseline.

RFS is the image-level re-sampling of the LVIS paper (Gupta, Dollar & Girshick, "LVIS: A Dataset
for Large Vocabulary Instance Segmentation", CVPR 2019, section 5). With ``N`` training images and
a threshold ``t >= 0``:

* ``f(c) = |{images containing c}| / N``, the fraction of training images in which category
  ``c`` is annotated (each image counted once, however many instances it has);
* ``r(c) = max(1, sqrt(t / f(c)))``, the category-level repeat factor: categories in at least a
  fraction ``t`` of the images are not repeated, rarer ones by up to ``sqrt(t * N)``;
* ``r(i) = max_{c in i} r(c)``, the image-level repeat factor (``1`` for an image with no
  categories), so an image is repeated as much as its rarest category asks.

``r(i)`` is fractional; the two detection codebases turn it into a whole number of copies per
epoch differently (``rounding``, :data:`ROUNDINGS`):

* ``"ceil"``: mmdetection's ``ClassBalancedDataset`` (``mmdet/datasets/dataset_wrappers.py``,
  ``repeat_indices.extend([dataset_idx] * math.ceil(repeat_factor))``): image ``i`` appears
  exactly ``ceil(r(i))`` times in every epoch, an epoch is ``sum_i ceil(r(i))`` long, and only
  the order changes between epochs. ``r(i)`` is computed with the same float operations as
  mmdetection (``sqrt(t / (count / N))``), so the counts agree with it exactly;
* ``"stochastic"``: detectron2's ``RepeatFactorTrainingSampler``
  (``detectron2/data/samplers/distributed_sampler.py``): image ``i`` appears ``floor(r(i)) + B_i``
  times, ``B_i ~ Bernoulli(r(i) - floor(r(i)))`` drawn afresh each epoch, so its expected count
  is exactly ``r(i)`` and the expected epoch length is ``sum_i r(i)``.

``ceil`` over-weights images whose factor is just above an integer (``r = 1.01`` gives 2 copies)
and makes epochs longer: on LVIS v1 train at ``t = 1e-3`` about 10% longer than
``sum_i r(i)`` (toy-LVIS at ``t = 0.1``: 20%), so an epoch-based schedule trains that many
more iterations. ``t = 0`` gives every image the factor ``1``: a plain (shuffled) epoch over the
dataset under either rounding. The LVIS paper uses ``t = 0.001``.

Randomness is a ``torch.Generator`` seeded with :func:`epoch_seed` ``(seed, epoch)``, so an epoch
is a pure function of ``(factors, rounding, seed, epoch, shuffle)``: every distributed rank builds
the same epoch list and keeps its own strided shard of it (see :class:`EpochShardedSampler`).
Neither codebase's order is reproduced (mmdetection's ``GroupSampler`` also groups by aspect
ratio); the order is a uniform permutation of the epoch list.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from lvisnb.annotations.categories import FREQUENCY_GROUPS, category_set_pairs, images_per_category

__all__ = [
    "SAMPLER_KINDS",
    "ROUNDINGS",
    "EpochShardedSampler",
    "RepeatFactorSampler",
    "UniformSampler",
    "build_sampler",
    "category_frequencies",
    "ceil_round_indices",
    "check_rounding",
    "epoch_seed",
    "repeat_factors",
    "epoch_repeat_indices",
    "repeat_factor_table",
    "resolve_category_sets",
    "rfs_composition",
    "sampling_composition",
    "shard_indices",
    "stochastic_round_indices",
]

SAMPLER_KINDS = ("rfs", "uniform")
ROUNDINGS = ("ceil", "stochastic")  # mmdetection's ClassBalancedDataset, detectron2's sampler
_SEED_STRIDE = 1_000_003  # a prime > any realistic epoch count
_SEED_MODULUS = 2**63


def epoch_seed(seed: int, epoch: int) -> int:
    """The ``torch.Generator`` seed of one epoch: ``(seed * 1_000_003 + epoch) mod 2**63``.

    Distinct epochs ``0 <= epoch < 1_000_003`` of one non-negative ``seed`` (below ``2**43``) get
    distinct seeds, and so do distinct seeds at the same epoch.
    """
    return (int(seed) * _SEED_STRIDE + int(epoch)) % _SEED_MODULUS


def resolve_category_sets(dataset_or_category_sets: Any) -> list[frozenset[Hashable]]:
    """Per-image category-id sets from a sequence of collections or an object with them.

    ``dataset_or_category_sets`` is either a sequence (one entry per dataset index) of
    collections of LVIS category ids, or any object with a ``category_sets()`` method returning
    such a sequence. Duplicate ids within an image count once. Raises ``ValueError`` when there
    are no images.
    """
    method = getattr(dataset_or_category_sets, "category_sets", None)
    raw = method() if callable(method) else dataset_or_category_sets
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence | np.ndarray):
        raise TypeError(
            "expected a sequence of per-image category-id collections or an object with "
            f"category_sets(), got {type(dataset_or_category_sets).__name__}"
        )
    sets = [frozenset(cats) for cats in raw]
    if not sets:
        raise ValueError("empty dataset: no images (category sets) to sample from")
    return sets


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
    return threshold


def check_rounding(rounding: str, name: str = "rounding") -> str:
    """``rounding`` if it is one of :data:`ROUNDINGS`, else a ``ValueError`` naming ``name``."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"{name} {rounding!r} is not one of {ROUNDINGS}")
    return rounding


def category_frequencies(category_sets: Sequence[Collection[Hashable]]) -> dict[Hashable, float]:
    """``f(c)``: fraction (in ``(0, 1]``) of the images whose set contains category ``c``.

    Keys are the category ids that occur, in sorted order where the ids are comparable.
    """
    if len(category_sets) == 0:
        raise ValueError("empty dataset: no images (category sets) to sample from")
    image_index, category_ids = category_set_pairs(category_sets)
    ids = np.unique(category_ids)
    counts = images_per_category(image_index, category_ids, ids)
    return {c: n / len(category_sets) for c, n in zip(ids.tolist(), counts.tolist(), strict=True)}


def repeat_factors(
    category_sets: Sequence[Collection[Hashable]], threshold: float = 1e-3
) -> tuple[dict[Hashable, float], np.ndarray]:
    """LVIS repeat factors: ``(category_factors, image_factors)``.

    ``category_sets[i]`` holds the category ids annotated in image ``i``. Returns
    ``category_factors`` (dict category id -> ``r(c) = max(1, sqrt(threshold / f(c)))``, a float
    ``>= 1``) and ``image_factors`` (float64 array of shape ``(len(category_sets),)``,
    ``r(i) = max_{c in i} r(c)``, ``1.0`` for an image without categories). ``threshold`` is a
    fraction of images (LVIS: ``1e-3``); ``0`` makes every factor ``1``.
    """
    threshold = _check_threshold(threshold)
    freqs = category_frequencies(category_sets)
    category_factors = {c: max(1.0, math.sqrt(threshold / f)) for c, f in freqs.items()}
    image_factors = np.array(
        [max((category_factors[c] for c in set(cats)), default=1.0) for cats in category_sets],
        dtype=np.float64,
    )
    return category_factors, image_factors


def stochastic_round_indices(
    image_factors: torch.Tensor, generator: torch.Generator, shuffle: bool = True
) -> torch.Tensor:
    """One epoch's dataset indices (int64 tensor): index ``i`` repeated ``floor(r_i) + (U_i <
    frac(r_i))`` times, ``U_i ~ Uniform[0, 1)`` from ``generator``; then permuted with the same
    generator when ``shuffle``, else in ascending index order.

    ``image_factors`` is a float64 tensor of factors ``>= 1``. Integer factors are repeated
    exactly (the uniform draws are still made, so the generator advances the same way).
    """
    floor = torch.floor(image_factors)
    extra = torch.rand(image_factors.shape, generator=generator, dtype=torch.float64)
    reps = floor.to(torch.int64) + (extra < image_factors - floor).to(torch.int64)
    return _repeat_and_shuffle(reps, generator, shuffle)


def ceil_round_indices(
    image_factors: torch.Tensor, generator: torch.Generator, shuffle: bool = True
) -> torch.Tensor:
    """One epoch's dataset indices (int64 tensor): index ``i`` repeated exactly ``ceil(r_i)``
    times, as mmdetection's ``ClassBalancedDataset``; then permuted with ``generator`` when
    ``shuffle``, else in ascending index order (the only random draw is the permutation).

    ``image_factors`` is a float64 tensor of factors ``>= 1``; the epoch has
    ``sum_i ceil(r_i)`` indices whatever the seed.
    """
    reps = torch.ceil(image_factors).to(torch.int64)
    return _repeat_and_shuffle(reps, generator, shuffle)


def _repeat_and_shuffle(
    reps: torch.Tensor, generator: torch.Generator, shuffle: bool
) -> torch.Tensor:
    """``arange(len(reps))`` with index ``i`` repeated ``reps[i]`` times, optionally permuted."""
    indices = torch.repeat_interleave(torch.arange(len(reps)), reps)
    if shuffle:
        indices = indices[torch.randperm(len(indices), generator=generator)]
    return indices


def epoch_repeat_indices(
    image_factors: torch.Tensor,
    generator: torch.Generator,
    rounding: str = "stochastic",
    shuffle: bool = True,
) -> torch.Tensor:
    """One epoch's indices under ``rounding`` (``"ceil"`` or ``"stochastic"``; see the module)."""
    if check_rounding(rounding) == "ceil":
        return ceil_round_indices(image_factors, generator, shuffle)
    return stochastic_round_indices(image_factors, generator, shuffle)


def shard_indices(indices: torch.Tensor, num_replicas: int, rank: int) -> torch.Tensor:
    """Rank ``rank``'s share of an epoch: ``padded[rank::num_replicas]``.

    ``padded`` is ``indices`` extended (cyclically, from its start) to the next multiple of
    ``num_replicas``, so every rank gets ``ceil(len(indices) / num_replicas)`` indices and the
    ranks' positions are disjoint; only the ``< num_replicas`` padding entries are duplicates.
    """
    total = math.ceil(len(indices) / num_replicas) * num_replicas
    pad = total - len(indices)
    if pad:
        repeats = math.ceil(pad / len(indices))
        indices = torch.cat([indices, indices.repeat(repeats)[:pad]])
    return indices[rank:total:num_replicas]


def _distributed_defaults(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    num_replicas, rank = int(num_replicas), int(rank)
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, {num_replicas - 1}], got {rank}")
    return num_replicas, rank


class EpochShardedSampler(Sampler[int]):
    """Base sampler: per-image repeat factors -> a seeded epoch list -> this rank's shard.

    ``image_factors`` are floats ``>= 1`` (one per dataset index); ``rounding`` (``"ceil"`` or
    ``"stochastic"``, see the module docstring) turns them into copies per epoch.
    ``num_replicas`` / ``rank`` default to ``torch.distributed``'s world size / rank when it is
    initialised, else ``1`` / ``0``. Call :meth:`set_epoch` before each epoch (as with
    ``DistributedSampler``); ``len(self)`` is the number of indices this rank yields in the
    current epoch (computed once per epoch and cached, so ``len`` and ``iter`` agree). Both
    roundings shard the same way: ``ceil(epoch length / num_replicas)`` indices per rank.
    """

    def __init__(
        self,
        image_factors: np.ndarray | Sequence[float],
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        rounding: str = "stochastic",
    ) -> None:
        super().__init__()
        self.rounding = check_rounding(rounding)
        factors = np.asarray(image_factors, dtype=np.float64)
        if factors.ndim != 1 or factors.size == 0:
            raise ValueError("empty dataset: no images (category sets) to sample from")
        if not np.all(np.isfinite(factors)) or np.any(factors < 1):
            raise ValueError("image repeat factors must be finite and >= 1")
        factors.setflags(write=False)
        self._image_factors = factors
        self._factors_tensor = torch.from_numpy(factors.copy())
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.num_replicas, self.rank = _distributed_defaults(num_replicas, rank)
        self.epoch = 0
        self._cache: tuple[int, torch.Tensor] | None = None

    @property
    def image_repeat_factors(self) -> np.ndarray:
        """``r(i)`` per dataset index: read-only float64 array of shape ``(num_images,)``."""
        return self._image_factors

    @property
    def num_images(self) -> int:
        """Number of dataset indices (images) sampled from."""
        return len(self._image_factors)

    @property
    def expected_counts(self) -> np.ndarray:
        """Expected copies of each index per epoch, float64 ``(num_images,)``.

        ``ceil(r(i))`` (exact, every epoch) under ``"ceil"``, ``r(i)`` under ``"stochastic"``.
        """
        if self.rounding == "ceil":
            return np.ceil(self._image_factors)
        return self._image_factors.copy()

    @property
    def expected_epoch_length(self) -> float:
        """Expected indices per rank per epoch, before padding: ``sum_i ceil(r(i)) /
        num_replicas`` under ``"ceil"`` (exact), ``sum_i r(i) / num_replicas`` under
        ``"stochastic"``. Epoch-based schedules convert to iterations with it."""
        return float(self.expected_counts.sum()) / self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose indices ``iter``/``len`` use (seeds :func:`epoch_seed`)."""
        self.epoch = int(epoch)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """All ranks' indices of ``epoch`` (default: the current one), before padding/sharding.

        An int64 tensor of dataset indices, identical on every rank for the same seed and epoch.
        """
        epoch = self.epoch if epoch is None else int(epoch)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        return epoch_repeat_indices(self._factors_tensor, generator, self.rounding, self.shuffle)

    def _rank_indices(self) -> torch.Tensor:
        if self._cache is None or self._cache[0] != self.epoch:
            shard = shard_indices(self.epoch_indices(), self.num_replicas, self.rank)
            self._cache = (self.epoch, shard)
        return self._cache[1]

    def __iter__(self) -> Iterator[int]:
        return iter(self._rank_indices().tolist())

    def __len__(self) -> int:
        return len(self._rank_indices())


class RepeatFactorSampler(EpochShardedSampler):
    """LVIS repeat-factor sampler, rounding as mmdetection or as detectron2.

    ``dataset_or_category_sets``: a sequence of per-image LVIS category-id collections (one per
    dataset index) or an object with ``category_sets()`` returning one. ``threshold`` is ``t``,
    a fraction of images (``>= 0``; ``0`` disables repetition). ``rounding="ceil"``: each image
    exactly ``ceil(r(i))`` times per epoch (mmdetection's ``ClassBalancedDataset``);
    ``"stochastic"`` (the default, kept for existing callers): ``r(i)`` times in expectation
    (detectron2's ``RepeatFactorTrainingSampler``). Exposes ``category_repeat_factors`` (dict
    id -> ``r(c)``), ``image_repeat_factors``, ``expected_counts`` and
    ``expected_epoch_length``; see the module docstring for the math.
    """

    def __init__(
        self,
        dataset_or_category_sets: Any,
        threshold: float = 1e-3,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        rounding: str = "stochastic",
    ) -> None:
        threshold = _check_threshold(threshold)
        check_rounding(rounding)
        category_sets = resolve_category_sets(dataset_or_category_sets)
        category_factors, image_factors = repeat_factors(category_sets, threshold)
        super().__init__(image_factors, seed, shuffle, num_replicas, rank, rounding)
        self.threshold = threshold
        self.category_repeat_factors: dict[Hashable, float] = category_factors


class UniformSampler(EpochShardedSampler):
    """The no-RFS baseline: each image once per epoch, seeded shuffling and sharding as RFS.

    Same arguments as :class:`RepeatFactorSampler` less ``threshold`` and ``rounding``; only the
    number of images is used. For equal ``seed``/``epoch`` it yields exactly what
    ``RepeatFactorSampler`` with ``threshold=0`` and ``rounding="stochastic"`` yields (with
    ``"ceil"`` also a permutation of the images, but another one: no Bernoulli draws precede
    it).
    """

    def __init__(
        self,
        dataset_or_category_sets: Any,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        num_images = len(resolve_category_sets(dataset_or_category_sets))
        super().__init__(np.ones(num_images), seed, shuffle, num_replicas, rank)


def build_sampler(
    kind: str,
    category_sets: Any,
    threshold: float = 1e-3,
    seed: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
    rounding: str = "stochastic",
) -> EpochShardedSampler:
    """A shuffling training sampler by name: ``"rfs"`` or ``"uniform"`` (``threshold`` and
    ``rounding`` ignored).

    ``category_sets`` is anything :class:`RepeatFactorSampler` accepts. Raises ``ValueError``
    naming ``kind`` when it is not one of :data:`SAMPLER_KINDS`, and ``rounding`` when it is
    not one of :data:`ROUNDINGS` (for either kind).
    """
    check_rounding(rounding)
    if kind == "rfs":
        return RepeatFactorSampler(
            category_sets, threshold, seed, num_replicas=num_replicas, rank=rank, rounding=rounding
        )
    if kind == "uniform":
        return UniformSampler(category_sets, seed, num_replicas=num_replicas, rank=rank)
    raise ValueError(f"unknown sampler kind {kind!r}; expected one of {SAMPLER_KINDS}")


# ----------------------------------------------------------------------------- what an epoch shows


def sampling_composition(
    category_sets: list, frequency: dict[int, str], image_weights: np.ndarray
) -> pd.Series:
    """Share of sampled (image, category) occurrences falling in each frequency group.

    ``category_sets[i]`` are the LVIS category ids of dataset image ``i``, ``frequency`` maps an
    id to "r"/"c"/"f", ``image_weights[i]`` is how often image ``i`` is drawn in an epoch (its
    repeat factor for the expectation, its observed count for one sampled epoch). Returns a
    Series indexed r, c, f that sums to 1:
    ``share(g) = sum_i w_i * |{c in C_i : group(c) = g}| / sum_i w_i * |C_i|``.
    """
    totals = dict.fromkeys(FREQUENCY_GROUPS, 0.0)
    for cats, weight in zip(
        category_sets, np.asarray(image_weights, dtype=np.float64), strict=True
    ):
        for c in cats:
            totals[frequency[c]] += weight
    total = sum(totals.values()) or 1.0
    return pd.Series({g: totals[g] / total for g in FREQUENCY_GROUPS}, name="share")


def rfs_composition(
    category_sets: list,
    frequency: dict[int, str],
    threshold: float,
    seed: int = 0,
    rounding: str = "stochastic",
) -> pd.DataFrame:
    """How RFS changes what one epoch shows the model, per frequency group (rows r, c, f).

    Columns (each sums to 1, see :func:`sampling_composition`):
    ``uniform`` (every image once), ``RFS expected`` (images weighted by their repeat factor
    ``r(i)``), ``RFS observed`` (the counts of one sampled epoch, epoch 0 of
    :class:`RepeatFactorSampler` with ``seed`` and ``rounding``, :data:`ROUNDINGS`).
    ``frame.attrs["epoch_images"]`` holds the number of images one epoch has under each
    column's sampling.
    """
    sampler = RepeatFactorSampler(
        category_sets, threshold, seed=seed, num_replicas=1, rank=0, rounding=rounding
    )
    image_factors = sampler.image_repeat_factors
    observed = np.bincount(sampler.epoch_indices(0).numpy(), minlength=len(category_sets))
    weights = {
        "uniform": np.ones(len(category_sets)),
        "RFS expected": image_factors,
        "RFS observed": observed,
    }
    frame = pd.DataFrame(
        {name: sampling_composition(category_sets, frequency, w) for name, w in weights.items()}
    )
    frame.attrs["epoch_images"] = {name: float(np.sum(w)) for name, w in weights.items()}
    return frame


def repeat_factor_table(
    category_factors: dict[int, float], frequency: dict[int, str]
) -> pd.DataFrame:
    """Per frequency group (rows r, c, f): how many categories, how many RFS repeats, how much.

    ``category_factors`` maps an LVIS category id to ``r(c)`` (see
    :func:`repeat_factors`), ``frequency`` an id to "r"/"c"/"f". Columns:
    ``categories``, ``repeated`` (``r(c) > 1``), ``mean r(c)``, ``max r(c)``.
    """
    frame = pd.DataFrame(
        {"factor": list(category_factors.values())},
        index=pd.Index([frequency[c] for c in category_factors], name="group"),
    )
    grouped = frame.groupby(level="group")["factor"]
    table = pd.DataFrame(
        {
            "categories": grouped.size(),
            "repeated": grouped.apply(lambda f: int((f > 1).sum())),
            "mean r(c)": grouped.mean(),
            "max r(c)": grouped.max(),
        }
    )
    return table.reindex(list(FREQUENCY_GROUPS)).fillna(0)
