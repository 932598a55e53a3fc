"""Pieces shared by CLI commands: opening the data dir, progress on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from plait.client.connect import EmbeddedClient


def data_dir(ctx: click.Context) -> str:
    return str(ctx.find_root().obj["data_dir"])


def open_embedded(ctx: click.Context, **options: object) -> EmbeddedClient:
    return EmbeddedClient(data_dir(ctx), **options)  # type: ignore[arg-type]


def open_client(ctx: click.Context, bootstrap: str | None, **options: object) -> Any:
    """The embedded data dir, or a Kafka-protocol broker when ``--bootstrap`` is given."""
    if bootstrap is None:
        return open_embedded(ctx, **options)
    from plait.client.kafka import KafkaClient

    return KafkaClient(bootstrap)


F = TypeVar("F", bound=Callable[..., Any])


def bootstrap_option(func: F) -> F:
    """``--bootstrap HOST:PORT``: go through a broker instead of opening the data dir."""
    return click.option(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help="Use the Kafka-protocol broker at HOST:PORT (plait serve, Kafka, Redpanda) "
        "instead of the data dir.",
    )(func)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Progress | None]:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        bar.add_task(description, total=total)
        yield bar
