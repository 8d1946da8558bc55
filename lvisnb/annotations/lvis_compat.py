"""The official ``lvis`` API (0.5.3), usable with numpy 2 and with pre-validated data.

``lvis`` 0.5.3 is the only release; its ``LVISEval.accumulate`` calls ``np.float``, which numpy
1.24 removed. :class:`LVISEval` here runs the *official* ``accumulate`` code unchanged, but with
its module-level name ``np`` bound to a read-only view of numpy that also answers ``float``.
Nothing is assigned into the ``numpy`` module, so other code still sees numpy 2 as it is.
"""

from __future__ import annotations

import types

import lvis
import lvis.eval
import numpy as np


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
