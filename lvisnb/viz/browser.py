"""An ipywidgets browser over a :class:`~lvisnb.viz.scene.Scene`, and its static stand-in.

:class:`Browser` (``lvisnb.viz.browse(...)``) shows one image at a time in up to three panels,
ground truth, predictions above a score threshold and the federated view
(:func:`lvisnb.viz.overlay.draw_federated`), each an ``ipywidgets.Image`` holding a PNG. Controls:
an index slider and an image-id box, a category filter (a combobox that searches as you
type, its options narrowed by a rare / common / frequent toggle), the score threshold,
toggles for the three panels, and "next image with this category".

Only what a change affects is redrawn: the score threshold redraws the predictions and
federated panels, not the ground truth; a panel that is hidden is not drawn until it is shown
again; the image is read once while it stays in the scene's cache. ``render_counts`` counts
the drawings of each panel, for tests and the curious.

Without a front end (papermill, CI) a widget shows nothing; :func:`view_grid` draws the same
panels for several images as one matplotlib figure, and :func:`show` picks between the two
(:func:`front_end_attached`).
"""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lvisnb.annotations.categories import FREQUENCY_GROUPS, FREQUENCY_NAMES
from lvisnb.annotations.images import ImageReadError
from lvisnb.viz.overlay import draw_federated, draw_instances
from lvisnb.viz.scene import Scene, load_scene

VIEWS = ("gt", "predictions", "federated")
VIEW_TITLES = {"gt": "ground truth", "predictions": "predictions", "federated": "federated view"}


def draw_view(
    ax: Axes,
    scene: Scene,
    image_id: int,
    view: str,
    score_thr: float = 0.3,
    category_id: int | None = None,
    iou_type: str | None = None,
) -> Axes:
    """Draw panel ``view`` (one of :data:`VIEWS`) of ``image_id`` on ``ax``; with
    ``category_id`` only that category's instances. An unreadable image leaves its reason on
    the axes instead of raising."""
    try:
        image = scene.image(image_id)
    except ImageReadError as error:
        ax.text(
            0.5,
            0.5,
            f"image {image_id} could not be read:\n{error}",
            ha="center",
            va="center",
            fontsize=7,
            wrap=True,
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return ax
    if view == "gt":
        shown = scene.ground_truth(image_id, category_id)
        draw_instances(ax, image, shown, scene.frequency, scene.names)
        title = f"ground truth ({len(shown)})"
    elif view == "predictions":
        shown = scene.predictions(image_id, score_thr, category_id)
        draw_instances(ax, image, shown, scene.frequency, scene.names)
        title = f"predictions >= {score_thr:g} ({len(shown)})"
    elif view == "federated":
        verdict = scene.verdict(image_id, score_thr, category_id, iou_type)
        draw_federated(ax, image, verdict, scene.frequency, scene.names)
        title = f"federated view at IoU 0.5, score >= {score_thr:g}"
    else:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    ax.set_title(f"image {image_id}: {title}", fontsize=8)
    return ax


def view_grid(
    scene: Scene,
    image_ids: list[int],
    views: tuple[str, ...] = VIEWS,
    score_thr: float = 0.3,
    category=None,
    iou_type: str | None = None,
    panel_size: float = 4.0,
) -> Figure:
    """One row per image, one column per view (:func:`draw_view`); ``category`` (id or name,
    None for all) filters the instances drawn. Views needing results are dropped when the
    scene has none."""
    views = tuple(v for v in views if v == "gt" or scene.has_results) or ("gt",)
    if not image_ids:
        raise ValueError("view_grid needs at least one image id")
    category_id = None if category in (None, "") else scene.category_id(category)
    fig, axes = plt.subplots(
        len(image_ids),
        len(views),
        figsize=(panel_size * len(views), panel_size * len(image_ids)),
        squeeze=False,
        layout="constrained",
    )
    for row, image_id in zip(axes, image_ids, strict=True):
        for ax, view in zip(row, views, strict=True):
            draw_view(ax, scene, image_id, view, score_thr, category_id, iou_type)
    return fig


def _png(scene, image_id, view, score_thr, category_id, iou_type, size) -> bytes:
    figure = Figure(figsize=(size, size))  # not pyplot: nothing leaks into the notebook
    draw_view(figure.subplots(), scene, image_id, view, score_thr, category_id, iou_type)
    figure.set_layout_engine("constrained")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def category_option(scene: Scene, category_id: int) -> str:
    """The combobox text of a category: ``"name · rare · id 3"``."""
    group = FREQUENCY_NAMES[scene.frequency[category_id]]
    return f"{scene.names[category_id]} · {group} · id {category_id}"


class Browser(widgets.VBox):
    """The interactive browser (see the module docstring). Build it with :func:`browse`.

    Widgets (public, for scripting and tests): ``index`` (IntSlider over ``image_ids``),
    ``image_id`` (IntText), ``group`` (ToggleButtons all/rare/common/frequent), ``category``
    (Combobox; "" means all), ``score`` (FloatSlider), ``show`` (dict view ->
    ToggleButton), ``next_button``, ``panels`` (dict view -> Image), ``status`` (HTML).
    """

    def __init__(
        self,
        scene: Scene,
        image_ids: list[int] | None = None,
        score_thr: float = 0.3,
        category=None,
        iou_type: str | None = None,
        panel_size: float = 4.5,
        start: int | None = None,
    ):
        self.scene = scene
        self.image_ids = list(image_ids) if image_ids else list(scene.image_ids)
        unknown = [i for i in self.image_ids if i not in scene.images]
        if unknown:
            raise ValueError(f"image id {unknown[0]} is not in {scene.source}")
        self.iou_type = iou_type
        self.panel_size = panel_size
        self.render_counts: Counter[str] = Counter()
        self._drawn: dict[str, tuple] = {}
        self._option_to_id = {category_option(scene, c): c for c in sorted(scene.names)}

        if start is not None and start not in self.image_ids:
            raise ValueError(f"start image id {start} is not among the images browsed")
        self._make_widgets(0 if start is None else self.image_ids.index(start), score_thr)
        self.status = widgets.HTML()
        if category not in (None, ""):
            self.category.value = category_option(scene, scene.category_id(category))

        self.index.observe(self._on_index, "value")
        self.image_id.observe(self._on_image_id, "value")
        self.group.observe(self._on_group, "value")
        self.category.observe(lambda _: self._refresh(VIEWS), "value")
        self.score.observe(lambda _: self._refresh(("predictions", "federated")), "value")
        for view, toggle in self.show.items():
            toggle.observe(lambda _, view=view: self._refresh((view,)), "value")
        self.next_button.on_click(lambda _: self.next_with_category())

        controls = widgets.VBox(
            [
                widgets.HBox([self.index, self.image_id]),
                widgets.HBox([self.group, self.category]),
                widgets.HBox([self.score, *self.show.values(), self.next_button]),
            ]
        )
        row = widgets.HBox(list(self.panels.values()), layout=widgets.Layout(width="100%"))
        super().__init__([controls, self.status, row])
        self.add_class("lvisnb-browser")
        self._refresh(VIEWS)

    def _make_widgets(self, first: int, score_thr: float) -> None:
        """The controls (image, group, category, score, views) and the image panels."""
        self.index = widgets.IntSlider(
            first, 0, max(len(self.image_ids) - 1, 0), description="image", continuous_update=False
        )
        self.image_id = widgets.IntText(self.image_ids[first], description="image id")
        self.group = widgets.ToggleButtons(
            options=[("all", "")] + [(FREQUENCY_NAMES[g], g) for g in FREQUENCY_GROUPS],
            description="group",
        )
        self.category = widgets.Combobox(
            options=self._category_options(""),
            placeholder="type to search; empty: all",
            description="category",
            ensure_option=True,
        )
        self.score = widgets.FloatSlider(
            score_thr, min=0.0, max=1.0, step=0.05, description="score >=", continuous_update=False
        )
        with_results = self.scene.has_results
        self.show = {
            view: widgets.ToggleButton(
                value=view == "gt" or with_results,
                description=VIEW_TITLES[view],
                disabled=view != "gt" and not with_results,
            )
            for view in VIEWS
        }
        self.next_button = widgets.Button(
            description="next with category", tooltip="next image with the chosen category"
        )
        # panels share the row and shrink to fit it (min_width 0 lets flex items shrink)
        self.panels = {
            view: widgets.Image(
                format="png",
                layout=widgets.Layout(
                    flex="1 1 0%", min_width="0", width="auto", object_fit="contain"
                ),
            )
            for view in VIEWS
        }

    # ------------------------------------------------------------------ state

    @property
    def current_image_id(self) -> int:
        return self.image_ids[self.index.value]

    @property
    def category_id(self) -> int | None:
        """LVIS id of the chosen category, None for all."""
        return self._option_to_id.get(self.category.value)

    def _category_options(self, group: str) -> list[str]:
        return [
            o
            for o, c in self._option_to_id.items()
            if not group or self.scene.frequency[c] == group
        ]

    # ------------------------------------------------------------------ callbacks

    def _on_index(self, _change) -> None:
        if self.image_id.value != self.current_image_id:
            self.image_id.value = self.current_image_id  # its observer is then a no-op
        self._refresh(VIEWS)

    def _on_image_id(self, change) -> None:
        if change["new"] in self.image_ids:
            self.index.value = self.image_ids.index(change["new"])
        else:
            self.status.value = (
                f"<b>image id {change['new']} is not among the "
                f"{len(self.image_ids)} images browsed</b>"
            )

    def _on_group(self, change) -> None:
        self.category.options = self._category_options(change["new"])

    def next_with_category(self) -> int | None:
        """Move to the next image (after the current one, wrapping around) where the chosen
        category is annotated or predicted at the score threshold; returns its id, or None
        (and says so in ``status``) when no category is chosen or no other image has it."""
        if self.category_id is None:
            self.status.value = "<b>choose a category first</b>"
            return None
        having = set(self.scene.images_with(self.category_id, self.score.value))
        count = len(self.image_ids)
        for step in range(1, count + 1):
            position = (self.index.value + step) % count
            if self.image_ids[position] in having:
                if position == self.index.value:
                    break
                self.index.value = position
                return self.image_ids[position]
        self.status.value = f"<b>no other image with {self.scene.names[self.category_id]}</b>"
        return None

    # ------------------------------------------------------------------ drawing

    def _refresh(self, views) -> None:
        """Redraw those of ``views`` that are shown and whose inputs changed; hide the rest."""
        for view in views:
            panel = self.panels[view]
            if not self.show[view].value:
                panel.layout.display = "none"
                continue
            panel.layout.display = None
            key = (self.current_image_id, self.category_id, self.iou_type)
            if view != "gt":
                key += (self.score.value,)
            if self._drawn.get(view) == key:
                continue
            panel.value = _png(
                self.scene,
                self.current_image_id,
                view,
                self.score.value,
                self.category_id,
                self.iou_type,
                self.panel_size,
            )
            self._drawn[view] = key
            self.render_counts[view] += 1
        self._update_status()

    def _update_status(self) -> None:
        image_id = self.current_image_id
        annotated = len(self.scene.ground_truth(image_id, self.category_id))
        parts = [
            f"image {image_id} ({self.index.value + 1} of {len(self.image_ids)})",
            f"{annotated} annotated",
        ]
        if self.scene.has_results:
            counts = self.scene.verdict(
                image_id, self.score.value, self.category_id, self.iou_type
            ).counts()
            parts.append(", ".join(f"{n} {s}" for s, n in counts.items()))
        self.status.value = " · ".join(parts)

    def static(self, n_images: int = 3) -> Figure:
        """:func:`view_grid` of the next ``n_images`` images from the current one, with the
        browser's current settings: what the browser would show, for a page without widgets."""
        start = self.index.value
        ids = self.image_ids[start : start + n_images]
        views = tuple(v for v in VIEWS if self.show[v].value)
        return view_grid(self.scene, ids, views, self.score.value, self.category_id, self.iou_type)


def browse(
    gt,
    results=None,
    image_root: str | os.PathLike | None = None,
    image_ids: list[int] | None = None,
    score_thr: float = 0.3,
    category=None,
    iou_type: str | None = None,
    start: int | None = None,
) -> Browser:
    """The interactive :class:`Browser` over ground truth ``gt`` (a :class:`Scene`, an LVIS JSON
    path or dict) and optional ``results`` (a results JSON path or list); ``image_ids``
    restricts the images browsed (default: all), ``start`` is the image id shown first,
    ``category`` (id or name) preselects the filter. Display it in JupyterLab; see
    :func:`show` for notebooks also run headless."""
    scene = gt if isinstance(gt, Scene) else load_scene(gt, image_root, results)
    return Browser(scene, image_ids, score_thr, category, iou_type, start=start)


HEADLESS_ENV = "LVISNB_HEADLESS"
_HEADLESS_PARENTS = ("papermill", "nbconvert", "nbclient")


def front_end_attached() -> bool:
    """Whether widgets displayed by this kernel will be rendered by a front end.

    False when the environment variable ``LVISNB_HEADLESS`` is set (``lvisnb run`` and the
    tests set it) or when the kernel's parent process is papermill or nbconvert (their command
    line, read from ``/proc``); True otherwise, e.g. in JupyterLab. Where ``/proc`` is absent
    the answer rests on the variable alone.
    """
    if os.environ.get(HEADLESS_ENV):
        return False
    try:
        cmdline = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True
    return not any(name.encode() in cmdline for name in _HEADLESS_PARENTS)


def show(browser: Browser, interactive: str = "auto", n_images: int = 3):
    """Display ``browser`` where a front end renders widgets, else its :meth:`Browser.static`
    grid; ``interactive``: "auto" (:func:`front_end_attached`), "yes" or "no". Returns the
    static figure, or None when the widget was displayed."""
    if interactive not in ("auto", "yes", "no"):
        raise ValueError(f"interactive must be 'auto', 'yes' or 'no', got {interactive!r}")
    if interactive == "yes" or (interactive == "auto" and front_end_attached()):
        display(browser)
        return None
    return browser.static(n_images)
