"""Errors raised while decoding Kafka wire formats."""

from __future__ import annotations

from plait.errors import CorruptDataError


class InvalidRecordBatchError(CorruptDataError):
    """A RecordBatch failed a structural check: length, magic byte or CRC32C."""
