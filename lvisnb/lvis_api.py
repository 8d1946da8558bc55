"""The official ``lvis`` API (0.5.3): usable with numpy 2 and pre-validated data, and as a backend.

``lvis`` 0.5.3 is the only release; its ``LVISEval.accumulate`` calls ``np.float``, which numpy
1.24 removed. :class:`LVISEval` here runs the *official* ``accumulate`` code unchanged, but with
its module-level name ``np`` bound to a read-only view of numpy that also answers ``float``.
Nothing is assigned into the ``numpy`` module, so other code still sees numpy 2 as it is.
"""

from __future__ import annotations

import logging
import types
import warnings

import lvis
import lvis.eval
import numpy as np

from lvisnb.detections import Detections, rle_dicts
from lvisnb.ground_truth import FREQUENCY_GROUPS, GroundTruth
from lvisnb.metrics import Accumulated, interpolated_precision, pool_columns, pool_metrics


class _NumpyWithFloat(types.ModuleType):
    """numpy as seen by ``lvis.eval``: every attribute of numpy plus ``float`` (the builtin).

    ``np.float`` was an alias of the builtin ``float`` before numpy 1.24, so this restores the
    exact old meaning.
    """

    float = float

    def __getattr__(self, name: str):
        return getattr(np, name)


def _with_numpy_float(function: types.FunctionType) -> types.FunctionType:
    """A copy of ``function`` whose global ``np`` resolves to :class:`_NumpyWithFloat`."""
    namespace = dict(function.__globals__)
    namespace["np"] = _NumpyWithFloat("numpy")
    patched = types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__, function.__closure__
    )
    patched.__doc__ = function.__doc__
    return patched


class LVISEval(lvis.LVISEval):
    """``lvis.LVISEval`` whose ``accumulate`` step works with numpy >= 1.24.

    Same constructor as the official class: ``LVISEval(lvis_gt, lvis_dt, iou_type)`` with
    ``iou_type`` "bbox" or "segm"; ``run()`` then ``get_results()`` gives AP, AP50, AP75, APs,
    APm, APl, APr, APc, APf, AR@300, ARs@300, ARm@300, ARl@300.
    """

    accumulate = _with_numpy_float(lvis.eval.LVISEval.accumulate)


class LVISFromDict(lvis.LVIS):
    """``lvis.LVIS`` built from an already loaded (and validated) annotation dict.

    The official constructor reads the file itself with ``json.load``; this one takes the dict,
    so that the kit can parse once, check the records and report errors with the file name.
    """

    def __init__(self, dataset: dict, source: str = "<dict>"):
        self._preloaded = dataset
        self.source = source
        super().__init__(source)
        del self._preloaded

    def _load_json(self, path):  # noqa: ARG002 - signature of the parent
        return self._preloaded


class LvisBackend:
    """The official ``lvis`` API as an evaluation backend: ``LVISResults`` + :class:`LVISEval` on
    fresh records, behind the interface :func:`lvisnb.evaluate.evaluate` drives (``standard`` and
    ``fixed`` return (:class:`~lvisnb.metrics.Accumulated`, metrics))."""

    def __init__(self, truth: GroundTruth, det: Detections, segm_area: str = "mask"):
        self.truth, self.det, self.segm_area = truth, det, segm_area
        ds = dict(truth.dataset)
        ds["annotations"] = [dict(a) for a in ds["annotations"]]  # LVISEval rewrites masks
        self.lvis_gt = LVISFromDict(ds, truth.source)

    def _records(self, iou_type: str, indices: np.ndarray) -> list[dict]:
        """Records for ``LVISResults``: boxes for bbox (when the results have them), masks
        for segm, with their boxes only for ``segm_area="box"``, so that ``LVISResults`` takes
        the area from the right one (see :func:`result_areas`)."""
        det = self.det
        columns = {
            "image_id": det.image_id[indices].tolist(),
            "category_id": det.category_id[indices].tolist(),
            "score": det.score[indices].tolist(),
        }
        with_box = iou_type == "bbox" or self.segm_area == "box"
        if with_box and det.bbox is not None:
            columns["bbox"] = det.bbox[indices].tolist()
        if iou_type == "segm" or det.bbox is None:
            columns["segmentation"] = rle_dicts(det, indices)
        names = tuple(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]

    def _run(self, iou_type: str, indices: np.ndarray, max_dets: int):
        logger = logging.getLogger("lvis.results")  # "Assuming user provided the results in
        level = logger.level  # correct format": they were validated
        logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():  # LVISResults calls the deprecated logger.warn
                warnings.simplefilter("ignore", DeprecationWarning)
                records = self._records(iou_type, indices)
                results = lvis.LVISResults(self.lvis_gt, records, max_dets)
        finally:
            logger.setLevel(level)
        ev = LVISEval(self.lvis_gt, results, iou_type)
        if max_dets > 0:
            ev.params.max_dets = max_dets
        ev.run()
        return ev

    def standard(self, iou_type: str, indices: np.ndarray, max_dets: int):
        ev = self._run(iou_type, indices, max_dets)
        acc = Accumulated(ev.eval["precision"], ev.eval["recall"])
        return acc, {name: float(value) for name, value in ev.get_results().items()}

    def fixed(self, iou_type: str, indices: np.ndarray):
        ev = self._run(iou_type, indices, -1)
        official = ev.get_results()
        fixed = {"APfixed": float(official["AP"])}
        fixed |= {f"APfixed_{g}": float(official[f"AP{g}"]) for g in FREQUENCY_GROUPS}
        pooled = {
            pool: pooled_ap_from_lvis_eval(ev, columns)
            for pool, columns in pool_columns(self.truth).items()
        }
        return Accumulated(ev.eval["precision"], ev.eval["recall"]), fixed | pool_metrics(pooled)


def pooled_ap_from_lvis_eval(ev, columns: np.ndarray) -> float:
    """AP-pool of categories ``columns`` from an evaluated ``lvis.LVISEval`` (area "all").

    The per-(image, category) results ``ev.eval_imgs`` are concatenated image by image, then
    category by category (as ``LVISPooledEval`` of Dave et al.), sorted by descending score
    (stable) and turned into one precision curve per IoU threshold with
    :func:`interpolated_precision`; -1 when the pool has no GT.
    """
    num_images = len(ev.params.img_ids)
    num_areas = len(ev.params.area_rng)
    per_image = [
        ev.eval_imgs[c * num_areas * num_images + i]
        for i in range(num_images)
        for c in columns.tolist()
    ]
    per_image = [e for e in per_image if e is not None]
    if not per_image:
        return -1.0
    num_gt = int(sum(np.count_nonzero(e["gt_ignore"] == 0) for e in per_image))
    if num_gt == 0:
        return -1.0
    scores = np.concatenate([np.asarray(e["dt_scores"], dtype=np.float64) for e in per_image])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e["dt_matches"] for e in per_image], axis=1)[:, order] > 0
    ignored = np.concatenate([e["dt_ignore"] for e in per_image], axis=1)[:, order] > 0
    precision = interpolated_precision(matched & ~ignored, ~matched & ~ignored, num_gt)
    return float(precision.mean())
