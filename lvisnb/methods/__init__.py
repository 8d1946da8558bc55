"""Long-tail methods (notebook 05): the comparison of sampling and classification losses over
seeds under the decoupled (cRT) or end-to-end protocol, its tables, paired differences and
verdicts, the leaderboard of runs, and mmdetection's published numbers.

Names are imported on first use (:mod:`lvisnb._lazy`).
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    # the comparison's runs (torch)
    "arms": "long_tail_runs",
    "prepare_decoupled": "long_tail_runs",
    "run_decoupled": "long_tail_runs",
    "run_end_to_end": "long_tail_runs",
    "runs_table": "long_tail_runs",
    # its tables (pandas only)
    "metric_columns": "long_tail_summary",
    "with_arm": "long_tail_summary",
    "paired_differences": "long_tail_summary",
    "interval_table": "long_tail_summary",
    "difference_table": "long_tail_summary",
    "verdicts": "long_tail_summary",
    "write_summary": "long_tail_summary",
    # runs side by side
    "leaderboard": "ranking",
    "over_seeds": "ranking",
    "read_run": "ranking",
    # decoupled retraining, step by step
    "cached_roi_features": "decoupled_features",
    "retrain_classifier": "decoupled_retraining",
    "score_val": "decoupled_scoring",
    "segment_val": "decoupled_scoring",
    # published numbers
    "seed_table": "published",
    "result_row": "published",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
