"""Give a server process and the measuring client separate CPUs for a benchmark.

Why: a broker serves clients on other machines; on one small machine the client's
threads (librdkafka's, Python's) and the server's take turns on the same cores, and the
waits for a turn land in the latency tail. With ``split``, the server gets the last
allowed CPU and this process the others, the same for plait serve and for the peer, so
the figures compare servers, not scheduler luck. Linux only; elsewhere (or with one CPU)
nothing changes and the result says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def _threads(pid: int | str) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _pin(tids: list[int], cpus: set[int]) -> None:
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass  # a thread that just ended


@contextmanager
def split_cpus(server_pid: int | Sequence[int] | None, mode: str = "split") -> Iterator[str]:
    """Inside: the server's threads (of one process or several, e.g. a broker and its
    nats-server) on one CPU, this process's on the rest (``mode`` "split"), or as the OS
    places them ("shared"). Yields a description for the results."""
    pids = [server_pid] if isinstance(server_pid, int) else list(server_pid or ())
    if mode != "split" or not pids or not hasattr(os, "sched_setaffinity"):
        yield "shared: server and client placed by the OS"
        return
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        yield "shared: only one CPU is available"
        return
    server, client = {allowed[-1]}, set(allowed[:-1])
    own = _threads("self")
    saved = {}
    for tid in own:
        try:
            saved[tid] = os.sched_getaffinity(tid)
        except OSError:
            pass
    for pid in pids:
        _pin(_threads(pid), server)
    _pin(own, client)  # threads started later inherit their creator's CPUs
    try:
        yield f"split: server on CPU {allowed[-1]}, client on CPUs {sorted(client)}"
    finally:
        for tid in _threads("self"):
            _pin([tid], saved.get(tid, set(allowed)))
