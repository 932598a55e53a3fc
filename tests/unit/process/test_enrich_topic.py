"""A reference table that follows a topic (embedded client): the whole topic at open,
new records seen by a later batch, last record per key wins, tombstones delete, bad
records reported and counted but never fatal, unknown topics a typed error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest

import plait
from plait.client.connect import EmbeddedClient
from plait.pipeline import pipeline
from plait.process.deadletter import DeadLetter
from plait.process.enrich_topic import TopicReferenceTable
from plait.process.errors import EnrichError, SchemaError, UnknownReferenceTopicError

USERS = {"user_id": "int", "segment": "string", "score": "float"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[EmbeddedClient]:
    with plait.connect(f"embedded:{tmp_path / 'data'}") as c:
        yield c


def user(uid: int, segment: str, score: float = 1.0) -> bytes:
    return json.dumps({"user_id": uid, "segment": segment, "score": score}).encode()


def rows(table: TopicReferenceTable) -> dict[Any, dict[str, Any]]:
    """The table as key -> row (order of rows is not part of the contract)."""
    out = {r[table.key]: r for r in table.table.to_pylist()}
    assert len(out) == table.table.num_rows  # keys unique
    return out


def segments(table: TopicReferenceTable) -> dict[Any, str]:
    return {k: r["segment"] for k, r in rows(table).items()}


def test_open_reads_every_partition_to_its_end(client: EmbeddedClient) -> None:
    client.create_topic("users", 3)
    with client.producer() as p:
        n = 25_000  # more than one poll's worth (10,000 records)
        p.send_batch("users", [user(i, f"s{i}") for i in range(n)],
                     keys=[str(i).encode() for i in range(n)])
    assert {d.log_end_offset > 0 for d in client.describe_topic("users").partitions} == {True}
    with TopicReferenceTable(client, "users", "user_id", USERS) as table:
        assert table.table.num_rows == n
        assert segments(table) == {i: f"s{i}" for i in range(n)}
        assert table.rejected == 0
        batch = pa.record_batch({"uid": pa.array([3, n + 1, None, 24_999], pa.int64())})
        assert table.lookup(batch, "uid").column("segment").to_pylist() == ["s3", None, None, "s24999"]


def test_an_empty_topic_is_an_empty_table(client: EmbeddedClient) -> None:
    client.create_topic("users", 2)
    with TopicReferenceTable(client, "users", "user_id", USERS) as table:
        assert table.table.num_rows == 0
        assert table.table.schema == pa.schema(
            [("user_id", pa.int64()), ("segment", pa.string()), ("score", pa.float64())]
        )
        out = table.lookup(pa.record_batch({"user_id": pa.array([1], pa.int64())}), "user_id")
        assert out.column("segment").to_pylist() == [None]


def test_last_record_per_key_wins_in_offset_order(client: EmbeddedClient) -> None:
    client.create_topic("users", 2)
    with client.producer() as p:
        for uid, seg in [(1, "a"), (2, "b"), (1, "c"), (3, "d"), (2, "e"), (1, "f")]:
            p.send("users", user(uid, seg), key=str(uid).encode()).result()
    with TopicReferenceTable(client, "users", "user_id", USERS) as table:
        assert segments(table) == {1: "f", 2: "e", 3: "d"}


def test_tombstones_delete_by_kafka_key_in_order(client: EmbeddedClient) -> None:
    client.create_topic("users", 2)
    with client.producer() as p:
        for uid, seg in [(1, "a"), (2, "b"), (3, "c"), (1, None), (2, None), (2, "again"), (9, None)]:
            p.send("users", None if seg is None else user(uid, seg), key=str(uid).encode()).result()
    with TopicReferenceTable(client, "users", "user_id", USERS) as table:
        # 1 deleted, 2 deleted then written again, 9 never there: nothing to delete
        assert segments(table) == {2: "again", 3: "c"}
        assert table.rejected == 0
        with client.producer() as p:
            p.send("users", None, key=b"3").result()
            p.send("users", None, key=b"2").result()
        table.reload()
        assert segments(table) == {}


def test_string_keys_and_tombstones_and_a_subset_of_columns(client: EmbeddedClient) -> None:
    client.create_topic("countries", 1)
    schema = {"code": "string", "name": "string", "eu": "bool"}
    with client.producer() as p:
        for code, name, eu in [("DE", "Germany", True), ("FR", "France", True), ("CH", "Switzerland", False)]:
            p.send("countries", json.dumps({"code": code, "name": name, "eu": eu}), key=code).result()
        p.send("countries", None, key="FR").result()
    with TopicReferenceTable(client, "countries", "code", schema, columns=["eu"]) as table:
        assert table.table.column_names == ["code", "eu"]
        batch = pa.record_batch({"country": pa.array(["CH", "FR", "DE"])})
        assert table.lookup(batch, "country").to_pylist() == [
            {"country": "CH", "eu": False}, {"country": "FR", "eu": None}, {"country": "DE", "eu": True},
        ]


def test_msgpack_values(client: EmbeddedClient) -> None:
    client.create_topic("users", 1)
    enc = msgspec.msgpack.encode
    with client.producer() as p:
        p.send("users", enc({"user_id": 7, "segment": "gold", "score": 2.5}), key=b"7").result()
        p.send("users", enc({"user_id": 8, "segment": "new", "score": 0.5}), key=b"8").result()
        p.send("users", json.dumps({"user_id": 9, "segment": "json?"}).encode(), key=b"9").result()
    dead: list[DeadLetter] = []
    with TopicReferenceTable(client, "users", "user_id", USERS, format="msgpack", on_dead=dead.append) as table:
        assert rows(table) == {7: {"user_id": 7, "segment": "gold", "score": 2.5},
                               8: {"user_id": 8, "segment": "new", "score": 0.5}}
        assert [d.offset for d in dead] == [2] and table.rejected == 1


def test_bad_records_are_reported_and_counted_never_fatal(client: EmbeddedClient) -> None:
    client.create_topic("users", 1)
    bad = [
        (b"1", user(1, "good")),                              # 0
        (b"2", b"{not json"),                                 # 1 malformed
        (b"3", b'{"user_id": "three", "segment": "x"}'),      # 2 wrong type
        (b"4", b'{"segment": "no key"}'),                     # 3 key field missing
        (b"5", b'{"user_id": null, "segment": "null key"}'),  # 4 key field null
        (None, None),                                         # 5 tombstone without a key
        (b"one", None),                                       # 6 tombstone key not an int
        (b"\xff", None),                                      # 7 tombstone key not UTF-8
        (b"1", b'{"user_id": 1, "segment": "overwritten"}'),  # 8
        (b"1", b"\x00garbage"),                               # 9 malformed: 8 still stands
    ]
    with client.producer() as p:
        for k, v in bad:
            p.send("users", v, key=k, partition=0).result()
    dead: list[DeadLetter] = []
    with TopicReferenceTable(client, "users", "user_id", USERS, on_dead=dead.append) as table:
        assert segments(table) == {1: "overwritten"}
        assert table.rejected == 8
        assert [d.offset for d in dead] == [1, 2, 3, 4, 5, 6, 7, 9]
        assert {d.stage for d in dead} == {"enrich-table"}
        by_offset = {d.offset: d for d in dead}
        assert by_offset[1].value == b"{not json" and "does not fit the schema" in by_offset[1].reason
        assert "no key field 'user_id'" in by_offset[3].reason
        assert "no key field 'user_id'" in by_offset[4].reason
        assert "needs a Kafka key" in by_offset[5].reason
        assert "b'one'" in by_offset[6].reason and "int64" in by_offset[6].reason
        assert all(d.reason.startswith("reference topic 'users': ") for d in dead)
        assert {d.partition for d in dead} == {0}
        assert [d.position for d in dead] == [d.offset for d in dead]  # one batch from 0
        # while running: more bad records, good ones around them still land
        with client.producer() as p:
            p.send("users", b"[]", key=b"6").result()
            p.send("users", user(6, "six"), key=b"6").result()
            p.send("users", None, key=b"1.5").result()
        table.reload()
        assert segments(table) == {1: "overwritten", 6: "six"}
        assert table.rejected == 10 and len(dead) == 10
    # no handler: still counted, still no crash
    with TopicReferenceTable(client, "users", "user_id", USERS) as quiet:
        assert quiet.rejected == 10 and segments(quiet) == {1: "overwritten", 6: "six"}


def test_a_pipeline_sees_records_produced_while_it_runs(client: EmbeddedClient) -> None:
    client.create_topic("users", 2)
    producer = client.producer()
    producer.send("users", user(1, "bronze"), key=b"1").result()
    table = TopicReferenceTable(client, "users", "user_id", USERS, refresh_s=0.0)

    def events() -> Iterator[list[bytes]]:
        yield [b'{"user_id": 1, "amount": 1.0}', b'{"user_id": 2, "amount": 2.0}']
        # while the pipeline runs: 1 is promoted, 2 appears
        producer.send("users", user(1, "gold"), key=b"1").result()
        producer.send("users", user(2, "silver"), key=b"2").result()
        yield [b'{"user_id": 1, "amount": 3.0}', b'{"user_id": 2, "amount": 4.0}']
        producer.send("users", None, key=b"1").result()
        yield [b'{"user_id": 1, "amount": 5.0}', b'{"user_id": 2, "amount": 6.0}']

    out: list[pa.RecordBatch] = []
    p = (pipeline(events(), engine="cpu").decode({"user_id": "int", "amount": "float"})
         .enrich(table, on="user_id").to(out.append))
    p.run()
    got = [(r["user_id"], r["amount"], r["segment"]) for b in out for r in b.to_pylist()]
    assert got == [(1, 1.0, "bronze"), (2, 2.0, None),
                   (1, 3.0, "gold"), (2, 4.0, "silver"),
                   (1, 5.0, None), (2, 6.0, "silver")]
    table.close()
    producer.close()


def test_reloads_are_throttled_and_swap_only_on_change(client: EmbeddedClient) -> None:
    client.create_topic("users", 1)
    p = client.producer()
    p.send("users", user(1, "a"), key=b"1").result()
    with TopicReferenceTable(client, "users", "user_id", USERS, refresh_s=0.3) as table:
        first = table.snapshot()
        p.send("users", user(2, "b"), key=b"2").result()
        assert table.maybe_reload() is False  # opened just now: not yet time to look
        assert table.snapshot() is first and segments(table) == {1: "a"}
        time.sleep(0.35)
        assert table.maybe_reload() is True
        second = table.snapshot()
        assert second is not first and segments(table) == {1: "a", 2: "b"}
        # records that restate the table, and a tombstone of a key it lacks: no new snapshot
        p.send("users", user(1, "a"), key=b"1").result()
        p.send("users", None, key=b"3").result()
        time.sleep(0.35)
        assert table.maybe_reload() is False
        assert table.snapshot() is second
        time.sleep(0.35)
        assert table.maybe_reload() is False  # nothing arrived at all
        p.send("users", user(1, "a", score=2.0), key=b"1").result()
        table.reload()  # forced: no wait for refresh_s
        assert table.snapshot() is not second
        assert rows(table)[1]["score"] == 2.0
    p.close()


def test_after_close_the_table_keeps_its_last_snapshot(client: EmbeddedClient) -> None:
    client.create_topic("users", 1)
    p = client.producer()
    p.send("users", user(1, "a"), key=b"1").result()
    table = TopicReferenceTable(client, "users", "user_id", USERS, refresh_s=0.0)
    table.close()
    table.close()  # idempotent
    p.send("users", user(1, "b"), key=b"1").result()
    assert table.maybe_reload() is False
    table.reload()
    assert segments(table) == {1: "a"}
    p.close()


def test_float_keys_minus_zero_is_zero(client: EmbeddedClient) -> None:
    client.create_topic("rates", 1)
    with client.producer() as p:
        p.send("rates", b'{"x": -0.0, "label": "neg"}', key=b"-0.0").result()
        p.send("rates", b'{"x": 0.0, "label": "pos"}', key=b"0.0").result()
        p.send("rates", b'{"x": 1.5, "label": "one"}', key=b"1.5").result()
        p.send("rates", None, key=b"1.5").result()
    with TopicReferenceTable(client, "rates", "x", {"x": "float", "label": "string"}) as table:
        assert table.table.to_pylist() == [{"x": 0.0, "label": "pos"}]


def test_unknown_topic_is_a_typed_error(client: EmbeddedClient) -> None:
    with pytest.raises(UnknownReferenceTopicError) as info:
        TopicReferenceTable(client, "nope", "user_id", USERS)
    assert info.value.topic == "nope"
    assert isinstance(info.value, EnrichError)
    assert "'nope'" in str(info.value)


def test_a_key_outside_the_schema_or_a_bad_format_is_rejected(client: EmbeddedClient) -> None:
    client.create_topic("users", 1)
    with pytest.raises(EnrichError, match="expected key column 'id'"):
        TopicReferenceTable(client, "users", "id", USERS)
    with pytest.raises(SchemaError, match="format"):
        TopicReferenceTable(client, "users", "user_id", USERS, format="csv")
    with pytest.raises(EnrichError, match="refresh_s"):
        TopicReferenceTable(client, "users", "user_id", USERS, refresh_s=-1)
