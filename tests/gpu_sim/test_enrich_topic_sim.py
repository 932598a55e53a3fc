"""The device chain's enrich (sorted keys uploaded once per snapshot) with a table that
follows a topic: a record produced between batches reaches the next batch on the device
exactly as on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

import plait
from plait.pipeline import RawBatch, pipeline
from plait.process.engine import EngineSelector
from plait.process.enrich_topic import TopicReferenceTable
from plait.process.gpu.chain import Chain

try:
    from tests.gpu_sim.engines import engine_under_test
except ImportError:
    from gpu_sim.engines import engine_under_test  # type: ignore[no-redef]

pytestmark = pytest.mark.gpu_sim
GPU = engine_under_test()
SCHEMA = {"user_id": "int", "amount": "float"}


def _run(data: Path, engine: str | EngineSelector) -> list[dict]:
    """Three batches; the users topic changes before the second and the third."""
    with plait.connect(f"embedded:{data}") as client:
        client.create_topic("users", 2)
        producer = client.producer()
        for uid in range(1, 4):
            producer.send("users", json.dumps({"user_id": uid, "segment": f"s{uid}"}), key=str(uid)).result()
        changes = [
            [(b"2", b'{"user_id": 2, "segment": "gold"}'), (b"9", b'{"user_id": 9, "segment": "new"}')],
            [(b"1", None), (b"3", b'{"user_id": 3, "segment": "s3b"}')],
        ]
        values = [json.dumps({"user_id": u, "amount": float(u)}).encode() for u in (1, 2, 3, 9, 4)]
        out: list[dict] = []
        with TopicReferenceTable(client, "users", "user_id", {"user_id": "int", "segment": "string"},
                                 refresh_s=0.0) as table:
            p = pipeline(engine=engine).decode(SCHEMA).filter("amount > 0").enrich(table, on="user_id")
            for i in range(3):
                if i:
                    for key, value in changes[i - 1]:
                        producer.send("users", value, key=key).result()
                offsets = pa.array(range(i * 10, i * 10 + len(values))).to_numpy()
                for b in p.process(RawBatch(values, offsets)):
                    out += b.to_pylist()
            if isinstance(engine, EngineSelector):
                assert Chain(GPU, p.steps).length == 3  # decode, filter, enrich: on the device
        producer.close()
    return out


def test_topic_table_on_the_device_chain_equals_the_cpu(tmp_path: Path) -> None:
    want = _run(tmp_path / "cpu", "cpu")
    got = _run(tmp_path / "gpu", EngineSelector("gpu", gpu=GPU))
    assert got == want
    assert [r["segment"] for r in want] == [
        "s1", "s2", "s3", None, None,
        "s1", "gold", "s3", "new", None,
        None, "gold", "s3b", "new", None,
    ]
