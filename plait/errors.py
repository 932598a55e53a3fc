"""The root of plait's exception tree.

Every exception the library raises on purpose derives from :class:`PlaitError`, so a
caller can catch plait's failures without catching programming errors. Each subsystem
keeps its own ``errors`` module with the specific classes; this module holds only the
root and the few errors shared by several layers.
"""

from __future__ import annotations


class PlaitError(Exception):
    """Base class of every error plait raises deliberately."""


class ConfigError(PlaitError, ValueError):
    """A setting or argument was rejected at the edge (bad URL, bad size, bad name)."""


class CorruptDataError(PlaitError):
    """Bytes read from disk or the wire failed validation (CRC, length, magic)."""

    def __init__(self, message: str, *, where: str = "", position: int | None = None) -> None:
        self.where = where
        self.position = position
        detail = message
        if where:
            detail += f" (in {where}"
            detail += f" at byte {position})" if position is not None else ")"
        super().__init__(detail)
