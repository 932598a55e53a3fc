"""plait bench's CPU split: the server on one CPU, the client on the others, undone after."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from plait.bench.cpus import split_cpus

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least two CPUs",
)


def test_split_places_server_and_client_apart_and_restores() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with split_cpus(server.pid, "split") as placed:
            assert placed.startswith("split")
            for tid in os.listdir(f"/proc/{server.pid}/task"):
                assert os.sched_getaffinity(int(tid)) == {allowed[-1]}
            assert os.sched_getaffinity(0) == set(allowed[:-1])
        assert os.sched_getaffinity(0) == before
    finally:
        server.kill()
        server.wait()


def test_shared_changes_nothing() -> None:
    before = os.sched_getaffinity(0)
    with split_cpus(os.getpid(), "shared") as placed:
        assert placed.startswith("shared")
        assert os.sched_getaffinity(0) == before
