"""Request dependencies of review-service: who may do what."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from flow_shared.auth import Principal, require_org_kind

# Hospitals write reviews; vendors answer them. Anyone else gets 403.
HospitalUser = Annotated[Principal, Depends(require_org_kind("hospital"))]
VendorUser = Annotated[Principal, Depends(require_org_kind("vendor"))]
