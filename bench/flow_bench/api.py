"""The public API as the bench's setup uses it: accounts, tokens, sites, prices.

Setup goes through the gateway like any client, so every projection (the
inventory's verified vendors, notification members, admin's view) is built by
the services themselves from their events.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from flow_shared.json_codec import dumps, loads

# Access tokens live 15 minutes: one older than this is renewed before a run.
TOKEN_RENEW_AFTER_SECONDS = 8 * 60
SETUP_ATTEMPTS = 3


class ApiError(RuntimeError):
    pass


@dataclass
class Account:
    email: str
    password: str
    org_id: str
    token: str = ""
    token_at: float = field(default=0.0)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class FlowApi:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    async def call(
        self,
        method: str,
        path: str,
        *,
        account: Account | None = None,
        body: Any = None,
        expected: Collection[int] = (200, 201),
        headers: dict[str, str] | None = None,
        retry: bool = True,
    ) -> Any:
        """One call; a dropped connection is tried again (`retry=False` for calls that
        must not run twice)."""
        attempts = SETUP_ATTEMPTS if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._call_once(method, path, account, body, expected, headers)
            except aiohttp.ClientConnectionError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def _call_once(
        self,
        method: str,
        path: str,
        account: Account | None,
        body: Any,
        expected: Collection[int],
        headers: dict[str, str] | None,
    ) -> Any:
        all_headers = dict(headers or {})
        if account is not None:
            all_headers.update(account.headers)
        data = None
        if body is not None:
            data = dumps(body)
            all_headers["Content-Type"] = "application/json"
        async with self.session.request(
            method,
            self.base_url + path,
            data=data,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as response:
            raw = await response.read()
            if response.status not in expected:
                text = raw[:500].decode(errors="replace")
                raise ApiError(f"{method} {path} answered {response.status}: {text}")
            return loads(raw) if raw else None

    async def login(self, account: Account) -> None:
        answer = await self.call(
            "POST",
            "/api/v1/auth/login",
            body={"email": account.email, "password": account.password},
            expected=(200,),
        )
        account.token = str(answer["access_token"])
        account.token_at = time.monotonic()

    async def register(self, kind: str, name: str) -> Account:
        email = f"{kind}-{uuid.uuid4().hex[:12]}@bench.flow.test"
        password = "bench-" + secrets.token_urlsafe(16)
        organization: dict[str, Any] = {"name": name, "kind": kind}
        # Vendors and hospitals both register with a licence (SPEC "Verified hospitals").
        organization["license_number"] = f"BENCH-{uuid.uuid4().hex[:8].upper()}"
        answer = await self.call(
            "POST",
            "/api/v1/auth/register",
            body={
                "email": email,
                "password": password,
                "full_name": f"Bench {kind} {name}",
                "organization": organization,
            },
            expected=(201,),
            retry=False,
        )
        account = Account(email=email, password=password, org_id=str(answer["organization"]["id"]))
        await self.login(account)
        return account

    async def renew_tokens(self, accounts: list[Account], *, older_than: float) -> None:
        """Log in again every account whose token is older than `older_than` seconds."""
        now = time.monotonic()
        stale = [a for a in accounts if now - a.token_at > older_than]
        await gather_bounded([self.login(a) for a in stale], limit=8)


async def gather_bounded(calls: list[Any], *, limit: int) -> list[Any]:
    """Await the coroutines with at most `limit` running at once (setup is not load)."""
    gate = asyncio.Semaphore(limit)

    async def bounded(call: Any) -> Any:
        async with gate:
            return await call

    return list(await asyncio.gather(*(bounded(c) for c in calls)))
