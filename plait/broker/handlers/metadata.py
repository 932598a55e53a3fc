"""Metadata and FindCoordinator: one node that leads every partition and every group.

Requested topics that do not exist are auto-created when the broker allows it and the
request does (``allow_auto_topic_creation``, v4+; older versions always allow).
"""

from __future__ import annotations

from kafka.protocol.metadata import FindCoordinatorResponse, MetadataResponse

from plait.broker import errors as E
from plait.broker.codec import Request
from plait.broker.state import Broker


def _topic_entry(broker: Broker, name: str, create: bool) -> MetadataResponse.MetadataResponseTopic:
    T = MetadataResponse.MetadataResponseTopic
    node = broker.config.node_id
    try:
        info = broker.topic(name, create=create)
    except E.BrokerError as exc:
        return T(error_code=exc.errno, name=name, topic_id=None, is_internal=False, partitions=[])
    parts = [
        T.MetadataResponsePartition(
            error_code=0, partition_index=i, leader_id=node, leader_epoch=0,
            replica_nodes=[node], isr_nodes=[node], offline_replicas=[],
        )
        for i in range(info.partitions)
    ]
    return T(error_code=0, name=name, topic_id=None, is_internal=False, partitions=parts)


async def handle_metadata(broker: Broker, req: Request) -> MetadataResponse:
    body = req.body
    v = req.api_version
    requested = body.topics
    if requested is None or (v == 0 and not requested):
        names = sorted(broker.log.list_topics())
        create = False
    else:
        names = [t.name for t in requested]
        create = bool(body.allow_auto_topic_creation) if v >= 4 else True
    return MetadataResponse(
        throttle_time_ms=0,
        brokers=[
            MetadataResponse.MetadataResponseBroker(
                node_id=broker.config.node_id, host=broker.advertised_host, port=broker.port, rack=None
            )
        ],
        cluster_id=broker.config.cluster_id,
        controller_id=broker.config.node_id,
        topics=[_topic_entry(broker, n, create) for n in names],
    )


async def handle_find_coordinator(broker: Broker, req: Request) -> FindCoordinatorResponse:
    body = req.body
    node, host, port = broker.config.node_id, broker.advertised_host, broker.port
    if req.api_version >= 4:
        keys = list(body.coordinator_keys or [])
        return FindCoordinatorResponse(
            throttle_time_ms=0,
            coordinators=[
                FindCoordinatorResponse.Coordinator(
                    key=k, node_id=node, host=host, port=port, error_code=0, error_message=None
                )
                for k in keys
            ],
        )
    code = 0 if (body.key_type or 0) in (0, 1) else E.InvalidRequest.errno
    return FindCoordinatorResponse(
        throttle_time_ms=0, error_code=code, error_message=None, node_id=node, host=host, port=port
    )
