"""environment.yml installs exactly the pyproject package; the README names every module."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_the_package_through_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    assert "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip_section == ["-e .[dev,parity]"]
    # nothing else is pinned in conda that pyproject.toml would also have to declare
    assert all(d in ("python=3.11", "pip") or isinstance(d, dict) for d in deps)


def test_torch_ranges_admit_the_installable_release():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    assert reqs["torch"].specifier.contains("2.14.1")
    assert reqs["torchvision"].specifier.contains("0.29.1")
    assert not reqs["torch"].specifier.contains("2.15.0")
    assert not reqs["torchvision"].specifier.contains("0.30.0")
    assert project["requires-python"].startswith(">=3.11")


def test_layout_lists_every_module():
    """docs/layout.md has a row for every module, the README one for every step of the flow."""
    listed = set(
        re.findall(r"^\| `lvisnb/([\w/]+)\.py` \|", (ROOT / "docs" / "layout.md").read_text(), re.M)
    )
    package = ROOT / "lvisnb"
    on_disk = {
        p.relative_to(package).with_suffix("").as_posix()
        for p in package.rglob("*.py")
        if p.stem not in ("__init__", "__main__")
    }
    assert listed == on_disk, {"not in docs/layout.md": on_disk - listed, "gone": listed - on_disk}
    steps = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()} - {"resources"}
    in_readme = set(re.findall(r"^\| `lvisnb/(\w+)/` \|", (ROOT / "README.md").read_text(), re.M))
    assert in_readme == steps


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)\)", readme)
    assert links and all((ROOT / link).is_file() for link in links), links
