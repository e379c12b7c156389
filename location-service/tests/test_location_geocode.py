"""GET /api/v1/locations/geocode: offline gazetteer, optional external geocoder with fallback."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import GeocoderStub, LocationClientFactory

GEOCODE = "/api/v1/locations/geocode"


def nominatim_place(
    name: str, lat: float, lon: float, country: str, country_code: str
) -> dict[str, object]:
    """One item of a Nominatim `format=jsonv2&addressdetails=1` answer."""
    return {
        "place_id": 1234,
        "lat": str(lat),
        "lon": str(lon),
        "name": name,
        "display_name": f"{name}, {country}",
        "address": {"country": country, "country_code": country_code.lower()},
    }


def _near(result: dict[str, object], lat: float, lon: float, tolerance: float = 0.2) -> bool:
    assert isinstance(result["lat"], float)
    assert isinstance(result["lon"], float)
    return math.isclose(result["lat"], lat, abs_tol=tolerance) and math.isclose(
        result["lon"], lon, abs_tol=tolerance
    )


async def test_london_is_found_with_its_country_and_coordinates(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await location_client.get(GEOCODE, params={"q": "London"}, headers=user_headers)

    assert response.status_code == 200
    results = response.json()["results"]
    first = results[0]
    assert first["name"] == "London"
    assert first["country"] == "United Kingdom"
    assert first["country_code"] == "GB"
    assert first["source"] == "gazetteer"
    assert _near(first, 51.51, -0.13)
    # London, Ontario is an exact match too, ranked after the bigger London.
    assert any(r["name"] == "London" and r["country_code"] == "CA" for r in results[1:])


@pytest.mark.parametrize("query", ["sao paulo", "SÃO PAULO", "São Paulo", "  sao-paulo "])
async def test_matching_ignores_case_diacritics_and_punctuation(
    location_client: httpx.AsyncClient, user_headers: dict[str, str], query: str
) -> None:
    response = await location_client.get(GEOCODE, params={"q": query}, headers=user_headers)

    assert response.status_code == 200
    first = response.json()["results"][0]
    assert first["name"] == "São Paulo"
    assert first["country"] == "Brazil"
    assert first["country_code"] == "BR"
    assert _near(first, -23.55, -46.64)


async def test_alternate_names_match(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    # "Muenchen" and "Лондон" are alternate names of Munich and London in GeoNames.
    munich = await location_client.get(GEOCODE, params={"q": "Muenchen"}, headers=user_headers)
    london = await location_client.get(GEOCODE, params={"q": "Лондон"}, headers=user_headers)

    assert munich.json()["results"][0]["name"] == "Munich"
    assert london.json()["results"][0]["country_code"] == "GB"


async def test_exact_matches_rank_before_prefix_matches_then_by_population(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await location_client.get(
        GEOCODE, params={"q": "Paris", "limit": 20}, headers=user_headers
    )

    results = response.json()["results"]
    labels = [(r["name"], r["country_code"]) for r in results]
    assert labels[0] == ("Paris", "FR")
    # Paris, Texas (about 25 000 people) is an exact match: it ranks before the
    # prefix match "Paris 15 Vaugirard" (about 230 000 people).
    assert ("Paris", "US") in labels
    assert ("Paris 15 Vaugirard", "FR") in labels
    assert labels.index(("Paris", "US")) < labels.index(("Paris 15 Vaugirard", "FR"))


async def test_a_country_narrows_the_results(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    in_query = await location_client.get(GEOCODE, params={"q": "Paris, USA"}, headers=user_headers)
    as_filter = await location_client.get(
        GEOCODE, params={"q": "Paris", "country": "us"}, headers=user_headers
    )

    for response in (in_query, as_filter):
        results = response.json()["results"]
        assert results
        assert {r["country_code"] for r in results} == {"US"}


async def test_limit_bounds_the_results(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    limited = await location_client.get(
        GEOCODE, params={"q": "San", "limit": 3}, headers=user_headers
    )
    default = await location_client.get(GEOCODE, params={"q": "San"}, headers=user_headers)

    assert len(limited.json()["results"]) == 3
    assert len(default.json()["results"]) == 10


async def test_an_unknown_place_gives_empty_results(
    location_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await location_client.get(
        GEOCODE, params={"q": "Qxzvwplk Nowhereville"}, headers=user_headers
    )

    assert response.status_code == 200
    assert response.json() == {"results": []}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "London", "limit": 0},
        {"q": "London", "limit": 51},
        {"q": "London", "country": "GBR"},
    ],
    ids=["missing", "empty", "blank", "too-long", "limit-0", "limit-51", "country-not-iso2"],
)
async def test_bad_queries_are_422(
    location_client: httpx.AsyncClient, user_headers: dict[str, str], params: dict[str, object]
) -> None:
    response = await location_client.get(GEOCODE, params=params, headers=user_headers)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]


async def test_geocoding_needs_a_token(location_client: httpx.AsyncClient) -> None:
    response = await location_client.get(GEOCODE, params={"q": "London"})

    assert response.status_code == 401


# --- external geocoder -------------------------------------------------------------------


async def test_a_configured_external_geocoder_is_used(
    external_geocoder_client: httpx.AsyncClient,
    geocoder_stub: GeocoderStub,
    user_headers: dict[str, str],
) -> None:
    geocoder_stub.answer(nominatim_place("Westminster", 51.4973, -0.1372, "United Kingdom", "GB"))

    response = await external_geocoder_client.get(
        GEOCODE, params={"q": "Westminster, London", "limit": 5}, headers=user_headers
    )

    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "name": "Westminster",
            "country": "United Kingdom",
            "country_code": "GB",
            "lat": 51.4973,
            "lon": -0.1372,
            "source": "nominatim",
        }
    ]
    [sent] = geocoder_stub.requests
    assert sent.url.path == "/search"
    assert sent.url.params["q"] == "Westminster, London"
    assert sent.url.params["format"] == "jsonv2"
    assert sent.url.params["limit"] == "5"
    assert sent.headers["user-agent"].startswith("Flow")
    # A third party must never see a Flow service key.
    assert "x-service-key" not in sent.headers


def _unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="overloaded")


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out", request=request)


def _rate_limited(request: httpx.Request) -> httpx.Response:
    return httpx.Response(429, json={"error": "too many requests"})


def _garbage(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="<html>maintenance</html>")


@pytest.mark.parametrize(
    "failure",
    [_unavailable, _timeout, _rate_limited, _garbage],
    ids=["503", "timeout", "429", "unreadable"],
)
async def test_the_gazetteer_answers_when_the_external_geocoder_fails(
    external_geocoder_client: httpx.AsyncClient,
    geocoder_stub: GeocoderStub,
    user_headers: dict[str, str],
    failure: object,
) -> None:
    geocoder_stub.handler = failure  # type: ignore[assignment]

    response = await external_geocoder_client.get(
        GEOCODE, params={"q": "sao paulo"}, headers=user_headers
    )

    assert response.status_code == 200
    first = response.json()["results"][0]
    assert first["name"] == "São Paulo"
    assert first["source"] == "gazetteer"
    assert len(geocoder_stub.requests) == 1  # it was asked first


async def test_a_failing_external_geocoder_is_skipped_once_its_breaker_opens(
    external_geocoder_client: httpx.AsyncClient,
    geocoder_stub: GeocoderStub,
    user_headers: dict[str, str],
) -> None:
    geocoder_stub.handler = _unavailable

    for _ in range(8):
        response = await external_geocoder_client.get(
            GEOCODE, params={"q": "London"}, headers=user_headers
        )
        assert response.status_code == 200
        assert response.json()["results"][0]["source"] == "gazetteer"

    # The breaker opens after 5 consecutive failures: later queries do not wait on it.
    assert len(geocoder_stub.requests) == 5


async def test_the_gazetteer_answers_when_the_external_geocoder_finds_nothing(
    external_geocoder_client: httpx.AsyncClient,
    geocoder_stub: GeocoderStub,
    user_headers: dict[str, str],
) -> None:
    geocoder_stub.answer()

    response = await external_geocoder_client.get(
        GEOCODE, params={"q": "London"}, headers=user_headers
    )

    assert response.json()["results"][0]["source"] == "gazetteer"


async def test_without_geocoder_url_nothing_external_is_called(
    location_client_for: LocationClientFactory,
    geocoder_stub: GeocoderStub,
    user_headers: dict[str, str],
) -> None:
    async with location_client_for(geocoder_url="") as client:
        response = await client.get(GEOCODE, params={"q": "London"}, headers=user_headers)

    assert response.json()["results"][0]["source"] == "gazetteer"
    assert geocoder_stub.requests == []
