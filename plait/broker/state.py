"""What every handler shares: the log, the group coordinator, settings and metrics.

The broker is the only writer of its log, so it wakes long-polling Fetch requests
itself right after each append (``notify``) instead of through a thread-safe log
listener: everything here runs on the event loop thread.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from plait.broker import errors as E
from plait.broker.config import BrokerConfig
from plait.broker.coordinator import CoordinatorConfig, GroupCoordinator
from plait.groups import GroupStore
from plait.log import Log, Partition
from plait.log.config import LogConfig, TopicInfo
from plait.log.errors import InvalidTopicError, TopicExistsError, UnknownTopicError
from plait.observe.metrics import BrokerMetrics


class Waiter(Protocol):
    """A parked long poll: ``wake`` re-checks for data; ``final`` means answer now."""

    def wake(self, final: bool = False) -> None: ...


class Broker:
    def __init__(
        self,
        log: Log,
        groups: GroupStore,
        config: BrokerConfig,
        metrics: BrokerMetrics,
        log_config: LogConfig | None = None,
    ) -> None:
        self.log = log
        self._log_config = log_config or LogConfig()
        self.config = config
        self.metrics = metrics
        self.coordinator = GroupCoordinator(
            groups, CoordinatorConfig(initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms)
        )
        self.stopping = False
        self.port = config.port  # the bound port, once listening (port 0 picks one)
        self._waiters: dict[tuple[str, int], set[Waiter]] = defaultdict(set)

    @property
    def advertised_host(self) -> str:
        return self.config.advertised_host or self.config.host

    def log_defaults(self) -> LogConfig:
        """The config new topics get unless CreateTopics overrides it."""
        return self._log_config

    # -- topics ------------------------------------------------------------------------

    def topic(self, name: str, *, create: bool) -> TopicInfo:
        """The topic, auto-created (when enabled and ``create``) with the default count.

        Raises UnknownTopicOrPartition or InvalidTopic as Kafka error classes.
        """
        try:
            return self.log.describe(name)
        except UnknownTopicError:
            if not (create and self.config.auto_create_topics):
                raise E.UnknownTopicOrPartition(f"topic {name!r} does not exist") from None
        except InvalidTopicError as exc:
            raise E.InvalidTopic(str(exc)) from None
        try:
            return self.log.create_topic(name, self.config.default_partitions)
        except TopicExistsError:
            return self.log.describe(name)
        except InvalidTopicError as exc:
            raise E.InvalidTopic(str(exc)) from None

    def partition(self, topic: str, index: int, *, create: bool = False) -> Partition:
        info = self.topic(topic, create=create)
        if not 0 <= index < info.partitions:
            raise E.UnknownTopicOrPartition(
                f"partition {index} of {topic!r} does not exist (it has {info.partitions})"
            )
        return self.log.partition(topic, index)

    # -- long-poll wake-ups ------------------------------------------------------------

    def notify(self, topic: str, index: int) -> None:
        """Wake every Fetch waiting on this partition; called after each append.

        Waiters run synchronously here (they may answer and unwatch themselves), so a
        copy of the set is iterated.
        """
        waiters = self._waiters.get((topic, index))
        if waiters:
            for waiter in tuple(waiters):
                waiter.wake()

    def watch(self, keys: list[tuple[str, int]], waiter: Waiter) -> None:
        for key in keys:
            self._waiters[key].add(waiter)

    def unwatch(self, keys: list[tuple[str, int]], waiter: Waiter) -> None:
        for key in keys:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]

    def wake_all(self) -> None:
        """Release every long poll now (shutdown)."""
        self.stopping = True
        for waiter in {w for waiters in self._waiters.values() for w in waiters}:
            waiter.wake(final=True)
