"""CreateTopics, DeleteTopics and DescribeConfigs: topic administration over the log.

A single node holds every replica, so a replication factor other than 1 (or -1, "the
broker default") is refused with INVALID_REPLICATION_FACTOR, as a one-broker Kafka does.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin import (
    CreateTopicsResponse,
    DeleteTopicsResponse,
    DescribeConfigsResponse,
)

from plait.broker import errors as E
from plait.broker import topic_config
from plait.broker.codec import Request
from plait.broker.handlers._common import error_code
from plait.broker.state import Broker
from plait.errors import ConfigError, PlaitError
from plait.log.config import LogConfig

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
SOURCE_DEFAULT = 5
SOURCE_TOPIC = 1
SOURCE_STATIC_BROKER = 4


def _create_one(broker: Broker, t: Any, validate_only: bool) -> Any:
    R = CreateTopicsResponse.CreatableTopicResult
    partitions = broker.config.default_partitions if t.num_partitions == -1 else t.num_partitions
    if t.assignments:
        return R(name=t.name, error_code=E.InvalidRequest.errno,
                 error_message="manual replica assignment is not supported")
    if partitions < 1:
        return R(name=t.name, error_code=E.InvalidPartitions.errno,
                 error_message=f"partitions must be >= 1, got {partitions}")
    if t.replication_factor not in (-1, 1):
        return R(name=t.name, error_code=E.InvalidReplicationFactor.errno,
                 error_message=f"replication factor {t.replication_factor} > 1 broker")
    try:
        overrides = topic_config.log_overrides({c.name: c.value for c in t.configs or []})
        base: LogConfig = broker.log_defaults()
        config = base.with_overrides(overrides) if overrides else None
    except ConfigError as exc:
        return R(name=t.name, error_code=E.InvalidConfig.errno, error_message=str(exc))
    try:
        if validate_only:
            if t.name in broker.log.list_topics():
                raise E.TopicAlreadyExists(f"topic {t.name!r} already exists")
        else:
            broker.log.create_topic(t.name, partitions, config)
    except PlaitError as exc:  # mapped to a Kafka code per topic; one bad topic fails alone
        return R(name=t.name, error_code=error_code(exc), error_message=str(exc))
    return R(
        name=t.name, topic_id=None, error_code=0, error_message=None, topic_config_error_code=0,
        num_partitions=partitions, replication_factor=1, configs=[],
    )


async def handle_create_topics(broker: Broker, req: Request) -> CreateTopicsResponse:
    body = req.body
    return CreateTopicsResponse(
        throttle_time_ms=0,
        topics=[_create_one(broker, t, bool(body.validate_only)) for t in body.topics],
    )


async def handle_delete_topics(broker: Broker, req: Request) -> DeleteTopicsResponse:
    names = list(req.body.topic_names or [])
    results = []
    for name in names:
        try:
            broker.log.delete_topic(name)
            code, message = 0, None
        except PlaitError as exc:  # mapped per topic, as above
            code, message = error_code(exc), str(exc)
        results.append(DeleteTopicsResponse.DeletableTopicResult(
            name=name, topic_id=None, error_code=code, error_message=message))
    return DeleteTopicsResponse(throttle_time_ms=0, responses=results)


async def handle_describe_configs(broker: Broker, req: Request) -> DescribeConfigsResponse:
    R = DescribeConfigsResponse.DescribeConfigsResult
    C = R.DescribeConfigsResourceResult
    results = []
    defaults = broker.log_defaults()
    for res in req.body.resources:
        keys = set(res.configuration_keys) if res.configuration_keys is not None else None
        if res.resource_type == TOPIC_RESOURCE:
            try:
                info = broker.topic(res.resource_name, create=False)
            except E.BrokerError as exc:
                results.append(R(error_code=exc.errno, error_message=str(exc),
                                 resource_type=res.resource_type, resource_name=res.resource_name,
                                 configs=[]))
                continue
            rows = topic_config.describe(info.config, defaults)
        elif res.resource_type == BROKER_RESOURCE:
            rows = topic_config.describe(defaults, defaults)
        else:
            results.append(R(error_code=E.InvalidRequest.errno,
                             error_message=f"resource type {res.resource_type} is not supported",
                             resource_type=res.resource_type, resource_name=res.resource_name,
                             configs=[]))
            continue
        configs = [
            C(name=name, value=value, read_only=False, is_default=is_default,
              config_source=SOURCE_DEFAULT if is_default else SOURCE_TOPIC,
              is_sensitive=False, synonyms=[], config_type=0, documentation=None)
            for name, value, is_default in rows
            if keys is None or name in keys
        ]
        results.append(R(error_code=0, error_message=None, resource_type=res.resource_type,
                         resource_name=res.resource_name, configs=configs))
    return DescribeConfigsResponse(throttle_time_ms=0, results=results)
