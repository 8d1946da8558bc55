"""Drawing: plots of the long tail, of training and of AP (seaborn/matplotlib), masks and
boxes on an image, LVIS's federated verdicts per prediction, the scene of notebook 04, category
galleries and the ipywidgets browser. torch is never imported here.

Names are imported on first use (:mod:`lvisnb._lazy`), so ``from lvisnb import viz`` loads no
plotting library until a figure is drawn.
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    # figure style and saving
    "save": "plots",
    "FREQUENCY_COLOURS": "plots",
    # the long tail (notebook 01) and sampling (notebook 02)
    "rank_frequency": "plots",
    "group_shares": "plots",
    "size_distribution": "plots",
    "instances_per_image": "plots",
    "federated_labels": "plots",
    "repeat_factors_by_group": "plots",
    "epoch_composition": "plots",
    # training and AP (notebooks 02, 03, 05)
    "loss_curve": "metric_plots",
    "LiveLossPlot": "metric_plots",
    "ap_by_group": "metric_plots",
    "ap_by_group_with_errors": "metric_plots",
    "ap_vs_train_count": "metric_plots",
    "paired_differences": "metric_plots",
    # one image, its verdicts, the scene and the browser (notebook 04)
    "load_scene": "scene",
    "Scene": "scene",
    "draw_instances": "overlay",
    "draw_federated": "overlay",
    "plot_instances": "overlay",
    "gt_beside_predictions": "overlay",
    "image_verdict": "verdicts",
    "verdict_table": "verdicts",
    "category_gallery": "gallery",
    "gallery_category": "gallery",
    "browse": "browser",
    "show": "browser",
    "view_grid": "browser",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
