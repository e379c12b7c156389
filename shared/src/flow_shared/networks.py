"""Source-address allow-lists (trusted proxies, the monitoring network) and the client
address the gateway hands to the services behind it."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from flow_shared.errors import problem_response

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
# Loopback plus the private ranges (RFC 1918, RFC 4193) that container and cluster
# networks use; a public address is never in here.
PRIVATE_NETWORKS: tuple[str, ...] = (
    *LOOPBACK_NETWORKS,
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)

# The address of the client as the gateway determined it (`api_gateway.routes.client_info`),
# set on every proxied request. The gateway drops every client-sent `X-Flow-*` header, so
# behind the gateway this is the one client address to trust (rate limits, lockouts).
CLIENT_IP_HEADER = "X-Flow-Client-IP"


def private_networks() -> list[Network]:
    return [ipaddress.ip_network(network) for network in PRIVATE_NETWORKS]


def split_networks(value: object) -> object:
    """A comma-separated variable as a list (pydantic then parses each network)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def address_in(address: str, networks: Sequence[Network]) -> bool:
    """Whether `address` (an IP, as a string) lies in one of `networks`; False for a name."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 on a dual-stack socket
    return any(ip in network for network in networks)


def forwarded_client_ip(request: Request) -> str:
    """The client's address for a service behind the gateway: the gateway's
    `X-Flow-Client-IP`, else (a direct call) the TCP peer."""
    forwarded = request.headers.get(CLIENT_IP_HEADER)
    if forwarded:
        return forwarded
    return request.client.host if request.client is not None else "unknown"


# Served only to the monitoring network: what the platform runs on and how it is doing
# is nobody else's business. (/health/live says nothing and stays open to probes.)
MONITORING_PATHS = frozenset({"/metrics", "/health/ready"})
# Set by any reverse proxy on the way in (nginx, the ingress controller, the gateway):
# a relayed request came from the public side, whatever address relayed it.
_RELAY_HEADERS = frozenset(
    {b"x-forwarded-for", b"forwarded", b"x-real-ip", CLIENT_IP_HEADER.lower().encode()}
)


class MonitoringNetworkMiddleware:
    """404 for the monitoring paths unless the TCP peer is in `networks` and the request
    was not relayed by a proxy: the public never sees that they exist."""

    def __init__(self, app: ASGIApp, networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    def _allowed(self, scope: Scope) -> bool:
        client = scope.get("client")
        if client is None or not address_in(client[0], self.networks):
            return False
        return not any(name in _RELAY_HEADERS for name, _ in scope.get("headers", ()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in MONITORING_PATHS:
            await self.app(scope, receive, send)
            return
        if self._allowed(scope):
            await self.app(scope, receive, send)
            return
        response = problem_response(
            Request(scope), status=404, code="not-found", detail="Nothing is served here."
        )
        await response(scope, receive, send)
