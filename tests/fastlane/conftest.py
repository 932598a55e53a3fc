"""Fixtures: every fast-lane test runs against the in-process lane and a real NATS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import plait
from plait.broker.testing import ServeProcess
from plait.client.connect import EmbeddedClient

from .lanes import Backend, NatsServer, nats_server


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_server(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, nats: NatsServer) -> Iterator[ServeProcess]:
    """``plait serve --fastlane`` on the module's nats-server: every append is published."""
    serve = ServeProcess(tmp_path_factory.mktemp("serve") / "data", "--fastlane", nats.url).start()
    yield serve
    serve.stop()


@pytest.fixture(params=["inproc", "nats"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    server = request.getfixturevalue("nats") if request.param == "nats" else None
    b = Backend(request.param, server)
    try:
        yield b
    finally:
        b.close()
        if server is not None and not server.alive:
            server.start()  # a test that left it down must not break the next one


@pytest.fixture
def client(tmp_path: Path) -> Iterator[EmbeddedClient]:
    c = plait.connect(f"embedded:{tmp_path / 'data'}", fsync="never")
    yield c
    c.close()
