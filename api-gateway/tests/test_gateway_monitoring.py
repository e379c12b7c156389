"""The gateway's /metrics and /health/ready are for the monitoring network only, and in
production it serves only the hosts it is published as."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from api_gateway.config import Settings

if TYPE_CHECKING:
    from conftest import Gateway

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]

MONITORING = ("/metrics", "/health/ready")


def production(**kwargs: Any) -> Settings:
    kwargs.setdefault("amqp_url", f"amqp://flow:{secrets.token_hex(32)}@rabbitmq:5672/")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        service_key=secrets.token_hex(32),
        **kwargs,
    )


@pytest.mark.parametrize("hosts", ["*", "api.flow.example.org,*", ""])
def test_production_refuses_to_serve_any_host(monkeypatch: pytest.MonkeyPatch, hosts: str) -> None:
    monkeypatch.delenv("TRUSTED_HOSTS", raising=False)
    with pytest.raises(ValidationError, match="TRUSTED_HOSTS must name"):
        production(trusted_hosts=hosts)
    # The default is "*": unset is refused too.
    with pytest.raises(ValidationError, match="TRUSTED_HOSTS must name"):
        production()


def test_production_with_named_hosts_starts() -> None:
    settings = production(trusted_hosts="api.flow.example.org")
    assert settings.trusted_hosts == ["api.flow.example.org"]
    # Elsewhere "*" stays the default, for make up and the tests.
    assert Settings(_env_file=None).trusted_hosts == ["*"]  # type: ignore[call-arg]


async def test_monitoring_paths_through_the_tls_proxy_do_not_exist(
    open_gateway: OpenGateway,
) -> None:
    async with open_gateway(trusted_proxy_hops=1) as gw:
        # Prometheus and the probes, straight to the gateway.
        direct = [(await gw.client.get(path)).status_code for path in MONITORING]
        # The same paths relayed by the proxy (which sits on the private network too).
        async with gw.client_from("172.18.0.4") as proxy:
            relayed = [
                await proxy.get(path, headers={"X-Forwarded-For": "203.0.113.50"})
                for path in MONITORING
            ]
        # And a public address reaching the gateway by any other way.
        async with gw.client_from("203.0.113.50") as public:
            straight = [(await public.get(path)).status_code for path in MONITORING]

    assert direct == [200, 200]
    assert [r.status_code for r in relayed] == [404, 404]
    assert all("flow_gateway" not in r.text for r in relayed)
    assert straight == [404, 404]
