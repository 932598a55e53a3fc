"""Idempotent-producer state of one partition, as Kafka keeps it.

For each producer id: the current epoch and the last (up to) five batches it wrote
(first/last sequence, first/last offset). A retry of one of those five is recognised as a
duplicate and answered with the original offsets; anything else must continue the
sequence exactly. The state is snapshotted to ``<offset>.snapshot`` (the state as of that
log offset) at roll and clean close; recovery loads the newest valid snapshot and replays
batch headers stored after it, so the state survives a crash without being fsynced per
append.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from plait.log.errors import OutOfOrderSequenceError, ProducerFencedError
from plait.log.fsutil import atomic_write
from plait.protocol.batch_header import BatchHeader, crc32c

RETAINED_BATCHES = 5
SEQUENCE_MODULUS = 2**31
_SNAPSHOT_VERSION = 1
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class BatchMeta:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[BatchMeta] = field(default_factory=lambda: deque(maxlen=RETAINED_BATCHES))

    def copy(self) -> ProducerEntry:
        return ProducerEntry(self.epoch, deque(self.batches, maxlen=RETAINED_BATCHES))


def is_idempotent(header: BatchHeader) -> bool:
    return header.producer_id >= 0 and header.base_sequence >= 0


class ProducerStateManager:
    """Producer id -> :class:`ProducerEntry` for one partition (not thread-safe)."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}

    def check(self, headers: list[BatchHeader], where: str) -> list[BatchMeta | None]:
        """Validate the batches of one append in order, without changing the state.

        Returns, per batch, the original :class:`BatchMeta` if it is a duplicate, else
        None. Raises :class:`ProducerFencedError` for an old epoch and
        :class:`OutOfOrderSequenceError` for a gap, a rewind, or a new epoch that does
        not start at sequence 0.
        """
        working: dict[int, ProducerEntry] = {}
        out: list[BatchMeta | None] = []
        for h in headers:
            if not is_idempotent(h):
                out.append(None)
                continue
            entry = working.get(h.producer_id)
            if entry is None:
                known = self.producers.get(h.producer_id)
                entry = known.copy() if known is not None else None
            if entry is None or h.producer_epoch > entry.epoch:
                if h.base_sequence != 0:
                    raise OutOfOrderSequenceError(where, h.producer_id, 0, h.base_sequence)
                entry = ProducerEntry(h.producer_epoch)
            elif h.producer_epoch < entry.epoch:
                raise ProducerFencedError(where, h.producer_id, entry.epoch, h.producer_epoch)
            else:
                dup = next((m for m in entry.batches if m.first_seq == h.base_sequence
                            and m.last_seq == h.last_sequence), None)
                if dup is not None:
                    out.append(dup)
                    working[h.producer_id] = entry
                    continue
                expected = (entry.batches[-1].last_seq + 1) % SEQUENCE_MODULUS \
                    if entry.batches else 0
                if h.base_sequence != expected:
                    raise OutOfOrderSequenceError(where, h.producer_id, expected, h.base_sequence)
            entry.batches.append(BatchMeta(h.base_sequence, h.last_sequence, -1, -1))
            working[h.producer_id] = entry
            out.append(None)
        return out

    def expected_sequence(self, producer_id: int) -> int:
        """The sequence the producer's next new batch must start with."""
        entry = self.producers.get(producer_id)
        if entry is None or not entry.batches:
            return 0
        return (entry.batches[-1].last_seq + 1) % SEQUENCE_MODULUS

    def update(self, header: BatchHeader) -> None:
        """Record a batch that is now in the log (its base offset assigned)."""
        if not is_idempotent(header):
            return
        entry = self.producers.get(header.producer_id)
        if entry is None or entry.epoch != header.producer_epoch:
            entry = ProducerEntry(header.producer_epoch)
            self.producers[header.producer_id] = entry
        entry.batches.append(BatchMeta(header.base_sequence, header.last_sequence,
                                       header.base_offset, header.last_offset))

    # -- snapshots -------------------------------------------------------------

    def to_bytes(self, offset: int) -> bytes:
        body = msgpack.packb({
            "v": _SNAPSHOT_VERSION,
            "offset": offset,
            "producers": [
                [pid, e.epoch, [[m.first_seq, m.last_seq, m.first_offset, m.last_offset]
                                for m in e.batches]]
                for pid, e in self.producers.items()
            ],
        })
        return _CRC.pack(crc32c(body)) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[int, ProducerStateManager] | None:
        """Parse a snapshot; None when it is torn or corrupt (caller falls back)."""
        if len(data) < _CRC.size or _CRC.unpack_from(data)[0] != crc32c(data[_CRC.size:]):
            return None
        try:
            doc = msgpack.unpackb(data[_CRC.size:])
            if doc["v"] != _SNAPSHOT_VERSION:
                return None
            state = cls()
            for pid, epoch, batches in doc["producers"]:
                entry = ProducerEntry(epoch)
                entry.batches.extend(BatchMeta(*m) for m in batches)
                state.producers[pid] = entry
            return int(doc["offset"]), state
        except (ValueError, KeyError, TypeError):
            return None


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}.snapshot"


def list_snapshots(directory: Path) -> list[int]:
    """Offsets of the snapshot files in ``directory``, ascending."""
    offsets = []
    for name in os.listdir(directory):
        stem, dot, ext = name.partition(".")
        if ext == "snapshot" and dot and stem.isdigit():
            offsets.append(int(stem))
    return sorted(offsets)


def write_snapshot(directory: Path, state: ProducerStateManager, offset: int, *,
                   durable: bool, keep: int = 2) -> None:
    """Write the state as of ``offset`` and delete all but the newest ``keep`` snapshots."""
    atomic_write(snapshot_path(directory, offset), state.to_bytes(offset), durable=durable)
    for old in list_snapshots(directory)[:-keep]:
        snapshot_path(directory, old).unlink(missing_ok=True)


def load_snapshot(directory: Path, max_offset: int) -> tuple[int, ProducerStateManager]:
    """The newest valid snapshot at or below ``max_offset`` (newer ones are deleted,
    they describe truncated data); ``(0, empty)`` when there is none."""
    for offset in reversed(list_snapshots(directory)):
        path = snapshot_path(directory, offset)
        if offset > max_offset:
            path.unlink(missing_ok=True)
            continue
        parsed = ProducerStateManager.from_bytes(path.read_bytes())
        if parsed is not None and parsed[0] == offset:
            return parsed
    return 0, ProducerStateManager()
