"""lvisnb.engine.setup: the training sampler follows the preset's RFS threshold and rounding,
and the schedule converts its epochs with the sampler's length."""

from lvisnb.engine.config import TrainConfig
from lvisnb.engine.schedule import resolve_schedule
from lvisnb.engine.setup import build_train_sampler
from lvisnb.model.presets import SEED_PRESETS, get_preset


class _Categories:
    """A dataset stand-in: 8 images, threshold 0.9 gives r(i) = 2.68, 1.90, 1.10 x 4, 1, 1."""

    def category_sets(self):
        return [{1, 2, 3, 4}, {1, 2, 4}, {1, 4}, {1, 4}, {1, 4}, {1, 4}, {4}, {4}]


def test_schedule_follows_the_presets_rfs_rounding():
    cfg = TrainConfig()
    mmdet = get_preset(SEED_PRESETS[0], rfs_threshold=0.9)
    assert mmdet.rfs_rounding == "ceil"
    sampler = build_train_sampler(cfg, mmdet, _Categories(), 1, 0)
    assert sampler.rounding == "ceil" and len(sampler) == 15  # 3 + 5 x 2 + 1 + 1
    # sum ceil(r(i)) = 15 images -> 8 iterations of 2 per epoch, 12 epochs, steps after 8 and 11
    assert resolve_schedule(mmdet, sampler, 2) == (96, (64, 88), 15)
    for rank in (0, 1):  # the same whole-epoch length from each of 2 ranks
        shard = build_train_sampler(cfg, mmdet, _Categories(), 2, rank)
        assert resolve_schedule(mmdet, shard, 4) == (48, (32, 44), 15)
    # detectron2's rounding: sum r(i) = 10.96 -> 11 images -> 6 iterations per epoch
    d2 = get_preset(SEED_PRESETS[0], rfs_threshold=0.9, rfs_rounding="stochastic")
    sampler = build_train_sampler(cfg, d2, _Categories(), 1, 0)
    assert sampler.rounding == "stochastic"
    assert resolve_schedule(d2, sampler, 2) == (72, (48, 66), 11)
    assert resolve_schedule(mmdet, sampler, 2, max_iters=36) == (36, (24, 33), 11)
    assert resolve_schedule(d2, sampler, 2, lr_steps=(5,))[1] == (5,)


def test_rfs_off_or_uniform_gives_one_pass_per_epoch():
    off = get_preset(SEED_PRESETS[0], rfs_threshold=None)
    r50 = get_preset(SEED_PRESETS[0])
    for cfg, preset in ((TrainConfig(), off), (TrainConfig(sampler="uniform"), r50)):
        sampler = build_train_sampler(cfg, preset, _Categories(), 1, 0)
        assert sorted(sampler) == list(range(8))
        assert resolve_schedule(preset, sampler, 2)[2] == 8
