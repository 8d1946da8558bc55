"""lvisnb.engine.loop: the losses every rank reads are reduced in one fixed order."""

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from lvisnb.engine.loop import reduce_losses


def test_reduce_losses_in_one_process_is_the_identity():
    losses = {"loss_b": torch.tensor(2.5), "loss_a": torch.tensor(0.25, dtype=torch.bfloat16)}
    mean, own = reduce_losses(losses, world=1)
    assert mean == own == {"loss_a": 0.25, "loss_b": 2.5}
    assert list(mean) == ["loss_a", "loss_b"]  # sorted: the same stacking order on every rank


def _reduce_rank(rank: int, store: str, out: str) -> None:
    """One of two gloo processes: rank-specific losses (inserted in another order on each
    rank, one of them bfloat16) reduced; the result saved to ``out/rank{rank}.json``."""
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=2)
    try:
        values = {"loss_mask": 1.0 + rank, "loss_classifier": 4.0 * rank, "loss_box_reg": 0.5}
        names = sorted(values, reverse=rank == 1)
        losses = {
            n: torch.tensor(values[n], dtype=torch.bfloat16 if n == "loss_mask" else None)
            for n in names
        }
        mean, own = reduce_losses(losses, world=2)
        Path(out, f"rank{rank}.json").write_text(json.dumps({"mean": mean, "own": own}))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_reduce_losses_under_two_gloo_processes_is_the_mean_on_both(tmp_path):
    store = f"file://{tmp_path / 'store'}"
    torch.multiprocessing.spawn(_reduce_rank, args=(store, str(tmp_path)), nprocs=2)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    expected = {"loss_box_reg": 0.5, "loss_classifier": 2.0, "loss_mask": 1.5}
    for rank, result in enumerate(results):
        assert result["mean"] == expected
        assert result["own"] == {
            "loss_box_reg": 0.5,
            "loss_classifier": 4.0 * rank,
            "loss_mask": 1.0 + rank,
        }
