"""``plait process``: a declarative spec from stdin to stdout (``plait run``, a pipeline
file, is in ``run_cmd.py``). The main ``plait`` group registers both.

It streams: it reads ``batch_size`` lines at a time, so memory stays bounded by
one batch. Each stdin line is one record; its 0-based line number is its offset, which
dead letters (JSON lines to stderr or ``--dead-letters FILE``) carry.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from itertools import islice
from typing import IO, Any

import click
import numpy as np
import pyarrow as pa

from plait.cli.compile_notice import announce_kernel_compiles
from plait.errors import PlaitError
from plait.process.deadletter import DeadLetter
from plait.process.errors import ExpressionError
from plait.process.sinks import encode_rows


def one_line(exc: Exception) -> str:
    """A library error as the CLI's one line (an expression error points at its column)."""
    if isinstance(exc, ExpressionError):
        return f"{exc.reason} at column {exc.column + 1} of {exc.text!r}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_batches(stream: IO[bytes], batch_size: int) -> Iterator[Any]:
    """Lines of ``stream`` as RawBatch objects of at most ``batch_size`` records."""
    from plait.pipeline.steps import RawBatch

    offset = 0
    lines = (line.rstrip(b"\r\n") if line.endswith(b"\n") else line for line in stream)
    while True:
        chunk = list(islice(lines, batch_size))
        if not chunk:
            return
        yield RawBatch(chunk, np.arange(offset, offset + len(chunk), dtype=np.int64))
        offset += len(chunk)


@click.command("process")
@click.argument("spec_path", metavar="SPEC.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--engine",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--dead-letters",
    "dead_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write dead letters (JSON lines) here instead of stderr.",
)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Records per batch (overrides the spec).",
)
@click.option(
    "--bootstrap",
    default=None,
    metavar="HOST:PORT",
    help="Read an enrich topic through this Kafka-protocol broker instead of the data dir.",
)
@click.pass_context
def process(
    ctx: click.Context, spec_path: str, engine: str, dead_path: str | None,
    batch_size: int | None, bootstrap: str | None,
) -> None:
    """Run SPEC.yaml over JSON lines on stdin; write JSON lines to stdout. An enrich
    from a topic reads it from the --data dir, or through --bootstrap."""
    announce_kernel_compiles(sys.stderr)
    with contextlib.ExitStack() as stack:
        dead_out = dead_letter_file(stack, dead_path, "w")
        _process(ctx, spec_path, engine, dead_out, batch_size, bootstrap)


def dead_letter_file(stack: contextlib.ExitStack, path: str | None, mode: str) -> IO[str]:
    """Where dead letters are written: stderr (``path`` None or "-") or ``path``, which
    ``stack`` closes; a path that cannot be opened is one line, not a traceback."""
    if path in (None, "-"):
        return sys.stderr
    try:
        return stack.enter_context(open(str(path), mode, encoding="utf-8"))
    except OSError as exc:
        raise click.ClickException(f"--dead-letters {path}: {exc.strerror or exc}") from exc


def _process(
    ctx: click.Context, spec_path: str, engine: str, dead_out: IO[str],
    batch_size: int | None, bootstrap: str | None,
) -> None:
    from plait.pipeline.spec import build, load_spec, reference_tables

    out = sys.stdout.buffer

    def on_dead(d: DeadLetter) -> None:
        dead_out.write(dead_letter_line(d) + "\n")

    def write(batch: pa.RecordBatch) -> None:
        rows = encode_rows(batch)
        if rows:
            out.write(b"\n".join(rows) + b"\n")

    try:
        spec, base = load_spec(spec_path)
        size = batch_size or spec.batch_size
        with contextlib.ExitStack() as stack:
            client = None
            if spec.enrich is not None and spec.enrich.topic is not None:
                from plait.cli.common import open_client
                from plait.client.connect import DEFAULT_DATA_DIR

                # run as a module there is no plait group to have set the data dir
                ctx.ensure_object(dict).setdefault("data_dir", DEFAULT_DATA_DIR)
                client = stack.enter_context(open_client(ctx, bootstrap))
            p = build(
                spec,
                base,
                read_batches(sys.stdin.buffer, size),
                engine=engine,
                dead_letters=on_dead,
                client=client,
            )
            for table in reference_tables(p):
                stack.callback(table.close)  # before the client, which the stack closes last
            p.to(write).run()
            out.flush()
    except PlaitError as exc:
        raise click.ClickException(one_line(exc)) from exc


def dead_letter_line(d: DeadLetter) -> str:
    """A dead letter as one JSON line, the form every command writes them in."""
    return json.dumps(d.to_json(), ensure_ascii=False)


if __name__ == "__main__":  # python -m plait.cli.process_cmd SPEC.yaml < in > out
    process()
