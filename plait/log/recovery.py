"""Bringing a partition's folder back to a consistent state on open.

Which segments are validated batch by batch (length, magic, CRC32C, contiguous offsets):
the last (active) segment always; after an unclean shutdown also every segment at or
above the partition's recovery point (the base of the oldest segment that may hold
unflushed bytes). Older segments keep their index files if those pass a sanity check,
else the indexes are rebuilt from a validating scan. At the first bad batch of a
validated segment the file is cut there and every later segment is deleted, because
offsets after a hole could not be served in order; each cut is logged as a warning on
the ``plait.log`` logger with the byte count and the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from plait.log.errors import CorruptSegmentError
from plait.log.fsutil import atomic_write
from plait.log.producer_state import ProducerStateManager, load_snapshot
from plait.log.segment import Segment

logger = logging.getLogger("plait.log")

RECOVERY_POINT_FILE = "recovery-point"


def read_recovery_point(directory: Path) -> int:
    try:
        return int((directory / RECOVERY_POINT_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0  # unknown: validate everything


def write_recovery_point(directory: Path, offset: int) -> None:
    atomic_write(directory / RECOVERY_POINT_FILE, f"{offset}\n".encode(), durable=True)


def _segment_bases(directory: Path) -> list[int]:
    """Base offsets of the ``.log`` files; removes orphan index files and temp files."""
    names = os.listdir(directory)
    bases = {int(n[:-4]) for n in names if n.endswith(".log") and n[:-4].isdigit()}
    for name in names:
        stem, _, ext = name.partition(".")
        orphan = ext in ("index", "timeindex") and stem.isdigit() and int(stem) not in bases
        if orphan or name.endswith(".tmp"):
            (directory / name).unlink(missing_ok=True)
    return sorted(bases)


def recover_segments(directory: Path, index_interval_bytes: int, clean: bool) -> list[Segment]:
    """Open the segments of one partition, validating and truncating as described above.

    Always returns at least one segment (a new empty one at offset 0 for a new folder).
    """
    bases = _segment_bases(directory)
    if not bases:
        return [Segment(directory, 0, index_interval_bytes)]
    recovery_point = bases[-1] if clean else read_recovery_point(directory)
    segments = [Segment(directory, b, index_interval_bytes) for b in bases]
    kept: list[Segment] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if last or seg.base_offset >= recovery_point:
            damage = seg.recover(truncate=True)
            if damage is not None:
                logger.warning(
                    "recovery truncated %d bytes from %s at byte %d: %s",
                    damage.dropped, seg.path, damage.position, damage.reason,
                )
            kept.append(seg)
            following = segments[i + 1] if not last else None
            gap = following is not None and following.base_offset != seg.next_offset
            if damage is not None or gap:
                _drop(segments[i + 1:], seg)
                break
            if not last:
                seg.flush(force=True)  # what we validated may still be only in the page cache
                seg.seal(durable=True)
        else:
            following_base = segments[i + 1].base_offset
            if not seg.load_indexes(following_base):
                seg.recover(truncate=False)
                if seg.next_offset != following_base:
                    raise CorruptSegmentError(
                        f"sealed segment ends at offset {seg.next_offset}, the next one "
                        f"starts at {following_base}; expected contiguous offsets",
                        where=str(seg.path),
                    )
                seg.seal(durable=True)
                logger.warning("rebuilt missing or inconsistent indexes of %s", seg.path)
            kept.append(seg)
    return kept


def _drop(later: list[Segment], cut: Segment) -> None:
    for seg in later:
        logger.warning(
            "recovery deleted %d bytes in %s: it follows damaged or missing data "
            "ending at offset %d", seg.size, seg.path, cut.next_offset,
        )
        seg.delete()


def recover_producer_state(directory: Path, segments: list[Segment]) -> ProducerStateManager:
    """Load the newest usable snapshot and replay the batch headers stored after it."""
    log_end = segments[-1].next_offset
    snap_offset, state = load_snapshot(directory, log_end)
    for seg in segments:
        if seg.next_offset <= snap_offset and seg is not segments[-1]:
            continue
        if seg.size == 0:
            continue
        start = seg.position_of(snap_offset, seg.size) if snap_offset > seg.base_offset else 0
        if start is None:
            continue
        for _, header in seg.walk(start, seg.size):
            if header.base_offset >= snap_offset:
                state.update(header)
    return state
