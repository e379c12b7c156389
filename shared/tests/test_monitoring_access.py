"""/metrics and /health/ready answer only the monitoring network (MONITORING_NETWORKS,
direct TCP peers, never through a proxy); to anyone else they do not exist (404)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flow_shared.testing.infra import asgi_client

if TYPE_CHECKING:
    from conftest import ShowcaseFactory
    from fastapi import FastAPI

MONITORING = ("/metrics", "/health/ready")
ClientFrom = Callable[[str], httpx.AsyncClient]


@pytest.fixture
def running(
    showcase_app: ShowcaseFactory,
) -> Callable[..., AbstractAsyncContextManager[ClientFrom]]:
    """A running showcase service, and clients that reach it from a chosen address."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[ClientFrom]:
        app: FastAPI = showcase_app((), **overrides)
        async with asgi_client(app):  # the lifespan

            def client_from(ip: str) -> httpx.AsyncClient:
                transport = httpx.ASGITransport(app=app, client=(ip, 40000))
                return httpx.AsyncClient(transport=transport, base_url="http://testserver")

            yield client_from

    return run


async def statuses(client: httpx.AsyncClient, **kwargs: Any) -> list[int]:
    async with client:
        return [(await client.get(path, **kwargs)).status_code for path in MONITORING]


async def test_the_monitoring_network_reads_metrics_and_readiness(
    running: Callable[..., AbstractAsyncContextManager[ClientFrom]],
) -> None:
    async with running() as client_from:
        # The default: loopback and the private ranges containers and pods live in.
        for ip in ("127.0.0.1", "10.4.0.12", "172.18.0.5", "192.168.1.9", "::1"):
            assert await statuses(client_from(ip)) == [200, 200], ip


async def test_anyone_else_gets_404_and_liveness_stays_open(
    running: Callable[..., AbstractAsyncContextManager[ClientFrom]],
) -> None:
    async with running() as client_from:
        public = client_from("203.0.113.5")
        async with public:
            metrics = await public.get("/metrics")
            ready = await public.get("/health/ready")
            live = await public.get("/health/live")

    for refused in (metrics, ready):
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/problem+json"
        assert "flow_http_requests" not in refused.text
        assert "checks" not in refused.text
    assert live.status_code == 200


@pytest.mark.parametrize(
    "relay_header",
    ["X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Flow-Client-IP"],
)
async def test_a_request_relayed_by_a_proxy_is_refused_whoever_relays_it(
    running: Callable[..., AbstractAsyncContextManager[ClientFrom]], relay_header: str
) -> None:
    # The TLS proxy and the ingress sit on the private network too: what they relay comes
    # from the public side.
    async with running() as client_from:
        assert await statuses(client_from("10.0.0.7"), headers={relay_header: "10.0.0.8"}) == [
            404,
            404,
        ]


async def test_monitoring_networks_come_from_configuration(
    running: Callable[..., AbstractAsyncContextManager[ClientFrom]],
) -> None:
    async with running(monitoring_networks="192.0.2.0/24, 2001:db8::/32") as client_from:
        assert await statuses(client_from("192.0.2.7")) == [200, 200]
        assert await statuses(client_from("2001:db8::5")) == [200, 200]
        assert await statuses(client_from("10.0.0.7")) == [404, 404]
        assert await statuses(client_from("127.0.0.1")) == [404, 404]


async def test_probes_by_pod_address_pass_the_host_check_other_paths_do_not(
    running: Callable[..., AbstractAsyncContextManager[ClientFrom]],
) -> None:
    # Kubelet probes and Prometheus address the pod by IP; the Host check is for the API.
    async with running(trusted_hosts="api.flow.test") as client_from:
        probe = {"Host": "10.4.0.12:8000"}
        assert await statuses(client_from("10.4.0.1"), headers=probe) == [200, 200]
        async with client_from("10.4.0.1") as client:
            live = await client.get("/health/live", headers=probe)
            api = await client.get("/api/v1/anything", headers=probe)

    assert live.status_code == 200
    assert api.status_code == 400
