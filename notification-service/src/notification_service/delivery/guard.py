"""Where a webhook may go: http(s) URLs whose host resolves only to public addresses.

A webhook URL is chosen by a customer, so without this check a webhook is a way to
make Flow send requests into its own network (SSRF): loopback, private ranges, the
cloud metadata address (link-local), multicast and reserved space are refused unless
ALLOW_PRIVATE_WEBHOOKS is set, and so are IPv6 addresses that tunnel or translate to
such an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo). The check
runs on the addresses the host resolves to at delivery time, and the request then goes
to the checked address itself, so a DNS answer that changes between check and connect
(rebinding) cannot slip past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_URL_LENGTH = 2048


class WebhookRefused(Exception):
    """The webhook target is not allowed (bad URL, or an address Flow must not call)."""


def parse_webhook_url(url: str) -> SplitResult:
    """The URL's parts, if it is an absolute http(s) URL Flow could call; else WebhookRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise WebhookRefused(f"the URL is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("the URL must use http or https")
    if not parts.hostname:
        raise WebhookRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("the URL must not carry credentials")
    if port == 0:
        raise WebhookRefused("the URL's port is not valid")
    if any(ch.isspace() for ch in url):
        raise WebhookRefused("the URL must not contain whitespace")
    return parts


def literal_address(host: str) -> IPAddress | None:
    """The host as an IP address when it is written as one (IPv6 without brackets)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# IPv6 forms that carry an IPv4 destination in their low 32 bits: the packet ends up at
# that IPv4 address, so it is judged instead of the IPv6 one.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215): the operator picks where the IPv4 address sits, so what it
# reaches cannot be told from the address: always refused.
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
# Deprecated IPv4-compatible addresses (::a.b.c.d, RFC 4291): never a legitimate target.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _low_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses, and for IPv6 transition
    addresses (IPv4-mapped, NAT64, 6to4, Teredo) only when every IPv4 address they
    reach is itself public: ::ffff:127.0.0.1, 64:ff9b::10.0.0.1, 2002:7f00:1:: and a
    Teredo address with a private client all lead into the private network."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _is_public_unicast(address.ipv4_mapped)
        if address in NAT64_WELL_KNOWN:
            return _is_public_unicast(_low_ipv4(address))
        if address in NAT64_LOCAL_USE or address in IPV4_COMPATIBLE:
            return False  # includes :: and ::1
        embedded: list[ipaddress.IPv4Address] = []
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)  # (server, client), the client de-obfuscated
        if not all(_is_public_unicast(ipv4) for ipv4 in embedded):
            return False
    return _is_public_unicast(address)


def _is_public_unicast(address: IPAddress) -> bool:
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    # is_global also rules out shared (100.64/10), documentation and benchmark ranges.
    return address.is_global


def check_literal_host(url: str, *, allow_private: bool) -> None:
    """Refuse, already when the URL is saved, a host written as a non-public address."""
    parts = parse_webhook_url(url)
    address = literal_address(parts.hostname or "")
    if address is not None and not allow_private and not is_public_address(address):
        raise WebhookRefused(f"{address} is not a public address")


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked webhook destination: the URL to connect to (the address itself), and
    the Host header and TLS server name of the URL the customer gave."""

    connect_url: str
    host_header: str
    server_name: str
    address: IPAddress


async def checked_target(
    url: str, *, allow_private: bool, resolver: Resolver = resolve_host
) -> WebhookTarget:
    """Resolve the URL's host and pin it to an allowed address, or raise WebhookRefused."""
    parts = parse_webhook_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = literal_address(host)
    if address is not None:
        addresses = [address]
    else:
        try:
            addresses = await resolver(host, port)
        except OSError as exc:
            raise WebhookRefused(f"the host {host} cannot be resolved: {exc}") from None
    if not addresses:
        raise WebhookRefused(f"the host {host} has no address")
    if not allow_private:
        # Every address must be public: one private answer is enough to be steered inward.
        refused = [str(a) for a in addresses if not is_public_address(a)]
        if refused:
            raise WebhookRefused(f"{host} resolves to a non-public address ({refused[0]})")
    chosen = addresses[0]
    connect_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    default_port = parts.port is None
    netloc = connect_host if default_port else f"{connect_host}:{port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return WebhookTarget(
        connect_url=f"{parts.scheme}://{netloc}{path}{query}",
        host_header=host_header,
        server_name=host,
        address=chosen,
    )
