"""A topic-backed reference table against a dict: random upserts, tombstones and bad
records over a few keys, spread over 1-3 partitions by key, read at open and then in
random chunks, always equal the dict that applies the same records in order."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import plait
from plait.process.enrich_topic import TopicReferenceTable

KEYS = 4
# a value: a segment to write, None for a tombstone, or one of two bad records (few
# keys and many tombstones, so deletes of rows already in the table are common)
value = st.sampled_from([None, "a", "bb", "", None, "a", b"{oops", b'{"segment": "no key"}'])
Op = tuple[int, str | bytes | None]


@settings(max_examples=100, deadline=None)
@given(
    partitions=st.integers(1, 3),
    # the first chunk is in the topic at open; each later one is read after it is produced
    chunks=st.lists(st.lists(st.tuples(st.integers(0, KEYS - 1), value), max_size=12),
                    min_size=1, max_size=5),
    forced=st.booleans(),
)
def test_table_equals_a_dict_of_the_last_record_per_key(
    partitions: int, chunks: list[list[Op]], forced: bool
) -> None:
    model: dict[int, str] = {}
    bad = 0
    with tempfile.TemporaryDirectory() as tmp, plait.connect(f"embedded:{Path(tmp) / 'd'}") as client:
        client.create_topic("ref", partitions)
        producer = client.producer()

        def produce(chunk: list[Op]) -> None:
            nonlocal bad
            for key, v in chunk:
                if v is None:
                    raw: bytes | None = None
                    model.pop(key, None)
                elif isinstance(v, bytes):
                    raw = v
                    bad += 1
                else:
                    raw = json.dumps({"id": key, "segment": v}).encode()
                    model[key] = v
                producer.send("ref", raw, key=str(key).encode(), partition=key % partitions).result()

        def check(table: TopicReferenceTable) -> None:
            got = {r["id"]: r["segment"] for r in table.table.to_pylist()}
            assert table.table.num_rows == len(got)  # unique keys
            assert got == model
            assert table.rejected == bad
            probe = pa.record_batch({"k": pa.array(range(KEYS), pa.int64())})
            assert table.lookup(probe, "k").column("segment").to_pylist() == [
                model.get(k) for k in range(KEYS)
            ]

        produce(chunks[0])
        with TopicReferenceTable(
            client, "ref", "id", {"id": "int", "segment": "string"}, refresh_s=0.0
        ) as table:
            check(table)
            for chunk in chunks[1:]:
                produce(chunk)
                if forced:
                    table.reload()
                else:
                    table.maybe_reload()
                check(table)
        producer.close()
