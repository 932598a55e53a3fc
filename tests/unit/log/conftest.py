"""Fixtures for the log's unit tests: a fresh data dir and a small-segment config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _log_batches import SMALL

from plait.log import Log


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def log(data_dir: Path) -> Iterator[Log]:
    opened = Log.open(data_dir, SMALL)
    yield opened
    opened.close()

