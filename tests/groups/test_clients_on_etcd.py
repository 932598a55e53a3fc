"""Both SDK backends use plait's groups when given ``meta=``: embedded and kafka://.

The kafka:// test runs against a real Kafka-protocol broker (``plait serve`` in a
subprocess) through confluent-kafka; offsets go to etcd, not to the broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import plait
from plait.broker.testing import ServeProcess
from plait.groups import GroupStore
from plait.groups.membership import live_members
from plait.meta.url import open_meta


@pytest.fixture
def etcd_url(etcd_member) -> str:
    return f"etcd://{etcd_member.endpoint}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path_factory.mktemp("serve")).start()
    try:
        yield proc
    finally:
        proc.stop()


def drain(consumer, want: int, timeout: float = 20.0) -> list:
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        out.extend(consumer.poll(timeout=0.2))
    return out


def test_embedded_client_groups_live_in_etcd(tmp_path, etcd_url, group):
    with plait.connect(f"embedded:{tmp_path / 'd'}", meta=etcd_url) as client:
        client.create_topic("t", 4)
        with client.producer() as producer:
            producer.send_batch("t", [b"%d" % i for i in range(200)])
        a = client.consumer(["t"], group=group, from_beginning=True)
        b = client.consumer(["t"], group=group, from_beginning=True)
        assert sorted(a.assignment() + b.assignment()) == [("t", p) for p in range(4)]
        with open_meta(etcd_url) as meta:  # another process's view: the keys are in etcd
            assert len(live_members(meta, group)) == 2
            got = drain(a, 100)
            a.commit()
            stored = GroupStore(meta).fetch_offsets(group)
            assert {tp: off for tp, (off, _) in stored.items()} == {
                tp: a.position(*tp) for tp in a.assignment()
            }
        a.close()
        rest = drain(b, 200 - len(got))
        seen = [(m.partition, m.offset) for m in got + rest]
        assert len(seen) == len(set(seen)) == 200
        b.close()


def test_kafka_client_with_meta_uses_plait_groups_and_etcd_offsets(broker, etcd_url, group):
    topic = f"k-{group}"
    url = f"kafka://{broker.bootstrap}"
    with plait.connect(url, meta=etcd_url) as c1, plait.connect(url, meta=etcd_url) as c2:
        c1.create_topic(topic, 4)
        with c1.producer() as producer:
            producer.send_batch(topic, [b"%d" % i for i in range(400)])
        a = c1.consumer([topic], group=group, from_beginning=True)
        first = drain(a, 400)
        assert len(first) == 400  # alone in the group: a owns every partition
        a.commit()
        # librdkafka may put an unkeyed batch in fewer than 4 partitions: a partition
        # that got nothing has nothing to commit (None), which counts as offset 0.
        committed = {p: a.committed(topic, p) or 0 for p in range(4)}
        assert sum(committed.values()) == 400  # in etcd
        b = c2.consumer([topic], group=group, from_beginning=True)
        # b's client stands for another process: a adopts b's generation at its next poll
        assert b.generation > 0
        drain(a, 1, timeout=1.0)
        assert a.generation == b.generation
        assert sorted(a.assignment() + b.assignment()) == [(topic, p) for p in range(4)]
        assert not set(a.assignment()) & set(b.assignment())
        # b resumes from the offsets a committed to etcd: nothing old is read again
        assert drain(b, 1, timeout=1.0) == []
        with c1.producer() as producer:
            producer.send_batch(topic, [b"n%d" % i for i in range(40)])
        fresh: list[tuple[int, int]] = []
        deadline = time.monotonic() + 20
        while len(fresh) < 40 and time.monotonic() < deadline:
            fresh += [(m.partition, m.offset) for m in a.poll(timeout=0.1) + b.poll(timeout=0.1)]
        assert len(fresh) == len(set(fresh)) == 40
        assert all(off >= committed[p] for p, off in fresh)
        a.close()
        b.close()
