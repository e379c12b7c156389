"""Route estimates: geodesic distance on WGS84 x road factor, speed per priority, handling
time; the public route, the internal estimate and the internal batch agree."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow_shared.geo import geodesic_distance_m
from flow_shared.testing.infra import caller_key
from location_service.config import Settings
from location_service.service import Coordinates, estimate_route

if TYPE_CHECKING:
    from conftest import LocationClientFactory, PostgisDistances

ROUTE = "/api/v1/locations/route"
ESTIMATE = "/internal/routes/estimate"
BATCH = "/internal/routes/batch"
INTERNAL = {"X-Service-Key": caller_key("pricing-service")}

LONDON = (51.50853, -0.12574)
PARIS = (48.85341, 2.3488)


def _route_params(
    origin: tuple[float, float], destination: tuple[float, float], priority: str = "routine"
) -> dict[str, str | float]:
    return {
        "from_lat": origin[0],
        "from_lon": origin[1],
        "to_lat": destination[0],
        "to_lon": destination[1],
        "priority": priority,
    }


async def test_london_to_paris_is_the_geodesic_times_the_road_factor(
    location_client: httpx.AsyncClient,
    user_headers: dict[str, str],
    postgis_distances_m: PostgisDistances,
) -> None:
    [reference_m] = await postgis_distances_m([(*LONDON, *PARIS)])
    # An independent check of the reference itself: London-Paris (city centres) is about 344 km.
    assert reference_m == pytest.approx(344_000, rel=0.005)

    response = await location_client.get(
        ROUTE, params=_route_params(LONDON, PARIS), headers=user_headers
    )

    assert response.status_code == 200
    body = response.json()
    expected_km = reference_m / 1000 * 1.3
    assert body["distance_km"] == pytest.approx(expected_km, rel=0.005)
    assert body["distance_km"] == round(expected_km, 1)
    # 10 min handling + the road distance at 40 km/h (routine), whole minutes.
    assert body["duration_min"] == round(10 + expected_km / 40 * 60)
    assert isinstance(body["duration_min"], int)
    assert body["source"] == "geodesic-wgs84-karney\u00d71.30"


async def test_higher_priorities_arrive_sooner(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    durations, distances = {}, set()
    for priority in ("routine", "urgent", "emergency"):
        response = await location_client.get(
            ROUTE, params=_route_params(LONDON, PARIS, priority), headers=user_headers
        )
        durations[priority] = response.json()["duration_min"]
        distances.add(response.json()["distance_km"])

    [distance_km] = distances  # the priority changes the speed, not the road
    assert durations["emergency"] < durations["urgent"] < durations["routine"]
    # Default speeds: routine 40, urgent 50, emergency 60 km/h.
    assert durations["routine"] == pytest.approx(10 + distance_km / 40 * 60, abs=1)
    assert durations["urgent"] == pytest.approx(10 + distance_km / 50 * 60, abs=1)
    assert durations["emergency"] == pytest.approx(10 + distance_km / 60 * 60, abs=1)


async def test_road_factor_speeds_and_handling_come_from_configuration(
    location_client_for: LocationClientFactory, user_headers: dict[str, str]
) -> None:
    async with location_client_for(
        route_road_factor=1.5, route_speed_emergency_kmh=90, route_handling_minutes=0
    ) as client:
        response = await client.get(
            ROUTE, params=_route_params(LONDON, PARIS, "emergency"), headers=user_headers
        )

    body = response.json()
    geodesic_km = geodesic_distance_m(*LONDON, *PARIS) / 1000
    assert body["distance_km"] == round(geodesic_km * 1.5, 1)
    assert body["duration_min"] == round(geodesic_km * 1.5 / 90 * 60)
    assert body["source"].endswith("\u00d71.50")


async def test_the_same_point_is_zero_km_and_the_handling_time(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await location_client.get(
        ROUTE, params=_route_params(LONDON, LONDON), headers=user_headers
    )

    assert response.json()["distance_km"] == 0.0
    assert response.json()["duration_min"] == 10


@pytest.mark.parametrize(
    "override",
    [
        {"from_lat": 90.01},
        {"to_lat": -91},
        {"from_lon": 180.5},
        {"to_lon": -181},
        {"from_lat": "nan"},
        {"to_lon": "inf"},
        {"from_lat": "north"},
        {"priority": "asap"},
    ],
)
async def test_bad_coordinates_or_priority_are_422(
    location_client: httpx.AsyncClient, user_headers: dict[str, str], override: dict[str, object]
) -> None:
    params = {**_route_params(LONDON, PARIS), **override}

    public = await location_client.get(ROUTE, params=params, headers=user_headers)
    internal = await location_client.get(ESTIMATE, params=params, headers=INTERNAL)

    for response in (public, internal):
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_missing_coordinate_is_422(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    params = _route_params(LONDON, PARIS)
    del params["to_lon"]

    response = await location_client.get(ROUTE, params=params, headers=user_headers)

    assert response.status_code == 422
    assert ["query", "to_lon"] in [error["loc"] for error in response.json()["errors"]]


async def test_the_public_route_needs_a_token(location_client: httpx.AsyncClient) -> None:
    response = await location_client.get(ROUTE, params=_route_params(LONDON, PARIS))

    assert response.status_code == 401


async def test_the_internal_estimate_equals_the_public_route(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    params = _route_params((-33.8688, 151.2093), (-37.8136, 144.9631), "urgent")

    public = await location_client.get(ROUTE, params=params, headers=user_headers)
    internal = await location_client.get(ESTIMATE, params=params, headers=INTERNAL)

    assert internal.status_code == 200
    assert internal.json() == public.json()


@pytest.mark.parametrize("headers", [{}, {"X-Service-Key": "not-a-trusted-key"}])
async def test_internal_routes_need_a_trusted_service_key(
    location_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    estimate = await location_client.get(
        ESTIMATE, params=_route_params(LONDON, PARIS), headers=headers
    )
    batch = await location_client.post(
        BATCH,
        json={"to": {"lat": 0, "lon": 0}, "origins": [], "priority": "routine"},
        headers=headers,
    )

    assert estimate.status_code == 401
    assert batch.status_code == 401


async def test_the_batch_keeps_the_order_of_the_origins(
    location_client: httpx.AsyncClient,
) -> None:
    rng = random.Random(20261124)
    origins = [
        {"id": f"depot-{i}", "lat": rng.uniform(-60, 60), "lon": rng.uniform(-180, 180)}
        for i in range(40)
    ]
    origins.append(dict(origins[3]))  # a repeated id keeps its place too
    destination = {"lat": 51.5, "lon": -0.12}

    response = await location_client.post(
        BATCH,
        json={"to": destination, "origins": origins, "priority": "emergency"},
        headers=INTERNAL,
    )

    assert response.status_code == 200
    routes = response.json()["routes"]
    assert [r["id"] for r in routes] == [o["id"] for o in origins]
    # Each entry is exactly what the single estimate says for that origin.
    for origin, route in list(zip(origins, routes, strict=True))[:5]:
        single = await location_client.get(
            ESTIMATE,
            params=_route_params(
                (origin["lat"], origin["lon"]),
                (destination["lat"], destination["lon"]),
                "emergency",
            ),
            headers=INTERNAL,
        )
        assert {k: v for k, v in route.items() if k != "id"} == single.json()


async def test_the_batch_takes_at_most_500_origins(location_client: httpx.AsyncClient) -> None:
    def body(count: int) -> dict[str, object]:
        origins = [{"id": str(i), "lat": 1.0, "lon": 1.0} for i in range(count)]
        return {"to": {"lat": 0, "lon": 0}, "origins": origins, "priority": "routine"}

    full = await location_client.post(BATCH, json=body(500), headers=INTERNAL)
    too_many = await location_client.post(BATCH, json=body(501), headers=INTERNAL)
    empty = await location_client.post(BATCH, json=body(0), headers=INTERNAL)

    assert full.status_code == 200
    assert len(full.json()["routes"]) == 500
    assert too_many.status_code == 422
    assert empty.json() == {"routes": []}


@pytest.mark.parametrize(
    "body",
    [
        {"to": {"lat": 91, "lon": 0}, "origins": [], "priority": "routine"},
        {"to": {"lat": 0, "lon": 0}, "origins": [{"id": "a", "lat": 0, "lon": 200}]},
        {"to": {"lat": 0, "lon": 0}, "origins": [{"id": "", "lat": 0, "lon": 0}]},
        {"to": {"lat": 0, "lon": 0}, "origins": [], "priority": "whenever"},
        {"to": {"lat": 0, "lon": 0}, "origins": [], "speed": 300},
    ],
    ids=["to-lat", "origin-lon", "empty-id", "priority", "unknown-field"],
)
async def test_bad_batches_are_422(
    location_client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await location_client.post(BATCH, json=body, headers=INTERNAL)

    assert response.status_code == 422


# --- the geodesic against PostGIS (its own properties: shared/tests/test_geo.py) ----------


async def test_the_geodesic_agrees_with_postgis_everywhere_even_near_antipodes(
    postgis_distances_m: PostgisDistances,
) -> None:
    rng = random.Random(7)
    pairs = [
        (rng.uniform(-90, 90), rng.uniform(-180, 180), rng.uniform(-90, 90), rng.uniform(-180, 180))
        for _ in range(200)
    ]
    # Nearly antipodal pairs, where Vincenty's iteration does not converge.
    for _ in range(100):
        lat, lon = rng.uniform(-89, 89), rng.uniform(-180, 180)
        antipode_lon = (lon + 360) % 360 - 180
        pairs.append(
            (lat, lon, -lat + rng.uniform(-0.5, 0.5), antipode_lon + rng.uniform(-0.5, 0.5))
        )
    pairs += [(0, 0, 0, 180), (0, 0, 0.5, 179.7), (90, 0, -90, 0), (10, 20, -10, -160)]

    reference = await postgis_distances_m(pairs)

    for pair, expected in zip(pairs, reference, strict=True):
        assert geodesic_distance_m(*pair) == pytest.approx(expected, abs=1.0), pair


latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
points = st.tuples(latitudes, longitudes)


ROUTE_SETTINGS = Settings(database_url="postgresql+asyncpg://unused@127.0.0.1/unused")


@settings(max_examples=200, deadline=None)
@given(a=points, b=points)
def test_a_higher_priority_is_never_slower(a: tuple[float, float], b: tuple[float, float]) -> None:
    origin, destination = Coordinates(*a), Coordinates(*b)
    routine, urgent, emergency = (
        estimate_route(ROUTE_SETTINGS, origin, destination, priority)
        for priority in ("routine", "urgent", "emergency")
    )

    assert emergency.duration_min <= urgent.duration_min <= routine.duration_min
    assert routine.distance_km == urgent.distance_km == emergency.distance_km
    assert routine.duration_min >= 10  # the handling time is always included
