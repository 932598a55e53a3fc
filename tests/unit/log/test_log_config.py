from __future__ import annotations

import pytest

from plait.errors import ConfigError
from plait.log import FsyncPolicy, LogConfig


@pytest.mark.parametrize("text, expected", [
    ("always", FsyncPolicy("always")),
    ("never", FsyncPolicy("never")),
    ("interval", FsyncPolicy("interval", 50)),
    ("interval:7", FsyncPolicy("interval", 7)),
    (" Interval:1000 ", FsyncPolicy("interval", 1000)),
])
def test_fsync_policy_parse(text: str, expected: FsyncPolicy) -> None:
    assert FsyncPolicy.parse(text) == expected
    assert FsyncPolicy.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "sometimes", "interval:", "interval:x", "interval:0",
                                  "interval:-5", "always:5"])
def test_fsync_policy_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        FsyncPolicy.parse(text)
    assert repr(text.strip().lower()) in str(info.value) or repr(text) in str(info.value) \
        or "interval" in str(info.value)


def test_default_config_matches_kafka_limits() -> None:
    config = LogConfig()
    assert config.max_batch_bytes == 1048588
    assert config.fsync == FsyncPolicy("interval", 50)
    assert config.retention_bytes == -1


@pytest.mark.parametrize("field, value", [
    ("segment_bytes", 10), ("segment_bytes", 2**31), ("segment_ms", 0),
    ("retention_bytes", -2), ("retention_ms", -7), ("index_interval_bytes", -1),
    ("max_batch_bytes", 0), ("segment_bytes", True), ("fsync", 3),
])
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        LogConfig(**{field: value})  # type: ignore[arg-type]
    assert field in str(info.value) or "fsync" in str(info.value)


def test_config_accepts_fsync_string() -> None:
    assert LogConfig(fsync="interval:10").fsync == FsyncPolicy("interval", 10)  # type: ignore[arg-type]


def test_overrides_round_trip() -> None:
    base = LogConfig()
    mine = LogConfig(segment_bytes=4096, fsync=FsyncPolicy("always"))
    overrides = mine.overrides(base)
    assert overrides == {"segment_bytes": 4096, "fsync": "always"}
    assert base.with_overrides(overrides) == mine
    with pytest.raises(ConfigError, match="segmnt_bytes"):
        base.with_overrides({"segmnt_bytes": 1})
