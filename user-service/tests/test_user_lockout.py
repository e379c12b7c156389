"""The login lockout (security finding 5): failures count per (account e-mail, client
IP) in a sliding window, a lock holds that pair for its 15 minutes (423 with
Retry-After), and known and unknown e-mails get the very same answers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from flow_shared.networks import CLIENT_IP_HEADER
from user_service.main import create_app

WRONG = "not the password at all"


def _from(ip: str) -> dict[str, str]:
    # What the gateway sets on every proxied request (it drops any client-sent one).
    return {CLIENT_IP_HEADER: ip}


async def _login(http: httpx.AsyncClient, email: str, password: str, ip: str) -> httpx.Response:
    return await http.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=_from(ip)
    )


def _essentials(response: httpx.Response) -> tuple[int, dict[str, Any], str | None]:
    body = {k: v for k, v in response.json().items() if k != "correlation_id"}
    return response.status_code, body, response.headers.get("www-authenticate")


async def test_a_lock_holds_only_for_the_address_that_failed(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client, log_in=False)
    for _ in range(5):
        assert (await _login(client, account.email, WRONG, "198.51.100.7")).status_code == 401

    locked = await _login(client, account.email, account.password, "198.51.100.7")
    assert locked.status_code == 423
    assert 0 < int(locked.headers["retry-after"]) <= 900
    # A guesser elsewhere cannot lock the owner out from their own address.
    owner = await _login(client, account.email, account.password, "203.0.113.20")
    assert owner.status_code == 200, owner.text


async def test_failures_decay_out_of_the_window_for_known_and_unknown_emails(
    make_settings: Any, accounts: Any
) -> None:
    settings = make_settings(login_failure_window_seconds=1)
    async with accounts.serve(create_app(settings)) as http:
        account = await accounts.register(http, log_in=False)
        unknown = accounts.unique_email("nobody")
        for email in (account.email, unknown):
            for _ in range(4):
                assert (await _login(http, email, WRONG, "192.0.2.1")).status_code == 401
        await asyncio.sleep(1.2)
        # The four old failures have left the window: two more are not five in a row.
        answers = {}
        for email in (account.email, unknown):
            for _ in range(2):
                answers[email] = await _login(http, email, WRONG, "192.0.2.1")
        assert _essentials(answers[account.email]) == _essentials(answers[unknown])
        assert answers[account.email].status_code == 401
        ok = await _login(http, account.email, account.password, "192.0.2.1")
        assert ok.status_code == 200, ok.text


async def test_known_and_unknown_emails_lock_alike_with_the_same_retry_after(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client, log_in=False)
    unknown = accounts.unique_email("nobody")
    answers: dict[str, list[httpx.Response]] = {account.email: [], unknown: []}
    for _ in range(6):
        for email in (account.email, unknown):
            answers[email].append(await _login(client, email, WRONG, "192.0.2.44"))
    for known, other in zip(answers[account.email], answers[unknown], strict=True):
        assert _essentials(known) == _essentials(other)
    assert [r.status_code for r in answers[unknown]] == [401] * 5 + [423]
    retry_known = int(answers[account.email][5].headers["retry-after"])
    retry_unknown = int(answers[unknown][5].headers["retry-after"])
    assert abs(retry_known - retry_unknown) <= 1
    assert 895 <= retry_known <= 900


async def test_login_works_again_when_the_lock_ends(make_settings: Any, accounts: Any) -> None:
    async with accounts.serve(create_app(make_settings(lockout_seconds=1))) as http:
        account = await accounts.register(http, log_in=False)
        for _ in range(5):
            await _login(http, account.email, WRONG, "192.0.2.9")
        locked = await _login(http, account.email, account.password, "192.0.2.9")
        assert locked.status_code == 423
        await asyncio.sleep(1.2)
        assert (await _login(http, account.email, account.password, "192.0.2.9")).status_code == 200
