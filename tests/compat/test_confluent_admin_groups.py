"""librdkafka's eager assignors (range, roundrobin) through a leave and rejoin, and the
admin APIs that describe groups and configs."""

from __future__ import annotations

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from delivery import DeliveryChecker
from test_confluent_exactly_once import (
    GROUP,
    PARTITIONS,
    TOPIC,
    _consume_until,
    _produce,
)

from plait.broker.testing import ServeProcess


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_eager_assignors_exactly_once_through_a_bounce(serve: ServeProcess, strategy: str) -> None:
    admin = AdminClient({"bootstrap.servers": serve.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(10)
    checker = DeliveryChecker()
    _produce(serve.bootstrap, checker, 12_000)
    _consume_until(serve.bootstrap, checker, 12_000, bounce_at=3_000, strategy=strategy,
                   timeout=60, pause=0.05)
    checker.assert_exactly_once()


def test_admin_describes_groups_and_configs(serve: ServeProcess) -> None:
    admin = AdminClient({"bootstrap.servers": serve.bootstrap})
    admin.create_topics([NewTopic("cfg", 2, 1, config={"retention.ms": "3600000",
                                                       "cleanup.policy": "delete"})])["cfg"].result(10)
    bad = admin.create_topics([NewTopic("bad", 1, 1, config={"no.such.config": "1"})])["bad"]
    with pytest.raises(Exception, match="no.such.config"):
        bad.result(10)
    dup = admin.create_topics([NewTopic("cfg", 2, 1)])["cfg"]
    with pytest.raises(Exception, match="already exists"):
        dup.result(10)

    res = ConfigResource(ConfigResource.Type.TOPIC, "cfg")
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "3600000"
    assert not configs["retention.ms"].is_default

    checker = DeliveryChecker()
    _produce(serve.bootstrap, checker, 100)  # creates TOPIC with the default partitions
    _consume_until(serve.bootstrap, checker, 100, bounce_at=None, strategy="range", timeout=30)
    listed = admin.list_consumer_groups().result(10)
    assert GROUP in {g.group_id for g in listed.valid}
    described = admin.describe_consumer_groups([GROUP])[GROUP].result(10)
    assert described.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.STABLE)
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(GROUP, [TopicPartition(TOPIC, 0)])])[GROUP].result(10)
    assert offsets.topic_partitions[0].offset >= 0
