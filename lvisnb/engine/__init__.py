"""Training and inference: the training configuration, setup, one iteration and the loop
(exact resume, AMP, torchrun), the lr schedule, run directories, the device, and a trained
model's predictions as LVIS results (notebook 02).

Names are imported on first use (:mod:`lvisnb._lazy`).
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "TrainConfig": "config",
    "TrainResult": "trainer",
    "train": "trainer",
    "setup_training": "setup",
    "train_step": "loop",
    "resolve_device": "device",
    "autocast_dtype": "device",
    "read_log": "run_dir",
    "read_config": "run_dir",
    "write_training_summary": "run_dir",
    "load_model": "model_source",
    "load_trained_model": "model_source",
    "predict": "inference",
    "save_results": "inference",
    "results_for_evaluation": "run_results",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
