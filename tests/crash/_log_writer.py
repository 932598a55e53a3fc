"""Crash-test writer: appends idempotent batches with fsync ``always`` until killed.

Usage: python _log_writer.py DATA_DIR PRODUCER_ID FIRST_PAYLOAD_ID FIRST_SEQUENCE [RETRY]

Prints ``READY`` once the log is open, ``SEND <id> <seq>`` before each append and
``ACK <base_offset> <last_offset> <id>`` after it returns. With RETRY (``<id>:<seq>``) it
first re-sends that batch, as a producer retries a request whose answer it never got.
"""

from __future__ import annotations

import sys

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from plait.log import FsyncPolicy, Log, LogConfig

CONFIG = LogConfig(segment_bytes=4096, index_interval_bytes=256, retention_ms=-1,
                   fsync=FsyncPolicy("always"))


def records_of(payload_id: int) -> int:
    return 1 + payload_id % 3


def build(producer_id: int, payload_id: int, sequence: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=producer_id, producer_epoch=0,
                                        base_sequence=sequence, batch_size=1 << 20)
    for i in range(records_of(payload_id)):
        value = b"%d:%d:" % (payload_id, i) + b"x" * (payload_id * 37 % 300)
        builder.append(i, timestamp=1_700_000_000_000 + payload_id, key=None, value=value,
                       headers=[])
    return bytes(builder.build())


def main() -> None:
    data_dir, producer_id, payload_id, sequence = sys.argv[1], *map(int, sys.argv[2:5])
    log = Log.open(data_dir, CONFIG)
    if "crash" not in log.list_topics():
        log.create_topic("crash", 1, CONFIG)
    partition = log.partition("crash", 0)
    print("READY", flush=True)
    if len(sys.argv) > 5:
        retry_id, retry_seq = map(int, sys.argv[5].split(":"))
        result = partition.append(build(producer_id, retry_id, retry_seq))
        print(f"ACK {result.base_offset} {result.last_offset} {retry_id}", flush=True)
    while True:
        print(f"SEND {payload_id} {sequence}", flush=True)
        result = partition.append(build(producer_id, payload_id, sequence))
        print(f"ACK {result.base_offset} {result.last_offset} {payload_id}", flush=True)
        sequence += records_of(payload_id)
        payload_id += 1


if __name__ == "__main__":
    main()
