"""``plait topic create|list|describe``."""

from __future__ import annotations

import click

from plait.cli.common import bootstrap_option, open_client


@click.group()
def topic() -> None:
    """Create, list and describe topics."""


@topic.command("create")
@click.argument("name")
@click.option("--partitions", "-p", type=click.IntRange(1, 100_000), default=1, show_default=True)
@bootstrap_option
@click.pass_context
def create(ctx: click.Context, name: str, partitions: int, bootstrap: str | None) -> None:
    """Create topic NAME with N partitions."""
    with open_client(ctx, bootstrap) as client:
        client.create_topic(name, partitions)
    click.echo(f"created topic {name} with {partitions} partition(s)")


@topic.command("list")
@bootstrap_option
@click.pass_context
def list_(ctx: click.Context, bootstrap: str | None) -> None:
    """List topics, one per line."""
    with open_client(ctx, bootstrap) as client:
        for name in client.list_topics():
            click.echo(name)


@topic.command("describe")
@click.argument("name")
@bootstrap_option
@click.pass_context
def describe(ctx: click.Context, name: str, bootstrap: str | None) -> None:
    """Show each partition of NAME with its log start and end offsets."""
    with open_client(ctx, bootstrap) as client:
        desc = client.describe_topic(name)
    click.echo(f"topic {desc.name}  partitions {len(desc.partitions)}")
    click.echo(f"{'partition':>9}  {'start':>12}  {'end':>12}")
    for p in desc.partitions:
        click.echo(f"{p.partition:>9}  {p.log_start_offset:>12}  {p.log_end_offset:>12}")
