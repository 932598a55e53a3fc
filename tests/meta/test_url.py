"""Metadata URLs: every accepted form, and a ConfigError naming the URL otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.errors import ConfigError
from plait.meta.sqlite import SqliteMetaStore
from plait.meta.url import EtcdTarget, EtcdTLS, SqliteTarget, open_meta, parse_meta_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:/var/lib/plait/meta.db", SqliteTarget("/var/lib/plait/meta.db")),
        ("sqlite:///var/lib/meta.db", SqliteTarget("/var/lib/meta.db")),
        ("sqlite:rel/meta.db", SqliteTarget("rel/meta.db")),
        ("./meta.db", SqliteTarget("./meta.db")),
        ("/abs/meta.db", SqliteTarget("/abs/meta.db")),
        ("etcd://10.0.0.1:2379", EtcdTarget(("10.0.0.1:2379",), None)),
        ("etcd://a:1,b:2,c", EtcdTarget(("a:1", "b:2", "c:2379"), None)),
        ("etcd://[::1]:2380/", EtcdTarget(("[::1]:2380",), None)),
        (
            "etcds://e1:2379,e2:2379?cacert=/ca.pem&cert=/c.pem&key=/c.key",
            EtcdTarget(("e1:2379", "e2:2379"), EtcdTLS("/ca.pem", "/c.pem", "/c.key")),
        ),
        (
            "etcds://e1:2379?cacert=/ca.pem",
            EtcdTarget(("e1:2379",), EtcdTLS("/ca.pem")),
        ),
    ],
)
def test_accepted_forms(url: str, expected: object) -> None:
    assert parse_meta_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sqlite:",
        "redis://x:1",
        "etcd:x:1",
        "etcd://",
        "etcd://a:1,,b:2",
        "etcd://a:99999",
        "etcd://a:port",
        "etcd://user@a:1",
        "etcd://a:1?cacert=/ca.pem",
        "etcds://a:1?cert=/c.pem",
        "etcds://a:1?cacret=/ca.pem",
        "etcds://a:1?cacert=",
    ],
)
def test_bad_urls_name_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_meta_url(url)
    assert repr(url) in str(err.value)


def test_open_meta_sqlite(tmp_path: Path) -> None:
    store = open_meta(f"sqlite:{tmp_path / 'm.db'}")
    try:
        assert isinstance(store, SqliteMetaStore)
        store.put(b"/a", b"1")
        kv = store.get(b"/a")
        assert kv is not None and kv.value == b"1"
    finally:
        store.close()
