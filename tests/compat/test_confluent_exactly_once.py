"""confluent-kafka (librdkafka) against plait serve: idempotent produce, a consumer group
that loses and regains a member mid-stream, and a broker restart in between.

Every message must be delivered exactly once and in order per partition, across the
rebalance and across the restart (the group resumes from its committed offsets).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from delivery import DeliveryChecker

from plait.broker.testing import ServeProcess

N_MESSAGES = 200_000
PARTITIONS = 6
TOPIC = "orders"
GROUP = "billing"


def _produce(bootstrap: str, checker: DeliveryChecker, n: int) -> None:
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            checker.record_produced(msg.partition(), msg.offset(), msg.value())  # type: ignore[attr-defined]

    p = Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 5, "compression.type": "lz4", "on_delivery": on_delivery,
    })
    for i in range(n):
        value = b"%d" % i
        while True:
            try:
                p.produce(TOPIC, key=b"%d" % (i % 997), value=value)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]


REBALANCE_ERRORS = {
    KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
}


class Member(threading.Thread):
    """One group member, written as an exactly-once application must be with Kafka:
    commit what it processed after each batch, and commit a partition's position in
    the revoke callback before the partition moves to another member."""

    def __init__(self, name: str, bootstrap: str, checker: DeliveryChecker,
                 stop: threading.Event, strategy: str) -> None:
        super().__init__(name=name, daemon=True)
        self.checker = checker
        self.stop_event = stop
        self.failure: BaseException | None = None
        self.positions: dict[int, int] = {}
        self.rebalance_commit_failures = 0
        self.pause = 0.02
        self.closing = False
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": name,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": strategy,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 300,
        })

    def _commit(self, partitions: list[int]) -> None:
        offsets = [TopicPartition(TOPIC, p, self.positions[p]) for p in partitions
                   if p in self.positions]
        deadline = time.monotonic() + 15
        while offsets:
            try:
                result = self.consumer.commit(offsets=offsets, asynchronous=False)
                # Per-partition errors come back in the result, not as an exception.
                failed = [tp.error for tp in result or [] if tp.error is not None]
                if not failed:
                    return
                raise KafkaException(failed[0])
            except KafkaException as exc:
                if exc.args[0].code() not in REBALANCE_ERRORS or time.monotonic() > deadline:
                    raise
                # The group is between generations; librdkafka's own thread finishes the
                # rejoin, after which the same commit succeeds under the new generation.
                self.rebalance_commit_failures += 1
                time.sleep(0.05)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self.closing:  # when closing, run() has committed everything already
            self._commit([tp.partition for tp in partitions])
        for tp in partitions:
            self.positions.pop(tp.partition, None)

    def run(self) -> None:
        try:
            self.consumer.subscribe([TOPIC], on_revoke=self._on_revoke)
            while not self.stop_event.is_set():
                msgs = self.consumer.consume(200, 0.2)
                bad = [m.error() for m in msgs if m.error() is not None]
                assert not bad, bad
                for m in msgs:
                    self.checker.record_delivered(m.partition(), m.offset(), m.value(), self.name)
                    self.positions[m.partition()] = m.offset() + 1
                if msgs:
                    self._commit(sorted({m.partition() for m in msgs}))
                    time.sleep(self.pause)  # slow enough that the bounce is mid-stream
            self._commit(sorted(self.positions))
        except Exception as exc:  # noqa: BLE001 - handed to the test thread, which asserts
            self.failure = exc
        finally:
            self.closing = True
            self.consumer.close()


def _consume_until(bootstrap: str, checker: DeliveryChecker, target: int,
                   *, bounce_at: int | None, strategy: str, timeout: float,
                   pause: float = 0.02) -> None:
    stop = threading.Event()
    members = [Member(f"m{i}", bootstrap, checker, stop, strategy) for i in range(3)]
    for m in members:
        m.pause = pause
    for m in members:
        m.start()
    deadline = time.monotonic() + timeout
    bounced = bounce_at is None
    while checker.delivered_count() < target and time.monotonic() < deadline:
        if not bounced and checker.delivered_count() >= bounce_at:  # type: ignore[operator]
            # One member leaves mid-stream (close() sends LeaveGroup), then a new one joins.
            leaver = members[1]
            leaver.stop_event = threading.Event()
            leaver.stop_event.set()
            leaver.join(20)
            assert leaver.failure is None, leaver.failure
            time.sleep(0.5)
            members.append(Member("m1-again", bootstrap, checker, stop, strategy))
            members[-1].pause = pause
            members[-1].start()
            bounced = True
        time.sleep(0.05)
    stop.set()
    for m in members:
        m.join(30)
        assert m.failure is None, f"{m.name}: {m.failure!r}"
    assert bounced
    if bounce_at is not None:
        rejoined = members[-1].name
        assert any(who == rejoined for *_rest, who in checker.delivered), "rejoined member got nothing"
    assert checker.delivered_count() >= target, checker.report().summary()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_idempotent_group_rebalance_and_restart(tmp_path: Path) -> None:
    checker = DeliveryChecker()
    data = tmp_path / "data"
    broker = ServeProcess(data, "--group-initial-delay-ms", "500").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(10)
        _produce(broker.bootstrap, checker, N_MESSAGES)
        assert len(checker.produced) == N_MESSAGES
        _consume_until(broker.bootstrap, checker, 150_000, bounce_at=40_000,
                       strategy="cooperative-sticky", timeout=120)
    finally:
        assert broker.stop() == 0, broker.output()[-3000:]

    broker = ServeProcess(data).start()
    try:
        # Committed offsets came back with the group: the new members start there.
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": GROUP})
        committed = c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], 10)
        c.close()
        next_by_partition: dict[int, int] = {}
        for _seq, part, off, _value, _who in checker.delivered:
            next_by_partition[part] = max(next_by_partition.get(part, 0), off + 1)
        assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == next_by_partition
        _consume_until(broker.bootstrap, checker, N_MESSAGES, bounce_at=None,
                       strategy="range", timeout=90)
    finally:
        assert broker.stop() == 0, broker.output()[-3000:]
    report = checker.assert_exactly_once()
    assert report.delivered == N_MESSAGES
