"""Request dependencies of order-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from flow_shared.auth import Principal, require_org_kind
from order_service.clients import Upstreams
from order_service.config import Settings


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _upstreams(request: Request) -> Upstreams:
    upstreams: Upstreams = request.app.state.upstreams
    return upstreams


SettingsDep = Annotated[Settings, Depends(_settings)]
UpstreamsDep = Annotated[Upstreams, Depends(_upstreams)]
HospitalUser = Annotated[Principal, Depends(require_org_kind("hospital"))]
VendorUser = Annotated[Principal, Depends(require_org_kind("vendor"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same key and body replays the first answer; another body is 422.",
    ),
]
