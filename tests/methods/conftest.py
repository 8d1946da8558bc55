"""A small trained toy model and its RoI features, shared by the decoupled retraining's tests
(test_decoupled_features, test_decoupled_retraining, test_decoupled_scoring,
test_long_tail_runs): trained and extracted once per session."""

import pytest

from lvisnb.data.dataset import LVISDetection
from lvisnb.engine.model_source import load_trained_model
from lvisnb.methods import decoupled_features

SMALL = {"train_scales": (160,), "test_scale": 160, "max_size": 200}  # as notebook 03's test


@pytest.fixture(scope="session")
def checkpoint(toy_root, toy_train, tmp_path_factory):
    """A 2-iteration toy checkpoint at small scale (the weights barely matter here)."""
    from lvisnb.engine.config import TrainConfig
    from lvisnb.engine.trainer import train

    run_dir = tmp_path_factory.mktemp("decoupled") / "train"
    config = TrainConfig(
        train_ann=str(toy_train),
        image_root=str(toy_root),
        run_dir=str(run_dir),
        device="cpu",
        max_iters=2,
        progress=False,
        overrides=SMALL,
    )
    return train(config).checkpoint


@pytest.fixture(scope="session")
def model(checkpoint):
    return load_trained_model(checkpoint)


def _first(dataset: LVISDetection, count: int) -> LVISDetection:
    dataset.image_ids = dataset.image_ids[:count]
    return dataset


@pytest.fixture(scope="session")
def train_set(model, toy_root, toy_train):
    return _first(LVISDetection(toy_train, toy_root, mapping=model[1], skip_empty=True), 4)


@pytest.fixture(scope="session")
def val_set(model, toy_root, toy_val):
    return _first(LVISDetection(toy_val, toy_root, mapping=model[1]), 6)


@pytest.fixture(scope="session")
def train_rois(model, train_set):
    return decoupled_features.extract_roi_features(model[0], train_set, train=True, progress=False)


@pytest.fixture(scope="session")
def val_rois(model, val_set):
    return decoupled_features.extract_roi_features(model[0], val_set, train=False, progress=False)
