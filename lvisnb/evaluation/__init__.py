"""Evaluation: LVIS results files read and validated once (the C column reader, the general
path), the ground truth, the official metrics from two interchangeable backends (hotcoco's
engine fed to equal ``LVISEval``, and ``LVISEval`` itself), AP-fixed / AP-pool, bootstrap
intervals, paired comparisons, and the reports of notebook 03. No torch here.

Names are imported on first use (:mod:`lvisnb._lazy`).
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "load_ground_truth": "ground_truth",
    "GroundTruth": "ground_truth",
    "read_detections": "result_records",
    "read_results": "result_records",
    "Detections": "results",
    "evaluate": "evaluator",
    "Evaluation": "outcome",
    "compare": "comparison",
    "Comparison": "comparison",
    "best_and_worst": "comparison",
    "format_summary": "report",
    "save_metrics": "report",
    "save_per_category": "report",
    "write_evaluation_summary": "report",
    "metric_names": "metrics",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
