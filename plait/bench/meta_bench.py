"""``plait bench meta``: offset commits on etcd through GroupStore, against raw etcd txns.

Measured in one run, on one etcd server:

- raw: sequential etcd transactions of one compare and one put (the floor cost of a
  fenced write: one Raft round and one fsync per txn);
- commits: GroupStore.commit_offsets with N partitions per call (one transaction up
  to 128, etcd's default --max-txn-ops), as offsets/s: the point of batching is N
  offsets for roughly the price of one txn;
- consume: events/s a consumer group sustains reading an embedded topic and
  committing after every poll, with offsets in etcd and then in SQLite.

Without ``--etcd`` a private etcd is started from the ``etcd`` binary on free loopback
ports and stopped by its pid afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from plait.errors import ConfigError
from plait.groups import GroupState, GroupStore
from plait.meta.interface import Compare, MetaStore, Put
from plait.meta.url import open_meta


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_etcd(base: Path) -> Iterator[str]:
    """Start one etcd member on loopback; yields its etcd:// URL."""
    binary = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.path.exists(binary):
        raise ConfigError("no etcd binary found (Debian package etcd-server); pass --etcd URL")
    client, peer = _free_port(), _free_port()
    args = [
        binary, "--name=bench", f"--data-dir={base / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=bench=http://127.0.0.1:{peer}", "--log-level=error",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=1) as r:
                    if json.loads(r.read()).get("health") == "true":
                        break
            except (OSError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"etcd did not become healthy (exit status {proc.poll()})")
            time.sleep(0.05)
        yield f"etcd://127.0.0.1:{client}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)


def _rate(seconds: float, op: Callable[[int], None]) -> tuple[int, float]:
    """Run ``op(i)`` for about ``seconds``; returns (calls, elapsed seconds)."""
    n = 0
    start = time.perf_counter()
    while True:
        op(n)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n, elapsed


def raw_txn_rate(meta: MetaStore, seconds: float) -> float:
    gen = b"/plait/bench/raw/generation"
    meta.put(gen, b"1")
    key = b"/plait/bench/raw/offset"
    n, t = _rate(seconds, lambda i: _check(meta.txn([Compare.value(gen, "==", b"1")], [Put(key, b"%d" % i)]).succeeded))
    return n / t


def _check(ok: bool) -> None:
    if not ok:
        raise RuntimeError("benchmark txn unexpectedly failed its compare")


def commit_rate(meta: MetaStore, partitions: int, seconds: float) -> tuple[float, float]:
    """(txns/s, offsets/s) of GroupStore.commit_offsets with ``partitions`` per txn."""
    store = GroupStore(meta)
    group = f"bench-{partitions}-{time.monotonic_ns()}"
    store.save(group, GroupState(generation=1, members={"m": {}}), 0)

    def op(i: int) -> None:
        store.commit_offsets(group, 1, {("t", p): (i, "") for p in range(partitions)})

    n, t = _rate(seconds, op)
    store.delete(group)
    return n / t, n * partitions / t


def consume_rate(base: Path, meta_url: str, events: int, per_poll: int) -> float:
    """Events/s of one group member polling ``per_poll`` events and committing each poll."""
    import plait

    with plait.connect(f"embedded:{base}", meta=meta_url) as client:
        if "bench" not in client.list_topics():
            client.create_topic("bench", 4)
            with client.producer() as producer:
                for p in range(4):
                    producer.send_batch("bench", [b"x" * 100] * (events // 4), partition=p)
        group = f"bench-consume-{time.monotonic_ns()}"
        consumer = client.consumer(group=group, from_beginning=True, max_poll_records=per_poll)
        consumer.subscribe(["bench"])
        seen = 0
        start = time.perf_counter()
        while seen < events:
            batches = consumer.poll_batch(timeout=1.0)
            if not batches:
                break
            seen += sum(len(b) for b in batches)
            consumer.commit()
        elapsed = time.perf_counter() - start
        consumer.close()
    return seen / elapsed


def run_bench(etcd_url: str, work: Path, seconds: float, events: int, per_poll: int) -> dict[str, Any]:
    out: dict[str, Any] = {"etcd": etcd_url, "seconds_per_figure": seconds}
    meta = open_meta(etcd_url)
    try:
        out["raw_txn_per_s"] = raw_txn_rate(meta, seconds)
        out["commits"] = []
        for parts in (1, 16, 128, 512):
            txns, offsets = commit_rate(meta, parts, seconds)
            out["commits"].append({"partitions_per_commit": parts, "commit_per_s": txns, "offsets_per_s": offsets})
    finally:
        meta.close()
    out["consume"] = {
        "events": events,
        "per_poll": per_poll,
        "etcd_events_per_s": consume_rate(work / "etcd-data", etcd_url, events, per_poll),
        "sqlite_events_per_s": consume_rate(
            work / "sqlite-data", f"sqlite:{work / 'meta.sqlite'}", events, per_poll
        ),
    }
    return out


@click.command("meta")
@click.option("--etcd", "etcd_url", default=None, metavar="URL",
              help="etcd to measure (etcd://host:port); default: start a private one.")
@click.option("--seconds", type=click.FloatRange(0.1, 600), default=2.0, show_default=True,
              help="Duration of each rate figure.")
@click.option("--events", type=click.IntRange(1000, 100_000_000), default=200_000, show_default=True)
@click.option("--per-poll", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="Events per poll (one offset commit per poll).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_meta(etcd_url: str | None, seconds: float, events: int, per_poll: int, as_json: bool) -> None:
    """Offset commits/s on etcd via GroupStore vs raw etcd txns; group events/s etcd vs SQLite."""
    with tempfile.TemporaryDirectory(prefix="plait-bench-meta-") as tmp:
        work = Path(tmp)
        if etcd_url is None:
            with private_etcd(work) as url:
                doc = run_bench(url, work, seconds, events, per_poll)
        else:
            doc = run_bench(etcd_url, work, seconds, events, per_poll)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"etcd {doc['etcd']}")
    click.echo(f"raw etcd txn (1 compare + 1 put): {doc['raw_txn_per_s']:10.0f} txn/s")
    for row in doc["commits"]:
        click.echo(
            f"GroupStore commit, {row['partitions_per_commit']:>3} partitions: "
            f"{row['commit_per_s']:8.0f} commits/s  {row['offsets_per_s']:10.0f} offsets/s"
        )
    c = doc["consume"]
    click.echo(
        f"consumer group, {c['per_poll']} events/poll, commit per poll: "
        f"etcd {c['etcd_events_per_s']:,.0f} events/s, sqlite {c['sqlite_events_per_s']:,.0f} events/s"
    )
