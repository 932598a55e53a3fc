"""Quick probe: produce → consume latency through plait serve at 1k and 10k msg/s.

Usage: python benchmarks/kafka_latency_probe.py [MESSAGES] [split|shared]
Starts plait serve on free ports, measures with the same code as `plait bench kafka`
(by default with the broker on its own CPU, as `plait bench kafka --cpus split`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from plait.bench.cpus import split_cpus
from plait.bench.kafka_bench import kafka_latency
from plait.broker.testing import ServeProcess


def main(messages: int = 5000, cpus: str = "split") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = ServeProcess(Path(tmp) / "data").start()
        pid = broker.proc.pid if broker.proc else None
        try:
            with split_cpus(pid, cpus) as placed:
                print(placed)
                admin = AdminClient({"bootstrap.servers": broker.bootstrap})
                admin.create_topics([NewTopic("latency", 1, 1)])["latency"].result(30)
                for rate in (1000, 10000):
                    print(rate, kafka_latency(broker.bootstrap, "latency", rate, messages, 100),
                          flush=True)
                del admin
        finally:
            broker.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000, *sys.argv[2:3])
