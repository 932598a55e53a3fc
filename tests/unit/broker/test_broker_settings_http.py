"""Broker settings, topic-config translation and the HTTP endpoint."""

from __future__ import annotations

import asyncio

import pytest

from plait.broker import topic_config
from plait.broker.config import BrokerConfig
from plait.errors import ConfigError
from plait.log.config import LogConfig
from plait.observe.http import HttpEndpoint
from plait.observe.metrics import BrokerMetrics


def test_broker_config_rejects_bad_values_with_the_value() -> None:
    with pytest.raises(ConfigError, match="70000"):
        BrokerConfig(port=70000)
    with pytest.raises(ConfigError, match="default partitions"):
        BrokerConfig(default_partitions=0)
    assert BrokerConfig(port=0).port == 0


def test_topic_config_maps_kafka_names_and_refuses_unknown_ones() -> None:
    assert topic_config.log_overrides({"retention.ms": "1000", "cleanup.policy": "delete"}) == {
        "retention_ms": 1000}
    with pytest.raises(ConfigError, match="not.a.config"):
        topic_config.log_overrides({"not.a.config": "1"})
    with pytest.raises(ConfigError, match="integer"):
        topic_config.log_overrides({"segment.bytes": "big"})
    rows = {n: (v, d) for n, v, d in topic_config.describe(LogConfig(retention_ms=1000), LogConfig())}
    assert rows["retention.ms"] == ("1000", False)
    assert rows["segment.bytes"][1] is True


def test_http_endpoint_serves_health_and_metrics() -> None:
    metrics = BrokerMetrics()
    metrics.requests.labels("Produce", "0").inc(3)
    metrics.attach_log(lambda: [("t", 0, 10)], lambda: [("g", "t", 0, 4)])
    healthy = [True]

    async def get(port: int, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        data = await reader.read()
        writer.close()
        return data

    async def run() -> None:
        http = HttpEndpoint(metrics.render, lambda: healthy[0])
        port = await http.start("127.0.0.1", 0)
        try:
            ok = await get(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.startswith(b"HTTP/1.0 200") and ok.endswith(b"ok\n")
            text = (await get(port, b"GET /metrics HTTP/1.1\r\n\r\n")).decode()
            assert 'plait_broker_requests_total{api="Produce",error="0"} 3.0' in text
            assert 'plait_group_lag{group="g",partition="0",topic="t"} 6.0' in text
            assert (await get(port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.0 405")
            assert (await get(port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.0 405")
            healthy[0] = False
            assert (await get(port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.0 503")
        finally:
            await http.stop()

    asyncio.run(run())
