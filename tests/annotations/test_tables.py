import pytest

from lvisnb.annotations.images import image_relpath
from lvisnb.annotations.tables import read_tables
from lvisnb.annotations.validate import load_lvis


def test_read_tables_agrees_with_lvis_api(toy_train):
    tables = read_tables(toy_train)
    gt = load_lvis(toy_train)
    assert len(tables.annotations) == len(gt.anns)
    assert len(tables.images) == len(gt.imgs)
    per_cat = tables.annotations.groupby("category_id").size()
    for cat_id, count in per_cat.items():
        assert count == len(gt.get_ann_ids(cat_ids=[cat_id]))
    first = gt.anns[int(tables.annotations["id"].iloc[0])]
    row = tables.annotations.iloc[0]
    assert [row.x, row.y, row.w, row.h] == pytest.approx(first["bbox"])
    assert row.area == pytest.approx(first["area"])
    image = gt.imgs[int(tables.images["id"].iloc[0])]
    assert tables.images["neg_category_ids"].iloc[0] == image["neg_category_ids"]
    assert tables.images["path"].iloc[0] == image_relpath(image)
