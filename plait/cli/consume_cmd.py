"""``plait consume TOPIC``: one value per line on stdout, in offset order per partition."""

from __future__ import annotations

import sys
import time

import click

from plait.cli.common import bootstrap_option, open_client


@click.command()
@click.argument("topic")
@click.option("--group", "-g", default=None, help="Consume as a member of group G and commit offsets.")
@click.option("--from-beginning", is_flag=True, help="Without a committed offset, start at the log start.")
@click.option("--max-events", type=click.IntRange(min=1), default=None, help="Stop after N events.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after SECONDS without a new event (default: wait forever).",
)
@bootstrap_option
@click.pass_context
def consume(
    ctx: click.Context,
    topic: str,
    group: str | None,
    from_beginning: bool,
    max_events: int | None,
    timeout: float | None,
    bootstrap: str | None,
) -> None:
    """Print the values of TOPIC's events, one per line."""
    out = sys.stdout.buffer
    seen = 0
    with open_client(ctx, bootstrap) as client:
        consumer = client.consumer(
            [topic], group=group, auto_offset_reset="earliest" if from_beginning else "latest"
        )
        try:
            idle_since = time.monotonic()
            while max_events is None or seen < max_events:
                wait = 0.5 if timeout is None else max(0.0, idle_since + timeout - time.monotonic())
                want = None if max_events is None else max_events - seen
                batches = consumer.poll_batch(timeout=wait, max_records=want)
                if not batches:
                    if timeout is not None and time.monotonic() - idle_since >= timeout:
                        break
                    continue
                for batch in batches:
                    values = batch.values.to_pylist()
                    out.write(b"".join((v or b"") + b"\n" for v in values))
                    seen += len(values)
                out.flush()
                if group is not None:
                    consumer.commit()
                idle_since = time.monotonic()
        finally:
            consumer.close()
