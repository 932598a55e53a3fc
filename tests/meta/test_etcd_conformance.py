"""The conformance suite against EtcdMetaStore on one real etcd server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plait.meta.interface import MetaStore
from plait.meta.url import open_meta

from .conformance import *

try:
    from tests.servers.etcd import EtcdMember
except ImportError:
    from servers.etcd import EtcdMember


@pytest.fixture
def meta_url(etcd_member: EtcdMember) -> str:
    return f"etcd://{etcd_member.endpoint}"


@pytest.fixture
def store(meta_url: str) -> Iterator[MetaStore]:
    s = open_meta(meta_url)
    yield s
    s.close()
