"""Typed client of user-service's internal organisation API, and the readiness probe of
every other service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel

from admin_service.config import Settings
from admin_service.errors import OrganizationConflict, OrganizationNotFound, VendorNotFound
from admin_service.schemas import (
    Organization,
    OrganizationPage,
    ServiceHealth,
    VendorOrganization,
    VendorPage,
)
from flow_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from flow_shared.http import ServiceClient, UpstreamAnswer
from flow_shared.pagination import PageParams
from flow_shared.upstream import parse_answer, problem_detail, problem_of

USER_SERVICE = "user-service"
_Model = TypeVar("_Model", bound=BaseModel)

log = structlog.get_logger("admin_service.clients")


class UserServiceClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = ServiceClient.from_settings(
            settings, USER_SERVICE, settings.user_service_url, transport=transport
        )

    async def list_vendors(self, *, verified: bool | None, params: PageParams) -> VendorPage:
        query: dict[str, Any] = {"page": params.page, "page_size": params.page_size}
        if verified is not None:
            query["verified"] = "true" if verified else "false"
        response = await self._http.get("/internal/organizations/vendors", params=query)
        return _parse(response, VendorPage)

    # The vendor paths ask user-service for a vendor (`kind=vendor`): another kind is 404.
    async def verify_vendor(self, org_id: uuid.UUID, *, actor_id: uuid.UUID) -> VendorOrganization:
        response = await self._http.post(
            f"/internal/organizations/{org_id}/verify",
            params={"kind": "vendor"},
            json={"actor_id": str(actor_id)},
        )
        return _parse(response, VendorOrganization)

    async def suspend_vendor(
        self, org_id: uuid.UUID, *, actor_id: uuid.UUID, reason: str | None
    ) -> VendorOrganization:
        body: dict[str, str] = {"actor_id": str(actor_id)}
        if reason is not None:
            body["reason"] = reason
        response = await self._http.post(
            f"/internal/organizations/{org_id}/suspend", params={"kind": "vendor"}, json=body
        )
        return _parse(response, VendorOrganization)

    async def list_organizations(
        self,
        *,
        kind: str | None,
        verified: bool | None,
        suspended: bool | None,
        params: PageParams,
    ) -> OrganizationPage:
        query: dict[str, Any] = {"page": params.page, "page_size": params.page_size}
        if kind is not None:
            query["kind"] = kind
        for name, flag in (("verified", verified), ("suspended", suspended)):
            if flag is not None:
                query[name] = "true" if flag else "false"
        response = await self._http.get("/internal/organizations", params=query)
        return _parse(response, OrganizationPage, not_found=OrganizationNotFound)

    async def verify_organization(
        self, org_id: uuid.UUID, *, actor_id: uuid.UUID, license_expires_on: date
    ) -> Organization:
        response = await self._http.post(
            f"/internal/organizations/{org_id}/verify",
            json={"actor_id": str(actor_id), "license_expires_on": license_expires_on.isoformat()},
        )
        return _parse(response, Organization, not_found=OrganizationNotFound)

    async def suspend_organization(
        self, org_id: uuid.UUID, *, actor_id: uuid.UUID, reason: str
    ) -> Organization:
        response = await self._http.post(
            f"/internal/organizations/{org_id}/suspend",
            json={"actor_id": str(actor_id), "reason": reason},
        )
        return _parse(response, Organization, not_found=OrganizationNotFound)

    async def reinstate_organization(
        self, org_id: uuid.UUID, *, actor_id: uuid.UUID
    ) -> Organization:
        response = await self._http.post(
            f"/internal/organizations/{org_id}/reinstate", json={"actor_id": str(actor_id)}
        )
        return _parse(response, Organization, not_found=OrganizationNotFound)

    async def aclose(self) -> None:
        await self._http.aclose()


class FleetHealthClient:
    """Asks services for `/health/ready`: one short GET each, never retried, no breaker —
    the admin wants each service's state now, not a cached opinion of it."""

    READY_PATH = "/health/ready"

    def __init__(
        self,
        urls: dict[str, str | None],
        *,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = urls
        self._timeout = timeout_seconds
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), transport=transport, follow_redirects=False
        )

    async def readiness(self, base_url: str) -> ServiceHealth:
        headers: dict[str, str] = {}
        correlation_id = get_correlation_id()
        if correlation_id:
            headers[REQUEST_ID_HEADER] = correlation_id
        try:
            # httpx bounds each phase; this bounds the whole call (a trickling answer too).
            async with asyncio.timeout(self._timeout):
                response = await self._http.get(
                    base_url.rstrip("/") + self.READY_PATH, headers=headers
                )
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
            log.warning("readiness_probe_failed", url=base_url, error=type(exc).__name__)
            return ServiceHealth(status="unreachable")
        return ServiceHealth(
            status="ok" if response.is_success else "failing", checks=_named_checks(response)
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _named_checks(response: httpx.Response) -> dict[str, str] | None:
    """`checks` of a flow_shared readiness answer (200 or 503 problem), if it has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict):
        return None
    return {
        str(name)[:100]: result[:100] for name, result in checks.items() if isinstance(result, str)
    }


def _parse(
    answer: UpstreamAnswer,
    model: type[_Model],
    *,
    not_found: type[VendorNotFound | OrganizationNotFound] = VendorNotFound,
) -> _Model:
    if answer.status_code == 404:
        what = "vendor" if not_found is VendorNotFound else "hospital or vendor"
        raise not_found(f"No {what} organisation has this id.")
    if answer.status_code == 409:
        # user-service's own explanation (e.g. renew the licence first); no internals in it.
        detail = problem_detail(problem_of(answer), "user-service refused the change.")
        raise OrganizationConflict(detail[:500])
    return parse_answer(USER_SERVICE, answer, model, expect=200)
