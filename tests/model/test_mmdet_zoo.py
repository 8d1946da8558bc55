"""The published model zoo rows: every kit row has its config and checkpoint address, and a
download is hash-checked (the network replaced by a function that writes a file)."""

import hashlib
from pathlib import Path

import pytest
import torch

from lvisnb.model.mmdet_zoo import PUBLISHED, DownloadError, PublishedModel, published_checkpoint
from lvisnb.model.presets import PRESETS
from tests.model.mmdet_reference import MMDET_AVAILABLE


def test_every_mmdetection_row_is_published():
    assert set(PUBLISHED) == set(PRESETS) - {"toy"}
    for row in PUBLISHED.values():
        assert row.url.startswith("https://download.openmmlab.com/mmdetection/v2.0/")
        assert len(row.sha256_prefix) == 8 and int(row.sha256_prefix, 16) >= 0


@pytest.mark.skipif(not MMDET_AVAILABLE, reason="mmdet's metafiles come with the parity extra")
def test_addresses_and_configs_are_mmdetections():
    import mmdet

    root = Path(mmdet.__file__).parent / ".mim"
    metafiles = "".join(p.read_text() for p in root.glob("configs/*/metafile.yml"))
    for row in PUBLISHED.values():
        assert (root / row.config).is_file(), row.config
        assert f"Weights: {row.url}\n" in metafiles, row.url


@pytest.fixture
def fake_row(tmp_path, monkeypatch):
    """A published row whose 'download' writes known bytes; torch hub's cache in tmp_path."""
    content = b"weights" * 1000
    digest = hashlib.sha256(content).hexdigest()[:8]
    row = PublishedModel("configs/x.py", f"https://example.invalid/x/model-{digest}.pth")
    monkeypatch.setitem(PUBLISHED, "fake_row", row)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    calls = []

    def download(url, dst, hash_prefix, progress):
        calls.append(url)
        if hashlib.sha256(content).hexdigest()[: len(hash_prefix)] != hash_prefix:
            raise RuntimeError("invalid hash value")
        Path(dst).write_bytes(content)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return row, calls


def test_downloads_once_into_the_hub_cache(fake_row, tmp_path):
    row, calls = fake_row
    first = published_checkpoint("fake_row", progress=False)
    second = published_checkpoint("fake_row", progress=False)
    assert first == second == tmp_path / "hub" / "checkpoints" / row.file_name
    assert calls == [row.url]


def test_a_corrupt_cached_file_is_refused(fake_row, tmp_path):
    row, _ = fake_row
    cached = tmp_path / "hub" / "checkpoints" / row.file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    with pytest.raises(DownloadError, match=f"{row.file_name}: SHA-256 starts .*delete it"):
        published_checkpoint("fake_row", progress=False)


def test_a_failed_download_names_the_address(fake_row, monkeypatch):
    row, _ = fake_row

    def offline(*args):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DownloadError, match="example.invalid.*Network is unreachable"):
        published_checkpoint("fake_row", progress=False)


def test_unknown_name_lists_the_published():
    with pytest.raises(ValueError, match="no published mmdetection checkpoint for 'toy'"):
        published_checkpoint("toy")


def test_a_stalled_server_is_an_error_not_a_hang(tmp_path, monkeypatch):
    """A server that accepts the connection and never answers: the download fails after
    STALL_TIMEOUT_S seconds without data, names the address, and leaves no partial file."""
    import socket
    import threading

    from lvisnb.model import mmdet_zoo

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted, done = [], threading.Event()

    def stall():  # accept, send nothing; hang up after 30 s so a regression fails, not hangs
        connection, _ = server.accept()
        accepted.append(connection)
        done.wait(30)
        connection.close()

    threading.Thread(target=stall, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/x/model-0123abcd.pth"
    monkeypatch.setitem(PUBLISHED, "stalled", PublishedModel("configs/x.py", url))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(mmdet_zoo, "STALL_TIMEOUT_S", 1.0)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    try:
        with pytest.raises(DownloadError, match=r"model-0123abcd.pth: download failed \(no data"):
            published_checkpoint("stalled", progress=False)
    finally:
        done.set()
        server.close()
    assert accepted, "the download never reached the server"
    assert not list((tmp_path / "hub" / "checkpoints").iterdir())
    assert socket.getdefaulttimeout() is None
