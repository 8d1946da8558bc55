"""Checkpoints are good when called good: finite, checksummed, atomic, named when unusable."""

import errno
import os

import pytest
import torch

from lvisnb import files as outputs
from lvisnb.model import checkpoint as C


def _payload(scale: float = 1.0) -> dict:
    torch.manual_seed(0)
    return {
        "model": {"w": torch.randn(4, 3) * scale, "b": torch.zeros(3), "n": torch.tensor(7)},
        "optimizer": {"state": {0: {"momentum_buffer": torch.ones(4, 3)}}, "param_groups": []},
        "iteration": 5,
        "rng": {"torch": torch.get_rng_state()},
    }


def test_round_trip_keeps_every_tensor(tmp_path):
    path = C.save_checkpoint(tmp_path / "last.pt", _payload())
    loaded = C.load_checkpoint(path, required=("model", "iteration"))
    assert "checksum" not in loaded and loaded["iteration"] == 5
    assert torch.equal(loaded["model"]["w"], _payload()["model"]["w"])
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("where", ["model", "optimizer"])
def test_non_finite_state_is_not_written_and_the_good_file_stays(tmp_path, where):
    path = C.save_checkpoint(tmp_path / "last.pt", _payload())
    good = path.read_bytes()
    bad = _payload()
    if where == "model":
        bad["model"]["w"][1, 2] = float("nan")
    else:
        bad["optimizer"]["state"][0]["momentum_buffer"][0, 0] = float("inf")
    with pytest.raises(C.NonFiniteStateError, match=f"{where}.*NaN or infinite"):
        C.save_checkpoint(path, bad)
    assert path.read_bytes() == good
    assert not list(tmp_path.glob(".*"))


def test_a_flipped_byte_in_the_tensor_data_is_caught(tmp_path):
    payload = _payload()
    payload["model"]["w"] = torch.full((64, 64), 0.25)
    path = C.save_checkpoint(tmp_path / "last.pt", payload)
    data = bytearray(path.read_bytes())
    needle = torch.tensor([0.25]).numpy().tobytes()
    at = data.index(needle * 8)  # inside w's storage
    data[at + 1] ^= 0x40
    data[at + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(C.CheckpointError, match="do not match the checksum"):
        C.load_checkpoint(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"",
        lambda b: b[: len(b) // 2],
        lambda b: os.urandom(4096),
        lambda b: b"not a checkpoint\n",
    ],
    ids=["empty", "truncated", "random bytes", "text"],
)
def test_unusable_files_are_named(tmp_path, damage):
    path = C.save_checkpoint(tmp_path / "last.pt", _payload())
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(C.CheckpointError, match="last.pt") as info:
        C.load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)


def test_missing_keys_and_other_objects_are_refused(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(C.CheckpointError, match=r"has no \['optimizer'\]"):
        C.load_checkpoint(path, required=("model", "optimizer"))
    torch.save([1, 2], path)
    with pytest.raises(C.CheckpointError, match="holds a list"):
        C.load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        C.load_checkpoint(tmp_path / "nowhere.pt")


def test_a_full_disk_leaves_no_temporary_file_and_says_so(tmp_path, monkeypatch):
    path = C.save_checkpoint(tmp_path / "last.pt", _payload())
    good = path.read_bytes()
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # the temporary file exists ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk fills

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="last.pt: the disk is full"):
        C.save_checkpoint(path, _payload(2.0))
    assert path.read_bytes() == good
    assert not list(tmp_path.glob(".*"))


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".last.pt.tmp-4242").write_bytes(b"half")
    (tmp_path / "last.pt").write_bytes(b"keep")
    assert outputs.remove_stale_temporaries(tmp_path) == [tmp_path / ".last.pt.tmp-4242"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("content", [b"hello world, not a checkpoint at all\n" * 4, b"\x00" * 4096])
def test_garbage_is_a_checkpoint_error_without_torchs_advice(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(C.CheckpointError, match="last.pt is not a usable checkpoint") as info:
        C.load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)
    with pytest.raises(C.CheckpointError, match="is a folder"):
        C.load_checkpoint(tmp_path)


def test_a_short_write_reported_by_torch_is_named_a_full_disk(tmp_path, monkeypatch):
    import shutil

    def short_write(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 96 vs 80")

    monkeypatch.setattr(torch, "save", short_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(OSError, match="last.pt: the disk is full"):
        C.save_checkpoint(tmp_path / "last.pt", _payload())
    assert not list(tmp_path.glob(".*"))
