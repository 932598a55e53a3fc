"""What a reference table that follows a topic costs: opening it, and each refresh.

Usage: python benchmarks/enrich_topic_cost.py [ROWS] [CHANGES] [REPEATS]
Fills a 3-partition embedded topic with ROWS reference records (default 1,000,000; the
user id as the Kafka key), opens a TopicReferenceTable on it, then REPEATS times
(default 7) produces CHANGES records (default 1: updates, one in ten a tombstone) and
times the reload that folds them in. Prints the open time and the median refresh time.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

import plait
from plait.process.enrich_topic import TopicReferenceTable

SCHEMA = {"user_id": "int", "segment": "string", "score": "float"}
SEGMENTS = ["gold", "silver", "bronze", "tin"]


def record(uid: int, version: int) -> bytes:
    seg = SEGMENTS[(uid + version) % len(SEGMENTS)]
    return json.dumps({"user_id": uid, "segment": seg, "score": uid * 0.5 + version}).encode()


def main(rows: int = 1_000_000, changes: int = 1, repeats: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        client = plait.connect(f"embedded:{tmp}/data")
        try:
            client.create_topic("users", 3)
            with client.producer() as producer:
                for start in range(0, rows, 100_000):
                    ids = range(start, min(rows, start + 100_000))
                    producer.send_batch(
                        "users", [record(u, 0) for u in ids], [str(u).encode() for u in ids]
                    )
                t0 = time.perf_counter()
                table = TopicReferenceTable(client, "users", "user_id", SCHEMA, refresh_s=0)
                opened = time.perf_counter() - t0
                print(f"open: {rows:,} records in {opened:.2f} s ({rows / opened / 1e6:.2f} M records/s)")
                took = []
                for r in range(1, repeats + 1):
                    ids = [(r * 7919 + i * 104_729) % rows for i in range(changes)]
                    values = [None if i % 10 == 9 else record(u, r) for i, u in enumerate(ids)]
                    producer.send_batch("users", values, [str(u).encode() for u in ids])
                    t0 = time.perf_counter()
                    table.reload()
                    took.append(time.perf_counter() - t0)
                table.close()
            print(
                f"refresh of {changes:,} change(s) into {rows:,} rows: median "
                f"{statistics.median(took) * 1e3:.1f} ms (runs {min(took) * 1e3:.1f}-{max(took) * 1e3:.1f} ms)"
            )
        finally:
            client.close()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
