"""ApiVersions: advertise exactly the API keys and versions the codec table serves."""

from __future__ import annotations

from kafka.protocol.metadata import ApiVersionsResponse

from plait.broker.codec import Request, api_versions_table
from plait.broker.state import Broker


def api_versions_response(error_code: int = 0) -> ApiVersionsResponse:
    return ApiVersionsResponse(
        error_code=error_code,
        api_keys=[
            ApiVersionsResponse.ApiVersion(api_key=k, min_version=lo, max_version=hi)
            for k, lo, hi in api_versions_table()
        ],
        throttle_time_ms=0,
        supported_features=[],
        finalized_features_epoch=-1,
        finalized_features=[],
        zk_migration_ready=False,
    )


async def handle_api_versions(broker: Broker, req: Request) -> ApiVersionsResponse:
    return api_versions_response()
