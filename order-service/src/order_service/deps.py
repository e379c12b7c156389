"""Request dependencies of order-service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from flow_shared.app_state import app_state
from flow_shared.auth import Principal, require_org_kind
from order_service.clients import Upstreams
from order_service.config import Settings

SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
UpstreamsDep = Annotated[Upstreams, Depends(app_state("upstreams", Upstreams))]
HospitalUser = Annotated[Principal, Depends(require_org_kind("hospital"))]
VendorUser = Annotated[Principal, Depends(require_org_kind("vendor"))]
