"""Fixtures that start real etcd servers for the metadata tests (stopped by pid)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # tests/ is a namespace root when run as `python -m pytest` from the repo...
    from tests.servers.etcd import EtcdCluster, EtcdMember, etcd_cluster, etcd_server
except (
    ImportError
):  # ...and pytest's rootdir-relative import puts tests/ itself on sys.path
    from servers.etcd import EtcdCluster, EtcdMember, etcd_cluster, etcd_server


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdMember]:
    """One etcd per test module; tests isolate themselves by key prefix."""
    with etcd_server(tmp_path_factory.mktemp("etcd")) as member:
        yield member


@pytest.fixture(scope="module")
def etcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A 3-member cluster per test module."""
    base: Path = tmp_path_factory.mktemp("etcd3")
    with etcd_cluster(base, 3) as cluster:
        yield cluster
