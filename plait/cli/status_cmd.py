"""``plait status``: topics, consumer groups, members, committed offsets and lag.

Topics come from the embedded data dir, or from a Kafka-protocol cluster with
``--bootstrap``; groups and offsets come from the metadata store (``--meta``, by
default the data dir's SQLite file). ``--json`` prints one JSON document for machines.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import click

from plait.cli.common import data_dir
from plait.groups import GroupStore
from plait.groups.assign import decode_assignment
from plait.groups.membership import PROTOCOL, live_members
from plait.meta.interface import MetaStore


def collect_status(topics: list[Any], meta: MetaStore | None) -> dict[str, Any]:
    """The status document: ``topics`` are TopicDescription-like (name, partitions).

    Lag is the log end offset minus the committed offset, for partitions of topics
    listed here; a group's partitions of unknown topics show ``lag: null``.
    """
    ends: dict[tuple[str, int], int] = {}
    topic_docs = []
    for desc in topics:
        parts = []
        for p in desc.partitions:
            ends[(desc.name, p.partition)] = p.log_end_offset
            parts.append(
                {"partition": p.partition, "log_start": p.log_start_offset, "log_end": p.log_end_offset}
            )
        topic_docs.append({"name": desc.name, "partitions": parts})
    groups = []
    if meta is not None:
        store = GroupStore(meta)
        for name in store.list_groups():
            state = store.load(name)
            live = live_members(meta, name)
            members = []
            ids = sorted(set(live) | set(state.members if state else {}))
            for mid in ids:
                info = (state.members.get(mid) if state else None) or live.get(mid) or {}
                assignment: list[list[Any]] | None = None
                if state is not None and state.protocol == PROTOCOL and mid in state.assignments:
                    assignment = [[t, p] for t, p in decode_assignment(state.assignments[mid])]
                members.append(
                    {
                        "id": mid,
                        "live": mid in live,
                        "topics": info.get("topics", []) if isinstance(info, dict) else [],
                        "assignment": assignment,
                    }
                )
            offsets: list[dict[str, Any]] = []
            for (topic, partition), (committed, _meta) in sorted(store.fetch_offsets(name).items()):
                end = ends.get((topic, partition))
                offsets.append(
                    {
                        "topic": topic,
                        "partition": partition,
                        "committed": committed,
                        "log_end": end,
                        "lag": max(0, end - committed) if end is not None else None,
                    }
                )
            groups.append(
                {
                    "name": name,
                    "generation": state.generation if state else store.generation(name),
                    "protocol": state.protocol if state else None,
                    "members": members,
                    "offsets": offsets,
                    "total_lag": sum(o["lag"] or 0 for o in offsets),
                }
            )
    return {"topics": topic_docs, "groups": groups}


def render_text(doc: dict[str, Any]) -> str:
    lines = [f"topics ({len(doc['topics'])})"]
    for t in doc["topics"]:
        lines.append(f"  {t['name']}  partitions {len(t['partitions'])}")
        for p in t["partitions"]:
            lines.append(f"    {p['partition']:>5}  start {p['log_start']:>10}  end {p['log_end']:>10}")
    lines.append(f"groups ({len(doc['groups'])})")
    for g in doc["groups"]:
        lines.append(
            f"  {g['name']}  generation {g['generation']}  members {len(g['members'])}"
            f"  lag {g['total_lag']}"
        )
        for m in g["members"]:
            owned = ", ".join(f"{t}[{p}]" for t, p in m["assignment"] or [])
            state = "live" if m["live"] else "gone"
            lines.append(f"    member {m['id']} ({state})  {owned or '-'}")
        for o in g["offsets"]:
            lag = "?" if o["lag"] is None else o["lag"]
            lines.append(
                f"    {o['topic']}[{o['partition']}]  committed {o['committed']}  lag {lag}"
            )
    return "\n".join(lines)


@click.command("status")
@click.option("--meta", "meta_url", default=None, metavar="URL",
              help="Metadata store (sqlite:PATH or etcd://host:port); default: the data dir's.")
@click.option("--bootstrap", default=None, metavar="HOST:PORT",
              help="Read topics from this Kafka-protocol broker instead of the data dir.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def status(ctx: click.Context, meta_url: str | None, bootstrap: str | None, as_json: bool) -> None:
    """Show topics, consumer groups, members, committed offsets and lag."""
    with ExitStack() as stack:
        meta: MetaStore | None
        if bootstrap is None:
            from plait.client.connect import EmbeddedClient

            client: Any = stack.enter_context(EmbeddedClient(data_dir(ctx), meta=meta_url))
            meta = client.meta
        else:
            from plait.client.kafka import KafkaClient

            client = stack.enter_context(KafkaClient(bootstrap))
            meta = None
            if meta_url is not None:
                from plait.meta.url import open_meta

                meta = stack.enter_context(open_meta(meta_url))  # type: ignore[arg-type]
        topics = [client.describe_topic(name) for name in client.list_topics()]
        doc = collect_status(topics, meta)
    click.echo(json.dumps(doc, indent=2, sort_keys=True) if as_json else render_text(doc))
