"""Examples in examples/ run as tests, so the README cannot drift from what works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plait.broker.testing import ServeProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_kafka_quickstart_against_plait_serve(tmp_path):
    broker = ServeProcess(tmp_path / "data")
    broker.start()
    try:
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / "kafka_quickstart.py"), broker.bootstrap],
            check=False, capture_output=True, timeout=120,
        )
    finally:
        assert broker.stop() == 0
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    lines = proc.stdout.decode().splitlines()
    assert sorted(line.split(": ", 1)[1] for line in lines) == sorted(f"hello {i}" for i in range(10))
