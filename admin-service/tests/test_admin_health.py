"""GET /api/v1/admin/health: every service's readiness (all ten: the nine it asks,
concurrently, with a short timeout, so one dead or hanging service never hides the others,
and its own), degraded unless all are ok."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flow_shared.testing.infra import asgi_client
from flow_shared.testing.ports import free_port

if TYPE_CHECKING:
    from conftest import AdminAppFactory, AdminClientFactory, FleetStub

HEALTH = "/api/v1/admin/health"
OWN = "admin-service"
READY = {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def fleet_health(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(HEALTH, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def own_readiness(client: httpx.AsyncClient, deadline_seconds: float = 30.0) -> Any:
    """admin-service's own /health/ready answer, once it is ready (its consumer connects
    in the background after start-up)."""
    deadline = time.monotonic() + deadline_seconds
    while (response := await client.get("/health/ready")).status_code != 200:
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.1)
    return response.json()


async def test_all_ten_services_ready_is_ok(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], fleet: FleetStub
) -> None:
    own = await own_readiness(admin_client)

    body = await fleet_health(admin_client, {**platform_admin, "X-Request-ID": "health-1"})

    # admin-service itself is listed, with the checks its own /health/ready runs.
    assert body == {
        "status": "ok",
        "services": {
            **dict.fromkeys(fleet.services, READY),
            OWN: {"status": "ok", "checks": own["checks"]},
        },
    }
    assert len(body["services"]) == 10
    assert {"database", "redis"} <= set(own["checks"])
    # Each service was asked once, at its own /health/ready, under the admin's request id.
    asked = sorted((r.url.host, r.url.path) for r in fleet.requests)
    assert asked == sorted((f"{name}.test", "/health/ready") for name in fleet.services)
    assert {r.headers["X-Request-ID"] for r in fleet.requests} == {"health-1"}


async def test_services_are_asked_concurrently(
    admin_client_for: AdminClientFactory, platform_admin: dict[str, str], fleet: FleetStub
) -> None:
    # No stub answers before all nine have been asked; one at a time, each would time out.
    fleet.barrier = asyncio.Barrier(len(fleet.services))

    async with admin_client_for(health_check_timeout_seconds=1.0) as client:
        await own_readiness(client)
        body = await fleet_health(client, platform_admin)

    assert body["status"] == "ok"
    assert {name: body["services"][name] for name in fleet.services} == dict.fromkeys(
        fleet.services, READY
    )


async def test_one_failing_and_one_unreachable_service_make_the_fleet_degraded(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], fleet: FleetStub
) -> None:
    fleet.failing("order-service", database=False, redis=True)
    fleet.down.add("payment-service")

    body = await fleet_health(admin_client, platform_admin)

    assert body["status"] == "degraded"
    services = body["services"]
    # The failing service's own answer names the check that fails.
    assert services["order-service"] == {
        "status": "failing",
        "checks": {"database": "failing", "redis": "ok"},
    }
    assert services["payment-service"] == {"status": "unreachable"}
    troubled = ("order-service", "payment-service")
    others = {name: services[name] for name in fleet.services if name not in troubled}
    assert others == dict.fromkeys(others, READY)
    # A failing answer is reported, not retried.
    order_calls = [r for r in fleet.requests if r.url.host == "order-service.test"]
    assert len(order_calls) == 1


async def test_a_service_without_a_url_is_not_configured_and_the_fleet_degraded(
    admin_client_for: AdminClientFactory, platform_admin: dict[str, str], fleet: FleetStub
) -> None:
    async with admin_client_for(review_service_url=None, pricing_service_url="") as client:
        body = await fleet_health(client, platform_admin)

    assert body["status"] == "degraded"
    assert body["services"]["review-service"] == {"status": "not configured"}
    assert body["services"]["pricing-service"] == {"status": "not configured"}
    assert body["services"]["order-service"] == READY
    asked = {r.url.host for r in fleet.requests}
    assert asked.isdisjoint({"review-service.test", "pricing-service.test"})
    assert len(asked) == len(fleet.services) - 2


async def test_a_failing_check_of_admin_service_itself_makes_the_fleet_degraded(
    admin_app_for: AdminAppFactory, platform_admin: dict[str, str], fleet: FleetStub
) -> None:
    app = admin_app_for()

    async def search_index_down() -> None:
        raise ConnectionError("refused")

    # A critical dependency of its own that fails, as its database or Redis could.
    app.state.health.add("search_index", search_index_down)
    async with asgi_client(app) as client:
        body = await fleet_health(client, platform_admin)

    assert body["status"] == "degraded"
    own = body["services"][OWN]
    assert own["status"] == "failing"
    assert own["checks"]["search_index"] == "failing"
    assert own["checks"]["database"] == "ok"
    # The nine it asks are still reported, each as it answered.
    assert {name: body["services"][name] for name in fleet.services} == dict.fromkeys(
        fleet.services, READY
    )


@pytest.fixture
async def hanging_server() -> AsyncIterator[str]:
    """A real TCP server that accepts connections and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
def closed_port_url() -> str:
    """A local URL nobody listens on: connecting is refused."""
    return f"http://127.0.0.1:{free_port()}"


async def test_a_hanging_or_refusing_service_is_unreachable_on_real_sockets(
    admin_client_for: AdminClientFactory,
    platform_admin: dict[str, str],
    fleet: FleetStub,
    hanging_server: str,
    closed_port_url: str,
) -> None:
    unset = dict.fromkeys(fleet.url_settings, None)
    async with admin_client_for(
        real_network=True,
        health_check_timeout_seconds=0.5,
        **{
            **unset,
            "order_service_url": hanging_server,
            "payment_service_url": closed_port_url,
            "user_service_url": closed_port_url,
        },
    ) as client:
        # Without the timeout this request would wait on the hanging service for ever
        # (and the test time out).
        body = await fleet_health(client, platform_admin)

    services = body["services"]
    assert services["order-service"] == {"status": "unreachable"}
    assert services["payment-service"] == {"status": "unreachable"}
    assert services["user-service"] == {"status": "unreachable"}
    assert services["review-service"] == {"status": "not configured"}
    assert body["status"] == "degraded"
