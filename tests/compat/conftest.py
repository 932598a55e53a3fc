"""Fixtures that run the real ``plait serve`` process for real Kafka clients."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.broker.testing import ServeProcess

_names = itertools.count()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    """A broker on free ports over a fresh data dir; stopped by pid after the test."""
    proc = ServeProcess(tmp_path / "data", "--default-partitions", "3")
    proc.start()
    try:
        yield proc
    finally:
        status = proc.stop()
        assert status == 0, f"plait serve exited with {status}:\n{proc.output()[-4000:]}"


@pytest.fixture
def topic_name() -> str:
    return f"t{next(_names)}"
