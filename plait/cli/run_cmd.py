"""``plait run PIPELINE.py``: a user's pipeline over a topic (as a group member,
committing offsets) or stdin, with its dead letters, errors and stops handled the way a
long-running service needs."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from plait.cli.compile_notice import announce_kernel_compiles
from plait.cli.process_cmd import (
    dead_letter_file,
    dead_letter_line,
    one_line,
    read_batches,
)
from plait.errors import PlaitError
from plait.process.deadletter import DeadLetter


def load_pipeline_file(path: str | Path) -> Callable[..., Any]:
    """Import a user file and return its ``pipeline(source)`` function."""
    p = Path(path)
    spec = importlib.util.spec_from_file_location(
        f"plait_user_pipeline_{abs(hash(str(p.resolve())))}", p
    )
    if spec is None or spec.loader is None:
        raise click.ClickException(
            f"{p}: expected a Python file defining pipeline(source)"
        )
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{p}: file not found") from exc
    except Exception as exc:
        raise (user_code_error(exc, p, "cannot be loaded") or exc) from exc
    fn = getattr(module, "pipeline", None)
    if not callable(fn):
        raise click.ClickException(
            f"{p}: expected a function pipeline(source), found none"
        )
    result: Callable[..., Any] = fn
    return result


def user_code_error(exc: BaseException, path: Path, what: str) -> click.ClickException | None:
    """An error raised in a user's pipeline file: prints the traceback from the user's
    own frames on (plait's frames above them say nothing to the user) and returns the
    one-line error. None for an error with no frame in that file: plait's own, which
    should propagate with its whole traceback."""
    import traceback

    path = path.resolve()
    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve() != path:
        tb = tb.tb_next
    if tb is None and not (
        isinstance(exc, SyntaxError) and exc.filename is not None
        and Path(exc.filename).resolve() == path
    ):
        return None
    click.echo("".join(traceback.format_exception(type(exc), exc, tb)).rstrip(), err=True)
    return click.ClickException(f"{path.name} {what}: {type(exc).__name__}: {exc}")


def takes_client(fn: Callable[..., Any]) -> bool:
    """Whether ``pipeline`` is written as ``pipeline(source, client)``: then it gets the
    run's own client, the one way a pipeline can produce to a topic of the data dir the
    run holds (one process opens a data dir)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def run_pipeline(
    fn: Callable[..., Any],
    source: Iterable[Any],
    on_dead: Callable[[DeadLetter], None] | None = None,
    built: list[Any] | None = None,
    client: Any = None,
) -> Any:
    """Run a user pipeline over ``source`` (Arrow batches or lists of raw records);
    ``on_dead`` takes its dead letters unless the pipeline file chose its own handler.
    ``built`` receives the Pipeline before it runs (the topic source asks it which
    offsets its sinks still hold); ``client`` goes to a ``pipeline(source, client)``."""
    p = fn(source, client) if takes_client(fn) else fn(source)
    if not hasattr(p, "run"):
        raise click.ClickException(
            f"pipeline(source) must return a Pipeline, got {type(p).__name__}"
        )
    if on_dead is not None and hasattr(p, "send_dead_letters_to"):
        p.send_dead_letters_to(on_dead)
    if built is not None:
        built.append(p)
    return p.run()


def dead_letter_handler(
    stack: contextlib.ExitStack, path: str | None, topic: str | None, client: Any
) -> Callable[[DeadLetter], None]:
    """JSON lines to stderr (``path`` None or "-"), appended to a file, or produced to a
    dead-letter topic, each acknowledged before the handler returns: the input offsets
    are committed after the batch, so no dead letter is lost to a crash."""
    if topic is not None:
        client.describe_topic(topic)  # an unknown topic fails now, in one line
        producer = stack.enter_context(client.producer())

        def produce(d: DeadLetter) -> None:
            key = None if d.partition is None else str(d.partition).encode()
            producer.send_batch(topic, [dead_letter_line(d).encode()], [key] if key else None)

        return produce
    out = dead_letter_file(stack, path, "a")

    def write(d: DeadLetter) -> None:
        out.write(dead_letter_line(d) + "\n")
        out.flush()

    return write


def topic_source(
    client: Any, topic: str, group: str, *, idle_timeout: float | None,
    max_records: int | None = None, member_id: str | None = None,
    stop: threading.Event | None = None,
    pending: Callable[[], dict[int | None, int]] | None = None,
) -> Iterator[Any]:
    """A topic's events as RawBatch objects, committing offsets behind the pipeline.

    The group's committed offset of a batch is stored when the pipeline asks for
    the next batch, i.e. after it has processed this one (at-least-once into the
    sinks; the Parquet sink makes replays idempotent by partition and offset). Each
    batch is one partition's events and says which (the pipeline's ``_partition``).
    Stops after ``idle_timeout`` seconds without events (None: runs until Ctrl-C), or
    once ``stop`` is set, between polls: the last batch is processed and committed and
    the consumer leaves its group. ``pending`` names, per partition, the first offset a
    sink still holds in memory; no commit goes past it, so a crash replays those rows.
    """
    import time

    from plait.pipeline.steps import RawBatch

    consumer = client.consumer(
        [topic], group=group, auto_offset_reset="earliest", member_id=member_id
    )
    def commit(done: dict[tuple[str, int], int]) -> None:
        """Commit what this poll's batches moved, each partition held back to the first
        offset a sink still holds. Only this poll's partitions, and only those still
        owned: a position remembered from an earlier ownership is never committed over
        the offset a later owner committed."""
        held = pending() if pending is not None else {}
        owned = set(consumer.assignment())
        due = {tp: min(nxt, held.get(tp[1], nxt)) for tp, nxt in done.items() if tp in owned}
        if due:
            consumer.commit(due)

    try:
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            batches = consumer.poll_batch(timeout=0.5, max_records=max_records)
            if not batches:
                if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                    return
                continue
            idle_since = time.monotonic()
            done: dict[tuple[str, int], int] = {}
            for batch in batches:
                yield RawBatch(batch.values.to_pylist(), batch.offsets, batch.partition)
                done[(topic, batch.partition)] = batch.next_offset
            commit(done)
    finally:
        consumer.close()


@contextlib.contextmanager
def graceful_sigterm() -> Iterator[threading.Event]:
    """An event SIGTERM sets (what Kubernetes sends before it kills a pod), so the run
    ends between polls instead of dying mid-batch; a second SIGTERM acts as usual."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread; SIGTERM acts as usual
        return

    def on_term(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, previous)
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command("run")
@click.argument("pipeline_path", metavar="PIPELINE.py", type=click.Path(dir_okay=False))
@click.option("--topic", default=None, help="Read this topic as a member of --group, committing offsets.")
@click.option("--group", default="plait-run", show_default=True, help="Consumer group for --topic.")
@click.option("--member-id", default=None, metavar="ID",
              help="Static group membership: a restart with the same ID resumes its "
                   "partitions at once, not after the old session times out.")
@click.option("--idle-timeout", type=click.FloatRange(min=0), default=None,
              help="With --topic, stop after SECONDS without events (default: run until Ctrl-C).")
@click.option("--bootstrap", default=None, metavar="HOST:PORT", help="Read --topic through a broker.")
@click.option(
    "--stdin",
    "use_stdin",
    is_flag=True,
    help="Read JSON lines from stdin instead of a topic.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Most records per batch (from a topic: per poll, each partition its own batch).")
@click.option("--dead-letters", "dead_path", default=None, metavar="PATH",
              help="Append dead letters (JSON lines) to PATH (default: stderr).")
@click.option("--dead-letter-topic", "dead_topic", default=None, metavar="TOPIC",
              help="Produce dead letters (JSON) to TOPIC instead, keyed by input partition.")
@click.pass_context
def run(
    ctx: click.Context, pipeline_path: str, topic: str | None, group: str,
    member_id: str | None, idle_timeout: float | None, bootstrap: str | None,
    use_stdin: bool, batch_size: int, dead_path: str | None, dead_topic: str | None,
) -> None:
    """Run PIPELINE.py, a file defining pipeline(source), over a topic or stdin.

    Written as pipeline(source, client), it also gets the run's client (the data dir or
    --bootstrap broker), to produce to topics with TopicSink(client.producer(), TOPIC).
    Dead letters go to stderr, a file or a topic, unless the pipeline file passes its
    own ``dead_letters=`` handler."""
    announce_kernel_compiles(sys.stderr)
    if (topic is None) == (not use_stdin):
        raise click.ClickException("expected exactly one of --topic or --stdin")
    if dead_path is not None and dead_topic is not None:
        raise click.ClickException("expected at most one of --dead-letters and --dead-letter-topic")
    fn = load_pipeline_file(pipeline_path)
    try:
        with contextlib.ExitStack() as stack:
            client = None
            # only a topic source looks at it; stdin ends at its own end
            stop = stack.enter_context(graceful_sigterm()) if topic is not None else None
            if topic is not None or dead_topic is not None or takes_client(fn):
                from plait.cli.common import open_client

                client = stack.enter_context(open_client(ctx, bootstrap))
            on_dead = dead_letter_handler(stack, dead_path, dead_topic, client)
            built: list[Any] = []

            def pending() -> dict[int | None, int]:
                held = getattr(built[0], "pending_offsets", None) if built else None
                return held() if callable(held) else {}

            source = (
                read_batches(sys.stdin.buffer, batch_size)
                if use_stdin
                else topic_source(
                    client, str(topic), group,
                    idle_timeout=idle_timeout, max_records=batch_size, member_id=member_id,
                    stop=stop, pending=pending,
                )
            )
            stats = run_pipeline(fn, source, on_dead, built, client)
    except PlaitError as exc:
        raise click.ClickException(one_line(exc)) from exc
    except Exception as exc:
        err = user_code_error(exc, Path(pipeline_path), "failed")
        if err is None:
            raise
        raise err from exc
    click.echo(
        json.dumps(
            {
                "rows_in": stats.rows_in,
                "rows_out": stats.rows_out,
                "dead_letters": stats.dead_letters,
            }
        ),
        err=True,
    )
