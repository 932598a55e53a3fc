"""plait serve as a process: ready line, metrics, options, clean shutdown and restart."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from plait.broker.testing import ServeProcess


def _get(b: ServeProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{b.host}:{b.http_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _produce(b: ServeProcess, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(n):
        p.produce(topic, key=b"k", value=b"%d" % i)
    assert p.flush(15) == 0


def test_healthz_and_metrics(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "d") as b:
        assert _get(b, "/healthz") == (200, "ok\n")
        assert _get(b, "/nope")[0] == 404
        _produce(b, "m", 50)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "mg",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe(["m"])
        got = 0
        deadline = time.monotonic() + 20
        while got < 20 and time.monotonic() < deadline:
            got += len([m for m in c.consume(20 - got, 0.5) if m.error() is None])
        c.commit(offsets=[TopicPartition("m", 0, 20)], asynchronous=False)
        c.close()
        status, text = _get(b, "/metrics")
        assert status == 200
        assert 'plait_log_end_offset{partition="0",topic="m"} 50.0' in text
        assert 'plait_group_lag{group="mg",partition="0",topic="m"} 30.0' in text
        assert 'plait_broker_requests_total{api="Produce",error="0"}' in text
        assert 'plait_broker_request_seconds_bucket{api="Fetch"' in text
        bytes_in = next(float(ln.split()[1]) for ln in text.splitlines()
                        if ln.startswith("plait_broker_bytes_in_total "))
        assert bytes_in > 50


def test_no_auto_create_refuses_unknown_topics(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "d", "--no-auto-create") as b:
        errors: list[KafkaError] = []
        p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 3000,
                      "on_delivery": lambda err, msg: errors.append(err)})
        p.produce("missing", value=b"x")
        p.flush(10)
        assert errors and errors[0] is not None
        assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT)
        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=5)
        assert "missing" not in md.topics


def test_default_partitions_for_auto_created_topics(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "d", "--default-partitions", "5") as b:
        _produce(b, "auto", 1)
        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics("auto", timeout=5)
        assert len(md.topics["auto"].partitions) == 5


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_data_survives_restart(tmp_path: Path, sig: int) -> None:
    data = tmp_path / "d"
    b = ServeProcess(data).start()
    _produce(b, "keep", 500)
    assert b.proc is not None
    b.proc.send_signal(sig)
    assert b.proc.wait(15) == 0, b.output()[-2000:]
    assert "plait serve: stopping" in b.output()
    with ServeProcess(data) as again:
        c = Consumer({"bootstrap.servers": again.bootstrap, "group.id": "r",
                      "auto.offset.reset": "earliest"})
        c.assign([TopicPartition("keep", 0, 0)])
        values = []
        deadline = time.monotonic() + 20
        while len(values) < 500 and time.monotonic() < deadline:
            values += [m.value() for m in c.consume(500, 0.5) if m.error() is None]
        c.close()
        assert values == [b"%d" % i for i in range(500)]


def test_long_poll_is_woken_by_produce_and_released_by_shutdown(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "d") as b:
        _produce(b, "lp", 1)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "lp",
                      "fetch.wait.max.ms": 5000, "auto.offset.reset": "latest",
                      "enable.auto.commit": False})
        c.assign([TopicPartition("lp", 0, 1)])
        c.consume(1, 1.0)  # let the consumer park a long-polling fetch
        started = time.monotonic()
        _produce(b, "lp", 1)
        msgs: list[object] = []
        while not msgs and time.monotonic() - started < 10:
            msgs = [m for m in c.consume(1, 0.1) if m.error() is None]
        latency = time.monotonic() - started
        assert msgs and latency < 2.0, f"long poll took {latency:.2f}s to see a produce"
        stop_started = time.monotonic()
        b.stop()
        assert time.monotonic() - stop_started < 5, "shutdown waited for the long poll"
        c.close()
