"""The shared delivery checker for tests: lost, duplicated and reordered events.

The logic lives in :mod:`plait.fastlane.delivery` so that ``plait bench latency``
reports the same figures without importing tests; this module is the tests' handle
on it, plus an assertion helper that prints the examples on failure.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

from plait.fastlane.delivery import DeliveryReport, check_delivery

__all__ = ["DeliveryReport", "assert_exactly_once_in_order", "check_delivery"]


def assert_exactly_once_in_order(
    produced: Mapping[Hashable, Sequence[Hashable]] | Sequence[Hashable],
    delivered: Mapping[Hashable, Iterable[Hashable]] | Iterable[Hashable],
) -> DeliveryReport:
    """Fail the test unless every produced event was delivered once, in order."""
    report = check_delivery(produced, delivered)
    assert report.ok, f"delivery check failed: {report}"
    return report
