"""NUL in a site's text is a 422 problem: PostgreSQL refuses it in text columns, and a
database error must never reach a client as a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

SITES = "/api/v1/locations/sites"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Ward\x00B", "lat": 1, "lon": 1},
        {"name": "Ward B", "address": "1 Road\x00", "lat": 1, "lon": 1},
        {"name": "\x00"},
    ],
)
async def test_nul_in_a_site_is_422_and_nothing_is_stored(
    location_client: httpx.AsyncClient, hospital: dict[str, str], body: dict[str, Any]
) -> None:
    response = await location_client.post(SITES, json=body, headers=hospital)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    listed = await location_client.get(SITES, headers=hospital)
    assert listed.json()["total"] == 0
