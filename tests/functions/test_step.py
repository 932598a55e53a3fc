"""The exactly-once step on the embedded client: transform, resume, fencing, bad setups."""

from __future__ import annotations

import pytest

import plait
from plait.functions import ForeignOutputError, Step, StepConfigError
from plait.functions.step import SRC_HEADER, last_reflected
from plait.log.errors import ProducerFencedError
from plait.protocol.records import iter_records


def transform(m):
    n = int(m.value)
    if n % 7 == 0:
        return None  # filtered out
    if n % 5 == 0:
        return [b"a%d" % n, b"b%d" % n]  # expanded
    return b"x%d" % n


def expected(values):
    out = []
    for v in values:
        n = int(v)
        if n % 7 == 0:
            continue
        out.extend([b"a%d" % n, b"b%d" % n] if n % 5 == 0 else [b"x%d" % n])
    return out


def sink_records(client, topic, partition):
    part = client.log.partition(topic, partition)
    if part.log_end_offset == part.log_start_offset:
        return []
    return list(iter_records(part.read(part.log_start_offset, 1 << 30)))


@pytest.fixture
def client(tmp_path):
    with plait.connect(f"embedded:{tmp_path / 'data'}") as c:
        c.create_topic("in", 2)
        c.create_topic("out", 2)
        yield c


def fill(client, n):
    with client.producer() as p:
        for part in range(2):
            p.send_batch("in", [b"%d" % (part * 1000 + i) for i in range(n)], partition=part)


def test_step_writes_each_input_once_with_source_offsets(client):
    fill(client, 300)
    with Step(client, "s", "in", "out", transform, max_records=37) as step:
        assert step.run(idle_exit_s=0.3) == 600
    for part in range(2):
        recs = sink_records(client, "out", part)
        assert [r.value for r in recs] == expected([b"%d" % (part * 1000 + i) for i in range(300)])
        srcs = [int(dict(r.headers)[SRC_HEADER]) for r in recs]
        assert srcs == sorted(srcs) and srcs[-1] <= 299
        assert last_reflected(client.log.partition("out", part), 1 << 20) == srcs[-1]


def test_restart_after_uncommitted_writes_skips_what_is_already_written(client):
    fill(client, 200)
    with Step(client, "s", "in", "out", transform, max_records=50) as step:
        step.run(idle_exit_s=0.3)
        # Simulate a crash after the appends but before the commits: rewind the commits.
        step.consumer.commit({("in", 0): 0, ("in", 1): 10})
    fill(client, 20)  # more input arrives while the step is down
    with Step(client, "s", "in", "out", transform, max_records=50) as step:
        step.run(idle_exit_s=0.3)
        assert step.consumer.committed("in", 0) == 220
    for part in range(2):
        values = [b"%d" % (part * 1000 + i) for i in range(200)] + [
            b"%d" % (part * 1000 + i) for i in range(20)
        ]
        assert [r.value for r in sink_records(client, "out", part)] == expected(values)


def test_batch_function_outputs_are_tagged_with_the_batch_end(client):
    fill(client, 100)

    def upper(batch):
        return [v.upper() for v in batch.values.to_pylist() if not v.endswith(b"3")]

    with Step(client, "b", "in", "out", batch_fn=lambda b: [b"n" + v for v in upper(b)],
              max_records=30) as step:
        step.run(idle_exit_s=0.3)
    recs = sink_records(client, "out", 0)
    assert [r.value for r in recs] == [b"n%d" % i for i in range(100) if i % 10 != 3]
    assert int(dict(recs[-1].headers)[SRC_HEADER]) == 99


def test_a_zombie_owner_is_fenced_by_the_producer_epoch(client):
    fill(client, 50)
    old = Step(client, "z", "in", "out", transform, max_records=10)
    while old.run_once(0.2):
        if all(client.log.partition("out", p).log_end_offset for p in range(2)):
            break
    stale = dict(old._writers)  # old has not polled since: it still thinks it owns both
    new = Step(client, "z", "in", "out", transform, max_records=10)
    assert new.consumer.generation > old.consumer.generation
    (owner,) = new._writers
    new.run(idle_exit_s=0.3)
    with pytest.raises(ProducerFencedError):
        old._append(stale[owner], [[(None, b"late", 0, [(SRC_HEADER, b"1")])]])
    old.close()
    new.close()


def test_sink_written_by_someone_else_is_refused(client):
    fill(client, 5)
    with client.producer() as p:
        p.send_batch("out", [b"foreign"], partition=0)
    with pytest.raises(ForeignOutputError):
        Step(client, "f", "in", "out", transform).run_once(0.5)


def test_setup_errors(client):
    client.create_topic("narrow", 1)
    with pytest.raises(StepConfigError):
        Step(client, "n", "in", "narrow", transform)
    with pytest.raises(StepConfigError):
        Step(client, "n", "in", "out")
