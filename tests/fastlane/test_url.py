"""Fast-lane URLs: every accepted form, and a clear error for each bad one."""

from __future__ import annotations

import pytest

from plait.errors import ConfigError
from plait.fastlane.errors import FastLaneUrlError
from plait.fastlane.inproc import InProcFastLane, shared_hub
from plait.fastlane.url import (
    InProcTarget,
    NatsTarget,
    NatsTLS,
    open_fastlane,
    parse_fastlane_url,
)


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("inproc", InProcTarget("")),
        ("inproc:bench", InProcTarget("bench")),
        ("nats://127.0.0.1:4333", NatsTarget(("nats://127.0.0.1:4333",), None)),
        ("nats://a,b:5", NatsTarget(("nats://a:4222", "nats://b:5"), None)),
        ("tls://h:1", NatsTarget(("tls://h:1",), NatsTLS())),
        (
            "nats://h:1?cacert=ca.pem&cert=c.pem&key=k.pem",
            NatsTarget(("tls://h:1",), NatsTLS("ca.pem", "c.pem", "k.pem")),
        ),
    ],
)
def test_accepted_forms(url: str, target: object) -> None:
    assert parse_fastlane_url(url) == target


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "expected 'inproc'"),
        ("kafka://h:1", "unknown scheme 'kafka'"),
        ("nats:h:1", "unknown scheme"),
        ("nats://", "at least one host:port"),
        ("nats://h:1,", "none empty"),
        ("nats://h:0", "port 1-65535"),
        ("nats://h:x", "port 1-65535"),
        ("nats://u@h:1", "no path or user info"),
        ("nats://h:1/path", "no path or user info"),
        ("nats://h:1?cert=c.pem", "both cert= and key="),
        ("nats://h:1?tls=1", "unknown parameter"),
        ("nats://h:1?cacert=", "non-empty"),
        ("inproc:", "a name"),
    ],
)
def test_rejected_forms(url: str, why: str) -> None:
    with pytest.raises(FastLaneUrlError, match=why) as info:
        parse_fastlane_url(url)
    assert isinstance(info.value, ConfigError) and repr(url) in str(info.value)


def test_inproc_urls_share_a_hub_per_name() -> None:
    a, b, other = open_fastlane("inproc"), open_fastlane("inproc"), open_fastlane("inproc:x")
    assert isinstance(a, InProcFastLane) and isinstance(b, InProcFastLane)
    assert isinstance(other, InProcFastLane)
    assert a.hub is b.hub is shared_hub() and other.hub is shared_hub("x") is not a.hub
    seen: list[int] = []
    b.subscribe("u", 0, lambda base, last, data: seen.append(base))
    other.subscribe("u", 0, lambda base, last, data: seen.append(-1))
    a.publish("u", 0, 7, 7, b"")
    assert seen == [7]
    for lane in (a, b, other):
        lane.close()
