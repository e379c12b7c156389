"""Identity, organisations and vendor verification through the gateway, on the real fleet."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from tests.e2e.conftest import E2E_PASSWORD, e2e_email, login_headers, register_organization


async def test_register_login_and_read_profile_through_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    registered = await register_organization(gateway, "hospital")
    assert registered["user"]["email"] == registered["email"]
    assert registered["organization"]["kind"] == "hospital"

    login = await gateway.post(
        "/api/v1/auth/login", json={"email": registered["email"], "password": E2E_PASSWORD}
    )
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900

    me = await gateway.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == registered["email"]
    assert me.json()["role"] == "org_admin"


async def test_bad_input_is_problem_json_and_changes_nothing(gateway: httpx.AsyncClient) -> None:
    email = e2e_email("weak")
    weak = await gateway.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": "short",
            "full_name": "W",
            "organization": {"name": "W", "kind": "hospital"},
        },
    )
    assert weak.status_code == 422
    assert weak.headers["content-type"].startswith("application/problem+json")
    assert weak.json()["errors"]
    # Mass assignment: a role in the body is refused, not applied.
    sneaky = await gateway.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": E2E_PASSWORD,
            "full_name": "S",
            "role": "platform_admin",
            "organization": {"name": "S", "kind": "hospital"},
        },
    )
    assert sneaky.status_code == 422
    refused = await gateway.post(
        "/api/v1/auth/login", json={"email": email, "password": E2E_PASSWORD}
    )
    assert refused.status_code == 401

    taken = await register_organization(gateway, "hospital")
    again = await gateway.post(
        "/api/v1/auth/register",
        json={
            "email": taken["email"].upper(),
            "password": E2E_PASSWORD,
            "full_name": "T",
            "organization": {"name": "T", "kind": "hospital", "license_number": "LIC-7"},
        },
    )
    assert again.status_code == 409


async def test_organisations_are_private_and_admin_routes_need_a_platform_admin(
    gateway: httpx.AsyncClient,
) -> None:
    mine = await register_organization(gateway, "hospital")
    other = await register_organization(gateway, "hospital")
    headers = await login_headers(gateway, mine["email"])

    own = await gateway.get(f"/api/v1/organizations/{mine['organization']['id']}", headers=headers)
    assert own.status_code == 200
    foreign = await gateway.get(
        f"/api/v1/organizations/{other['organization']['id']}", headers=headers
    )
    assert foreign.status_code == 404
    assert foreign.headers["content-type"].startswith("application/problem+json")

    # A forged identity header changes nothing: the token decides who you are.
    forged = await gateway.get(
        f"/api/v1/organizations/{other['organization']['id']}",
        headers={
            **headers,
            "X-User-Id": other["user"]["id"],
            "X-Org-Id": other["organization"]["id"],
        },
    )
    assert forged.status_code == 404

    for path in (
        "/api/v1/admin/vendors",
        f"/api/v1/admin/vendors/{other['organization']['id']}/verify",
    ):
        method = gateway.get if path.endswith("vendors") else gateway.post
        response = await method(path, headers=headers)
        assert response.status_code == 403, path


async def test_internal_routes_are_never_reachable_from_outside(
    gateway: httpx.AsyncClient, fleet: Any
) -> None:
    for path in (
        "/internal/organizations/vendors",
        "/api/v1/internal/organizations/vendors",
        "/api/v1/organizations/../../internal/organizations/vendors",
    ):
        response = await gateway.get(
            path, headers={"X-Service-Key": "local-admin-service-key-4e8a07"}
        )
        assert response.status_code in (403, 404), path
        assert "items" not in response.text
    async with httpx.AsyncClient(base_url=fleet.user_service) as direct:
        no_key = await direct.get("/internal/organizations/vendors")
        assert no_key.status_code == 401


async def test_request_id_is_echoed_and_logged_by_the_service(
    gateway: httpx.AsyncClient, fleet: Any
) -> None:
    request_id = "e2e-" + uuid.uuid4().hex
    response = await gateway.post(
        "/api/v1/auth/login",
        json={"email": e2e_email("nobody"), "password": E2E_PASSWORD},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 401
    assert response.headers["x-request-id"] == request_id
    assert response.json()["correlation_id"] == request_id
    log_file: Path = fleet.log_dir / "user-service.log"
    for _ in range(50):
        lines = [
            json.loads(line) for line in log_file.read_text().splitlines() if request_id in line
        ]
        if lines:
            break
        await asyncio.sleep(0.1)
    assert lines, "user-service logged no line with the request id"
    assert all(line["correlation_id"] == request_id for line in lines)
    assert E2E_PASSWORD not in log_file.read_text()


async def test_security_headers_and_body_limit_at_the_edge(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/auth/jwks")
    assert response.status_code == 200
    assert response.json()["keys"]
    for header in (
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "content-security-policy",
    ):
        assert header in response.headers, header
    too_big = await gateway.post(
        "/api/v1/auth/register",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413


async def test_vendor_verification_by_the_platform_admin(
    gateway: httpx.AsyncClient, fleet: Any
) -> None:
    connection = await aio_pika.connect(fleet.amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "flow.events", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="organization.*")

    vendor = await register_organization(gateway, "vendor")
    vendor_org = vendor["organization"]["id"]
    assert vendor["organization"]["verified"] is False
    vendor_headers = await login_headers(gateway, vendor["email"])
    admin_headers = await login_headers(gateway, fleet.admin_email, fleet.admin_password)

    waiting = await gateway.get(
        "/api/v1/admin/vendors",
        params={"verified": "false", "page_size": 100},
        headers=admin_headers,
    )
    assert waiting.status_code == 200
    listed = waiting.json()
    assert {"items", "page", "page_size", "total"} <= listed.keys()
    assert vendor_org in {item["id"] for item in listed["items"]}

    verified = await gateway.post(
        f"/api/v1/admin/vendors/{vendor_org}/verify", headers=admin_headers
    )
    assert verified.status_code == 200
    org = await gateway.get(f"/api/v1/organizations/{vendor_org}", headers=vendor_headers)
    assert org.json()["verified"] is True

    event = await _next_event(queue, "organization.verified", vendor_org)
    assert event["producer"] == "user-service"
    assert event["correlation_id"] == verified.headers["x-request-id"]

    suspended = await gateway.post(
        f"/api/v1/admin/vendors/{vendor_org}/suspend", headers=admin_headers
    )
    assert suspended.status_code == 200
    await _next_event(queue, "organization.suspended", vendor_org)
    cannot_login = await gateway.post(
        "/api/v1/auth/login", json={"email": vendor["email"], "password": E2E_PASSWORD}
    )
    assert cannot_login.status_code in (401, 403)
    old_token = await gateway.get("/api/v1/users/me", headers=vendor_headers)
    assert old_token.status_code == 401
    await connection.close()


async def _next_event(
    queue: aio_pika.abc.AbstractQueue, event_type: str, org_id: str
) -> dict[str, Any]:
    async with asyncio.timeout(20):
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    event: dict[str, Any] = json.loads(message.body)
                if event["type"] == event_type and event["data"].get("org_id") == org_id:
                    return event
    raise AssertionError(f"{event_type} never arrived")


async def test_credential_endpoints_are_rate_limited_per_ip(gateway: httpx.AsyncClient) -> None:
    statuses = []
    for _ in range(30):
        response = await gateway.post(
            "/api/v1/auth/token",
            data={"username": e2e_email("guess"), "password": "wrong password!"},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["content-type"].startswith("application/problem+json")
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) <= {401, 423}


async def test_refresh_rotates_and_logout_revokes_through_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    account = await register_organization(gateway, "hospital")
    login = await gateway.post(
        "/api/v1/auth/login", json={"email": account["email"], "password": E2E_PASSWORD}
    )
    first = login.json()
    rotated = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    # Replaying the spent token is theft: the whole family dies, the new token too.
    replay = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    dead = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert dead.status_code == 401

    auth = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await gateway.get("/api/v1/users/me", headers=auth)).status_code == 200
    logout = await gateway.post("/api/v1/auth/logout", headers=auth, json={})
    assert logout.status_code in (200, 204)
    assert (await gateway.get("/api/v1/users/me", headers=auth)).status_code == 401


async def test_a_password_change_ends_live_access_tokens_in_every_service(
    gateway: httpx.AsyncClient,
) -> None:
    account = await register_organization(gateway, "hospital")
    auth = await login_headers(gateway, account["email"])
    other_service = "/api/v1/notifications"  # notification-service verifies tokens itself
    assert (await gateway.get(other_service, headers=auth)).status_code == 200

    changed = await gateway.post(
        "/api/v1/users/me/password",
        headers=auth,
        json={"current_password": E2E_PASSWORD, "new_password": "an even longer passphrase"},
    )
    assert changed.status_code == 204, changed.text

    # The token epoch: refused at once by the gateway and behind it, not in 15 minutes.
    assert (await gateway.get(other_service, headers=auth)).status_code == 401
    assert (await gateway.get("/api/v1/users/me", headers=auth)).status_code == 401
    fresh = await login_headers(gateway, account["email"], "an even longer passphrase")
    assert (await gateway.get(other_service, headers=fresh)).status_code == 200
