"""One handler per Kafka API, grouped by family; HANDLERS maps API key to handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from plait.broker.codec import Request
from plait.broker.handlers._common import RawBody, Reply
from plait.broker.handlers.fetch import handle_fetch, handle_list_offsets
from plait.broker.handlers.groups import (
    handle_describe_groups,
    handle_heartbeat,
    handle_join_group,
    handle_leave_group,
    handle_list_groups,
    handle_sync_group,
)
from plait.broker.handlers.metadata import handle_find_coordinator, handle_metadata
from plait.broker.handlers.offsets import handle_offset_commit, handle_offset_fetch
from plait.broker.handlers.produce import handle_init_producer_id, handle_produce
from plait.broker.handlers.topics import (
    handle_create_topics,
    handle_delete_topics,
    handle_describe_configs,
)
from plait.broker.handlers.versions import handle_api_versions
from plait.broker.state import Broker

Handler = Callable[[Broker, Request], Awaitable[Reply]]

HANDLERS: dict[int, Handler] = {
    0: handle_produce,
    1: handle_fetch,
    2: handle_list_offsets,
    3: handle_metadata,
    8: handle_offset_commit,
    9: handle_offset_fetch,
    10: handle_find_coordinator,
    11: handle_join_group,
    12: handle_heartbeat,
    13: handle_leave_group,
    14: handle_sync_group,
    15: handle_describe_groups,
    16: handle_list_groups,
    18: handle_api_versions,
    19: handle_create_topics,
    20: handle_delete_topics,
    22: handle_init_producer_id,
    32: handle_describe_configs,
}

__all__ = ["HANDLERS", "Handler", "RawBody", "Reply"]
