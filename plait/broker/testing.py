"""Start ``plait serve`` as a subprocess on free ports, for tests and examples.

The process is started with ports 0, its ready line on stderr gives the real ports,
and it is stopped by its own pid (SIGTERM, then SIGKILL after a grace period), never
by name. Stderr is kept in a file so a failing test can show what the broker said.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from plait.errors import PlaitError

READY = re.compile(r"plait serve: kafka on ([^:\s]+):(\d+), http on ([^:\s]+):(\d+)")


class ServeStartError(PlaitError):
    """The broker exited or did not print its ready line in time."""


class ServeProcess:
    """A running ``plait serve``; ``bootstrap`` is ``host:port`` for Kafka clients."""

    def __init__(self, data_dir: Path, *extra_args: str, timeout: float = 20.0) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.kafka_port = 0
        self.http_port = 0
        self.host = "127.0.0.1"
        fd, name = tempfile.mkstemp(prefix="plait-serve-", suffix=".log")
        os.close(fd)
        self.stderr_path = Path(name)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    def start(self) -> Self:
        cmd = [
            sys.executable, "-W", "ignore", "-m", "plait.cli.serve_cmd",
            "--data", str(self.data_dir), "--kafka-port", "0", "--http-port", "0",
            *self.extra_args,
        ]
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            match = READY.search(self.stderr_path.read_text(errors="replace"))
            if match:
                self.host, self.kafka_port = match.group(1), int(match.group(2))
                self.http_port = int(match.group(4))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        output = self.output()
        self.kill()
        raise ServeStartError(f"plait serve did not become ready; it said:\n{output}")

    def output(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def requests_answered(self, api: str) -> float:
        """Requests of ``api`` (e.g. "Fetch") the broker has answered, whatever their
        error code: its ``plait_broker_requests`` counter, scraped from /metrics."""
        from urllib.request import urlopen

        from prometheus_client.parser import text_string_to_metric_families

        with urlopen(f"http://{self.host}:{self.http_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "plait_broker_requests"
            for sample in family.samples
            if sample.name == "plait_broker_requests_total" and sample.labels.get("api") == api
        )

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
