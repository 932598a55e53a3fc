"""Consumer-group state and committed offsets, kept in the metadata store.

Layout (the same keys in SQLite and in etcd)::

    /plait/groups/<group>/generation              b"<int>", the fence
    /plait/groups/<group>/state                   JSON GroupState
    /plait/groups/<group>/offsets/<topic>/<part>  JSON {"offset", "metadata", "generation"}

Group names are percent-encoded so a ``/`` in a Kafka group id cannot escape its
folder. Every write is one metadata-store transaction guarded by the generation
key: this is what keeps a fenced (zombie) member from committing, on SQLite and on
etcd alike, and what lets many partitions' offsets be committed in one round trip.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from plait.groups.errors import FencedCommitError, GroupBusyError
from plait.meta.interface import Compare, MetaStore, Put

ROOT = b"/plait/groups/"
# etcd refuses a txn with more operations than --max-txn-ops (default 128); larger
# commits are split into fenced transactions of at most this many puts each.
MAX_PUTS_PER_TXN = 128

TopicPartition = tuple[str, int]
OffsetAndMetadata = tuple[int, str]


def _group_prefix(group: str) -> bytes:
    return ROOT + quote(group, safe="").encode() + b"/"


def generation_key(group: str) -> bytes:
    return _group_prefix(group) + b"generation"


def state_key(group: str) -> bytes:
    return _group_prefix(group) + b"state"


def offsets_prefix(group: str) -> bytes:
    return _group_prefix(group) + b"offsets/"


def offset_key(group: str, topic: str, partition: int) -> bytes:
    return offsets_prefix(group) + f"{quote(topic, safe='')}/{partition}".encode()


@dataclass
class GroupState:
    """What a coordinator must remember about a group across restarts."""

    generation: int = 0
    protocol_type: str = ""
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    assignments: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {
            "generation": self.generation,
            "protocol_type": self.protocol_type,
            "protocol": self.protocol,
            "leader": self.leader,
            "members": self.members,
            "assignments": {m: base64.b64encode(a).decode() for m, a in self.assignments.items()},
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GroupState:
        doc = json.loads(data)
        return cls(
            generation=int(doc["generation"]),
            protocol_type=doc.get("protocol_type", ""),
            protocol=doc.get("protocol"),
            leader=doc.get("leader"),
            members=dict(doc.get("members", {})),
            assignments={m: base64.b64decode(a) for m, a in doc.get("assignments", {}).items()},
        )


class GroupStore:
    """Reads and fenced writes of group state and offsets over any MetaStore."""

    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta

    def generation(self, group: str) -> int:
        kv = self.meta.get(generation_key(group))
        return int(kv.value) if kv is not None else 0

    def load(self, group: str) -> GroupState | None:
        kv = self.meta.get(state_key(group))
        return GroupState.from_json(kv.value) if kv is not None else None

    def save(self, group: str, state: GroupState, expected_generation: int) -> bool:
        """Store ``state`` only if the stored generation is still ``expected_generation``.

        Returns False (and changes nothing) when another coordinator moved the group on.
        """
        gen_key = generation_key(group)
        guard = (
            Compare.absent(gen_key)
            if expected_generation == 0
            else Compare.value(gen_key, "==", str(expected_generation).encode())
        )
        puts = [
            Put(gen_key, str(state.generation).encode()),
            Put(state_key(group), state.to_json()),
        ]
        result = self.meta.txn([guard], puts, [])
        if not result.succeeded and expected_generation == 0:
            # A group that was saved at generation 0 has the key; accept that too.
            result = self.meta.txn(
                [Compare.value(gen_key, "==", b"0")], puts, []
            )
        return result.succeeded

    def commit_offsets(
        self, group: str, generation: int, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        """Commit many partitions' offsets in one transaction, fenced by ``generation``.

        Raises FencedCommitError when the group's generation differs (nothing is
        written), GroupBusyError for a generation-less commit to a group with members.
        Past MAX_PUTS_PER_TXN partitions the commit is split into several transactions,
        each fenced on its own: a FencedCommitError then means the chunks before it were
        applied (each under a generation that was current when it landed), none after.
        """
        if not offsets:
            return
        puts = [
            Put(
                offset_key(group, topic, partition),
                json.dumps(
                    {"offset": int(off), "metadata": meta, "generation": generation}
                ).encode(),
            )
            for (topic, partition), (off, meta) in offsets.items()
        ]
        gen_key = generation_key(group)
        if generation >= 0:
            for i in range(0, len(puts), MAX_PUTS_PER_TXN):
                result = self.meta.txn(
                    [Compare.value(gen_key, "==", str(generation).encode())],
                    puts[i : i + MAX_PUTS_PER_TXN],
                    [],
                )
                if not result.succeeded:
                    raise FencedCommitError(group, generation, self._current_generation(group))
            return
        # Generation -1: Kafka's "simple consumer" commit, allowed while no member is
        # active. Guard on the state key's revision so a join racing us wins cleanly.
        state_kv = self.meta.get(state_key(group))
        if state_kv is not None and GroupState.from_json(state_kv.value).members:
            raise GroupBusyError(group)
        st_key = state_key(group)
        guard = (
            Compare.absent(st_key)
            if state_kv is None
            else Compare.mod_revision(st_key, "==", state_kv.mod_revision)
        )
        for i in range(0, len(puts), MAX_PUTS_PER_TXN):
            # offsets are not the state key: one guard holds for every chunk
            if not self.meta.txn([guard], puts[i : i + MAX_PUTS_PER_TXN], []).succeeded:
                raise GroupBusyError(group)

    def fetch_offsets(
        self, group: str, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets of ``group`` (all of them when ``partitions`` is None)."""
        prefix = offsets_prefix(group)
        found: dict[TopicPartition, OffsetAndMetadata] = {}
        for kv in self.meta.range(prefix):
            topic_q, _, part = kv.key[len(prefix) :].decode().rpartition("/")
            doc = json.loads(kv.value)
            found[(unquote(topic_q), int(part))] = (int(doc["offset"]), doc.get("metadata", ""))
        if partitions is None:
            return found
        return {tp: found[tp] for tp in partitions if tp in found}

    def list_groups(self) -> list[str]:
        names = set()
        for kv in self.meta.range(ROOT):
            names.add(unquote(kv.key[len(ROOT) :].split(b"/", 1)[0].decode()))
        return sorted(names)

    def delete(self, group: str) -> int:
        return self.meta.delete(_group_prefix(group), prefix=True)

    def _current_generation(self, group: str) -> int | None:
        kv = self.meta.get(generation_key(group))
        return int(kv.value) if kv is not None else None
