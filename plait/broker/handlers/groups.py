"""JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups and ListGroups.

Thin adapters between the wire messages and the GroupCoordinator, which owns the
rebalance state machine and its persistence.
"""

from __future__ import annotations

from kafka.protocol.admin import DescribeGroupsResponse, ListGroupsResponse
from kafka.protocol.consumer import (
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    SyncGroupResponse,
)

from plait.broker.codec import Request
from plait.broker.state import Broker


async def handle_join_group(broker: Broker, req: Request) -> JoinGroupResponse:
    b = req.body
    rebalance_ms = b.rebalance_timeout_ms if req.api_version >= 1 else b.session_timeout_ms
    result = await broker.coordinator.join(
        group_id=b.group_id,
        member_id=b.member_id or "",
        group_instance_id=b.group_instance_id if req.api_version >= 5 else None,
        client_id=req.client_id or "",
        client_host=req.client_host,
        session_timeout_ms=b.session_timeout_ms,
        rebalance_timeout_ms=rebalance_ms,
        protocol_type=b.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in b.protocols],
    )
    return JoinGroupResponse(
        throttle_time_ms=0,
        error_code=result.error,
        generation_id=result.generation,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol,
        leader=result.leader,
        skip_assignment=False,
        member_id=result.member_id,
        members=[
            JoinGroupResponse.JoinGroupResponseMember(
                member_id=mid, group_instance_id=gid, metadata=meta
            )
            for mid, gid, meta in result.members
        ],
    )


async def handle_sync_group(broker: Broker, req: Request) -> SyncGroupResponse:
    b = req.body
    plan = {a.member_id: bytes(a.assignment) for a in b.assignments or []}
    code, assignment, group = await broker.coordinator.sync(
        b.group_id, b.generation_id, b.member_id, plan
    )
    return SyncGroupResponse(
        throttle_time_ms=0,
        error_code=code,
        protocol_type=group.protocol_type if group else None,
        protocol_name=group.protocol if group else None,
        assignment=assignment,
    )


async def handle_heartbeat(broker: Broker, req: Request) -> HeartbeatResponse:
    b = req.body
    code = broker.coordinator.heartbeat(b.group_id, b.generation_id, b.member_id)
    return HeartbeatResponse(throttle_time_ms=0, error_code=code)


async def handle_leave_group(broker: Broker, req: Request) -> LeaveGroupResponse:
    b = req.body
    if req.api_version < 3:
        codes = broker.coordinator.leave(b.group_id, [b.member_id])
        return LeaveGroupResponse(throttle_time_ms=0, error_code=codes[b.member_id])
    ids = [m.member_id for m in b.members]
    codes = broker.coordinator.leave(b.group_id, ids)
    return LeaveGroupResponse(
        throttle_time_ms=0,
        error_code=0,
        members=[
            LeaveGroupResponse.MemberResponse(
                member_id=m.member_id, group_instance_id=m.group_instance_id,
                error_code=codes[m.member_id],
            )
            for m in b.members
        ],
    )


async def handle_describe_groups(broker: Broker, req: Request) -> DescribeGroupsResponse:
    D = DescribeGroupsResponse.DescribedGroup
    out = []
    for gid in req.body.groups:
        g = broker.coordinator.describe(gid)
        members = [
            D.DescribedGroupMember(
                member_id=mid, group_instance_id=m.group_instance_id, client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=dict(m.protocols).get(g.protocol or "", b""),
                member_assignment=m.assignment,
            )
            for mid, m in g.members.items()
        ]
        state = g.phase.value if (g.members or g.generation) else "Dead"
        out.append(D(error_code=0, error_message=None, group_id=gid, group_state=state,
                     protocol_type=g.protocol_type or "", protocol_data=g.protocol or "",
                     members=members))
    return DescribeGroupsResponse(throttle_time_ms=0, groups=out)


async def handle_list_groups(broker: Broker, req: Request) -> ListGroupsResponse:
    wanted = set(req.body.states_filter or []) if req.api_version >= 4 else set()
    listed = []
    for gid in broker.coordinator.known_groups():
        g = broker.coordinator.describe(gid)
        state = g.phase.value
        if wanted and state not in wanted:
            continue
        listed.append(ListGroupsResponse.ListedGroup(
            group_id=gid, protocol_type=g.protocol_type or "consumer", group_state=state))
    return ListGroupsResponse(throttle_time_ms=0, error_code=0, groups=listed)
