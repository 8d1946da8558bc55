"""Execute the kit's notebooks in order with papermill (`lvisnb run`, `make demo`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import papermill

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_paths(
    notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR, select: Iterable[str] | None = None
) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks in order; ``select`` keeps names starting with a prefix."""
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if select:
        prefixes = tuple(select)
        paths = [p for p in paths if p.name.startswith(prefixes)]
    if not paths:
        raise FileNotFoundError(f"no notebooks matching {list(select or [])} in {notebooks_dir}")
    return paths


def declared_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """Parameters declared in the notebook's ``parameters`` cell (papermill's inspection)."""
    return papermill.inspect_notebook(str(notebook))


def run_notebooks(
    run_dir: str | os.PathLike,
    notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
    parameters: dict | None = None,
    select: Iterable[str] | None = None,
    html: bool = False,
    kernel_name: str = "python3",
) -> list[Path]:
    """Execute every notebook into ``run_dir`` (same file name), in order.

    Each notebook gets ``run_dir`` (absolute) plus those of ``parameters`` that it declares, so
    one ``-p max_iters=5`` reaches only the notebooks that have ``max_iters``. With ``html``,
    each executed notebook is also rendered to ``run_dir/<name>.html``. Returns the executed
    notebook paths. A failing cell raises papermill's ``PapermillExecutionError``; the partly
    executed notebook is still written, so the error can be read in it.
    """
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    parameters = dict(parameters or {})
    executed = []
    with _headless():
        for notebook in notebook_paths(notebooks_dir, select):
            executed.append(
                _execute(notebook, run_dir, parameters, html=html, kernel_name=kernel_name)
            )
    return executed


@contextmanager
def _headless():
    """Tell kernels started meanwhile that no front end renders widgets (they inherit the
    environment; :func:`lvisnb.browse.front_end_attached` reads it)."""
    from lvisnb.browse import HEADLESS_ENV

    before = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[HEADLESS_ENV]
        else:
            os.environ[HEADLESS_ENV] = before


def _execute(notebook: Path, run_dir: Path, parameters: dict, html: bool, kernel_name: str):
    """Run one notebook into ``run_dir`` (see :func:`run_notebooks`); returns its path."""
    declared = declared_parameters(notebook)
    given = {k: v for k, v in parameters.items() if k in declared}
    if "run_dir" in declared:
        given["run_dir"] = str(run_dir)
    output = run_dir / notebook.name
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=given,
        kernel_name=kernel_name,
        cwd=str(run_dir),
        progress_bar=False,
    )
    if html:
        render_html(output)
    return output


def render_html(notebook: str | os.PathLike) -> Path:
    """Render an executed notebook to HTML beside it (nbconvert's HTML exporter)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target
