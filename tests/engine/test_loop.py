"""lvisnb.engine.loop: the losses every rank reads are reduced in one fixed order."""

import torch

from lvisnb.engine.loop import reduce_losses


def test_reduce_losses_in_one_process_is_the_identity():
    losses = {"loss_b": torch.tensor(2.5), "loss_a": torch.tensor(0.25, dtype=torch.bfloat16)}
    mean, own = reduce_losses(losses, world=1)
    assert mean == own == {"loss_a": 0.25, "loss_b": 2.5}
    assert list(mean) == ["loss_a", "loss_b"]  # sorted: the same stacking order on every rank
