"""The offline gazetteer's matching and ranking rules, on a small hand-made index and on
the bundled data; and location-service's configuration checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from location_service.config import Settings
from location_service.gazetteer import Gazetteer, load_gazetteer, normalize

COUNTRIES: dict[str, dict[str, Any]] = {
    "GB": {"name": "United Kingdom", "iso3": "GBR"},
    "US": {"name": "United States", "iso3": "USA"},
    "CR": {"name": "Costa Rica", "iso3": "CRI"},
    "SG": {"name": "Singapore", "iso3": "SGP"},
}


def _city(geonameid: int, name: str, country: str, population: int, *alternates: str) -> Any:
    return {
        "geonameid": geonameid,
        "name": name,
        "countrycode": country,
        "latitude": geonameid / 100,
        "longitude": -geonameid / 100,
        "population": population,
        "alternatenames": list(alternates),
    }


CITIES = [
    _city(1, "Springfield", "US", 160_000),
    _city(2, "Springfield", "GB", 20_000),
    _city(3, "Springfield Gardens", "US", 900_000),
    _city(4, "Springdale", "US", 80_000),
    _city(5, "Big Town", "GB", 5_000_000, "Springfield", "Old Springfield"),
    _city(6, "San José", "CR", 300_000),
    _city(7, "José", "US", 1_000_000),
    _city(8, "Leeds", "GB", 450_000),
    _city(9, "Paris", "US", 25_000),
    _city(10, "Singapore", "SG", 5_600_000),
]


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.from_geonames({str(c["geonameid"]): c for c in CITIES}, COUNTRIES)


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("São Paulo", "sao paulo"),
        ("  SAINT-ÉTIENNE ", "saint etienne"),
        ("Łódź", "lodz"),
        ("Tromsø", "tromso"),
        ("St. John's", "st john s"),
        ("Straße", "strasse"),
        ("Лондон", "лондон"),
    ],
)
def test_names_are_folded_for_matching(raw: str, folded: str) -> None:
    assert normalize(raw) == folded


def test_exact_matches_come_first_each_group_by_population(gazetteer: Gazetteer) -> None:
    matches = gazetteer.search("springfield", limit=10)

    assert [(m.city.geonameid, m.exact) for m in matches] == [
        # Exact (main or alternate name), biggest first.
        (5, True),
        (1, True),
        (2, True),
        # Then main names that start with the query.
        (3, False),
    ]


def test_prefixes_match_main_names_only_and_need_three_characters(
    gazetteer: Gazetteer,
) -> None:
    assert [m.city.geonameid for m in gazetteer.search("Spring", limit=10)] == [3, 1, 4, 2]
    assert gazetteer.search("sp", limit=10) == []
    # "Old Springfield" is an alternate name: matched exactly, never by prefix.
    assert [m.city.geonameid for m in gazetteer.search("old springfield", limit=10)] == [5]
    assert gazetteer.search("old spring", limit=10) == []


def test_limit_and_country_qualifiers(gazetteer: Gazetteer) -> None:
    assert len(gazetteer.search("spring", limit=2)) == 2
    assert [m.city.geonameid for m in gazetteer.search("Springfield, UK", limit=10)] == [5, 2]
    assert [m.city.geonameid for m in gazetteer.search("Springfield, USA", limit=10)] == [1, 3]
    us_only = gazetteer.search("springfield", limit=10, country_code="US")
    assert [m.city.geonameid for m in us_only] == [1, 3]
    # The query's country and the filter disagree: nothing can match both.
    assert gazetteer.search("Springfield, UK", limit=10, country_code="US") == []


def test_an_address_is_placed_by_its_locality(gazetteer: Gazetteer) -> None:
    def placed(address: str) -> int | None:
        city = gazetteer.best_for_address(address)
        return city.geonameid if city is not None else None

    # The street's "Paris" is ignored: the later part names the locality.
    assert placed("12 Paris Street, Leeds, LS1 4AP, United Kingdom") == 8
    # A longer name beats a bigger city matching fewer words.
    assert placed("Avenida Central, San Jose") == 6
    # The country part picks between cities of the same name...
    assert placed("Main Street, Springfield, USA") == 1
    assert placed("Main Street, Springfield") == 5
    # ...and is itself a place only when nothing else matches.
    assert placed("1 Hospital Drive, Singapore") == 10
    assert placed("10 Downing Street") is None
    assert placed(" , ") is None


def test_the_bundled_gazetteer_is_built_once_per_process() -> None:
    first = load_gazetteer(15000)

    assert load_gazetteer(15000) is first
    assert len(first.cities) > 20_000


def _settings(**overrides: Any) -> Settings:
    return Settings(database_url="postgresql+asyncpg://unused@127.0.0.1/unused", **overrides)


def test_speeds_must_not_decrease_with_priority() -> None:
    with pytest.raises(ValidationError, match="route speeds"):
        _settings(route_speed_routine_kmh=70, route_speed_emergency_kmh=60)


def test_a_road_factor_below_one_is_refused() -> None:
    with pytest.raises(ValidationError):
        _settings(route_road_factor=0.9)


def test_a_blank_geocoder_url_means_none() -> None:
    assert _settings(geocoder_url=" ").geocoder_url is None
    assert _settings().geocoder_url is None


def test_the_database_url_is_required() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(database_url=None)
