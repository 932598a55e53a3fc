"""Partition assignment strategies, pure functions of members, subscriptions and counts.

Every member of a group may compute the assignment (the compare-and-swap on the
generation decides whose copy is stored), so the result must depend only on its
inputs: same members, same subscriptions, same partition counts, same answer.
"""

from __future__ import annotations

import json

TopicPartition = tuple[str, int]


def range_assign(
    subscriptions: dict[str, set[str]], partition_counts: dict[str, int]
) -> dict[str, list[TopicPartition]]:
    """Kafka's range assignor: per topic, contiguous partition ranges by sorted member id.

    Topics missing from ``partition_counts`` (unknown to this process) are skipped.
    """
    assignment: dict[str, list[TopicPartition]] = {m: [] for m in subscriptions}
    for topic in sorted(partition_counts):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not members:
            continue
        count = partition_counts[topic]
        per, extra = divmod(count, len(members))
        start = 0
        for i, member in enumerate(members):
            size = per + (1 if i < extra else 0)
            assignment[member].extend((topic, p) for p in range(start, start + size))
            start += size
    return assignment


def encode_assignment(parts: list[TopicPartition]) -> bytes:
    """JSON ``[[topic, partition], ...]``: any topic name survives (no separator to escape)."""
    return json.dumps([[t, p] for t, p in parts]).encode()


def decode_assignment(data: bytes) -> list[TopicPartition]:
    return [(str(t), int(p)) for t, p in json.loads(data)]
