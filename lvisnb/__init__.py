"""lvisnb: a notebook-first research kit for long-tail instance segmentation on LVIS.

The package follows the flow of a study, one subpackage per step (a lower step never imports a
higher one):

- :mod:`lvisnb.annotations`: LVIS files read and validated once; categories, masks, toy-LVIS,
  long-tail statistics (notebook 01);
- :mod:`lvisnb.data`: the torch ``Dataset``, transforms and repeat-factor sampling;
- :mod:`lvisnb.model`: mmdetection's LVIS Mask R-CNN rows as presets, the model they build,
  the long-tail losses, checkpoints;
- :mod:`lvisnb.engine`: training and inference (notebook 02);
- :mod:`lvisnb.evaluation`: LVIS results, the official metrics, intervals, comparisons
  (notebook 03);
- :mod:`lvisnb.methods`: the long-tail comparison (notebook 05);
- :mod:`lvisnb.viz`: plots, masks, federated verdicts, the browser (notebook 04).

The calls a notebook or a script makes most are here at the top; every name is imported on
first use (:mod:`lvisnb._lazy`), so ``import lvisnb`` loads neither torch nor pandas::

    import lvisnb

    toy = lvisnb.ensure_toy_lvis()
    report = lvisnb.long_tail_report(lvisnb.read_tables(toy["train"]))
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # annotations: read, analyse, make toy-LVIS
    "read_tables": "annotations.tables",
    "load_lvis": "annotations.validate",
    "split_files": "annotations.images",
    "long_tail_report": "annotations.statistics",
    "make_toy_lvis": "annotations.toy",
    "ensure_toy_lvis": "annotations.toy",
    # data and model
    "LVISDetection": "data.dataset",
    "PRESETS": "model.presets",
    "get_preset": "model.presets",
    "build_model": "model.builder",
    # train and predict
    "TrainConfig": "engine.config",
    "train": "engine.trainer",
    "load_model": "engine.model_source",
    "load_trained_model": "engine.model_source",
    "predict": "engine.inference",
    "save_results": "engine.inference",
    # evaluate and compare
    "load_ground_truth": "evaluation.ground_truth",
    "evaluate": "evaluation.evaluator",
    "compare": "evaluation.comparison",
    "format_summary": "evaluation.report",
    "save_metrics": "evaluation.report",
    # look
    "load_scene": "viz.scene",
}
_STEPS = ("annotations", "data", "model", "engine", "evaluation", "methods", "viz")
__all__ = sorted(_EXPORTS) + list(_STEPS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, _STEPS)
