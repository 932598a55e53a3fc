"""``plait serve``: the embedded log behind the Kafka wire protocol."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from plait.broker.config import MIB, BrokerConfig
from plait.errors import PlaitError


@click.command("serve")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Log and metadata directory [default: plait --data, ./plait-data].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--kafka-port", default=9092, show_default=True, type=click.IntRange(0, 65535),
              help="Kafka protocol port (0 picks a free one).")
@click.option("--http-port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port of /healthz and /metrics (0 picks a free one).")
@click.option("--meta", "meta_url", default=None,
              help="Metadata store URL [default: sqlite file DATA/meta.sqlite].")
@click.option("--advertised-host", default=None, help="Host clients should connect to.")
@click.option("--auto-create/--no-auto-create", default=True, show_default=True,
              help="Create unknown topics on produce and metadata requests.")
@click.option("--default-partitions", default=1, show_default=True, type=click.IntRange(1, 100000),
              help="Partitions of auto-created topics.")
@click.option("--max-request-mib", default=100, show_default=True, type=click.IntRange(1, 2047),
              help="Largest request frame accepted, in MiB.")
@click.option("--max-connections", default=1024, show_default=True, type=click.IntRange(1))
@click.option("--max-inflight", default=32, show_default=True, type=click.IntRange(1),
              help="Most requests one connection may have awaiting an answer.")
@click.option("--group-initial-delay-ms", default=300, show_default=True, type=click.IntRange(0),
              help="Wait for more members before a new group's first generation.")
@click.option("--fsync", default=None,
              help="Log fsync policy: always, never, interval or interval:<ms>.")
@click.option("--fastlane", "fastlane_url", default=None,
              help="Also publish every appended batch on this fast lane (nats://host:port, "
                   "subjects plait.<topic>.<partition>) for low-latency consumers.")
@click.option("--lane-heartbeat-ms", default=200, show_default=True, type=click.IntRange(0),
              help="End markers on the fast lane for partitions quiet this long, so that "
                   "idle remote low-latency consumers stop fetching (0: none).")
@click.option("--log-level", default="WARNING", show_default=True)
def serve(
    data_dir: Path | None, host: str, kafka_port: int, http_port: int, meta_url: str | None,
    advertised_host: str | None, auto_create: bool, default_partitions: int,
    max_request_mib: int, max_connections: int, max_inflight: int,
    group_initial_delay_ms: int, fsync: str | None, fastlane_url: str | None,
    lane_heartbeat_ms: int, log_level: str,
) -> None:
    """Serve the embedded log to any Kafka client. Stops cleanly on SIGINT/SIGTERM."""
    if data_dir is None:
        # `plait --data DIR serve` means DIR, like every other subcommand.
        root = click.get_current_context().find_root()
        data_dir = Path(root.obj["data_dir"]) if isinstance(root.obj, dict) else Path("plait-data")
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from plait.broker.app import ServeOptions, run
    from plait.log.config import LogConfig

    try:
        opts = ServeOptions(
            data_dir=data_dir,
            meta_url=meta_url or f"sqlite:///{(data_dir / 'meta.sqlite').resolve()}",
            http_port=http_port,
            log_config=LogConfig(fsync=fsync) if fsync else None,  # type: ignore[arg-type]
            fastlane_url=fastlane_url,
            lane_heartbeat_s=lane_heartbeat_ms / 1000,
            broker=BrokerConfig(
                host=host, port=kafka_port, advertised_host=advertised_host,
                auto_create_topics=auto_create, default_partitions=default_partitions,
                max_request_bytes=max_request_mib * MIB, max_connections=max_connections,
                max_inflight_per_connection=max_inflight,
                group_initial_rebalance_delay_ms=group_initial_delay_ms,
            ),
        )
        run(opts)
    except PlaitError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":  # lets tests start a broker without the top-level CLI
    serve()
