"""NUL in registration text is a 422 problem (PostgreSQL refuses it in text columns)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "a\x00b@flow.test"), ("full_name", "Ada\x00"), ("organization.name", "H\x00")],
)
async def test_nul_in_registration_is_422(
    client: httpx.AsyncClient, accounts: Any, field: str, value: str
) -> None:
    body: dict[str, Any] = {
        "email": accounts.unique_email(),
        "password": "a long enough password",
        "full_name": "Ada",
        "organization": {"name": "H", "kind": "vendor", "license_number": "LIC-1"},
    }
    if field == "organization.name":
        body["organization"]["name"] = value
    else:
        body[field] = value

    response = await client.post("/api/v1/auth/register", json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["loc"][-1] == field.rsplit(".", 1)[-1]


async def test_nul_in_a_login_email_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"email": "a\x00@flow.test", "password": "x"}
    )

    assert response.status_code == 422, response.text
