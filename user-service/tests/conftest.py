"""user-service tests run the app in-process against the session's real PostgreSQL,
Redis and RabbitMQ slice (the `infra` fixture), with signing keys in a temp folder."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from flow_shared.testing.infra import TestInfra, asgi_client, caller_key
from flow_shared.testing.service_app import (
    SettingsFactory,
    schema_engine_fixture,
    settings_factory,
)
from user_service.config import Settings
from user_service.main import create_app

PASSWORD = "correct horse battery staple"
INTERNAL_KEY = caller_key("admin-service")


def write_signing_key(directory: Path, kid: str) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{kid}.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("jwt-keys")
    write_signing_key(directory, "k20261124-0000aaaa")
    return directory


@pytest.fixture
def make_settings(infra: TestInfra, keys_dir: Path) -> SettingsFactory[Settings]:
    return settings_factory(
        infra,
        "user-service",
        Settings,
        jwt_keys_dir=keys_dir,
        # Cheap Argon2 for tests; production strength is the default.
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
    )


# The in-process client, running the app's lifespan (per-request state included).
serve = asgi_client


class Mailbox:
    """notification-service stubbed at its HTTP boundary: the invitation e-mails asked for.
    `refusing` makes it answer 503, as when SMTP is down."""

    def __init__(self) -> None:
        self.invitations: list[dict[str, Any]] = []
        self.service_keys: list[str | None] = []
        self.refusing = False
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/internal/invitations/email":
            return httpx.Response(404)
        if self.refusing:
            return httpx.Response(503)
        self.service_keys.append(request.headers.get("x-service-key"))
        self.invitations.append(json.loads(request.content))
        return httpx.Response(202)

    def last_to(self, email: str) -> dict[str, Any]:
        sent = [m for m in self.invitations if m["email"] == email.lower()]
        assert sent, f"no invitation e-mail to {email}"
        return sent[-1]


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
async def client(
    make_settings: SettingsFactory[Settings], mailbox: Mailbox
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(), notification_transport=mailbox.transport)
    async with serve(app) as http:
        yield http


users_db = schema_engine_fixture("users")


@pytest.fixture(scope="session")
async def redis(infra: TestInfra) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.org"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Account:
    email: str
    password: str
    user: dict[str, Any]
    organization: dict[str, Any]
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


async def register(
    http: httpx.AsyncClient,
    *,
    kind: str = "hospital",
    email: str | None = None,
    password: str = PASSWORD,
    log_in: bool = True,
) -> Account:
    email = email or unique_email(kind)
    response = await http.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": password,
            "full_name": "Test Person",
            "organization": {
                "name": f"{kind} {uuid.uuid4().hex[:6]}",
                "kind": kind,
                # Hospitals register with their licence number (SPEC).
                **({"license_number": f"HL-{uuid.uuid4().hex[:8]}"} if kind == "hospital" else {}),
            },
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    access_token = refresh_token = ""
    if log_in:
        tokens = await login(http, email, password)
        access_token, refresh_token = tokens["access_token"], tokens["refresh_token"]
    return Account(
        email=email,
        password=password,
        user=body["user"],
        organization=body["organization"],
        access_token=access_token,
        refresh_token=refresh_token,
    )


async def login(http: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def add_member(
    http: httpx.AsyncClient,
    admin: Account,
    mailbox: Mailbox,
    *,
    role: str = "staff",
    email: str | None = None,
    password: str = PASSWORD,
) -> Account:
    """Invite through the API, accept with the e-mailed token, log in."""
    email = email or unique_email(role)
    invited = await http.post(
        f"/api/v1/organizations/{admin.organization['id']}/members",
        headers=admin.headers,
        json={"email": email, "full_name": "Invited Person", "role": role},
    )
    assert invited.status_code == 202, invited.text
    accepted = await http.post(
        "/api/v1/auth/invitations/accept",
        json={"token": mailbox.last_to(email)["token"], "password": password},
    )
    assert accepted.status_code == 201, accepted.text
    tokens = await login(http, email, password)
    return Account(
        email=email,
        password=password,
        user=accepted.json(),
        organization=admin.organization,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


@pytest.fixture
def accounts() -> type[AccountHelpers]:
    return AccountHelpers


class AccountHelpers:
    """Test helpers as a fixture (tests directories are not packages)."""

    serve = staticmethod(serve)
    register = staticmethod(register)
    login = staticmethod(login)
    add_member = staticmethod(add_member)
    unique_email = staticmethod(unique_email)
    bearer = staticmethod(bearer)
    write_signing_key = staticmethod(write_signing_key)
    password = PASSWORD
    # What admin-service sends to user-service's /internal routes.
    internal_headers = {"X-Service-Key": INTERNAL_KEY}
