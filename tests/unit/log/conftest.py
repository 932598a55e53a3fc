"""Fixtures for the log's unit tests: a fresh data dir and a small-segment config."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from plait.log import FsyncPolicy, Log, LogConfig

SMALL = LogConfig(segment_bytes=1024, index_interval_bytes=128, retention_ms=-1,
                  fsync=FsyncPolicy("never"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def log(data_dir: Path) -> Iterator[Log]:
    opened = Log.open(data_dir, SMALL)
    yield opened
    opened.close()
