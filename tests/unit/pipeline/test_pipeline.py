"""The pipeline API end to end on the CPU engine: order, offsets, dead letters, every step."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from plait.pipeline import RawBatch, pipeline
from plait.process.decrypt import encrypt_value
from plait.process.errors import ExpressionTypeError, GpuUnavailableError, SchemaError
from plait.process.gpu import gpu_status

SCHEMA = {
    "id": "int",
    "user_id": "int",
    "amount": "float",
    "country": "string",
    "note": "string",
    "ts": "int",
}


def ev(
    i: int, amount: float, country: str, note: str, user: int = 1, ts: int | None = None
) -> bytes:
    return json.dumps(
        {
            "id": i,
            "user_id": user,
            "amount": amount,
            "country": country,
            "note": note,
            "ts": ts if ts is not None else i * 1000,
        }
    ).encode()


def test_chain_keeps_order_offsets_and_dead_letters() -> None:
    b1 = [
        ev(0, 150, "DE", "fraud here", 1),
        ev(1, 10, "DE", "ok"),
        b"garbage",
        ev(3, 300, "FR", "chargeback", 2),
    ]
    b2 = [ev(4, 500, "FR", "FRAUD", 3), ev(5, 200, "US", "fraud")]
    out: list[pa.RecordBatch] = []
    users = pa.table({"user_id": [1, 2], "segment": ["gold", "silver"]})
    p = (
        pipeline([b1, b2], engine="cpu")
        .decode(SCHEMA)
        .filter("amount > 100 and country in ('DE', 'FR')")
        .enrich(users, on="user_id")
        .match(["fraud", "chargeback"], field="note", caseless=True, names=True)
        .project("id", "segment", "match_names", cents="amount * 100")
        .to(out.append)
    )
    stats = p.run()
    rows = [r for b in out for r in b.to_pylist()]
    assert rows == [
        {
            "id": 0,
            "segment": "gold",
            "match_names": ["fraud"],
            "cents": 15000.0,
            "_offset": 0,
        },
        {
            "id": 3,
            "segment": "silver",
            "match_names": ["chargeback"],
            "cents": 30000.0,
            "_offset": 3,
        },
        {
            "id": 4,
            "segment": None,
            "match_names": ["fraud"],
            "cents": 50000.0,
            "_offset": 4,
        },
    ]
    assert [(d.stage, d.position, d.offset, d.value) for d in p.dead_letters] == [
        ("decode", 2, 2, b"garbage")
    ]
    assert (stats.rows_in, stats.rows_out, stats.dead_letters) == (6, 3, 1)


def test_arrow_source_with_offsets_and_map() -> None:
    src = [
        pa.record_batch(
            {
                "value": [ev(0, 1, "DE", "a"), ev(1, 2, "FR", "b")],
                "_offset": pa.array([40, 41], pa.int64()),
            }
        )
    ]
    p = (
        pipeline(src, engine="cpu")
        .decode(SCHEMA)
        .map(lambda a: pc.multiply(a, 2), inputs=["amount"], output="double")
        .map(lambda b: b.drop_columns(["note"]))
    )
    rows = [r for b in p for r in b.to_pylist()]
    assert [(r["double"], r["_offset"]) for r in rows] == [(2.0, 40), (4.0, 41)]
    assert "note" not in rows[0]


def test_decrypt_step_dead_letters_failed_records() -> None:
    key = bytes(32)
    good = encrypt_value(key, b'{"x": 1}')
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    batch = pa.record_batch(
        {
            "payload": pa.array([good, bytes(bad), good], pa.binary()),
            "kid": ["k", "k", "missing"],
            "_offset": pa.array([7, 8, 9], pa.int64()),
        }
    )
    p = pipeline([batch], engine="cpu").decrypt(
        "payload", "kid", {"k": key}, output="plain", as_string=True
    )
    rows = [r for b in p for r in b.to_pylist()]
    assert [(r["plain"], r["_offset"]) for r in rows] == [('{"x": 1}', 7)]
    assert [(d.stage, d.offset) for d in p.dead_letters] == [
        ("decrypt", 8),
        ("decrypt", 9),
    ]
    assert "authentication failed" in p.dead_letters[0].reason


def test_window_step_emits_on_watermark_and_flush() -> None:
    evs = [
        ev(i, 10.0 * i, "DE", "n", user=i % 2, ts=t)
        for i, t in enumerate([1000, 2000, 11000, 500, 25000])
    ]
    p = (
        pipeline([evs[:3], evs[3:]], engine="cpu")
        .decode(SCHEMA)
        .window(
            10_000, "ts", key="user_id", value="amount", lateness=1000, quantiles=[0.5]
        )
    )
    rows = [r for b in p for r in b.to_pylist()]
    assert [(r["user_id"], r["window_start"], r["count"], r["sum"]) for r in rows] == [
        (0, 0, 1, 0.0),
        (1, 0, 1, 10.0),
        (0, 10000, 1, 20.0),
        (0, 20000, 1, 40.0),
    ]
    [late] = p.dead_letters
    assert (late.stage, late.offset) == ("window", 3)
    assert "before watermark" in late.reason


def test_session_window_step() -> None:
    """Per user, events less than 5 s apart are one session; the late one is a dead letter."""
    times = [1000, 4000, 30000, 8000, 2000, 60000, 100]
    evs = [ev(i, 1.0 + i, "DE", "n", user=i % 2, ts=t) for i, t in enumerate(times)]
    p = (
        pipeline([evs[:4], evs[4:]], engine="cpu")
        .decode(SCHEMA)
        .session_window(5000, "ts", key="user_id", value="amount", lateness=29_000)
    )
    rows = [r for b in p for r in b.to_pylist()]
    assert [(r["user_id"], r["window_start"], r["window_end"], r["count"], r["sum"]) for r in rows] == [
        (0, 1000, 7000, 2, 1.0 + 5.0),  # 1000 and 2000 (out of order, within lateness)
        (1, 4000, 13000, 2, 2.0 + 4.0),  # 4000 and 8000
        (0, 30000, 35000, 1, 3.0),
        (1, 60000, 65000, 1, 6.0),
    ]
    [late] = p.dead_letters  # 100 after 60000: below the watermark 31000
    assert (late.stage, late.offset) == ("window", 6)


def test_errors_are_typed_and_clear() -> None:
    with pytest.raises(ExpressionTypeError, match="unknown column 'nope'"):
        pipeline([[ev(0, 1, "DE", "a")]], engine="cpu").decode(SCHEMA).filter(
            "nope > 1"
        ).run()
    with pytest.raises(SchemaError, match="never decoded"):
        pipeline([[b"{}"]], engine="cpu").filter("true").run()
    with pytest.raises(SchemaError, match="expected format"):
        pipeline([], engine="cpu").decode(SCHEMA, format="xml")
    raw = RawBatch([ev(0, 1, "DE", "a")], offsets=__import__("numpy").array([99]))
    out = pipeline([raw], engine="cpu").decode(SCHEMA).process(raw)
    assert out[0].column("_offset").to_pylist() == [99]


def test_gpu_engine_absent_is_a_typed_error_and_auto_falls_back() -> None:
    if gpu_status()[0]:
        pytest.skip("a GPU is present")
    with pytest.raises(GpuUnavailableError):
        pipeline([], engine="gpu")
    rows = [
        r
        for b in pipeline([[ev(0, 1, "DE", "fraud")]], engine="auto")
        .decode(SCHEMA)
        .match(["fraud"], "note")
        for r in b.to_pylist()
    ]
    assert rows[0]["match_ids"] == [0] and rows[0]["match_any"] is True


def test_pipeline_into_parquet_replayed_after_restart_writes_rows_once(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    from plait.process.sinks import ParquetSink

    events = [
        ev(i, 200.0, "DE", "n", ts=1_700_000_000_000 + i * 600_000) for i in range(30)
    ]
    batches = [events[:10], events[10:20], events[20:]]
    pipeline(batches[:2], engine="cpu").decode(SCHEMA).filter("amount > 100").to(
        ParquetSink(tmp_path, time="ts")
    ).run()
    # restart: replay everything from offset 0
    pipeline(batches, engine="cpu").decode(SCHEMA).filter("amount > 100").to(
        ParquetSink(tmp_path, time="ts")
    ).run()
    ids = sorted(
        i
        for f in tmp_path.rglob("part-*.parquet")
        for i in pq.read_table(f).column("id").to_pylist()
    )
    assert ids == list(range(30))
    # 22:13 to 03:03 UTC across midnight
    parts = {
        (p.parent.parent.name, p.parent.name) for p in tmp_path.rglob("part-*.parquet")
    }
    assert parts == {("dt=2023-11-14", "hour=22"), ("dt=2023-11-14", "hour=23")} | {
        ("dt=2023-11-15", f"hour=0{h}") for h in range(4)
    }


def test_partitioned_source_tags_outputs_and_dead_letters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A topic source's batches are one partition each, with offsets that repeat across
    partitions: outputs carry ``_partition`` (through project too) and dead letters say it,
    and the Parquet sink keeps both partitions' rows with equal offsets."""
    import numpy as np
    import pyarrow.parquet as pq

    from plait.process.sinks import ParquetSink

    ts = 1_700_000_000_000
    p0 = RawBatch([ev(0, 200, "DE", "a", ts=ts), b"nope", ev(2, 300, "DE", "c", ts=ts)],
                  np.array([0, 1, 2]), partition=0)
    p1 = RawBatch([ev(10, 200, "FR", "x", ts=ts), ev(11, 400, "FR", "y", ts=ts)],
                  np.array([0, 1]), partition=1)
    out: list[pa.RecordBatch] = []
    p = (
        pipeline([p0, p1], engine="cpu")
        .decode(SCHEMA)
        .project("id", "ts")
        .to(out.append)
        .to(ParquetSink(tmp_path, time="ts"))
    )
    p.run()
    got = pa.Table.from_batches(out).select(["id", "_offset", "_partition"]).to_pylist()
    assert got == [
        {"id": 0, "_offset": 0, "_partition": 0},
        {"id": 2, "_offset": 2, "_partition": 0},
        {"id": 10, "_offset": 0, "_partition": 1},
        {"id": 11, "_offset": 1, "_partition": 1},
    ]
    [dead] = p.dead_letters
    assert (dead.offset, dead.partition) == (1, 0)
    assert dead.to_json()["partition"] == 0
    lake = pa.concat_tables(pq.read_table(f) for f in tmp_path.rglob("part-*.parquet"))
    assert sorted(lake.column("id").to_pylist()) == [0, 2, 10, 11]


def test_unpartitioned_dead_letters_keep_their_json_keys() -> None:
    p = pipeline([[b"nope"]], engine="cpu").decode(SCHEMA)
    p.run()
    [dead] = p.dead_letters
    assert dead.partition is None
    assert set(dead.to_json()) == {"stage", "position", "offset", "reason", "value"}
