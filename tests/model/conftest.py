"""Fixtures of every model test."""

import socket

import pytest


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any connection attempt in a model test fails loudly instead of downloading weights."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model test must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
