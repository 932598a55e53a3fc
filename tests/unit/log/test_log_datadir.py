"""The data dir: lock, topics and their metadata, producer ids, clean shutdown."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _log_batches import SMALL, crash, decode, make_batch

from plait.errors import ConfigError
from plait.log import FsyncPolicy, Log, LogConfig, TopicInfo
from plait.log.errors import (
    DataDirLockedError,
    InvalidTopicError,
    LogError,
    PartitionOutOfRangeError,
    TopicExistsError,
    UnknownTopicError,
)
from plait.log.log import PRODUCER_ID_BLOCK


def test_second_open_in_process_is_refused(log: Log, data_dir: Path) -> None:
    with pytest.raises(DataDirLockedError) as info:
        Log.open(data_dir)
    assert info.value.path == str(data_dir)
    import os
    assert info.value.holder_pid == os.getpid() and str(os.getpid()) in str(info.value)


def test_other_process_is_refused_and_told_our_pid(log: Log, data_dir: Path) -> None:
    code = textwrap.dedent(f"""
        from plait.log import Log
        from plait.log.errors import DataDirLockedError
        try:
            Log.open({str(data_dir)!r})
        except DataDirLockedError as exc:
            print("LOCKED", exc.holder_pid)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    import os
    assert out.split() == ["LOCKED", str(os.getpid())]


def test_lock_is_released_on_close(data_dir: Path) -> None:
    Log.open(data_dir).close()
    Log.open(data_dir).close()


def test_topics_create_describe_delete(log: Log, data_dir: Path) -> None:
    override = LogConfig(segment_bytes=4096, fsync=FsyncPolicy("always"), retention_ms=-1,
                         index_interval_bytes=128)
    info = log.create_topic("orders.v1", 3, override)
    assert info == TopicInfo("orders.v1", 3, override)
    log.create_topic("a_b-c", 1)
    assert log.list_topics() == ["a_b-c", "orders.v1"]
    doc = json.loads((data_dir / "topics" / "orders.v1" / "topic.json").read_text())
    assert doc == {"name": "orders.v1", "partitions": 3,
                   "config": {"segment_bytes": 4096, "fsync": "always"}}
    with pytest.raises(TopicExistsError, match="orders.v1"):
        log.create_topic("orders.v1", 1)
    assert [p.index for p in log.partitions("orders.v1")] == [0, 1, 2]
    with pytest.raises(PartitionOutOfRangeError) as info_err:
        log.partition("orders.v1", 3)
    assert "0..2" in str(info_err.value)
    with pytest.raises(UnknownTopicError, match="nope"):
        log.describe("nope")
    p = log.partition("a_b-c", 0)
    p.append(make_batch([b"x"]))
    log.delete_topic("a_b-c")
    assert log.list_topics() == ["orders.v1"]
    assert not (data_dir / "topics" / "a_b-c").exists()
    with pytest.raises(LogError):
        p.append(make_batch([b"y"]))
    with pytest.raises(UnknownTopicError):
        log.delete_topic("a_b-c")
    log.create_topic("a_b-c", 2)      # the name can be reused; the new topic is empty
    assert log.partition("a_b-c", 0).log_end_offset == 0


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "has space", "slash/", "ü", "a:b"])
def test_invalid_topic_names(log: Log, name: str) -> None:
    with pytest.raises(InvalidTopicError) as info:
        log.create_topic(name, 1)
    assert repr(name) in str(info.value)


def test_topic_listeners_hear_each_created_topic_until_removed(log: Log) -> None:
    heard: list[tuple[str, int]] = []

    def listener(name: str) -> None:
        # Called before create_topic returns, with the topic already usable.
        heard.append((name, log.describe(name).partitions))

    log.add_topic_listener(listener)
    log.create_topic("first", 2)
    with pytest.raises(TopicExistsError):
        log.create_topic("first", 2)  # no topic made, nothing heard
    log.create_topic("second", 1)
    log.remove_topic_listener(listener)
    log.remove_topic_listener(listener)  # removing twice is harmless
    log.create_topic("third", 1)
    assert heard == [("first", 2), ("second", 1)]


def test_valid_edge_names_and_bad_partition_count(log: Log) -> None:
    log.create_topic("a" * 249, 1)
    log.create_topic(".lock", 1)   # a legal Kafka name; topics live apart from our files
    with pytest.raises(ConfigError, match="partitions"):
        log.create_topic("zero", 0)


def test_topics_and_data_survive_reopen(data_dir: Path) -> None:
    with Log.open(data_dir, SMALL) as log:
        log.create_topic("keep", 2, LogConfig(segment_bytes=2048, retention_ms=-1))
        log.create_topic("plain", 1)
        for i in range(40):
            log.partition("keep", i % 2).append(make_batch([b"%d" % i * 30]))
    assert (data_dir / ".clean_shutdown").exists()
    with Log.open(data_dir, SMALL) as log:
        assert not (data_dir / ".clean_shutdown").exists()  # removed while open
        info = log.describe("keep")
        assert info.partitions == 2 and info.config.segment_bytes == 2048
        assert info.config == LogConfig(segment_bytes=2048, retention_ms=-1)
        # a topic created with the log's defaults follows the defaults of the next open
        assert log.describe("plain").config == SMALL
    with Log.open(data_dir, LogConfig(segment_bytes=4096)) as log:
        assert log.describe("plain").config == LogConfig(segment_bytes=4096)
    with Log.open(data_dir, SMALL) as log:
        p = log.partition("keep", 1)
        p = log.partition("keep", 1)
        assert p.log_end_offset == 20
        assert [v for _, _, v in decode(p.read(0, 1 << 20))] == [b"%d" % i * 30
                                                                   for i in range(1, 40, 2)]
        assert p.append(make_batch([b"more"])).base_offset == 20


def test_producer_ids_are_monotonic_across_restarts_and_crashes(data_dir: Path) -> None:
    log = Log.open(data_dir)
    first = [log.allocate_producer_id() for _ in range(PRODUCER_ID_BLOCK + 5)]
    assert first == list(range(PRODUCER_ID_BLOCK + 5))
    crash(log)
    log = Log.open(data_dir)
    after_crash = log.allocate_producer_id()
    assert after_crash > first[-1]
    log.close()
    with Log.open(data_dir) as log:
        assert log.allocate_producer_id() > after_crash


def test_closed_log_refuses_work(data_dir: Path) -> None:
    log = Log.open(data_dir)
    log.create_topic("t", 1)
    p = log.partition("t", 0)
    log.close()
    log.close()  # idempotent
    with pytest.raises(LogError, match="closed"):
        log.list_topics()
    with pytest.raises(LogError, match="closed"):
        p.read(0)


def test_leftovers_of_interrupted_create_or_delete_are_swept(data_dir: Path) -> None:
    Log.open(data_dir).close()
    leftover = data_dir / "tmp" / "creating-abc" / "0"
    leftover.mkdir(parents=True)
    (leftover / "00000000000000000000.log").write_bytes(b"partial")
    with Log.open(data_dir) as log:
        assert log.list_topics() == []
        assert list((data_dir / "tmp").iterdir()) == []


def test_age_roll_after_reopen_counts_from_first_batch_timestamp(data_dir: Path) -> None:
    cfg = LogConfig(segment_ms=1000, retention_ms=-1)
    with Log.open(data_dir, cfg) as log:
        log.create_topic("t", 1)
        log.partition("t", 0).append(make_batch([b"a"], timestamp=5000), now_ms=5000)
    folder = data_dir / "topics" / "t" / "0"
    with Log.open(data_dir, cfg) as log:
        p = log.partition("t", 0)
        p.append(make_batch([b"b"], timestamp=5100), now_ms=5999)
        assert len(list(folder.glob("*.log"))) == 1
        p.append(make_batch([b"c"], timestamp=5200), now_ms=6000)
        assert max(f.name for f in folder.glob("*.log")) == f"{2:020d}.log"
