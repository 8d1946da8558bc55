"""The public API (issue 22 §3): ``import lvisnb`` is light, every exported name resolves, the
notebooks and the README's examples use it."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lvisnb

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("annotations", "data", "model", "engine", "evaluation", "methods", "viz")
PACKAGES = ("lvisnb", *(f"lvisnb.{step}" for step in STEPS))


def test_import_lvisnb_loads_no_heavy_library():
    code = (
        "import sys, lvisnb, lvisnb.annotations, lvisnb.evaluation, lvisnb.viz; "
        "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'lvis', 'hotcoco') "
        "if m in sys.modules))"
    )
    command = [sys.executable, "-c", code]
    loaded = subprocess.run(command, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


@pytest.mark.parametrize("package", PACKAGES)
def test_no_export_is_shadowed_by_a_submodule(package):
    """Importing ``package.x`` sets the attribute ``x`` to the module: an exported function of
    the same name would then be replaced by it, depending on import order."""
    folder = Path(importlib.import_module(package).__file__).parent
    submodules = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir()}
    exported = set(importlib.import_module(package).__all__) - set(STEPS)  # the steps themselves
    assert not exported & submodules


def test_top_level_names_are_the_steps_own():
    """A top-level export is the object its step exports, not a second copy."""
    for name in lvisnb.__all__:
        if name in STEPS:
            continue
        owner = [s for s in STEPS if name in importlib.import_module(f"lvisnb.{s}").__all__]
        assert owner, f"lvisnb.{name} is exported by no step"
        assert getattr(lvisnb, name) is getattr(importlib.import_module(f"lvisnb.{owner[0]}"), name)


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=str)
def test_notebooks_use_the_public_api(notebook):
    code = _notebook_code(notebook)
    imports = re.findall(r"^(?:from|import) lvisnb\S*.*$", code, re.M)
    assert "import lvisnb" in imports, notebook.name
    allowed = re.compile(r"^(import lvisnb|from lvisnb import (" + "|".join(STEPS) + r")\b.*)$")
    assert all(allowed.match(line) for line in imports), imports


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 3, "the README shows the three flows in Python"
    return "\n".join(blocks)


@pytest.mark.slow
def test_readme_examples_run(toy_root, tmp_path):
    """The README's Python blocks, in order, in a fresh process on the small toy-LVIS."""
    script = tmp_path / "readme.py"
    script.write_text(_readme_python(), encoding="utf-8")
    env = {**os.environ, "LVISNB_TOY_ROOT": str(toy_root), "MPLBACKEND": "Agg"}
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "APr" in run.stdout  # the evaluation summary was printed
    assert (tmp_path / "runs" / "readme" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "readme" / "rank_frequency.png").is_file()
