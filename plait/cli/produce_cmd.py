"""``plait produce TOPIC``: one event per line of stdin.

Lines are sent in chunks through the batch API; the command exits 0 only after
every line was acknowledged. A line that lacks the key separator stops the run with
its line number; the lines before it stay acknowledged.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

import click

from plait.cli.common import bootstrap_option, open_client, progress
from plait.errors import ConfigError

CHUNK_LINES = 20_000


def key_separator(value: str | None) -> bytes | None:
    """Validate ``--key-separator`` at the edge: non-empty, valid UTF-8."""
    if value is None:
        return None
    if value == "":
        raise ConfigError("--key-separator must not be empty")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"--key-separator is not valid UTF-8: {value!r}") from exc


def split_keys(lines: list[bytes], sep: bytes, first_line: int) -> tuple[list[bytes], list[bytes]]:
    keys, values = [], []
    for i, line in enumerate(lines):
        key, found, value = line.partition(sep)
        if not found:
            raise ConfigError(
                f"line {first_line + i} has no key separator {sep.decode()!r}"
            )
        keys.append(key)
        values.append(value)
    return keys, values


def read_chunks(stream: BinaryIO) -> list[bytes]:
    return [line[:-1] if line.endswith(b"\n") else line for line in stream.readlines(1 << 20)]


@click.command()
@click.argument("topic")
@click.option("--key-separator", "sep_text", default=None, help="Split each line into key and value at the first SEP.")
@click.option(
    "--fsync",
    default=None,
    help="Flush policy of the data dir: always, interval[:MS] or never.",
)
@bootstrap_option
@click.pass_context
def produce(
    ctx: click.Context, topic: str, sep_text: str | None, fsync: str | None, bootstrap: str | None
) -> None:
    """Send each line of stdin to TOPIC as one event."""
    sep = key_separator(sep_text)
    stdin = sys.stdin.buffer
    sent = 0
    if bootstrap is not None and fsync is not None:
        raise click.UsageError("--fsync applies to the data dir; a broker has its own policy")
    options = {"fsync": fsync} if bootstrap is None else {}
    with open_client(ctx, bootstrap, **options) as client, client.producer() as producer:
        client.describe_topic(topic)  # unknown topic: fail before reading stdin
        with progress(f"producing to {topic}") as bar:
            while True:
                lines = read_chunks(stdin)
                if not lines:
                    break
                for start in range(0, len(lines), CHUNK_LINES):
                    chunk = lines[start : start + CHUNK_LINES]
                    if sep is not None:
                        keys, values = split_keys(chunk, sep, sent + 1)
                        producer.send_batch(topic, values, keys)
                    else:
                        producer.send_batch(topic, chunk)
                    sent += len(chunk)
                    if bar is not None:
                        bar.update(bar.task_ids[0], completed=sent)
    click.echo(f"produced {sent} event(s) to {topic}", err=True)
