"""Check a delivered stream against what was produced: lost, duplicated, reordered.

The measure of DESIGN.md's delivery promise, shared by the tests and ``plait bench
latency`` (so the product never imports tests/). Order is judged per stream (a
partition): events of different partitions have no order to keep.

Definitions, per stream, with ``produced`` the ids in the order they were produced
(each id once) and ``delivered`` the ids in the order they were delivered:

- lost: produced ids never delivered;
- duplicated: deliveries of an id beyond its first;
- reordered: first deliveries of an id that come after the first delivery of an id
  produced later (a late arrival), so one event moved ahead of 1,000 counts 1, not 1,000;
- unexpected: delivered ids that were never produced.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """Counts over all streams, with up to five ``(stream, id)`` examples of each kind."""

    produced: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    unexpected: int
    lost_examples: tuple[tuple[Hashable, Hashable], ...] = ()
    duplicated_examples: tuple[tuple[Hashable, Hashable], ...] = ()
    reordered_examples: tuple[tuple[Hashable, Hashable], ...] = ()
    unexpected_examples: tuple[tuple[Hashable, Hashable], ...] = ()

    @property
    def ok(self) -> bool:
        """Every produced event delivered exactly once, in order, nothing else."""
        return not (self.lost or self.duplicated or self.reordered or self.unexpected)

    def __str__(self) -> str:
        parts = [f"{self.delivered} delivered of {self.produced} produced"]
        for kind in ("lost", "duplicated", "reordered", "unexpected"):
            n = getattr(self, kind)
            if n:
                parts.append(f"{n} {kind} (e.g. {list(getattr(self, kind + '_examples'))})")
        return "; ".join(parts)


def check_delivery(
    produced: Mapping[Hashable, Sequence[Hashable]] | Sequence[Hashable],
    delivered: Mapping[Hashable, Iterable[Hashable]] | Iterable[Hashable],
) -> DeliveryReport:
    """Compare streams: either two mappings ``stream -> ids`` (per partition), or two
    plain sequences of ids (one stream). Produced ids must be unique per stream."""
    if isinstance(produced, Mapping) != isinstance(delivered, Mapping):
        raise TypeError("produced and delivered must both be mappings or both be sequences")
    prod: Mapping[Hashable, Sequence[Hashable]] = (
        produced if isinstance(produced, Mapping) else {None: produced}
    )
    deliv: Mapping[Hashable, Iterable[Hashable]] = (
        delivered if isinstance(delivered, Mapping) else {None: delivered}
    )
    totals = [0, 0, 0, 0, 0, 0]
    examples: list[list[tuple[Hashable, Hashable]]] = [[], [], [], []]
    for stream in list(prod) + [s for s in deliv if s not in prod]:
        counts = _check_stream(stream, prod.get(stream, ()), deliv.get(stream, ()), examples)
        totals = [a + b for a, b in zip(totals, counts)]
    return DeliveryReport(*totals, *(tuple(e) for e in examples))  # type: ignore[arg-type]


def _check_stream(
    stream: Hashable,
    produced: Sequence[Hashable],
    delivered: Iterable[Hashable],
    examples: list[list[tuple[Hashable, Hashable]]],
) -> tuple[int, int, int, int, int, int]:
    rank: dict[Hashable, int] = {}
    for i, ident in enumerate(produced):
        if rank.setdefault(ident, i) != i:
            raise ValueError(f"produced id {ident!r} appears twice in stream {stream!r}; "
                             "expected unique ids per stream")
    seen: set[Hashable] = set()
    n_delivered = duplicated = reordered = unexpected = 0
    high = -1  # highest produced rank delivered so far
    lost_ex, dup_ex, reord_ex, unexp_ex = examples
    for ident in delivered:
        n_delivered += 1
        r = rank.get(ident)
        if r is None:
            unexpected += 1
            if len(unexp_ex) < EXAMPLES:
                unexp_ex.append((stream, ident))
            continue
        if ident in seen:
            duplicated += 1
            if len(dup_ex) < EXAMPLES:
                dup_ex.append((stream, ident))
            continue
        seen.add(ident)
        if r < high:
            reordered += 1
            if len(reord_ex) < EXAMPLES:
                reord_ex.append((stream, ident))
        else:
            high = r
    lost = len(rank) - len(seen)
    if lost and len(lost_ex) < EXAMPLES:
        for ident in produced:
            if ident not in seen:
                lost_ex.append((stream, ident))
                if len(lost_ex) >= EXAMPLES:
                    break
    return len(rank), n_delivered, lost, duplicated, reordered, unexpected
