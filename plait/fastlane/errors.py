"""Errors of the fast-lane strand.

The fast lane is an accelerator: losing it never loses an event, so few of its
failures reach a caller. These are the ones that do: a bad URL or subject, and use
of a lane after ``close()``.
"""

from __future__ import annotations

from plait.errors import ConfigError, PlaitError


class FastLaneError(PlaitError):
    """Base class of the fast lane's errors."""


class FastLaneUrlError(FastLaneError, ConfigError):
    """A fast-lane URL was rejected before any connection was tried."""

    def __init__(self, url: str, why: str) -> None:
        self.url = url
        super().__init__(f"bad fast-lane URL {url!r}: {why}")


class InvalidSubjectError(FastLaneError, ConfigError):
    """A topic or partition cannot be named as a fast-lane subject."""


class FastLaneClosedError(FastLaneError):
    """``publish`` or ``subscribe`` on a lane that was closed."""
