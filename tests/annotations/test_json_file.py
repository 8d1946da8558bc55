import pytest

from lvisnb.annotations.json_file import LVISFormatError
from lvisnb.annotations.tables import read_tables
from lvisnb.annotations.validate import load_lvis


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.json"
    for loader in (load_lvis, read_tables):
        with pytest.raises(FileNotFoundError, match="nope.json"):
            loader(missing)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    for loader in (load_lvis, read_tables):
        with pytest.raises(LVISFormatError, match=r"broken.json: invalid JSON at line 2"):
            loader(path)
