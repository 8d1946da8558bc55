"""lvisnb.model.preset_table: the Presets page (docs/presets.md) is generated from
lvisnb.model.presets, every Preset field has its mmdetection entry, and ``--write`` rewrites only
the section."""

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from lvisnb.model import preset_table as T
from lvisnb.model.presets import PRESETS, TOY, Preset

PAGE = Path(__file__).resolve().parents[2] / "docs" / "presets.md"


def _cells(table: str) -> list[list[str]]:
    """A generated markdown table as rows of stripped cells, the header first, no rule line."""
    lines = table.splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if "---" not in line]


def test_readme_presets_section_is_the_generated_one():
    _, section, _ = T.split_section(PAGE.read_text(encoding="utf-8"))
    assert section == T.presets_markdown(), (
        f"docs/presets.md's Presets section differs from lvisnb.model.presets; run: {T.COMMAND}"
    )


def test_every_preset_field_has_an_mmdetection_entry():
    fields = [f.name for f in dataclasses.fields(Preset)]
    missing = T.undocumented()
    assert not missing, f"add an Entry to lvisnb.model.mmdet_config_keys.MMDETECTION for {missing}"
    assert set(T.MMDETECTION) == set(fields), sorted(set(T.MMDETECTION) - set(fields))
    for field, (key, value, _note) in T.MMDETECTION.items():
        assert key.strip() and value.strip(), f"{field}: mmdetection key and value"


def test_a_field_without_an_entry_fails_naming_it():
    # a new Preset field with no MMDETECTION entry
    with_new = dataclasses.make_dataclass(
        "WithNew", [("new_loss_weight", float, 1.0)], bases=(Preset,), frozen=True
    )
    assert T.undocumented(with_new) == ["new_loss_weight"]
    without_lr = {k: v for k, v in T.MMDETECTION.items() if k != "lr"}
    with pytest.raises(ValueError, match=r"no entry for Preset field\(s\) \['lr'\]"):
        T.fields_table(without_lr)
    stale = {**T.MMDETECTION, "old_field": T.Entry("`x`", "`1`")}
    with pytest.raises(ValueError, match=r"entries for no field \['old_field'\]"):
        T.fields_table(stale)


def test_rows_table_lists_exactly_the_presets_and_what_their_rows_change():
    header, *rows = _cells(T.rows_table())
    # the fields mmdetection's rows change (test_model checks they change nothing else): the
    # eight configs/lvis rows, and the four configs/seesaw_loss rows (loss, RFS, mask head)
    fields = [
        *("backbone", "pretrained", "dataset", "num_classes", "rfs_threshold", "max_epochs"),
        *("lr_steps", "cls_loss", "normed_mask_temperature"),
    ]
    assert header == ["preset", *fields]
    assert [row[0] for row in rows] == [f"`{name}`" for name in PRESETS]
    for row in rows:
        preset = PRESETS[row[0].strip("`")]
        values = [ast.literal_eval(cell.strip("`")) for cell in row[1:]]
        assert values == [getattr(preset, f) for f in fields], preset.name


def test_fields_table_values_read_back_as_the_presets():
    header, *rows = _cells(T.fields_table())
    assert header == ["field", "kit", "toy", "mmdetection key", "mmdetection value", "note"]
    assert [row[0] for row in rows] == [f"`{f.name}`" for f in dataclasses.fields(Preset)]
    default = Preset()
    for row in rows:
        field = row[0].strip("`")
        kit, toy = (ast.literal_eval(cell.strip("`")) for cell in row[1:3])
        assert (kit, toy) == (getattr(default, field), getattr(TOY, field)), field
    assert f"`max_iters={TOY.max_iters!r}`" in T.presets_markdown()  # the toy schedule line


def _resolves(dotted: str) -> bool:
    """Whether ``lvisnb.a.b.c`` names a module, or an attribute of the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_lvisnb_names_in_the_section_exist():
    names = set(re.findall(r"\blvisnb(?:\.\w+)+", T.presets_markdown()))
    assert "lvisnb.engine.schedule.scaled_lr" in names
    for dotted in names:
        assert _resolves(dotted), dotted


def test_write_rewrites_only_the_section(tmp_path, capsys):
    before, after = "# Title\n\nintro\n\n", "\n\n## Next\n\nmore\n"
    readme = tmp_path / "README.md"
    readme.write_text(before + T.START + "\nstale table\n" + T.END + after, encoding="utf-8")
    assert T.main(["--write", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == before + T.START + T.presets_markdown() + (
        T.END + after
    )
    assert "rewritten" in capsys.readouterr().out
    assert T.main(["--write", str(readme)]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left


@pytest.mark.parametrize(
    "text",
    [
        "no markers\n",
        f"{T.START}\nonly the start\n",
        f"{T.END}\n{T.START}\n",
        f"{T.START}\n{T.END}\n{T.START}\n{T.END}\n",
    ],
)
def test_write_refuses_a_file_without_one_pair_of_markers(tmp_path, capsys, text):
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        T.main(["--write", str(readme)])
    assert info.value.code == 2
    assert "presets:start" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == text
