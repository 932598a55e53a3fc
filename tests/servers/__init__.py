"""Helpers that start real servers (etcd, nats-server) on free loopback ports for tests."""

from __future__ import annotations

import os
import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_server(message: str) -> None:
    """Skip when a server binary is missing, but fail under CI=true: a green CI run
    must have exercised every backend."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
