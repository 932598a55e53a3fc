"""What an idle embedded log costs, by partition count.

Usage: python benchmarks/idle_log_cost.py [PARTITIONS] [SECONDS]
Opens an embedded log (the default fsync policy, interval:50) with one topic of
PARTITIONS partitions (default 5000), appends one event to each, waits a second, then
idles for SECONDS (default 5) and prints the CPU the process used, as a share of one core.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time

import plait


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(partitions: int = 5000, seconds: float = 5.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        client = plait.connect(f"embedded:{tmp}/data")
        try:
            client.create_topic("idle", partitions)
            with client.producer() as producer:
                for p in range(partitions):
                    producer.send_batch("idle", [b"x"], partition=p)
            time.sleep(1.0)  # the interval fsyncs of those appends
            c0, t0 = cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            used = (cpu_seconds() - c0) / (time.monotonic() - t0)
            print(f"{partitions} idle partitions: {used * 100:.1f}% of a core")
        finally:
            client.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000,
         float(sys.argv[2]) if len(sys.argv) > 2 else 5.0)
