"""A first produce and consume against `plait serve` with a stock Kafka client.

Run `plait serve` in one terminal, then `python examples/kafka_quickstart.py` in
another (pass HOST:PORT if the broker is not on localhost:9092). Nothing here is
plait-specific: the same code talks to Kafka or Redpanda.
"""

from __future__ import annotations

import sys
import uuid

from confluent_kafka import Consumer, Producer


def main(bootstrap: str = "localhost:9092") -> int:
    topic = "quickstart"
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(10):
        producer.produce(topic, key=f"user-{i % 3}", value=f"hello {i}")
    producer.flush(30)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"quickstart-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen = 0
    while seen < 10:
        msg = consumer.poll(10)
        if msg is None:
            break
        if msg.error():
            continue
        print(f"{msg.topic()}[{msg.partition()}]@{msg.offset()} {msg.key().decode()}: {msg.value().decode()}")
        seen += 1
    consumer.close()
    return 0 if seen >= 10 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
