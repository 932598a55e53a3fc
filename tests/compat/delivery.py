"""Record what real Kafka clients produced and delivered, and check it.

Producers record (partition, offset, value) from their delivery reports; consumers
record every message they hand to the application, stamped with a global sequence
number taken under one lock, so hand-overs between members are ordered too. The
lost/duplicated/reordered judgement is the shared one in plait.fastlane.delivery;
this module adds thread-safe recording and a check that each value is the one
produced at its offset.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from plait.fastlane.delivery import DeliveryReport as StreamReport
from plait.fastlane.delivery import check_delivery


@dataclass(frozen=True)
class DeliveryReport:
    streams: StreamReport
    wrong_value: list[tuple[int, int]]

    @property
    def produced(self) -> int:
        return self.streams.produced

    @property
    def delivered(self) -> int:
        return self.streams.delivered

    @property
    def ok(self) -> bool:
        return self.streams.ok and not self.wrong_value

    def summary(self) -> str:
        return f"{self.streams}; {len(self.wrong_value)} with a wrong value (first {self.wrong_value[:5]})"


class DeliveryChecker:
    """Thread-safe recorder of produced and delivered messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.produced: dict[tuple[int, int], bytes] = {}
        self.delivered: list[tuple[int, int, int, bytes, str]] = []  # seq, part, off, value, who

    def record_produced(self, partition: int, offset: int, value: bytes) -> None:
        with self._lock:
            self.produced[(partition, offset)] = value

    def record_delivered(self, partition: int, offset: int, value: bytes, who: str = "") -> None:
        with self._lock:
            self.delivered.append((next(self._seq), partition, offset, value, who))

    def delivered_count(self) -> int:
        with self._lock:
            return len(self.delivered)

    def report(self) -> DeliveryReport:
        with self._lock:
            delivered = sorted(self.delivered)
            produced = dict(self.produced)
        per_partition: dict[int, list[int]] = {}
        for part, off in sorted(produced):
            per_partition.setdefault(part, []).append(off)
        got: dict[int, list[int]] = {}
        wrong = []
        for _seq, part, off, value, _who in delivered:
            got.setdefault(part, []).append(off)
            if produced.get((part, off), value) != value:
                wrong.append((part, off))
        return DeliveryReport(check_delivery(per_partition, got), wrong)

    def assert_exactly_once(self) -> DeliveryReport:
        rep = self.report()
        assert rep.ok, rep.summary()
        return rep
