"""``lvisnb run``: parameters typed as the notebooks declare them, typos refused, any cwd."""

from pathlib import Path

import pytest

from lvisnb import cli
from lvisnb import notebook_runner as runner

NB = Path("04_mask_visualisation.ipynb")
SPECS = {
    "image_ids": {"inferred_type_name": "str"},
    "n_images": {"inferred_type_name": "int"},
    "score_thr": {"inferred_type_name": "float"},
    "resume": {"inferred_type_name": "bool"},
    "scales": {"inferred_type_name": "list[int]"},
}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("image_ids", "39769", "39769"),  # crashed notebook 04 as the int 39769
        ("image_ids", "0123, 7", "0123, 7"),
        ("n_images", "5", 5),
        ("score_thr", "1e-3", 0.001),
        ("score_thr", "2", 2.0),
        ("resume", "true", True),
        ("resume", "No", False),
        ("scales", "[480, 512]", [480, 512]),
    ],
)
def test_values_take_the_declared_type(name, text, expected):
    value = runner.coerce_parameter(name, text, SPECS[name], NB)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "value"),
    [("n_images", "three"), ("n_images", "2.5"), ("n_images", True), ("resume", "maybe")],
)
def test_values_that_do_not_fit_are_named(name, value):
    kind = SPECS[name]["inferred_type_name"]
    article = "an" if kind == "int" else "a"
    with pytest.raises(
        ValueError, match=f"04_mask_visualisation.ipynb: parameter {name} is {article} {kind}"
    ):
        runner.coerce_parameter(name, value, SPECS[name], NB)


def test_a_misspelt_parameter_is_refused_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the kit's notebooks are found without a relative path
    assert cli.main(["run", "--run-dir", "out", "--only", "01", "-p", "ann_fiel=x.json"]) == 2
    err = capsys.readouterr().err
    assert "['ann_fiel']" in err and "ann_file" in err  # the declared names are listed
    assert not (tmp_path / "out").exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("text", "expected"),
    [("39769", "39769"), ("couch", "couch"), ("null", None), ("None", None), (None, None)],
)
def test_a_parameter_that_may_be_none_takes_its_type_or_none(text, expected):
    spec = {"inferred_type_name": "str | None"}
    assert runner.coerce_parameter("image_ids", text, spec, NB) == expected


def test_parameters_that_may_be_none_are_declared_in_the_cells_order():
    notebook = Path(runner.NOTEBOOKS_DIR) / NB
    declared = runner.declared_parameters(notebook)
    assert list(declared)[:3] == ["run_dir", "ann_file", "image_root"]
    assert declared["image_ids"]["inferred_type_name"] == "str | None"
    assert declared["image_ids"]["default"] == "None" and declared["image_ids"]["help"]
    assert declared["n_images"]["inferred_type_name"] == "int"


@pytest.mark.parametrize(
    ("notebook", "name", "kind", "text", "expected"),
    [
        ("02_training.ipynb", "max_iters", "int | None", "5", 5),
        ("02_training.ipynb", "max_iters", "int | None", "none", None),
        ("02_training.ipynb", "rfs_threshold", "float | None", "none", None),
        ("02_training.ipynb", "rfs_threshold", "float | None", "0.01", 0.01),
        ("02_training.ipynb", "train_ann", "str | None", "123.json", "123.json"),
        ("03_per_frequency_ap.ipynb", "max_dets", "int | None", "20", 20),
        ("03_per_frequency_ap.ipynb", "checkpoint", "str | None", "null", None),
        ("03_per_frequency_ap.ipynb", "results_file", "str | None", "r.json", "r.json"),
    ],
)
def test_notebooks_02_and_03_say_the_default_with_none(notebook, name, kind, text, expected):
    path = Path(runner.NOTEBOOKS_DIR) / notebook
    spec = runner.declared_parameters(path)[name]
    assert spec["inferred_type_name"] == kind and spec["default"] == "None"
    value = runner.coerce_parameter(name, text, spec, path)
    assert value == expected and type(value) is type(expected)


def test_run_dir_is_not_a_parameter_and_a_failing_cell_is_one_line(tmp_path):
    import nbformat

    with pytest.raises(ValueError, match="--run-dir"):
        runner.run_notebooks(tmp_path, parameters={"run_dir": "elsewhere"})
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell("path: str | None = None  # a file to open")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("open(path or '/no/such/file')")]
    folder = tmp_path / "nb"
    folder.mkdir()
    nbformat.write(notebook, folder / "01_fails.ipynb")
    with pytest.raises(runner.NotebookFailed) as failed:
        runner.run_notebooks(tmp_path / "run", notebooks_dir=folder, parameters={"path": "none"})
    message = str(failed.value)
    assert message.startswith("01_fails.ipynb: cell [")
    assert "FileNotFoundError" in message and "\n" not in message
    assert (tmp_path / "run" / "01_fails.ipynb").is_file()  # the whole traceback is in it
