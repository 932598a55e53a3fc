"""``plait bench latency`` runs end to end and reports what it promises (small runs)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from plait.bench.latency_bench import bench_latency

from .lanes import NatsServer

FIGURES = {"events_per_s", "p50_ms", "p99_ms", "p999_ms", "lost", "duplicated", "reordered"}


def run_bench(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(bench_latency, [*args, "--events", "1500", "--rate", "3000", "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out: dict[str, object] = json.loads(result.output.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("args", [["--fastlane", "inproc"], ["--path", "log"]])
def test_bench_reports_latency_and_a_clean_delivery(args: list[str]) -> None:
    out = run_bench(*args)
    assert FIGURES <= set(out)
    assert (out["lost"], out["duplicated"], out["reordered"]) == (0, 0, 0)
    assert 0 < out["p50_ms"] <= out["p99_ms"] <= out["p999_ms"]  # type: ignore[operator]


def test_bench_over_nats_with_the_peer_floor(nats: NatsServer) -> None:
    out = run_bench("--fastlane", nats.url, "--peer")
    assert (out["lost"], out["duplicated"], out["reordered"]) == (0, 0, 0)
    consumer = out["consumer"]
    assert isinstance(consumer, dict) and consumer["lane_events"] > 0
    peer = out["peer"]
    assert isinstance(peer, dict) and 0 < peer["p50_ms"] <= peer["p99_ms"]


def test_bench_rejects_a_size_without_room_for_its_stamps() -> None:
    result = CliRunner().invoke(bench_latency, ["--size", "8"])
    assert result.exit_code == 2 and "--size" in result.output


@pytest.mark.parametrize("path", ["two-path", "log"])
def test_bench_through_a_broker_it_starts(nats: NatsServer, path: str) -> None:
    """--bootstrap serve: plait serve publishing on the lane, a Kafka producer, the remote
    consumer (or a plain Kafka one): every event once, in order, the lane doing the work."""
    out = run_bench("--bootstrap", "serve", "--fastlane", nats.url, "--path", path)
    assert FIGURES <= set(out)
    assert (out["lost"], out["duplicated"], out["reordered"]) == (0, 0, 0)
    assert "plait serve at" in str(out["note"]) and out["bootstrap"]
    if path == "two-path":
        consumer = out["consumer"]
        assert isinstance(consumer, dict) and consumer["lane_events"] > consumer["log_events"]


def test_bench_through_a_broker_needs_a_nats_lane() -> None:
    result = CliRunner().invoke(bench_latency, ["--bootstrap", "serve", "--fastlane", "inproc"])
    assert result.exit_code == 2 and "NATS lane" in result.output
    # a broker given by address publishes on its own lane, not on one started for the run
    result = CliRunner().invoke(bench_latency, ["--bootstrap", "127.0.0.1:9", "--fastlane", "nats"])
    assert result.exit_code == 2 and "--fastlane nats://host:port" in result.output
