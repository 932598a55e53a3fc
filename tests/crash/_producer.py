"""Crash-test child: produce numbered events with fsync=always, report each ack.

Usage: python _producer.py DATA_DIR FIRST_ID
Prints "ACK <first_id> <count> <base_offset>" after each send_batch returns, i.e.
after the events were appended and fsynced. Runs until killed.
"""

from __future__ import annotations

import random
import sys

import plait


def main() -> None:
    data, next_id = sys.argv[1], int(sys.argv[2])
    rng = random.Random(next_id)
    client = plait.connect(f"embedded:{data}", fsync="always")
    if "crash" not in client.list_topics():
        client.create_topic("crash", 1)
    producer = client.producer()
    while True:
        count = rng.randint(1, 300)
        values = [b"%012d" % i + b"x" * rng.randint(0, 200) for i in range(next_id, next_id + count)]
        ack = producer.send_batch("crash", values)
        print(f"ACK {next_id} {count} {ack.ranges[0].base_offset}", flush=True)
        next_id += count


if __name__ == "__main__":
    main()
