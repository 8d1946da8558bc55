"""Execute the kit's notebooks in order with papermill (`lvisnb run`, `make demo`)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import papermill

from lvisnb.files import write_text_atomic

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


# ``name: T | None = value  # help``: papermill's pattern takes no ``|`` in a type hint
_OPTIONAL_PARAMETER = re.compile(
    r"^(?P<name>\w+)\s*:\s*(?P<kind>\w+)\s*\|\s*None\s*=\s*(?P<default>.*?)\s*#\s*(?P<help>.*)$"
)


def declared_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """Parameters declared in the notebook's ``parameters`` cell (papermill's inspection), in
    the cell's order; a parameter that may be ``None`` (``image_ids: str | None = None  #
    ...``), which papermill's pattern skips, has ``inferred_type_name`` ``"str | None"``."""
    import nbformat  # nbformat: only when a notebook is inspected

    found = papermill.inspect_notebook(str(notebook))
    cells = nbformat.read(str(notebook), as_version=4).cells
    source = next((c.source for c in cells if "parameters" in c.metadata.get("tags", [])), "")
    declared = {}
    for line in source.splitlines():
        name = line.split(":", 1)[0].split("=", 1)[0].strip()
        match = _OPTIONAL_PARAMETER.match(line.strip())
        if name in found:
            declared[name] = found.pop(name)
        elif match:
            declared[name] = {
                "name": name,
                "inferred_type_name": f"{match['kind']} | None",
                "default": match["default"],
                "help": match["help"],
            }
    return declared | found


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
    one ``-p max_iters=5`` reaches only the notebooks that have ``max_iters``; values are
    coerced to the declared type (:func:`coerce_parameter`), and a name that no selected
    notebook declares is a ``ValueError`` before anything runs. With ``html``,
    each executed notebook is also rendered to ``run_dir/<name>.html``. Returns the executed
    notebook paths. A failing cell raises :class:`NotebookFailed` (one line naming the notebook,
    the cell and the error; papermill's ``PapermillExecutionError`` is its ``__cause__``); the
    partly executed notebook is still written, so the whole traceback can be read in it.
    """
    run_dir = Path(run_dir).resolve()
    parameters = dict(parameters or {})
    if "run_dir" in parameters:
        raise ValueError(
            "run_dir is not a -p parameter: every notebook writes into the run directory "
            "given as --run-dir (run_notebooks(run_dir=...))"
        )
    notebooks = notebook_paths(notebooks_dir, select)
    declared = {notebook: declared_parameters(notebook) for notebook in notebooks}
    check_parameter_names(parameters, declared)
    run_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    with _headless():
        for notebook in notebooks:
            given = {
                name: coerce_parameter(name, value, declared[notebook][name], notebook)
                for name, value in parameters.items()
                if name in declared[notebook]
            }
            executed.append(_execute(notebook, run_dir, given, html=html, kernel_name=kernel_name))
    return executed


def check_parameter_names(parameters: dict, declared: dict[Path, dict]) -> None:
    """``ValueError`` for a parameter that none of the selected notebooks declares (a typo
    would otherwise run on the defaults), listing the names they do declare."""
    known = {name for names in declared.values() for name in names}
    unknown = sorted(set(parameters) - known)
    if unknown:
        notebooks = ", ".join(p.name for p in declared)
        raise ValueError(
            f"no selected notebook ({notebooks}) has the parameter(s) {unknown}; "
            f"their parameters are: {', '.join(sorted(known))}"
        )


_SCALARS = {"str": str, "int": int, "float": float}
_NONE_TEXT = ("none", "null")  # read as None for a parameter of type "T | None"


def coerce_parameter(name: str, value, spec: dict, notebook: Path):
    """``value`` as the type the notebook declares for ``name`` (papermill's
    ``inferred_type_name``: ``str``, ``int``, ``float``, ``bool``; other types as given).

    Text from the command line is read by that type, not as YAML: ``-p image_ids=39769`` is
    the string ``"39769"`` for a ``str`` parameter, ``-p max_iters=5`` the integer 5; for a
    ``T | None`` parameter ``None`` or the text none / null is ``None``, anything else a ``T``;
    ``bool`` takes true/false/yes/no/1/0. A value that does not fit is a ``ValueError``
    naming the notebook, the parameter and its type.
    """
    kind = spec.get("inferred_type_name", "None")
    if kind.endswith(" | None"):  # None, or the type before the bar
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_TEXT):
            return None
        return coerce_parameter(name, value, {"inferred_type_name": kind[:-7]}, notebook)
    try:
        if kind == "bool":
            return _boolean(value)
        if kind in _SCALARS:
            if kind != "str" and isinstance(value, bool):
                raise ValueError("a boolean")
            if kind == "int" and isinstance(value, float) and not value.is_integer():
                raise ValueError("not a whole number")
            return _SCALARS[kind](value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{notebook.name}: parameter {name} is {_article(kind)} {kind}, got {value!r} ({error})"
        ) from None
    if isinstance(value, str) and kind != "str":  # lists, dicts, None: YAML text
        import yaml  # yaml: only for list / dict / None parameters

        return yaml.safe_load(value)
    return value


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError("expected true or false")


@contextmanager
def _headless():
    """Tell kernels started meanwhile that no front end renders widgets (they inherit the
    environment; :func:`lvisnb.viz.browser.front_end_attached` reads it)."""
    from lvisnb.viz.browser import HEADLESS_ENV  # ipywidgets: only the constant, when notebooks run

    before = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[HEADLESS_ENV]
        else:
            os.environ[HEADLESS_ENV] = before


class NotebookFailed(RuntimeError):
    """A cell of a notebook failed under :func:`run_notebooks`; the message is one line."""


def _article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


class _DeclaredOnly(logging.Filter):
    """Drops papermill's "Passed unknown parameter" warning for names the notebook declares
    (papermill's own scan skips ``T | None`` hints; :func:`declared_parameters` reads them)."""

    def __init__(self, declared: Iterable[str]):
        super().__init__()
        self.declared = set(declared)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        prefix = "Passed unknown parameter: "
        return not (message.startswith(prefix) and message[len(prefix) :] in self.declared)


def describe_failure(error: Exception) -> str:
    """One line for a notebook cell that failed under :func:`run_notebooks`: the notebook,
    the cell and the exception's type and message (the executed notebook holds the rest)."""
    name = getattr(error, "ename", type(error).__name__)
    value = str(getattr(error, "evalue", error)).strip().splitlines()
    cell = getattr(error, "exec_count", None)
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"{where} raised {name}: {value[0] if value else ''}"


def _execute(notebook: Path, run_dir: Path, parameters: dict, html: bool, kernel_name: str):
    """Run one notebook into ``run_dir`` (see :func:`run_notebooks`); returns its path."""
    given = dict(parameters)
    if "run_dir" in declared_parameters(notebook):
        given["run_dir"] = str(run_dir)
    output = run_dir / notebook.name
    quiet = _DeclaredOnly(given)
    logger = logging.getLogger("papermill")
    logger.addFilter(quiet)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=given,
            kernel_name=kernel_name,
            cwd=str(run_dir),
            progress_bar=False,
        )
    except papermill.PapermillExecutionError as error:
        failure = describe_failure(error)
        raise NotebookFailed(f"{notebook.name}: {failure} (see {output})") from error
    finally:
        logger.removeFilter(quiet)
    if html:
        render_html(output)
    return output


def render_html(notebook: str | os.PathLike) -> Path:
    """Render an executed notebook to HTML beside it (nbconvert's HTML exporter)."""
    import nbformat  # nbconvert: only with --html
    from nbconvert import HTMLExporter  # nbconvert: only with --html

    notebook = Path(notebook)
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    return write_text_atomic(notebook.with_suffix(".html"), body)
