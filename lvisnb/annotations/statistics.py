"""Long-tail statistics of an LVIS annotation file, as pandas DataFrames.

Every function takes :class:`lvisnb.annotations.tables.LVISTables` (from
:func:`lvisnb.annotations.tables.read_tables`), so a 1.27M-instance file is analysed from flat
numpy columns, never from per-annotation dicts.

Vocabulary: a category's *image count* is the number of images in which it is annotated (the
quantity LVIS's r/c/f rule uses), its *instance count* the number of its annotations. Sizes are
COCO's: small ``area < 32^2``, medium ``32^2 <= area < 96^2``, large ``area >= 96^2`` (px^2, mask
area), the thresholds ``lvis.LVISEval`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lvisnb.annotations.categories import (
    FREQUENCY_GROUPS,
    FREQUENCY_NAMES,
    categories,
    frequency_of,
    images_per_category,
)
from lvisnb.annotations.tables import LVISTables

SIZE_BINS = (0.0, 32.0**2, 96.0**2, np.inf)
SIZE_NAMES = ("small", "medium", "large")


def category_counts(tables: LVISTables) -> pd.DataFrame:
    """One row per category, most images first.

    Columns: ``id``, ``name``, ``frequency`` (r/c/f from the file), ``image_count`` and
    ``instance_count`` (computed from the annotations), ``frequency_from_counts`` (LVIS's rule
    applied to ``image_count``, equal to ``frequency`` on a train file), ``rank`` (1 = most
    images) and ``image_fraction`` (image_count / number of images, the ``f(c)`` of RFS).
    """
    anns = tables.annotations
    instance_count = anns.groupby("category_id").size()
    frame = tables.categories[["id", "name", "frequency"]].copy()
    frame["image_count"] = images_per_category(anns["image_id"], anns["category_id"], frame["id"])
    frame["instance_count"] = frame["id"].map(instance_count).fillna(0).astype(np.int64)
    frame["frequency_from_counts"] = pd.Categorical(
        [frequency_of(int(n)) if n else None for n in frame["image_count"]],
        categories=list(FREQUENCY_GROUPS),
    )
    frame = frame.sort_values(["image_count", "id"], ascending=[False, True])
    frame["rank"] = np.arange(1, len(frame) + 1)
    frame["image_fraction"] = frame["image_count"] / max(len(tables.images), 1)
    return frame.reset_index(drop=True)


def frequency_groups(tables: LVISTables, counts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The r/c/f table: one row per group (index ``r``, ``c``, ``f``).

    Columns: ``group`` (rare/common/frequent), ``categories``, ``category_share``, ``instances``,
    ``instance_share``, ``images_with_group`` (images having at least one instance of the group),
    ``median_image_count`` over the group's categories.
    """
    counts = category_counts(tables) if counts is None else counts
    group_of = counts.set_index("id")["frequency"]
    anns_group = tables.annotations["category_id"].map(group_of)
    rows = []
    for g in FREQUENCY_GROUPS:
        members = counts[counts["frequency"] == g]
        in_group = anns_group == g
        rows.append(
            {
                "frequency": g,
                "group": FREQUENCY_NAMES[g],
                "categories": len(members),
                "category_share": len(members) / max(len(counts), 1),
                "instances": int(in_group.sum()),
                "instance_share": float(in_group.mean()) if len(in_group) else 0.0,
                "images_with_group": int(
                    tables.annotations.loc[in_group.to_numpy(), "image_id"].nunique()
                ),
                "median_image_count": float(members["image_count"].median())
                if len(members)
                else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("frequency")


def instances_per_image(tables: LVISTables) -> pd.DataFrame:
    """Per image: ``image_id``, ``instances`` and ``categories`` (annotated, i.e. positive)."""
    anns = tables.annotations
    per_image = anns.groupby("image_id").agg(
        instances=("id", "size"), categories=("category_id", "nunique")
    )
    frame = pd.DataFrame({"image_id": tables.images["id"].to_numpy()})
    frame = frame.join(per_image, on="image_id").fillna(0)
    return frame.astype({"instances": np.int64, "categories": np.int64})


def object_sizes(tables: LVISTables, counts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Instances per COCO size class overall and per frequency group.

    Rows: ``all``, ``r``, ``c``, ``f``; columns: ``small``, ``medium``, ``large`` (counts) and
    the same with a ``_share`` suffix (fractions of the row).
    """
    counts = category_counts(tables) if counts is None else counts
    anns = tables.annotations
    size = pd.cut(anns["area"], SIZE_BINS, labels=SIZE_NAMES, right=False)
    group = anns["category_id"].map(counts.set_index("id")["frequency"])
    table = pd.crosstab(group, size).reindex(
        index=list(FREQUENCY_GROUPS), columns=list(SIZE_NAMES), fill_value=0
    )
    table.loc["all"] = table.sum()
    table = table.loc[["all", *FREQUENCY_GROUPS]]
    table.index.name = "frequency"
    table.columns = list(SIZE_NAMES)
    shares = table.div(table.sum(axis=1).replace(0, 1), axis=0).add_suffix("_share")
    return pd.concat([table, shares], axis=1)


def federated_labels(tables: LVISTables) -> pd.DataFrame:
    """Per image, how many categories are positive, verified negative, not exhaustive.

    Columns: ``image_id``, ``positive`` (categories with annotations), ``negative``
    (``neg_category_ids``), ``not_exhaustive`` (``not_exhaustive_category_ids``), ``verified``
    (positive + negative: the only categories LVIS evaluation scores on this image) and
    ``unverified`` (all others, whose detections the evaluation ignores).
    """
    positive = tables.annotations.groupby("image_id")["category_id"].nunique()
    images = tables.images
    frame = pd.DataFrame(
        {
            "image_id": images["id"].to_numpy(),
            "positive": images["id"].map(positive).fillna(0).astype(np.int64).to_numpy(),
            "negative": images["neg_category_ids"].map(len).to_numpy(),
            "not_exhaustive": images["not_exhaustive_category_ids"].map(len).to_numpy(),
        }
    )
    frame["verified"] = frame["positive"] + frame["negative"]
    frame["unverified"] = len(tables.categories) - frame["verified"]
    return frame


def federated_summary(federated: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and max of each :func:`federated_labels` column (rows), per image."""
    columns = ["positive", "negative", "not_exhaustive", "verified", "unverified"]
    return federated[columns].agg(["mean", "median", "max"]).T


@dataclass(frozen=True)
class RankFrequencyFit:
    """A power law ``image_count ~ C * rank^(-alpha)`` fitted in log-log space.

    ``alpha`` is the Zipf exponent, ``log10_c`` the intercept, ``r2`` the coefficient of
    determination of the least-squares line ``log10(count) = log10_c - alpha * log10(rank)``
    over categories with at least one image.
    """

    alpha: float
    log10_c: float
    r2: float
    categories: int

    def predict(self, rank: np.ndarray) -> np.ndarray:
        return 10**self.log10_c * np.asarray(rank, dtype=np.float64) ** (-self.alpha)


def rank_frequency_fit(counts: pd.DataFrame, column: str = "image_count") -> RankFrequencyFit:
    """Fit :class:`RankFrequencyFit` to a :func:`category_counts` table (or any with ``rank``)."""
    used = counts[counts[column] > 0]
    if len(used) < 2:
        raise ValueError("a rank-frequency fit needs at least two categories with images")
    x = np.log10(used["rank"].to_numpy(np.float64))
    y = np.log10(used[column].to_numpy(np.float64))
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1 - (residual**2).sum() / total if total > 0 else 1.0
    return RankFrequencyFit(float(-slope), float(intercept), float(r2), len(used))


@dataclass
class LongTailReport:
    """Everything notebook 01 shows, computed once from one annotation file."""

    counts: pd.DataFrame
    groups: pd.DataFrame
    per_image: pd.DataFrame
    sizes: pd.DataFrame
    federated: pd.DataFrame
    fit: RankFrequencyFit
    num_images: int
    num_instances: int

    def summary(self) -> dict:
        """JSON-ready headline numbers (what notebook 01 writes to ``stats.json``)."""
        groups = self.groups
        return {
            "images": self.num_images,
            "instances": self.num_instances,
            "categories": len(self.counts),
            "categories_with_images": int((self.counts["image_count"] > 0).sum()),
            "groups": {
                g: {
                    "categories": int(groups.loc[g, "categories"]),
                    "category_share": float(groups.loc[g, "category_share"]),
                    "instances": int(groups.loc[g, "instances"]),
                    "instance_share": float(groups.loc[g, "instance_share"]),
                }
                for g in FREQUENCY_GROUPS
            },
            "instances_per_image": {
                "mean": float(self.per_image["instances"].mean()),
                "median": float(self.per_image["instances"].median()),
                "max": int(self.per_image["instances"].max()),
            },
            "sizes": {name: float(self.sizes.loc["all", f"{name}_share"]) for name in SIZE_NAMES},
            "federated_per_image": {
                col: float(self.federated[col].mean())
                for col in ("positive", "negative", "not_exhaustive", "verified")
            },
            "rank_frequency_fit": {
                "alpha": self.fit.alpha,
                "log10_c": self.fit.log10_c,
                "r2": self.fit.r2,
            },
            "max_image_count": int(self.counts["image_count"].max()),
            "min_image_count": int(self.counts["image_count"].min()),
        }


def long_tail_report(tables: LVISTables) -> LongTailReport:
    """Run every analysis of this module on ``tables`` (``ValueError`` naming the file when
    fewer than two categories have images: no long tail to fit)."""
    counts = category_counts(tables)
    with_images = int((counts["image_count"] > 0).sum())
    if with_images < 2:
        raise ValueError(
            f"{tables.source}: {with_images} category(ies) annotated in any image; a long-tail "
            "report (rank-frequency fit) needs at least two"
        )
    return LongTailReport(
        counts=counts,
        groups=frequency_groups(tables, counts),
        per_image=instances_per_image(tables),
        sizes=object_sizes(tables, counts),
        federated=federated_labels(tables),
        fit=rank_frequency_fit(counts),
        num_images=len(tables.images),
        num_instances=len(tables.annotations),
    )


def lvis_v1_train_counts() -> pd.DataFrame:
    """Real LVIS v1 train image counts (embedded metadata) ranked like :func:`category_counts`."""
    frame = categories("v1")[["id", "name", "frequency", "v1_train_image_count"]]
    frame = frame.rename(columns={"v1_train_image_count": "image_count"})
    frame["image_count"] = frame["image_count"].astype(np.int64)
    frame = frame.sort_values(["image_count", "id"], ascending=[False, True])
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame.reset_index(drop=True)
