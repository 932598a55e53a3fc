"""Fixtures for the group tests: the same suite runs on SQLite and on a real etcd."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plait.meta.interface import MetaStore
from plait.meta.url import open_meta

try:  # tests/ is a namespace root when run as `python -m pytest` from the repo...
    from tests.servers.etcd import EtcdMember, etcd_server
except ImportError:  # ...and pytest's rootdir-relative import puts tests/ on sys.path
    from servers.etcd import EtcdMember, etcd_server


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdMember]:
    with etcd_server(tmp_path_factory.mktemp("etcd")) as member:
        yield member


@pytest.fixture(params=["sqlite", "etcd"])
def meta_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'meta.sqlite'}"
    member: EtcdMember = request.getfixturevalue("etcd_member")
    return f"etcd://{member.endpoint}"


@pytest.fixture
def open_store(meta_url: str) -> Iterator[Callable[[], MetaStore]]:
    """Opens independent store handles (one per simulated process); closes them all."""
    opened: list[MetaStore] = []

    def make() -> MetaStore:
        store = open_meta(meta_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def group() -> str:
    """A fresh group name, so tests sharing one etcd never see each other's keys."""
    return f"g-{uuid.uuid4().hex[:8]}"
