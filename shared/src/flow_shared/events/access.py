"""Who may do what on the event bus: one RabbitMQ user per service, and its rights.

Each service that publishes or consumes events connects as `flow-<service>`, whose
rights (on the fleet's vhost) follow from the topology's two tables (topology.py):

- configure: only its own queues `S.events`, `S.events.retry`, `S.events.dlq` and its
  moves exchange `S.events.moves` (a consumer declares them on connect; a pure publisher
  declares nothing). Never the events exchange: the deploy step declares that.
- write: the events exchange `flow.events` when it publishes; its moves exchange (retries
  and dead letters) and its own queues (the destinations of its bindings). Never the
  default exchange, through which it could put a message into any queue.
- read: its own queues (consume, get) and the exchanges it binds from (`flow.events`,
  `S.events.moves`).
- topic permissions on `flow.events`: publish exactly its FLEET_PUBLICATIONS routing
  keys, bind exactly its FLEET_SUBSCRIPTIONS ones.

Passive declares need no right, so a relay checking the exchange and a consumer reading
its DLQ depth are covered. `provision_broker` creates the users and grants these rights
through the management HTTP API (so it works on compose, Kubernetes and managed brokers
alike), then declares the topology as the admin. `python -m flow_shared.events.access`
does it from the environment (the compose one-shot and the Kubernetes Job run it):
RABBITMQ_MANAGEMENT_URL, RABBITMQ_ADMIN_USER, RABBITMQ_ADMIN_PASSWORD, RABBITMQ_VHOST
(default `/`), AMQP_ADMIN_URL (the admin's AMQP URL of that vhost, for the topology),
EVENTS_EXCHANGE (default `flow.events`) and AMQP_PASSWORD_<SHORT> for every service
`broker_services()` names.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from flow_shared.events.topology import (
    EVENTS_EXCHANGE,
    FLEET_PUBLICATIONS,
    FLEET_SUBSCRIPTIONS,
    Subscription,
    declare_topology_at,
    fleet_topology,
)
from flow_shared.services import short_name

NOTHING = "^$"
MANAGEMENT_TIMEOUT_SECONDS = 10.0
MANAGEMENT_WAIT_SECONDS = 60.0


def broker_services() -> list[str]:
    """Every service that publishes or consumes events, so has a broker user."""
    return sorted(set(FLEET_PUBLICATIONS) | set(FLEET_SUBSCRIPTIONS))


def broker_user(service: str) -> str:
    return f"flow-{service}"


def password_variable(service: str) -> str:
    """Where a service's broker password is configured: AMQP_PASSWORD_<SHORT>."""
    return f"AMQP_PASSWORD_{short_name(service)}"


def exactly(names: Iterable[str]) -> str:
    """A regex matching exactly these names (RabbitMQ's permissions are regexes)."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return NOTHING
    return "^(" + "|".join(re.escape(name) for name in unique) + ")$"


@dataclass(frozen=True)
class BrokerPermissions:
    """One user's rights on the fleet's vhost: the three resource regexes, and the topic
    regexes (routing keys) on `topic_exchange`."""

    configure: str
    write: str
    read: str
    topic_exchange: str
    topic_write: str
    topic_read: str


def broker_permissions(
    service: str,
    exchange: str = EVENTS_EXCHANGE,
    *,
    publications: Mapping[str, frozenset[str]] | None = None,
    subscriptions: Mapping[str, frozenset[str]] | None = None,
) -> BrokerPermissions:
    """The rights of `service`'s user, from the fleet's tables (or the ones given)."""
    publications = FLEET_PUBLICATIONS if publications is None else publications
    subscriptions = FLEET_SUBSCRIPTIONS if subscriptions is None else subscriptions
    publishes = sorted(publications.get(service, frozenset()))
    consumes = sorted(subscriptions.get(service, frozenset()))
    own: list[str] = []
    if consumes:
        subscription = Subscription(service, frozenset(consumes))
        own = [*subscription.queues, subscription.moves_exchange]
    return BrokerPermissions(
        configure=exactly(own),
        write=exactly(([exchange] if publishes else []) + own),
        read=exactly(([exchange] if consumes else []) + own),
        topic_exchange=exchange,
        topic_write=exactly(publishes),
        topic_read=exactly(consumes),
    )


@dataclass(frozen=True)
class BrokerAccount:
    service: str
    password: str

    @property
    def user(self) -> str:
        return broker_user(self.service)

    def permissions(self, exchange: str = EVENTS_EXCHANGE) -> BrokerPermissions:
        return broker_permissions(self.service, exchange)


def service_amqp_url(admin_amqp_url: str, account: BrokerAccount) -> str:
    """The admin's AMQP URL (scheme, host, port, vhost, options) with the service's user."""
    parts = urllib.parse.urlsplit(admin_amqp_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = (
        f"{urllib.parse.quote(account.user, safe='')}:"
        f"{urllib.parse.quote(account.password, safe='')}@{host}"
    )
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def vhost_of(amqp_url: str) -> str:
    path = urllib.parse.urlsplit(amqp_url).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


class BrokerProvisioningError(RuntimeError):
    """The management API refused or failed a step."""


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


async def _wait_for_management(client: httpx.AsyncClient, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            response = await client.get("/api/overview")
        except httpx.TransportError as exc:
            if time.monotonic() >= deadline:
                raise BrokerProvisioningError(
                    f"the RabbitMQ management API does not answer: {exc!r}"
                ) from exc
            await asyncio.sleep(1.0)
            continue
        _check(response, "GET /api/overview")
        return


def _check(response: httpx.Response, what: str) -> None:
    if response.is_error:
        raise BrokerProvisioningError(f"{what}: {response.status_code} {response.text[:300]}")


async def provision_broker(
    management_url: str,
    admin_user: str,
    admin_password: str,
    vhost: str,
    accounts: Sequence[BrokerAccount],
    *,
    amqp_url: str | None = None,
    exchange: str = EVENTS_EXCHANGE,
    wait_seconds: float = MANAGEMENT_WAIT_SECONDS,
) -> None:
    """Create `vhost` if missing, each account's user (tags none) with its password, its
    permissions and its topic permissions on `exchange`; then, with `amqp_url` (the
    admin's, on `vhost`), declare the fleet's topology. Idempotent: every step is a PUT
    or a declare, so running it again (every deploy does) changes nothing, except that
    changed passwords and rights take effect."""
    async with httpx.AsyncClient(
        base_url=management_url.rstrip("/"),
        auth=(admin_user, admin_password),
        timeout=MANAGEMENT_TIMEOUT_SECONDS,
    ) as client:
        await _wait_for_management(client, wait_seconds)
        existing = await client.get(f"/api/vhosts/{_quote(vhost)}")
        if existing.status_code == httpx.codes.NOT_FOUND:
            _check(await client.put(f"/api/vhosts/{_quote(vhost)}", json={}), "create vhost")
            # The admin declares the topology there next.
            _check(
                await client.put(
                    f"/api/permissions/{_quote(vhost)}/{_quote(admin_user)}",
                    json={"configure": ".*", "write": ".*", "read": ".*"},
                ),
                f"grant {admin_user} on the new vhost",
            )
        else:
            _check(existing, "GET vhost")
        for account in accounts:
            rights = account.permissions(exchange)
            user = _quote(account.user)
            _check(
                await client.put(
                    f"/api/users/{user}", json={"password": account.password, "tags": ""}
                ),
                f"create user {account.user}",
            )
            _check(
                await client.put(
                    f"/api/permissions/{_quote(vhost)}/{user}",
                    json={
                        "configure": rights.configure,
                        "write": rights.write,
                        "read": rights.read,
                    },
                ),
                f"permissions of {account.user}",
            )
            _check(
                await client.put(
                    f"/api/topic-permissions/{_quote(vhost)}/{user}",
                    json={
                        "exchange": rights.topic_exchange,
                        "write": rights.topic_write,
                        "read": rights.topic_read,
                    },
                ),
                f"topic permissions of {account.user}",
            )
    if amqp_url is not None:
        await declare_topology_at(amqp_url, fleet_topology(exchange))


def accounts_from(passwords: Mapping[str, str]) -> list[BrokerAccount]:
    """Every broker service's account, its password from AMQP_PASSWORD_<SHORT> in
    `passwords` (an environment or an env file); raises naming the missing ones."""
    missing = [
        password_variable(s) for s in broker_services() if not passwords.get(password_variable(s))
    ]
    if missing:
        raise BrokerProvisioningError("set " + ", ".join(missing))
    return [BrokerAccount(s, passwords[password_variable(s)]) for s in broker_services()]


def main(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    required = (
        "RABBITMQ_MANAGEMENT_URL",
        "RABBITMQ_ADMIN_USER",
        "RABBITMQ_ADMIN_PASSWORD",
        "AMQP_ADMIN_URL",
    )
    try:
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise BrokerProvisioningError("set " + ", ".join(missing))
        accounts = accounts_from(env)
        vhost = env.get("RABBITMQ_VHOST", "").strip() or "/"
        exchange = env.get("EVENTS_EXCHANGE", "").strip() or EVENTS_EXCHANGE
        asyncio.run(
            provision_broker(
                env["RABBITMQ_MANAGEMENT_URL"],
                env["RABBITMQ_ADMIN_USER"],
                env["RABBITMQ_ADMIN_PASSWORD"],
                vhost,
                accounts,
                amqp_url=env["AMQP_ADMIN_URL"],
                exchange=exchange,
            )
        )
    except BrokerProvisioningError as exc:
        print(f"broker provisioning: {exc}", file=sys.stderr)
        return 2
    users = ", ".join(account.user for account in accounts)
    print(f"provisioned broker vhost {vhost}: users {users}; event topology on {exchange}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
