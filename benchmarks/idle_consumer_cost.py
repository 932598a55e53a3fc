"""What an idle remote low-latency consumer costs the broker.

Usage: python benchmarks/idle_consumer_cost.py [SECONDS] [HEARTBEAT_MS]
Starts nats-server and ``plait serve --fastlane --lane-heartbeat-ms HEARTBEAT_MS``
(default 200; 0: no end markers), connects one consumer through
``plait.connect("kafka://...", fastlane="nats://...")``, reads 10 events, then idles for
SECONDS (default 5) and prints Fetch requests per second answered by the broker (its
Prometheus counter) and the CPU plait serve used, as a share of one core.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import plait
from plait.bench.servers import start_nats
from plait.broker.testing import ServeProcess


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(seconds: float = 5.0, heartbeat_ms: int = 200) -> None:
    with tempfile.TemporaryDirectory() as tmp, start_nats(Path(tmp)) as nats, \
            ServeProcess(Path(tmp) / "data", "--fastlane", nats.url,
                         "--lane-heartbeat-ms", str(heartbeat_ms)) as serve:
        assert serve.proc is not None
        client = plait.connect(f"kafka://{serve.bootstrap}", fastlane=nats.url)
        try:
            client.create_topic("idle", 1)
            with client.producer() as producer:
                producer.send_batch("idle", [b"x"] * 10, partition=0)
            with client.low_latency_consumer(["idle"], start="earliest") as consumer:
                got, deadline = 0, time.monotonic() + 10
                while got < 10 and time.monotonic() < deadline:
                    got += len(consumer.poll(0.5))
                time.sleep(0.5)  # past the first end marker
                f0, c0, t0 = serve.requests_answered("Fetch"), cpu_seconds(serve.proc.pid), time.monotonic()
                while time.monotonic() - t0 < seconds:
                    consumer.poll(0.2)
                elapsed = time.monotonic() - t0
                f1, c1 = serve.requests_answered("Fetch"), cpu_seconds(serve.proc.pid)
                print(f"events read {got}; idle {elapsed:.1f} s: "
                      f"{(f1 - f0) / elapsed:.1f} Fetch/s, plait serve "
                      f"{(c1 - c0) / elapsed * 100:.1f}% of a core; "
                      f"end markers heard {consumer.stats.end_markers}")
        finally:
            client.close()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0,
         int(sys.argv[2]) if len(sys.argv) > 2 else 200)
