"""The conformance suite against SqliteMetaStore, one fresh database file per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.meta.interface import MetaStore
from plait.meta.url import open_meta

from .conformance import *


@pytest.fixture
def meta_url(tmp_path: Path) -> str:
    return f"sqlite:{tmp_path / 'meta.db'}"


@pytest.fixture
def store(meta_url: str) -> Iterator[MetaStore]:
    s = open_meta(meta_url)
    yield s
    s.close()
