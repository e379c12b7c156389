"""Hospital delivery sites: created by hospitals for their own organisation (by coordinates
or by geocoding an address), readable only by that organisation, and by order-service
through /internal with the owning org_id."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.testing.infra import caller_key
from flow_shared.testing.tokens import TokenIssuer

if TYPE_CHECKING:
    from conftest import GeocoderStub

SITES = "/api/v1/locations/sites"
INTERNAL = {"X-Service-Key": caller_key("order-service")}


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post(SITES, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_hospital_creates_a_site_with_coordinates(
    location_client: httpx.AsyncClient, hospital: dict[str, str], hospital_id: uuid.UUID
) -> None:
    response = await location_client.post(
        SITES,
        json={"name": " Main campus ", "address": "1 Hospital Road", "lat": 6.5244, "lon": 3.3792},
        headers=hospital,
    )

    assert response.status_code == 201
    site = response.json()
    assert site["name"] == "Main campus"
    assert site["address"] == "1 Hospital Road"
    assert (site["lat"], site["lon"]) == (6.5244, 3.3792)
    assert site["org_id"] == str(hospital_id)
    assert site["location_source"] == "given"
    uuid.UUID(site["id"])

    fetched = await location_client.get(f"{SITES}/{site['id']}", headers=hospital)
    assert fetched.status_code == 200
    assert fetched.json() == site


async def test_the_site_is_stored_as_a_spatially_indexed_geography_point(
    location_client: httpx.AsyncClient, hospital: dict[str, str], location_engine: AsyncEngine
) -> None:
    site = await _create(location_client, hospital, name="Ward B", lat=-1.2921, lon=36.8219)

    async with location_engine.connect() as connection:
        point = (
            await connection.execute(
                text(
                    "SELECT ST_Y(location::geometry), ST_X(location::geometry),"
                    " ST_SRID(location::geometry), GeometryType(location::geometry)"
                    " FROM location.sites WHERE id = :id"
                ),
                {"id": uuid.UUID(site["id"])},
            )
        ).one()
        index = await connection.scalar(
            text(
                "SELECT indexdef FROM pg_indexes"
                " WHERE schemaname = 'location' AND indexname = 'ix_sites_location'"
            )
        )

    assert tuple(point) == (-1.2921, 36.8219, 4326, "POINT")
    assert index is not None
    assert "USING gist (location)" in index


async def test_a_site_without_coordinates_is_placed_by_geocoding_its_address(
    location_client: httpx.AsyncClient, hospital: dict[str, str]
) -> None:
    site = await _create(
        location_client,
        hospital,
        name="Hospital das Clínicas",
        address="Av. Dr. Enéas Carvalho de Aguiar 255, Sao Paulo, Brazil",
    )

    assert site["address"] == "Av. Dr. Enéas Carvalho de Aguiar 255, Sao Paulo, Brazil"
    assert site["lat"] == pytest.approx(-23.55, abs=0.1)
    assert site["lon"] == pytest.approx(-46.64, abs=0.1)
    assert site["location_source"] == "gazetteer"


async def test_address_geocoding_prefers_the_locality_and_the_country_named(
    location_client: httpx.AsyncClient, hospital: dict[str, str]
) -> None:
    # A street named after a big city does not move the site there; the country
    # picks between cities of the same name.
    leeds = await _create(
        location_client, hospital, name="Leeds site", address="1 Paris Road, Leeds, UK"
    )
    ontario = await _create(
        location_client, hospital, name="Ontario site", address="Main St, London, Canada"
    )

    assert leeds["lat"] == pytest.approx(53.80, abs=0.1)
    assert leeds["lon"] == pytest.approx(-1.55, abs=0.1)
    assert ontario["lat"] == pytest.approx(42.98, abs=0.1)
    assert ontario["lon"] == pytest.approx(-81.23, abs=0.1)


async def test_an_address_nobody_can_place_is_422_and_nothing_is_stored(
    location_client: httpx.AsyncClient, hospital: dict[str, str]
) -> None:
    response = await location_client.post(
        SITES, json={"name": "Lost", "address": "42 Qxzvwplk Lane"}, headers=hospital
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/address-not-found")
    assert "lat and lon" in problem["detail"]
    listed = await location_client.get(SITES, headers=hospital)
    assert listed.json()["total"] == 0


async def test_address_geocoding_uses_the_external_geocoder_when_configured(
    external_geocoder_client: httpx.AsyncClient,
    geocoder_stub: GeocoderStub,
    hospital: dict[str, str],
) -> None:
    geocoder_stub.answer(
        {
            "lat": "51.4989",
            "lon": "-0.1183",
            "display_name": "St Thomas' Hospital, Westminster Bridge Road, London",
            "address": {"country": "United Kingdom", "country_code": "gb"},
        }
    )

    site = await _create(
        external_geocoder_client,
        hospital,
        name="St Thomas'",
        address="Westminster Bridge Road, London SE1 7EH",
    )

    assert (site["lat"], site["lon"]) == (51.4989, -0.1183)
    assert site["location_source"] == "nominatim"
    assert geocoder_stub.requests[0].url.params["limit"] == "1"


async def test_address_geocoding_falls_back_to_the_gazetteer(
    external_geocoder_client: httpx.AsyncClient,
    geocoder_stub: GeocoderStub,
    hospital: dict[str, str],
) -> None:
    geocoder_stub.handler = lambda request: httpx.Response(503)

    site = await _create(
        external_geocoder_client,
        hospital,
        name="Fallback",
        address="Westminster Bridge Road, London",
    )

    assert site["location_source"] == "gazetteer"
    assert site["lat"] == pytest.approx(51.51, abs=0.05)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Only lat", "lat": 10.0},
        {"name": "Only lon", "lon": 10.0, "address": "Lagos"},
        {"name": "Nothing to place"},
        {"name": "Too far north", "lat": 90.5, "lon": 0},
        {"name": "Too far east", "lat": 0, "lon": 180.5},
        {"name": "", "lat": 0, "lon": 0},
        {"name": "   ", "lat": 0, "lon": 0},
        {"name": "x" * 201, "lat": 0, "lon": 0},
        {"name": "Blank address", "address": "  "},
        {"name": "Extra", "lat": 0, "lon": 0, "org_id": str(uuid.uuid4())},
        {"lat": 0, "lon": 0},
    ],
    ids=[
        "only-lat",
        "only-lon",
        "no-place",
        "lat-range",
        "lon-range",
        "empty-name",
        "blank-name",
        "long-name",
        "blank-address",
        "org-id-not-accepted",
        "no-name",
    ],
)
async def test_invalid_sites_are_422(
    location_client: httpx.AsyncClient, hospital: dict[str, str], body: dict[str, Any]
) -> None:
    response = await location_client.post(SITES, json=body, headers=hospital)

    assert response.status_code == 422
    assert response.json()["errors"]


@pytest.mark.parametrize(
    ("org_kind", "role"),
    [("vendor", "org_admin"), ("vendor", "staff"), ("platform", "platform_admin")],
)
async def test_only_hospitals_create_sites(
    location_client: httpx.AsyncClient, token_issuer: TokenIssuer, org_kind: str, role: str
) -> None:
    headers = token_issuer.headers(org_kind=org_kind, role=role)

    response = await location_client.post(
        SITES, json={"name": "Depot", "lat": 1, "lon": 1}, headers=headers
    )

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_sites_need_a_token(location_client: httpx.AsyncClient) -> None:
    created = await location_client.post(SITES, json={"name": "A", "lat": 1, "lon": 1})
    listed = await location_client.get(SITES)

    assert created.status_code == 401
    assert listed.status_code == 401


async def test_another_hospitals_site_is_not_found(
    location_client: httpx.AsyncClient, hospital: dict[str, str], token_issuer: TokenIssuer
) -> None:
    site = await _create(location_client, hospital, name="Private", lat=1.0, lon=2.0)
    other_hospital = token_issuer.headers(org_kind="hospital", role="org_admin")

    theirs = await location_client.get(f"{SITES}/{site['id']}", headers=other_hospital)
    unknown = await location_client.get(f"{SITES}/{uuid.uuid4()}", headers=other_hospital)

    assert theirs.status_code == 404
    # Exactly the answer for a site that does not exist: nothing tells them it does.
    assert {k: v for k, v in theirs.json().items() if k not in ("instance", "correlation_id")} == {
        k: v for k, v in unknown.json().items() if k not in ("instance", "correlation_id")
    }


async def test_the_list_is_paged_newest_first_and_holds_only_the_callers_sites(
    location_client: httpx.AsyncClient, hospital: dict[str, str], token_issuer: TokenIssuer
) -> None:
    names = [f"Site {i}" for i in range(5)]
    for name in names:
        await _create(location_client, hospital, name=name, lat=10.0, lon=20.0)
    other_hospital = token_issuer.headers(org_kind="hospital", role="staff")
    await _create(location_client, other_hospital, name="Not mine", lat=1.0, lon=1.0)

    pages = [
        (
            await location_client.get(
                SITES, params={"page": page, "page_size": 2}, headers=hospital
            )
        ).json()
        for page in (1, 2, 3)
    ]

    assert [p["total"] for p in pages] == [5, 5, 5]
    assert [(p["page"], p["page_size"]) for p in pages] == [(1, 2), (2, 2), (3, 2)]
    listed = [site["name"] for p in pages for site in p["items"]]
    assert listed == list(reversed(names))


async def test_page_size_is_bounded(
    location_client: httpx.AsyncClient, hospital: dict[str, str]
) -> None:
    response = await location_client.get(SITES, params={"page_size": 101}, headers=hospital)

    assert response.status_code == 422


async def test_platform_admins_read_any_site_and_list_any_organisation(
    location_client: httpx.AsyncClient,
    hospital: dict[str, str],
    hospital_id: uuid.UUID,
    token_issuer: TokenIssuer,
) -> None:
    site = await _create(location_client, hospital, name="Audited", lat=3.0, lon=4.0)
    admin = token_issuer.headers(org_kind="platform", role="platform_admin")

    fetched = await location_client.get(f"{SITES}/{site['id']}", headers=admin)
    listed = await location_client.get(SITES, params={"org_id": str(hospital_id)}, headers=admin)

    assert fetched.status_code == 200
    assert fetched.json() == site
    assert [s["id"] for s in listed.json()["items"]] == [site["id"]]


async def test_hospitals_cannot_list_another_organisations_sites(
    location_client: httpx.AsyncClient, hospital: dict[str, str], hospital_id: uuid.UUID
) -> None:
    other = await location_client.get(SITES, params={"org_id": str(uuid.uuid4())}, headers=hospital)
    own = await location_client.get(SITES, params={"org_id": str(hospital_id)}, headers=hospital)

    assert other.status_code == 403
    assert own.status_code == 200


# --- /internal/sites ----------------------------------------------------------------------


async def test_order_service_reads_a_site_of_the_hospital_it_names(
    location_client: httpx.AsyncClient, hospital: dict[str, str], hospital_id: uuid.UUID
) -> None:
    site = await _create(
        location_client, hospital, name="ICU", address="Ward 7", lat=-33.92, lon=18.42
    )

    response = await location_client.get(
        f"/internal/sites/{site['id']}", params={"org_id": str(hospital_id)}, headers=INTERNAL
    )

    assert response.status_code == 200
    assert response.json() == {
        "id": site["id"],
        "org_id": str(hospital_id),
        "name": "ICU",
        "address": "Ward 7",
        "lat": -33.92,
        "lon": 18.42,
    }


async def test_inventory_service_reads_a_site_and_other_services_may_not(
    location_client: httpx.AsyncClient, hospital: dict[str, str], hospital_id: uuid.UUID
) -> None:
    """inventory-service checks a runway's site (and learns its name); pricing-service,
    trusted for other routes, is refused this one."""
    site = await _create(location_client, hospital, name="Main theatre", lat=6.6, lon=3.35)
    params = {"org_id": str(hospital_id)}

    inventory = await location_client.get(
        f"/internal/sites/{site['id']}",
        params=params,
        headers={"X-Service-Key": caller_key("inventory-service")},
    )
    pricing = await location_client.get(
        f"/internal/sites/{site['id']}",
        params=params,
        headers={"X-Service-Key": caller_key("pricing-service")},
    )

    assert inventory.status_code == 200, inventory.text
    assert (inventory.json()["id"], inventory.json()["name"]) == (site["id"], "Main theatre")
    assert pricing.status_code == 403


async def test_the_internal_site_is_404_for_another_org_or_an_unknown_id(
    location_client: httpx.AsyncClient, hospital: dict[str, str], hospital_id: uuid.UUID
) -> None:
    site = await _create(location_client, hospital, name="ER", lat=0.5, lon=0.5)

    wrong_org = await location_client.get(
        f"/internal/sites/{site['id']}", params={"org_id": str(uuid.uuid4())}, headers=INTERNAL
    )
    unknown = await location_client.get(
        f"/internal/sites/{uuid.uuid4()}", params={"org_id": str(hospital_id)}, headers=INTERNAL
    )

    assert wrong_org.status_code == 404
    assert unknown.status_code == 404


async def test_the_internal_site_needs_the_org_id(
    location_client: httpx.AsyncClient, hospital: dict[str, str]
) -> None:
    site = await _create(location_client, hospital, name="ER", lat=0.5, lon=0.5)

    response = await location_client.get(f"/internal/sites/{site['id']}", headers=INTERNAL)

    assert response.status_code == 422


@pytest.mark.parametrize("headers", [{}, {"X-Service-Key": "test-key-location-service"}])
async def test_the_internal_site_needs_a_trusted_service_key(
    location_client: httpx.AsyncClient,
    hospital: dict[str, str],
    hospital_id: uuid.UUID,
    headers: dict[str, str],
) -> None:
    site = await _create(location_client, hospital, name="ER", lat=0.5, lon=0.5)

    response = await location_client.get(
        f"/internal/sites/{site['id']}", params={"org_id": str(hospital_id)}, headers=headers
    )

    assert response.status_code == 401
    # A user's token is no substitute for the service key.
    with_token = await location_client.get(
        f"/internal/sites/{site['id']}", params={"org_id": str(hospital_id)}, headers=hospital
    )
    assert with_token.status_code == 401
