"""A delivery checker: what was produced vs what consumers delivered.

Producers record (partition, offset, value) from their delivery reports; consumers
record every message they hand to the application, stamped with a global sequence
number taken under one lock, so hand-overs between members are ordered too. The report
lists lost, duplicated and reordered messages; ``assert_exactly_once`` fails on any.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class DeliveryReport:
    produced: int
    delivered: int
    lost: list[tuple[int, int]] = field(default_factory=list)
    duplicated: list[tuple[int, int]] = field(default_factory=list)
    reordered: list[tuple[int, int, int]] = field(default_factory=list)  # partition, prev, offset
    wrong_value: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered or self.wrong_value)

    def summary(self) -> str:
        return (
            f"produced {self.produced}, delivered {self.delivered}: "
            f"{len(self.lost)} lost (first {self.lost[:5]}), "
            f"{len(self.duplicated)} duplicated (first {self.duplicated[:5]}), "
            f"{len(self.reordered)} reordered (first {self.reordered[:5]}), "
            f"{len(self.wrong_value)} with a wrong value (first {self.wrong_value[:5]})"
        )


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
        rep = DeliveryReport(produced=len(produced), delivered=len(delivered))
        seen: set[tuple[int, int]] = set()
        last: dict[int, int] = defaultdict(lambda: -1)
        for _seq, part, off, value, _who in delivered:
            key = (part, off)
            if key in seen:
                rep.duplicated.append(key)
                continue
            seen.add(key)
            if off <= last[part]:
                rep.reordered.append((part, last[part], off))
            last[part] = off
            if produced.get(key, value) != value:
                rep.wrong_value.append(key)
        rep.lost = sorted(set(produced) - seen)
        return rep

    def assert_exactly_once(self) -> DeliveryReport:
        rep = self.report()
        assert rep.ok, rep.summary()
        return rep
