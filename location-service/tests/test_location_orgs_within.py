"""location's /internal answer to admin-service: the hospital organisations with a
delivery site inside an area (who hears of a shortage declared there)."""

from __future__ import annotations

import random
import uuid

import httpx

from flow_shared.testing.infra import caller_key
from flow_shared.testing.tokens import TokenIssuer

ADMIN = {"X-Service-Key": caller_key("admin-service")}
ORDERS = {"X-Service-Key": caller_key("order-service")}


async def test_admin_service_learns_the_hospitals_with_a_site_inside_an_area(
    location_client: httpx.AsyncClient, token_issuer: TokenIssuer
) -> None:
    lat, lon = random.uniform(-60, -45), random.uniform(-170, -100)
    inside, outside = uuid.uuid4(), uuid.uuid4()
    for org_id, at_lat in ((inside, lat), (inside, lat + 0.01), (outside, lat + 0.2)):
        created = await location_client.post(
            "/api/v1/locations/sites",
            json={"name": "Site", "lat": at_lat, "lon": lon},
            headers=token_issuer.headers(org_kind="hospital", role="staff", org_id=org_id),
        )
        assert created.status_code == 201, created.text
    params = {"lat": lat, "lon": lon, "radius_km": 10}

    response = await location_client.get(
        "/internal/sites/orgs-within", params=params, headers=ADMIN
    )
    refused = await location_client.get(
        "/internal/sites/orgs-within", params=params, headers=ORDERS
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"org_ids": [str(inside)]}
    assert refused.status_code == 403
