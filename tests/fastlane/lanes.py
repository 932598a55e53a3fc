"""Lane backends for the tests: the in-process lane and a real NATS, behind one API.

A :class:`Backend` opens lane connections and can take the transport down and bring
it back: the in-process hub is switched off, the nats-server is SIGKILLed and
restarted on the same port.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from plait.fastlane.consumer import LowLatencyConsumer
from plait.fastlane.inproc import Hub, InProcFastLane
from plait.fastlane.interface import FastLane
from plait.fastlane.nats import NatsFastLane

try:  # tests/ is a namespace root when run as `python -m pytest` from the repo...
    from tests.delivery import assert_exactly_once_in_order
    from tests.servers import free_port
    from tests.servers.nats import NatsServer, nats_server
except ImportError:  # ...and pytest's rootdir-relative import puts tests/ on sys.path
    from delivery import assert_exactly_once_in_order  # type: ignore[no-redef]
    from servers import free_port  # type: ignore[no-redef]
    from servers.nats import NatsServer, nats_server  # type: ignore[no-redef]

__all__ = [
    "Backend", "Delivered", "NatsServer", "assert_exactly_once_in_order", "collect",
    "free_port", "nats_server", "wait_until",
]

Delivered = dict[int, list[int]]  # partition -> the integer values delivered, in order


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def collect(consumer: LowLatencyConsumer, n: int, timeout: float = 10.0,
            into: Delivered | None = None) -> Delivered:
    """Poll until ``n`` events (values that are decimal integers) arrived, or ``timeout``."""
    out: Delivered = {} if into is None else into
    deadline = time.monotonic() + timeout
    while sum(map(len, out.values())) < n and time.monotonic() < deadline:
        for batch in consumer.poll_batch(0.2):
            out.setdefault(batch.partition, []).extend(int(v) for v in batch.values.to_pylist())
    return out


class Backend:
    """Opens lanes on one transport; ``down()``/``up()`` model an outage."""

    def __init__(self, name: str, server: NatsServer | None) -> None:
        self.name = name
        self.server = server
        self.hub = Hub()
        self._lanes: list[FastLane] = []

    def open(self) -> FastLane:
        lane: FastLane
        if self.server is None:
            lane = InProcFastLane(self.hub)
        else:
            nats_lane = NatsFastLane([self.server.url], reconnect_wait=0.05)
            assert nats_lane.wait_connected(10), f"no NATS connection to {self.server.url}"
            lane = nats_lane
        self._lanes.append(lane)
        return lane

    def down(self) -> None:
        if self.server is None:
            self.hub.set_connected(False)
        else:
            self.server.kill()
            wait_until(lambda: not any(lane.connected for lane in self._lanes), 10,
                       "lanes to notice the outage")

    def up(self) -> None:
        if self.server is None:
            self.hub.set_connected(True)
        else:
            if not self.server.alive:
                self.server.start()
            wait_until(lambda: all(lane.connected for lane in self._lanes), 10,
                       "lanes to reconnect")
            # Reconnected clients re-send SUB asynchronously; one round trip on each
            # makes sure the server has every subscription before the test publishes.
            for lane in self._lanes:
                self.sync(lane)

    def sync(self, lane: FastLane) -> None:
        """Return once the server has processed everything ``lane`` sent (its SUBs)."""
        if isinstance(lane, NatsFastLane) and lane._nc is not None:
            lane._call(lane._nc.flush(timeout=5), timeout=6)

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()
