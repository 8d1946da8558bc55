"""Fixtures of every model test."""

import socket

import pytest

LOOPBACK = ("127.0.0.1", "localhost", "::1")  # a test's own server on this machine


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any connection beyond this machine in a model test fails loudly instead of downloading
    weights (a test's own loopback server is allowed)."""
    connect, create_connection = socket.socket.connect, socket.create_connection

    def guarded_connect(self, address, *args, **kwargs):
        if not (isinstance(address, tuple) and address[0] in LOOPBACK):
            raise AssertionError("a model test must not touch the network")
        return connect(self, address, *args, **kwargs)

    def guarded_create_connection(address, *args, **kwargs):
        if address[0] not in LOOPBACK:
            raise AssertionError("a model test must not touch the network")
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)
