import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

SMALL_TOY = {"num_train_images": 200, "num_val_images": 60}


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """A small toy-LVIS (200 train / 60 val images, all 40 categories), made once per session."""
    from lvisnb.annotations import toy

    root = tmp_path_factory.mktemp("toy-lvis")
    toy.make_toy_lvis(root, seed=0, **SMALL_TOY)
    return root


@pytest.fixture(scope="session")
def toy_train(toy_root):
    return toy_root / "annotations" / "lvis_v1_train.json"


@pytest.fixture(scope="session")
def toy_val(toy_root):
    return toy_root / "annotations" / "lvis_v1_val.json"


@pytest.fixture(scope="module")
def results(toy_val):
    """Random LVIS results on the small toy-LVIS val (boxes and masks, seed 5)."""
    import json

    from synthetic import toy_detections

    return toy_detections(json.loads(toy_val.read_text()), seed=5)


@pytest.fixture(scope="module")
def scene(toy_val, results):
    """The scene of notebook 04 on the small toy-LVIS val and :func:`results`."""
    from lvisnb.viz.scene import load_scene

    return load_scene(toy_val, results=results)
