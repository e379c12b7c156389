"""Typed client of user-service's internal organisation API, and the readiness probe of
every other service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from admin_service.config import Settings
from admin_service.errors import (
    OrganizationConflict,
    OrganizationNotFound,
    UserServiceBadResponse,
    VendorNotFound,
)
from admin_service.schemas import (
    Organization,
    OrganizationPage,
    ServiceHealth,
    VendorOrganization,
    VendorPage,
)
from flow_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from flow_shared.http import ServiceClient
from flow_shared.pagination import PageParams

USER_SERVICE = "user-service"
_Model = TypeVar("_Model", bound=BaseModel)

log = structlog.get_logger("admin_service.clients")


class UserServiceClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        service_key = settings.service_key.get_secret_value() if settings.service_key else None
        self._http = ServiceClient(
            USER_SERVICE,
            settings.user_service_url,
            service_key=service_key,
            caller=settings.service_name,
            connect_timeout=settings.user_service_connect_timeout_seconds,
            read_timeout=settings.user_service_read_timeout_seconds,
            attempts=settings.user_service_attempts,
            transport=transport,
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
    response: httpx.Response,
    model: type[_Model],
    *,
    not_found: type[VendorNotFound | OrganizationNotFound] = VendorNotFound,
) -> _Model:
    if response.status_code == 404:
        what = "vendor" if not_found is VendorNotFound else "hospital or vendor"
        raise not_found(f"No {what} organisation has this id.")
    if response.status_code == 409:
        # user-service's own explanation (e.g. renew the licence first); no internals in it.
        raise OrganizationConflict(_problem_detail(response))
    if response.status_code != 200:
        # 401/403/422 here mean a misconfigured key or a contract drift, not the client's fault.
        log.error("user_service_unexpected_status", status=response.status_code)
        raise UserServiceBadResponse(f"{USER_SERVICE} answered {response.status_code}.")
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        log.error("user_service_bad_body", model=model.__name__)
        raise UserServiceBadResponse(f"{USER_SERVICE} sent an unreadable answer.") from None


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail[:500] if isinstance(detail, str) else "user-service refused the change."
