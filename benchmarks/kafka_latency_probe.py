"""Quick probe: produce → consume latency through plait serve at 1k and 10k msg/s.

Usage: python benchmarks/kafka_latency_probe.py [MESSAGES]
Starts plait serve on free ports, measures with the same code as `plait bench kafka`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from plait.bench.kafka_bench import kafka_latency
from plait.broker.testing import ServeProcess


def main(messages: int = 5000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = ServeProcess(Path(tmp) / "data").start()
        try:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            admin.create_topics([NewTopic("latency", 1, 1)])["latency"].result(30)
            for rate in (1000, 10000):
                print(rate, kafka_latency(broker.bootstrap, "latency", rate, messages, 100), flush=True)
            del admin
        finally:
            broker.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
