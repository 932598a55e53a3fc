"""The broker's hot-path metric counting shows up, exactly, in the scraped text."""

from __future__ import annotations

from plait.observe.metrics import BrokerMetrics


def _value(text: str, prefix: str) -> float:
    return next(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))


def test_requests_latency_and_bytes_reach_the_exposition() -> None:
    m = BrokerMetrics()
    for seconds in (0.0001, 0.0007, 0.0007, 0.003, 99.0):
        m.request_done("Produce", 0, seconds)
    m.request_done("Produce", 47, 0.0002)
    m.received(100)
    m.sent(40)
    m.produced("orders", 64)
    m.partition_error("Produce", 47)
    text = m.render().decode()
    assert _value(text, 'plait_broker_requests_total{api="Produce",error="0"}') == 5
    assert _value(text, 'plait_broker_requests_total{api="Produce",error="47"}') == 1
    assert _value(text, 'plait_broker_request_seconds_bucket{api="Produce",le="0.0005"}') == 2
    assert _value(text, 'plait_broker_request_seconds_bucket{api="Produce",le="0.001"}') == 4
    assert _value(text, 'plait_broker_request_seconds_bucket{api="Produce",le="0.005"}') == 5
    assert _value(text, 'plait_broker_request_seconds_bucket{api="Produce",le="30.0"}') == 5
    assert _value(text, 'plait_broker_request_seconds_bucket{api="Produce",le="+Inf"}') == 6
    assert _value(text, 'plait_broker_request_seconds_count{api="Produce"}') == 6
    assert abs(_value(text, 'plait_broker_request_seconds_sum{api="Produce"}') - 99.0047) < 1e-9
    assert _value(text, "plait_broker_bytes_in_total") == 100
    assert _value(text, "plait_broker_bytes_out_total") == 40
    assert _value(text, 'plait_broker_produced_bytes_total{topic="orders"}') == 64
    assert _value(text, 'plait_broker_partition_errors_total{api="Produce",error="47"}') == 1
    # A second scrape neither loses nor double-counts what the first one moved over.
    m.request_done("Produce", 0, 0.0001)
    m.received(1)
    text = m.render().decode()
    assert _value(text, 'plait_broker_requests_total{api="Produce",error="0"}') == 6
    assert _value(text, "plait_broker_bytes_in_total") == 101
