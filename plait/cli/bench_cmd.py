"""``plait bench``: the in-process run, plus subcommands for other benchmarks."""

from __future__ import annotations

import importlib
import importlib.util
import json

import click

from plait.cli.common import progress

# Other benchmarks live beside their subsystem and are attached when importable.
SUBCOMMANDS = {
    "process": "plait.bench.process_bench:bench_process",
    "kafka": "plait.bench.kafka_bench:bench_kafka",
    "latency": "plait.bench.latency_bench:bench_latency",
    "meta": "plait.bench.meta_bench:bench_meta",
}


class BenchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in SUBCOMMANDS.items() if _spec(target))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None or not _spec(target):
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


def _spec(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=BenchGroup, invoke_without_command=True)
@click.option("--events", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--size", type=click.IntRange(min=8), default=100, show_default=True, help="Event size in bytes.")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--rate", type=click.FloatRange(min=1), default=None, help="Events/s to offer (default: as fast as possible).")
@click.option("--fsync", default="interval:50", show_default=True, help="always, interval[:MS] or never.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def bench(
    ctx: click.Context,
    events: int,
    size: int,
    partitions: int,
    rate: float | None,
    fsync: str,
    as_json: bool,
) -> None:
    """Produce → append → consume in this process; report events/s, MB/s and latency."""
    if ctx.invoked_subcommand is not None:
        return
    from plait.bench.inproc import BenchConfig, run
    from plait.bench.stats import machine

    config = BenchConfig(events=events, size=size, partitions=partitions, rate=rate, fsync=fsync)
    with progress("bench", total=events) as bar:
        hook = (lambda n: bar.update(bar.task_ids[0], completed=n)) if bar is not None else None
        result = run(config, hook)
    if as_json:
        click.echo(json.dumps({**result, "config": config.__dict__, "machine": machine()}))
        return
    click.echo(
        f"{int(result['events'])} events of {size} B, {partitions} partition(s), "
        f"rate {'max' if rate is None else f'{rate:g}/s'}, fsync {fsync}"
    )
    click.echo(f"throughput  {result['events_per_s']:,.0f} events/s  {result['mb_per_s']:.1f} MB/s")
    click.echo(
        f"latency     p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
        f"p999 {result['p999_ms']:.3f} ms"
    )
