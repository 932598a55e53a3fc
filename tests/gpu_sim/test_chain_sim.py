"""A pipeline whose decode -> filter -> enrich -> match runs as one device chain (on the
CUDA simulator here) outputs exactly what the CPU engine's step-by-step run outputs:
same rows in the same order, same columns, same dead letters."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from plait.pipeline import RawBatch, pipeline
from plait.process import bench_data
from plait.process.engine import Crossover, EngineSelector
from plait.process.enrich import ReferenceTable
from plait.process.gpu.chain import Chain

try:
    from tests.gpu_sim.engines import engine_under_test
except ImportError:
    from gpu_sim.engines import engine_under_test  # type: ignore[no-redef]

pytestmark = pytest.mark.gpu_sim
GPU = engine_under_test()


def _events() -> list[bytes]:
    rnd = random.Random(5)
    good = bench_data.make_events(48, seed=9)
    odd = [
        b'{"event_id": 1, "amount": "not a number"}',  # wrong type: a dead letter
        b"{not json",  # malformed: a dead letter
        json.dumps({"event_id": 7, "user_id": 3, "amount": 150.0, "country": "DE",
                    "note": "caf\u00e9 chargeback \\u00e9", "ts": 1}).encode(),
        b'{"event_id": 8, "user_id": 2, "amount": 1e400, "country": "FR", "note": "x"}',
        b'{"event_id": 9, "user_id": 99999999, "amount": 101, "country": "FR", "note": null}',
        b'{"amount": 500.5, "country": "DE", "event_id": 10, "x": {"a": [1, 2, {"b": null}]}}',
        b'{"event_id": 11, "user_id": 5, "amount": 2e2, "country": "FR", "note": "velocity"}',
    ]
    out = good + odd
    rnd.shuffle(out)
    return out


def _run(
    engine: str | EngineSelector, values: list[bytes], steps: str, partition: int | None = None
) -> tuple[pa.RecordBatch, list]:
    users = ReferenceTable(bench_data.users_table(), key="user_id")
    p = pipeline(engine=engine).decode(bench_data.SCHEMA)
    if "filter" in steps:
        p = p.filter(bench_data.FILTER)
    if "enrich" in steps:
        p = p.enrich(users, on="user_id")
    if "match" in steps:
        p = p.match(bench_data.PATTERNS, field="note", names=True)
    if "filter2" in steps:
        p = p.filter("segment != 'gold' or amount < 1000")  # an enrich column: ends the chain
    offsets = pa.array(range(100, 100 + len(values))).to_numpy()
    outs = p.process(RawBatch(values, offsets, partition))
    batch = pa.concat_batches(outs) if outs else None
    return batch, [(d.stage, d.position, d.reason, d.offset, d.partition) for d in p.dead_letters]


@pytest.mark.parametrize("steps", ["filter enrich match", "match", "enrich filter",
                                   "filter enrich match filter2"])
def test_chain_equals_cpu_pipeline(steps: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = []
    real_run = Chain.run
    monkeypatch.setattr(Chain, "run", lambda self, raw, ctx: runs.append(self.length) or real_run(self, raw, ctx))
    values = _events()
    want, want_dead = _run("cpu", values, steps)
    assert not runs
    got, got_dead = _run(EngineSelector("gpu", gpu=GPU), values, steps)
    assert runs == [1 + min(len(steps.split()), 3)]  # the chain ran, over its steps
    assert want_dead and got_dead == want_dead
    assert want is not None and got is not None
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()


def test_chain_output_names_its_input_partition_as_the_cpu_does() -> None:
    """A topic batch's partition reaches the chain's outputs and dead letters (what the
    Parquet sink's exactly-once bookkeeping keys on) exactly as on the CPU."""
    values = _events()
    want, want_dead = _run("cpu", values, "filter enrich match", partition=2)
    got, got_dead = _run(EngineSelector("gpu", gpu=GPU), values, "filter enrich match", partition=2)
    assert want is not None and got is not None
    assert got.schema == want.schema and got.schema.names[-1] == "_partition"
    assert got.to_pylist() == want.to_pylist()
    assert set(got.column("_partition").to_pylist()) == {2}
    assert want_dead and got_dead == want_dead and {d[-1] for d in got_dead} == {2}


def test_auto_runs_the_chain_only_from_the_measured_crossover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DESIGN: the runtime picks the engine by batch size and measured crossover; the
    device chain follows the pick for decode, and both sides give the same rows."""
    sizes: list[int] = []
    real_run = Chain.run
    monkeypatch.setattr(
        Chain, "run", lambda self, raw, ctx: sizes.append(len(raw.values)) or real_run(self, raw, ctx)
    )
    crossover = Crossover(GPU.device_name, {"decode": 30, "filter": 30, "match": 30,
                                            "decrypt": 30})
    auto = EngineSelector("auto", gpu=GPU, crossover=crossover)
    events = bench_data.make_events(50, seed=8)
    for n in (20, 50):  # below, then at or past the crossover
        got, dead = _run(auto, events[:n], "filter enrich match")
        want, want_dead = _run("cpu", events[:n], "filter enrich match")
        assert dead == want_dead
        assert (got is None and want is None) or got.to_pylist() == want.to_pylist()
    assert sizes == [50]


def test_records_that_are_not_all_bytes_give_the_cpu_result() -> None:
    """A batch holding other types (which Arrow cannot take as binary) is decided record
    by record as on the CPU: the same rows and the same dead letters."""
    values: list = list(bench_data.make_events(12, seed=4))
    values[2], values[7] = 17, {"event_id": 1}
    want, want_dead = _run("cpu", values, "filter enrich match")
    got, got_dead = _run(EngineSelector("gpu", gpu=GPU), values, "filter enrich match")
    assert [d[:2] for d in want_dead] == [("decode", 2), ("decode", 7)]
    assert got_dead == want_dead
    assert (got is None and want is None) or got.to_pylist() == want.to_pylist()


def test_chain_covers_the_device_steps_and_stops_at_the_first_other() -> None:
    users = ReferenceTable(bench_data.users_table(), key="user_id")
    p = (pipeline(engine="cpu").decode(bench_data.SCHEMA).filter(bench_data.FILTER)
         .enrich(users, on="user_id").match(bench_data.PATTERNS, field="note")
         .filter("segment = 'gold'"))
    assert Chain(GPU, p.steps).length == 4  # decode, filter, enrich, match
    assert Chain(GPU, p.steps[1:]).length == 0  # no decode first: no chain
